package session_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/live"
	"github.com/qqbridge/qqbridge/natsembed"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
	"github.com/qqbridge/qqbridge/session"
	"github.com/rs/zerolog"
)

// waitFor bounds every wait of these tests; it only guards against a hang.
const waitFor = 20 * time.Second

// env is one test's world: a simulator on a loopback listener, an embedded
// NATS server with the session bucket, and subscriptions to the state and QR
// subjects.
type env struct {
	t       *testing.T
	sim     *qqsim.Server
	url     string
	pngs    *pngRecorder
	natsURL string
	nc      *nats.Conn
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	subj    schema.Subjects
	states  chan stateMsg
	qrs     chan *nats.Msg
	logs    *syncBuffer
}

type stateMsg struct {
	st          schema.SessionState
	contentType string
}

// pngRecorder passes requests to the simulator and keeps the QR images it
// serves, so that a test can compare the published QR with the real one.
type pngRecorder struct {
	h    http.Handler
	mu   sync.Mutex
	pngs [][]byte
}

func (p *pngRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/ptqrshow" {
		p.h.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	p.h.ServeHTTP(rec, r)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	body := rec.Body.Bytes()
	_, _ = w.Write(body)
	if rec.Code == http.StatusOK {
		p.mu.Lock()
		p.pngs = append(p.pngs, bytes.Clone(body))
		p.mu.Unlock()
	}
}

func (p *pngRecorder) last() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pngs) == 0 {
		return nil
	}
	return p.pngs[len(p.pngs)-1]
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newEnv(t *testing.T, simCfg qqsim.Config) *env {
	t.Helper()
	if simCfg.PollHold == 0 {
		simCfg.PollHold = 200 * time.Millisecond
	}
	if simCfg.Profile == "" { // the test run's era (testenv.SimEra)
		simCfg.Profile, simCfg.Strict = testenv.SimEra(t)
	}
	sim, err := qqsim.New(simCfg)
	if err != nil {
		t.Fatalf("qqsim.New: %v", err)
	}
	rec := &pngRecorder{h: sim}
	hs := httptest.NewServer(rec)
	t.Cleanup(func() {
		sim.Close()
		hs.Close()
	})

	ns, err := natsembed.Start(natsembed.Options{DataDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatalf("natsembed.Start: %v", err)
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	e := &env{
		t: t, sim: sim, url: hs.URL, pngs: rec, natsURL: ns.ClientURL(),
		states: make(chan stateMsg, 64), qrs: make(chan *nats.Msg, 16), logs: &syncBuffer{},
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("manager logs:\n%s", e.logs.String())
		}
	})
	e.nc, e.js = e.connect()
	e.subj, _ = schema.NewSubjects("qq")
	ctx := e.ctx()
	if e.kv, err = bus.SessionKV(ctx, e.js, e.subj, 1); err != nil {
		t.Fatalf("SessionKV: %v", err)
	}
	if _, err := e.nc.Subscribe(e.subj.SessionState(), func(m *nats.Msg) {
		var st schema.SessionState
		if err := schema.Decode(m.Header.Get("Content-Type"), m.Data, &st); err != nil {
			t.Errorf("undecodable state event: %v", err)
			return
		}
		e.states <- stateMsg{st: st, contentType: m.Header.Get("Content-Type")}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.nc.Subscribe(e.subj.SessionQR(), func(m *nats.Msg) { e.qrs <- m }); err != nil {
		t.Fatal(err)
	}
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return e
}

// connect opens a NATS connection of its own (one per replica).
func (e *env) connect() (*nats.Conn, jetstream.JetStream) {
	e.t.Helper()
	nc, err := nats.Connect(e.natsURL, nats.Timeout(waitFor))
	if err != nil {
		e.t.Fatalf("connect: %v", err)
	}
	e.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		e.t.Fatal(err)
	}
	return nc, js
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
	e.t.Cleanup(cancel)
	return ctx
}

// replica is one running Manager with its own client and NATS connection.
type replica struct {
	m      *session.Manager
	client *qqclient.Client
	nc     *nats.Conn
	stop   func()
}

// start runs a Manager. cfg's Client, NC, JS, KV, Subjects and Log are filled
// in; the short timings of a test are the defaults.
func (e *env) start(cfg session.Config) *replica {
	e.t.Helper()
	return e.startWith(cfg, nil)
}

// startWith is start with setup called on the Manager before it runs.
func (e *env) startWith(cfg session.Config, setup func(*session.Manager)) *replica {
	e.t.Helper()
	client, err := qqclient.New(qqclient.WithBaseURL(e.url), qqclient.WithQRPollInterval(20*time.Millisecond),
		qqclient.WithPollTimeout(5*time.Second))
	if err != nil {
		e.t.Fatal(err)
	}
	nc, js := e.connect()
	kv, err := js.KeyValue(e.ctx(), e.subj.SessionBucket())
	if err != nil {
		e.t.Fatal(err)
	}
	cfg.Client, cfg.NC, cfg.JS, cfg.KV, cfg.Subjects = client, nc, js, kv, e.subj
	cfg.Log = zerolog.New(e.logs).With().Timestamp().Logger()
	if cfg.LeaderTTL == 0 {
		cfg.LeaderTTL = 5 * time.Second
	}
	if cfg.StateDebounce == 0 {
		cfg.StateDebounce = -1 // every state published: the tests of the debounce set it
	}
	if cfg.RetryInitial == 0 {
		cfg.RetryInitial = 50 * time.Millisecond
		cfg.RetryMax = 500 * time.Millisecond
	}
	m, err := session.New(cfg)
	if err != nil {
		e.t.Fatalf("session.New: %v", err)
	}
	if setup != nil {
		setup(m)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					e.t.Errorf("Run: %v", err)
				}
			case <-time.After(waitFor):
				e.t.Error("Run did not return after its context ended")
			}
		})
	}
	e.t.Cleanup(stop)
	return &replica{m: m, client: client, nc: nc, stop: stop}
}

