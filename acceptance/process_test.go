package acceptance_test

import (
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qqbridge/qqbridge/acceptance"
	"github.com/qqbridge/qqbridge/internal/testenv"
)

// TestAcceptance runs the acceptance suite in process mode: the bridge and
// the simulator are the binaries of cmd/bridge and cmd/qqsim, built into a
// temporary directory and run as processes of their own.
func TestAcceptance(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	bin := t.TempDir()
	build(t, bin, "bridge", "qqsim")
	acceptance.Run(t, &processes{bin: bin})
}

// build builds the commands with go build into dir.
func build(t *testing.T, dir string, cmds ...string) {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the binaries: %v", err)
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, c := range cmds {
		args = append(args, "github.com/qqbridge/qqbridge/cmd/"+c)
	}
	out, err := exec.Command(gobin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// processes is the Env of process mode.
type processes struct{ bin string }

func (p *processes) StartSim(t *testing.T) string {
	t.Helper()
	addr := testenv.FreeAddr(t)
	args := append([]string{"--listen", addr, "--poll-hold", "200ms", "--rate-limit=-1"}, testenv.SimFlags(t)...)
	proc := start(t, filepath.Join(p.bin, "qqsim"), args...)
	url := "http://" + addr
	testenv.Eventually(t, "qqsim answering on "+url, func() bool {
		if proc.exited() {
			t.Fatalf("qqsim exited: %v\n%s", proc.wait(), proc.Logs())
		}
		resp, err := http.Get(url + "/_sim/state")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return url
}

func (p *processes) StartBridge(t *testing.T, args []string) acceptance.Bridge {
	t.Helper()
	return start(t, filepath.Join(p.bin, "bridge"), args...)
}

// process is a child process with its output kept.
type process struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *testenv.LogBuffer
	done chan struct{}
	err  error
	once sync.Once
}

// start starts bin with args, its environment without QQBRIDGE_ variables
// (which would change its flags); it is stopped when the test ends.
func start(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "QQBRIDGE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out := &testenv.LogBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	p := &process{t: t, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { _ = p.Stop() })
	return p
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) wait() error {
	<-p.done
	return p.err
}

// Stop sends SIGTERM and waits for the exit; after 30s it kills the process.
func (p *process) Stop() error {
	p.once.Do(func() {
		if !p.exited() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
		select {
		case <-p.done:
		case <-time.After(testenv.WaitTimeout):
			_ = p.cmd.Process.Kill()
			<-p.done
			p.err = errors.Join(errors.New("did not exit within 30s of SIGTERM; killed"), p.err)
		}
	})
	return p.err
}

func (p *process) Logs() string { return p.out.String() }
