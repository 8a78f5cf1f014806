package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/natsembed"
	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
)

// The RSS run: `bridge run` as a process of its own, with its embedded
// nats-server (no --nats), polling the simulator (in this process, on the
// loopback), which is fed group messages at a steady rate; the bridge's
// peak resident set (VmHWM of /proc/<pid>/status) is what it reports.

// RSSConfig sizes an RSS run.
type RSSConfig struct {
	Bridge   string        // the bridge binary; "" = go build ./cmd/bridge into a temporary directory
	Rate     int           // group messages a second (default 5000)
	Duration time.Duration // how long they are fed (default 30s)
	Env      []string      // more environment of the bridge (GOMEMLIMIT=…, GOGC=…, GODEBUG=gctrace=1)
	// Duplicates, when set, replaces the inbound stream's de-duplication
	// window once the bridge made the stream (an experiment: the stream's
	// index of the ids in the window is most of the bridge's heap).
	Duplicates time.Duration
	// ExternalNATS runs the nats-server in this process instead (the
	// bridge with --nats): the bridge's memory without the server's.
	ExternalNATS bool
	// Heap, when set, is a file the bridge's heap profile is written to once
	// every message is stored (the bridge with --pprof on a loopback port;
	// read it with go tool pprof -sample_index=inuse_space).
	Heap string
	Log  io.Writer // the bridge's output (nil: kept only for errors)
}

func (c *RSSConfig) defaults() {
	if c.Rate <= 0 {
		c.Rate = 5000
	}
	if c.Duration <= 0 {
		c.Duration = 30 * time.Second
	}
}

// RSSResult is what an RSS run measured.
type RSSResult struct {
	Fed        int           // messages the simulator was given
	Stored     uint64        // messages in the inbound stream at the end
	Rate       float64       // messages fed a second, as achieved
	Drain      time.Duration // from the last message fed to the last stored
	PeakRSS    int64         // VmHWM of the bridge, KiB
	Samples    []int64       // VmRSS of the bridge every second, KiB
	BeforeFeed int64         // VmRSS once online, before the first message, KiB
	MaxHeap    int64         // the largest live heap after a GC (gctrace), MiB; 0 without gctrace
}