// nextState returns the next state event.
func (e *env) nextState() schema.SessionState {
	e.t.Helper()
	select {
	case s := <-e.states:
		return s.st
	case <-time.After(waitFor):
		e.t.Fatal("no state event")
	}
	return schema.SessionState{}
}

// expectStates reads the next state events and checks them in order.
func (e *env) expectStates(want ...schema.State) {
	e.t.Helper()
	for i, w := range want {
		if got := e.nextState(); got.State != w {
			e.t.Fatalf("state event %d = %q (%s), want %q; the states wanted: %v", i+1, got.State, got.Reason, w, want)
		}
	}
}

// skipTo reads state events until want, failing on any state in forbidden.
func (e *env) skipTo(want schema.State, forbidden ...schema.State) schema.SessionState {
	e.t.Helper()
	for {
		got := e.nextState()
		if got.State == want {
			return got
		}
		for _, f := range forbidden {
			if got.State == f {
				e.t.Fatalf("state %q (%s) before %q", got.State, got.Reason, want)
			}
		}
	}
}

// noStateEvent checks that no state event is waiting.
func (e *env) noStateEvent() {
	e.t.Helper()
	select {
	case s := <-e.states:
		e.t.Fatalf("unexpected state event %q (%s)", s.st.State, s.st.Reason)
	default:
	}
}

// nextQR returns the next QR message.
func (e *env) nextQR() *nats.Msg {
	e.t.Helper()
	select {
	case m := <-e.qrs:
		return m
	case <-time.After(waitFor):
		e.t.Fatal("no QR event")
	}
	return nil
}

// scan plays the phone: scan and confirm the QR code shown, expecting the
// states scanned and online.
func (e *env) scan() {
	e.t.Helper()
	if err := e.sim.ScanQR(); err != nil {
		e.t.Fatalf("ScanQR: %v", err)
	}
	e.expectStates(schema.StateScanned)
	if err := e.sim.ConfirmQR(); err != nil {
		e.t.Fatalf("ConfirmQR: %v", err)
	}
	e.expectStates(schema.StateOnline)
}

// waitOnline waits for the replica's live session.
func (r *replica) waitOnline(t *testing.T) live.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	o, err := r.m.Sessions().Await(ctx)
	if err != nil {
		t.Fatalf("Sessions().Await: %v", err)
	}
	return o
}

// pollUntilGone polls with the replica's client, as the ingress does, until
// the session ends: it returns the kick event, or the lost-session error.
func (r *replica) pollUntilGone(t *testing.T) (*qqclient.Kick, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for {
		evs, err := r.client.Poll(ctx)
		for _, ev := range evs {
			if ev.Kick != nil {
				return ev.Kick, nil
			}
		}
		if err != nil {
			if !errors.Is(err, qqclient.ErrSessionLost) {
				t.Fatalf("poll: %v", err)
			}
			return nil, err
		}
	}
}

// eventually waits until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kvState reads the latest state from the bucket.
func (e *env) kvState(codec schema.Codec) schema.SessionState {
	e.t.Helper()
	ent, err := e.kv.Get(e.ctx(), schema.SessionKeyState)
	if err != nil {
		e.t.Fatalf("KV state: %v", err)
	}
	var st schema.SessionState
	if err := codec.Unmarshal(ent.Value(), &st); err != nil {
		e.t.Fatalf("KV state: %v", err)
	}
	return st
}

// counter reads a simulator counter.
func (e *env) counter(name string) int64 { return e.sim.State().Counters[name] }
