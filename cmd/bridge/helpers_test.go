package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
)

// waitFor bounds every wait of these tests: a bridge that never gets there fails the
// test instead of hanging it. It is a deadline, not a measurement.
const waitFor = 30 * time.Second

// newSim starts a simulator on a loopback listener with short durations.
func newSim(t *testing.T) (*qqsim.Server, string) {
	t.Helper()
	sim, err := qqsim.New(qqsim.Config{PollHold: 200 * time.Millisecond, Echo: true, RateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(func() {
		sim.Close()
		srv.Close()
	})
	return sim, srv.URL
}

// testConfig is a bridge configuration for tests: embedded NATS on a random port,
// store in a temporary directory, the simulator as QQ, short durations.
func testConfig(t *testing.T, simURL string) config {
	t.Helper()
	cfg := defaultConfig()
	cfg.NATSListen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.QQEndpoint = simURL
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.QRPollInterval = 50 * time.Millisecond
	cfg.PollTimeout = 5 * time.Second
	cfg.PollMinHold = 50 * time.Millisecond // the simulator holds an empty poll 200ms
	cfg.StateDebounce = -1                  // every state published, as the tests expect
	cfg.LeaderTTL = time.Second
	cfg.Rate = 50
	cfg.Burst = 10
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.LogLevel = zerolog.DebugLevel
	cfg.LogFormat = logJSON
	return cfg
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitText waits until the buffer contains s.
func (b *syncBuffer) waitText(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("output never contained %q:\n%s", s, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runningBridge is a bridge running in the background of a test.
type runningBridge struct {
	b      *Bridge
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
	stop   sync.Once
	err    error
}

// wireBridge wires cfg; start runs it. A test subscribes in between, so that it
// sees every message the bridge publishes.
func wireBridge(t *testing.T, cfg config) *runningBridge {
	t.Helper()
	logs := &syncBuffer{}
	b, err := wire(context.Background(), cfg, newLogger(logs, cfg.LogLevel, logJSON, false))
	if err != nil {
		t.Fatal(err)
	}
	return &runningBridge{b: b, logs: logs, done: make(chan error, 1)}
}

// start runs the bridge until the test ends (or stopBridge).
func (rb *runningBridge) start(t *testing.T) *runningBridge {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rb.cancel = cancel
	go func() { rb.done <- rb.b.Run(ctx) }()
	t.Cleanup(func() { rb.stopBridge(t) })
	return rb
}

// startBridge wires cfg and runs it at once.
func startBridge(t *testing.T, cfg config) *runningBridge {
	t.Helper()
	return wireBridge(t, cfg).start(t)
}

// stopBridge cancels the bridge's context and returns Run's error.
func (rb *runningBridge) stopBridge(t *testing.T) error {
	t.Helper()
	rb.stop.Do(func() {
		rb.cancel()
		select {
		case rb.err = <-rb.done:
		case <-time.After(waitFor):
			t.Errorf("the bridge did not stop")
		}
	})
	return rb.err
}

// recorder keeps every message on a subscription, in order, for the waits below.
type recorder struct {
	mu   sync.Mutex
	msgs []*nats.Msg
	more chan struct{} // closed and replaced at each message
}

func record(t *testing.T, nc *nats.Conn, subject string) *recorder {
	t.Helper()
	r := &recorder{more: make(chan struct{})}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		r.mu.Lock()
		r.msgs = append(r.msgs, m)
		close(r.more)
		r.more = make(chan struct{})
		r.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return r
}

// waitAfter returns the index and message of the first message at index ≥ from
// that matches, waiting for it.
func (r *recorder) waitAfter(t *testing.T, from int, what string, match func(*nats.Msg) bool) (int, *nats.Msg) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		r.mu.Lock()
		for i := from; i < len(r.msgs); i++ {
			if match(r.msgs[i]) {
				m := r.msgs[i]
				r.mu.Unlock()
				return i, m
			}
		}
		more := r.more
		r.mu.Unlock()
		select {
		case <-more:
		case <-deadline:
			t.Fatalf("never saw %s; saw:\n%s", what, r.dump())
		}
	}
}

// len returns the number of messages so far.
func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// count returns how many messages match.
func (r *recorder) count(match func(*nats.Msg) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if match(m) {
			n++
		}
	}
	return n
}

func (r *recorder) dump() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var sb strings.Builder
	p := &printer{w: &sb, subjects: schema.Subjects{}, body: true}
	for _, m := range r.msgs {
		p.print(m)
	}
	return sb.String()
}

// isState matches a state event of the given state.
func isState(s schema.Subjects, state string) func(*nats.Msg) bool {
	return func(m *nats.Msg) bool {
		if m.Subject != s.SessionState() {
			return false
		}
		var st schema.SessionState
		return schema.Decode(schema.HeaderValue(m.Header, schema.HeaderContentType), m.Data, &st) == nil && st.State == state
	}
}

// isEventText matches an inbound event on subject whose text is text.
func isEventText(subject, text string) func(*nats.Msg) bool {
	return func(m *nats.Msg) bool {
		if m.Subject != subject {
			return false
		}
		ev, err := schema.DecodeEvent(m.Header, m.Data)
		return err == nil && ev.Text == text
	}
}

// isResult matches the result of request id.
func isResult(id string) func(*nats.Msg) bool {
	return func(m *nats.Msg) bool {
		if !strings.Contains(m.Subject, ".result.") {
			return false
		}
		r, err := decodeResult(m)
		return err == nil && r.ID == id
	}
}

// connect opens a test connection to the bridge's NATS.
func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// getJSON fetches url and decodes its JSON body into v, returning the status.
func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("%s: %v: %s", url, err, body)
	}
	return resp.StatusCode
}

// sentTexts returns the texts the simulator received, by kind and stable target.
func sentTexts(sim *qqsim.Server, kind string, stable int64) []string {
	var out []string
	for _, r := range sim.Sent() {
		if r.Kind == kind && r.Stable == stable {
			out = append(out, r.Text)
		}
	}
	return out
}

// waitSent waits until the simulator received text for kind and stable.
func waitSent(t *testing.T, sim *qqsim.Server, kind string, stable int64, text string) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		for _, s := range sentTexts(sim, kind, stable) {
			if s == text {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the simulator never received %s %d %q; it has %q", kind, stable, text, sentTexts(sim, kind, stable))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