// RunRSS runs the bridge binary against the simulator and feeds it
// cfg.Rate group messages a second for cfg.Duration.
func RunRSS(ctx context.Context, cfg RSSConfig) (res RSSResult, err error) {
	cfg.defaults()
	var heapMu sync.Mutex
	var maxHeap int64
	defer func() { // last: the bridge's output is read to its end
		heapMu.Lock()
		res.MaxHeap = maxHeap
		heapMu.Unlock()
	}()
	dir, err := os.MkdirTemp("", "qqbench-rss-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	bin := cfg.Bridge
	if bin == "" {
		bin = filepath.Join(dir, "bridge")
		out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/qqbridge/qqbridge/cmd/bridge").CombinedOutput()
		if err != nil {
			return res, fmt.Errorf("bench: go build the bridge: %v\n%s", err, out)
		}
	}
	sim, err := qqsim.New(qqsim.Config{World: qqsim.DefaultWorld(), PollHold: 30 * time.Second, RateLimit: -1})
	if err != nil {
		return res, err
	}
	ts := httptest.NewServer(sim)
	defer ts.Close()
	defer sim.Close()
	natsAddr, err := freeAddr()
	if err != nil {
		return res, err
	}
	args := []string{"run", "--nats-listen", natsAddr, "--data-dir", filepath.Join(dir, "data")}
	if cfg.ExternalNATS {
		srv, err := natsembed.Start(natsembed.Options{DataDir: filepath.Join(dir, "nats"), Port: -1})
		if err != nil {
			return res, err
		}
		defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
		natsAddr = strings.TrimPrefix(srv.ClientURL(), "nats://")
		args = []string{"run", "--nats", srv.ClientURL()}
	}
	httpAddr := ""
	if cfg.Heap != "" {
		if httpAddr, err = freeAddr(); err != nil {
			return res, err
		}
		args = append(args, "--pprof")
	}
	args = append(args, "--qq-endpoint", ts.URL, "--http", httpAddr, "--log-format", "json", "--log-level", "warn",
		"--qr-poll-interval", "50ms", "--poll-timeout", "40s")
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "QQBRIDGE_") && !strings.HasPrefix(kv, "GOMEMLIMIT=") && !strings.HasPrefix(kv, "GOGC=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, cfg.Env...)
	logs := &tail{max: 64 << 10}
	var out io.Writer = logs
	if cfg.Log != nil {
		out = io.MultiWriter(logs, cfg.Log)
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(out, line)
			if mb, ok := gcLiveHeap(line); ok {
				heapMu.Lock()
				maxHeap = max(maxHeap, mb)
				heapMu.Unlock()
			}
		}
	}()
	if err := cmd.Start(); err != nil {
		return res, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); _ = pw.Close() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		<-scanned
	}()
	fail := func(err error) (RSSResult, error) {
		return res, fmt.Errorf("%w\nbridge output (end):\n%s", err, logs.String())
	}

	// Its NATS, then the QR login (this process plays the phone).
	var nc *nats.Conn
	if err := waitUntil(ctx, exited, 30*time.Second, func() bool {
		nc, err = nats.Connect("nats://"+natsAddr, nats.MaxReconnects(-1))
		return err == nil
	}); err != nil {
		return fail(fmt.Errorf("bench: the bridge's embedded NATS: %w", err))
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return res, err
	}
	if err := waitUntil(ctx, exited, 60*time.Second, func() bool { return sim.ScanQR() == nil }); err != nil {
		return fail(fmt.Errorf("bench: no QR to scan: %w", err))
	}
	if err := sim.ConfirmQR(); err != nil {
		return fail(err)
	}
	if err := waitUntil(ctx, exited, 60*time.Second, func() bool { return sim.State().Counters["polls_held"] > 0 }); err != nil {
		return fail(fmt.Errorf("bench: the bridge never polled: %w", err))
	}
	subjects, _ := schema.NewSubjects(schema.DefaultPrefix)
	stored := func() uint64 {
		st, err := js.Stream(ctx, subjects.StreamIn())
		if err != nil {
			return 0
		}
		info, err := st.Info(ctx)
		if err != nil {
			return 0
		}
		return info.State.Msgs
	}
	if err := waitUntil(ctx, exited, 30*time.Second, func() bool { _, err := js.Stream(ctx, subjects.StreamIn()); return err == nil }); err != nil {
		return fail(fmt.Errorf("bench: no inbound stream: %w", err))
	}
	if cfg.Duplicates > 0 {
		st, err := js.Stream(ctx, subjects.StreamIn())
		if err != nil {
			return res, err
		}
		c := st.CachedInfo().Config
		c.Duplicates = cfg.Duplicates
		if _, err := js.UpdateStream(ctx, c); err != nil {
			return res, fmt.Errorf("bench: the inbound stream's duplicates window: %w", err)
		}
	}
	time.Sleep(2 * time.Second) // the directory loaded, the first GCs done
	pid := cmd.Process.Pid
	res.BeforeFeed = procStatus(pid, "VmRSS")

	// Feed: every 10ms the messages due by then.
	st := sim.State()
	item := func(id int64) json.RawMessage {
		gid := strconv.FormatInt(st.Groups[devChat], 10)
		return json.RawMessage(`{"poll_type":"group_message","value":{"msg_id":` + strconv.FormatInt(id, 10) +
			`,"msg_id2":1,"msg_type":43,"from_uin":` + gid + `,"group_code":` + gid +
			`,"send_uin":` + strconv.FormatInt(st.Friends[alice], 10) +
			`,"seq":51,"to_uin":931996776,"time":` + strconv.FormatInt(time.Now().Unix(), 10) +
			`,"content":[["font",{"name":"微软雅黑","size":10,"style":[0,0,0],"color":"000000"}],"rss run ` + strconv.FormatInt(id, 10) + `",["face",14]]}}`)
	}
	sample := time.NewTicker(time.Second)
	defer sample.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	var id int64 = 1000
	for time.Since(start) < cfg.Duration {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case err := <-exited:
			exited <- err
			return fail(fmt.Errorf("bench: the bridge exited: %v", err))
		case <-sample.C:
			res.Samples = append(res.Samples, procStatus(pid, "VmRSS"))
		case <-tick.C:
			due := int(time.Since(start).Seconds()*float64(cfg.Rate)) - res.Fed
			if due <= 0 {
				continue
			}
			items := make([]json.RawMessage, due)
			for k := range items {
				id++
				items[k] = item(id)
			}
			if err := sim.Inject(items); err != nil {
				return res, err
			}
			res.Fed += due
		}
	}
	fedFor := time.Since(start)
	res.Rate = float64(res.Fed) / fedFor.Seconds()
	fedAt := time.Now()
	if err := waitUntil(ctx, exited, 2*time.Minute, func() bool { return stored() >= uint64(res.Fed) }); err != nil {
		res.Stored = stored()
		return fail(fmt.Errorf("bench: %d of %d stored: %w", res.Stored, res.Fed, err))
	}
	res.Drain = time.Since(fedAt)
	res.Stored = stored()
	res.PeakRSS = procStatus(pid, "VmHWM")
	if cfg.Heap != "" {
		if err := saveHeap(ctx, "http://"+httpAddr+"/debug/pprof/heap", cfg.Heap); err != nil {
			return res, err
		}
	}
	return res, nil
}

