//go:build chaos

package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildBinaries builds cmd/bridge and cmd/qqsim into dir.
func buildBinaries(t *testing.T, dir string) (bridge, qqsim string) {
	t.Helper()
	bridge, qqsim = filepath.Join(dir, "bridge"), filepath.Join(dir, "qqsim")
	for _, b := range []struct{ out, pkg string }{{bridge, "./cmd/bridge"}, {qqsim, "./cmd/qqsim"}} {
		cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
		cmd.Dir = ".." // the module root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	return bridge, qqsim
}

// proc is a process the suite starts, kills -9 and starts again with the
// same arguments; its output goes to one log file across restarts.
type proc struct {
	name string
	bin  string
	args []string
	log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func newProc(t *testing.T, dir, name, bin string, args ...string) *proc {
	p := &proc{name: name, bin: bin, args: args, log: filepath.Join(dir, name+".log")}
	t.Cleanup(p.stop)
	return p
}

func (p *proc) start() error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	return nil
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// stop sends SIGTERM, then SIGKILL after a while.
func (p *proc) stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// exited reports whether the process started last has ended by itself.
func (p *proc) exited() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return true
	default:
		return false
	}
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// pid is the process id of the process started last, 0 when it is not running.
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// ownerOf returns which of procs holds the loopback TCP connection whose
// local address is addr ("127.0.0.1:port", as its peer saw it) to port
// peer, -1 when none does. It reads Linux's /proc: the socket's inode in
// /proc/net/tcp, then each process's descriptors.
func ownerOf(addr string, peer int, procs []*proc) int {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return -1
	}
	lp, err := strconv.Atoi(port)
	if err != nil {
		return -1
	}
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return -1
	}
	inode := ""
	for _, line := range strings.Split(string(b), "\n") {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		f := strings.Fields(line)
		if len(f) > 9 && strings.HasSuffix(f[1], fmt.Sprintf(":%04X", lp)) &&
			strings.HasSuffix(f[2], fmt.Sprintf(":%04X", peer)) && f[9] != "0" {
			inode = f[9]
			break
		}
	}
	if inode == "" {
		return -1
	}
	for i, p := range procs {
		pid := p.pid()
		if pid == 0 {
			continue
		}
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && l == "socket:["+inode+"]" {
				return i
			}
		}
	}
	return -1
}

// tail returns the last n bytes of the log.
func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// countLog counts log lines of p containing s.
func (p *proc) countLog(s string) int {
	b, _ := os.ReadFile(p.log)
	return bytes.Count(b, []byte(s))
}

// grepLog returns p's log lines containing s, the last 20 at most.
func (p *proc) grepLog(s string) []string {
	b, _ := os.ReadFile(p.log)
	var ls []string
	for _, l := range bytes.Split(b, []byte("\n")) {
		if bytes.Contains(l, []byte(s)) {
			ls = append(ls, string(l))
		}
	}
	return ls[max(0, len(ls)-20):]
}

var httpc = &http.Client{Timeout: 5 * time.Second}

// getJSON GETs url into v and returns the status code (0 when unreachable).
func getJSON(url string, v any) int {
	resp, err := httpc.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(v)
	return resp.StatusCode
}

// postJSON POSTs body to url and decodes the answer into v (nil: discarded).
func postJSON(ctx context.Context, url string, body, v any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if v != nil {
		return json.Unmarshal(data, v)
	}
	return nil
}

// waitFor polls cond every 100 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}