// saveHeap writes the heap profile served at url (after a GC: ?gc=1) to file.
func saveHeap(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"?gc=1", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("bench: the bridge's heap profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bench: the bridge's heap profile: %s", resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WriteRSS prints an RSS result.
func WriteRSS(w io.Writer, cfg RSSConfig, r RSSResult) {
	cfg.defaults()
	where := "embedded NATS"
	if cfg.ExternalNATS {
		where = "NATS in the harness's process, --nats"
	}
	fmt.Fprintf(w, "bridge run (%s) fed %d group messages in %v (%.0f/s), all %d stored %v after the last\n",
		where, r.Fed, cfg.Duration, r.Rate, r.Stored, r.Drain.Round(time.Millisecond))
	fmt.Fprintf(w, "bridge peak RSS (VmHWM): %.1f MiB; RSS once online: %.1f MiB; during the run (MiB, each second):",
		float64(r.PeakRSS)/1024, float64(r.BeforeFeed)/1024)
	for _, s := range r.Samples {
		fmt.Fprintf(w, " %.0f", float64(s)/1024)
	}
	fmt.Fprintln(w)
	if r.MaxHeap > 0 {
		fmt.Fprintf(w, "largest live Go heap after a GC (gctrace): %d MiB\n", r.MaxHeap)
	}
	if len(cfg.Env) > 0 {
		fmt.Fprintf(w, "bridge environment: %s\n", strings.Join(cfg.Env, " "))
	}
	if cfg.Duplicates > 0 {
		fmt.Fprintf(w, "inbound stream's de-duplication window set to %v (the bridge's default: 20m)\n", cfg.Duplicates)
	}
}

// procStatus is the value of field (VmRSS, VmHWM) of /proc/<pid>/status
// in KiB, 0 when unknown.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// gcTrace matches the heap sizes of a gctrace line: "4->5->2 MB".
var gcTrace = regexp.MustCompile(`(\d+)->(\d+)->(\d+) MB`)

// gcLiveHeap is the live heap after the GC of a gctrace line, in MiB.
func gcLiveHeap(line string) (int64, bool) {
	if !strings.HasPrefix(line, "gc ") {
		return 0, false
	}
	m := gcTrace.FindStringSubmatch(line)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(m[3], 10, 64)
	return n, err == nil
}

// freeAddr is a free loopback host:port.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitUntil polls cond every 50ms until it holds; an error when ctx ends,
// d passes or the process exits (exited) first.
func waitUntil(ctx context.Context, exited chan error, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("the bridge exited: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errTimeout
		}
	}
	return nil
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
