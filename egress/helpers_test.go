package egress

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/directory"
	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/live"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
)

// The real directory is the Resolver; the tests use it.
var _ Resolver = (*directory.Directory)(nil)

// nobody is a number the account does not know (the world's numbers are
// testenv's).
const nobody = int64(99999999)

// env is one bridge under test: an embedded nats-server with the bridge's
// streams, a simulator (behind httpFaults) logged in through a real client,
// the real directory, a test stand-in for the session manager that hands out
// live sessions, and an Egress.
type env struct {
	t       *testing.T
	subj    schema.Subjects
	nc      *nats.Conn
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	sim     *testenv.Sim
	faults  *httpFaults
	client  *qqclient.Client
	sess    *testSessions
	dir     *directory.Directory
	eg      *Egress
	cfg     Config
	results *testenv.Recorder
	next    int // the index in results of the next result()
}

type envOption func(*envOptions)

type envOptions struct {
	offline bool // do not log in
	cfg     func(*Config)
}

// httpFaults sits between the client and the simulator: while garble is set,
// the answers to the protocol calls whose path ends in it are cut short
// (HTTP 200, truncated JSON), as a garbled answer would be.
type httpFaults struct {
	next http.Handler

	mu      sync.Mutex
	garble  string
	garbled int
}

func (f *httpFaults) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	hit := f.garble != "" && strings.HasSuffix(r.URL.Path, f.garble)
	if hit {
		f.garbled++
	}
	f.mu.Unlock()
	if hit {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"retcode":0,"result":{"friends":[`))
		return
	}
	f.next.ServeHTTP(w, r)
}

func (f *httpFaults) set(path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.garble = path
}

func (f *httpFaults) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.garbled
}

func offline() envOption { return func(o *envOptions) { o.offline = true } }
func withConfig(f func(*Config)) envOption {
	return func(o *envOptions) { o.cfg = f }
}

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	var o envOptions
	for _, f := range opts {
		f(&o)
	}
	ctx := testenv.Context(t)
	nc, js := testenv.StartNATS(t).Connect()
	subj, _ := schema.NewSubjects("")
	if err := bus.EnsureStreams(ctx, js, subj, bus.StreamOptions{}); err != nil {
		t.Fatalf("EnsureStreams: %v", err)
	}
	kv, err := bus.SentKV(ctx, js, subj, 1)
	if err != nil {
		t.Fatalf("SentKV: %v", err)
	}

	simCfg := testenv.SimConfig()
	simCfg.QRTTL, simCfg.Echo = 10*time.Second, false
	var faults *httpFaults
	sim := testenv.StartSim(t, simCfg, func(next http.Handler) http.Handler {
		faults = &httpFaults{next: next}
		return faults
	})
	client, err := qqclient.New(qqclient.WithBaseURL(sim.URL), qqclient.WithQRPollInterval(10*time.Millisecond),
		qqclient.WithRequestTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	dir := directory.New(client, testLogger(t))
	sess := &testSessions{client: client, changed: make(chan struct{}), onOnline: func() {
		ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
		defer cancel()
		_ = dir.Refresh(ctx) // as the bridge does at login; a failure is retried by the lookups
	}}
	e := &env{
		t: t, subj: subj, nc: nc, js: js, kv: kv, sim: sim, faults: faults, client: client, sess: sess,
		dir: dir, results: testenv.Record(t, nc, subj.ResultWildcard()),
	}
	e.cfg = Config{
		Client: client, Sessions: sess, Dir: dir, JS: js, SentKV: kv, Subjects: subj,
		Log:  testLogger(t),
		Rate: 1000, Burst: 100,
		AckWait: 2 * time.Second, RetryInitial: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond,
		RetryFor: 10 * time.Second,
	}
	if o.cfg != nil {
		o.cfg(&e.cfg)
	}
	e.eg = e.newEgress(e.cfg)
	if !o.offline {
		e.login()
	}
	return e
}

// login logs the client in by QR, the test playing the phone, and puts the
// session stand-in online.
func (e *env) login() {
	e.t.Helper()
	s, err := e.client.LoginQR(testenv.Context(e.t), func(ev qqclient.LoginEvent) {
		if ev.Step == qqclient.LoginQRReady {
			if err := e.sim.ScanQR(); err != nil {
				e.t.Errorf("ScanQR: %v", err)
			}
			if err := e.sim.ConfirmQR(); err != nil {
				e.t.Errorf("ConfirmQR: %v", err)
			}
		}
	})
	if err != nil {
		e.t.Fatalf("LoginQR: %v", err)
	}
	e.sess.setOnline(s.UIN)
}

// testLogger writes the Egress's log into the test log.
func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.ConsoleWriter{Out: testWriter{t}, NoColor: true}).Level(zerolog.InfoLevel)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

func (e *env) newEgress(cfg Config) *Egress {
	e.t.Helper()
	eg, err := New(cfg)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	return eg
}

// run starts eg.Run until the test ends (or stop is called); stop waits for
// Run to return and checks it returned nil.
func (e *env) run(eg *Egress) (stop func()) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eg.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					e.t.Errorf("Run: %v", err)
				}
			case <-time.After(testenv.WaitTimeout):
				e.t.Errorf("Run did not return after its ctx ended")
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

// publish puts a request on subject through JetStream; msgID (optional)
// becomes Nats-Msg-Id, contentType (optional) Content-Type.
func (e *env) publish(subject string, body []byte, contentType, msgID string) uint64 {
	e.t.Helper()
	m := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
	if contentType != "" {
		m.Header.Set(schema.HeaderContentType, contentType)
	}
	if msgID != "" {
		m.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	ack, err := e.js.PublishMsg(testenv.Context(e.t), m)
	if err != nil {
		e.t.Fatalf("publish %s: %v", subject, err)
	}
	return ack.Sequence
}

// publishJSON publishes v as JSON on <prefix>.out.<kind>.
func (e *env) publishJSON(kind schema.Kind, v any) uint64 {
	e.t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.publish(e.subj.Out(kind), body, "", "")
}

// result waits for the next result message and decodes it.
func (e *env) result() (string, schema.Result) {
	e.t.Helper()
	i, m := e.results.WaitFrom(e.next, "a result", testenv.Any)
	e.next = i + 1
	var r schema.Result
	if err := schema.Decode(m.Header.Get(schema.HeaderContentType), m.Data, &r); err != nil {
		e.t.Fatalf("result on %s: %v: %q", m.Subject, err, m.Data)
	}
	return m.Subject, r
}

// noMoreResults checks that no other result was published.
func (e *env) noMoreResults() {
	e.t.Helper()
	// Results are published before the request is acked, and the stream is
	// empty once every request was acked: wait for that, then look.
	e.waitOutEmpty()
	if msgs := e.results.Msgs(); len(msgs) > e.next {
		m := msgs[e.next]
		e.t.Errorf("unexpected result on %s: %s", m.Subject, m.Data)
	}
}

// waitOutEmpty waits until the QQ_OUT stream holds no request (every one
// acked or terminated).
func (e *env) waitOutEmpty() {
	e.t.Helper()
	testenv.Eventually(e.t, "no request left in "+e.subj.StreamOut(), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := e.js.Stream(ctx, e.subj.StreamOut())
		var info *jetstream.StreamInfo
		if err == nil {
			info, err = s.Info(ctx)
		}
		if err != nil {
			e.t.Fatalf("stream info: %v", err)
		}
		return info.State.Msgs == 0
	})
}

// sent returns what the simulator received.
func (e *env) sent() []qqsim.SentRecord { return e.sim.Sent() }

// readTestdata returns the bytes of testdata/<name>.
func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testSessions stands in for the session manager: one account, logged in by
// the test; each login is a term (a live.Session of a new generation); a
// reported loss ends the term and re-logs in with the client's cookies (new
// session numbers).
type testSessions struct {
	client   *qqclient.Client
	onOnline func() // runs at every login before Await hands it out

	mu      sync.Mutex
	online  bool
	account int64
	gen     uint64
	term    context.Context
	endTerm context.CancelFunc
	changed chan struct{} // closed at every change of online
	lost    []uint64
}

func (s *testSessions) setOnline(account int64) {
	if s.onOnline != nil {
		s.onOnline()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.endTerm != nil {
		s.endTerm()
	}
	s.term, s.endTerm = context.WithCancel(context.Background())
	s.online, s.account = true, account
	s.gen++
	close(s.changed)
	s.changed = make(chan struct{})
}

// Await implements live.Source.
func (s *testSessions) Await(ctx context.Context) (live.Session, error) {
	for {
		s.mu.Lock()
		if s.online {
			o := live.New(s.term, s.account, s.gen, s)
			s.mu.Unlock()
			return o, nil
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return live.Session{}, ctx.Err()
		case <-ch:
		}
	}
}

// Lost implements live.Reports.
func (s *testSessions) Lost(gen uint64, _ error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.online || gen != s.gen {
		return
	}
	s.lost = append(s.lost, gen)
	s.online = false
	s.endTerm()
	close(s.changed)
	s.changed = make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
		defer cancel()
		sess, err := s.client.Relogin(ctx)
		if err != nil {
			return // stays offline
		}
		s.setOnline(sess.UIN)
	}()
}

// Kicked implements live.Reports.
func (s *testSessions) Kicked(uint64, string) {}

func (s *testSessions) lostGens() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.lost...)
}

// startDyingReplica runs a second Egress with a NATS connection and a
// session term of its own. kill is its death: the connection goes, its term
// ends (so that a send of its is cut short) and it is stopped, unable to say
// or record anything more.
func (e *env) startDyingReplica(t *testing.T) (kill func()) {
	t.Helper()
	nc := testenv.Connect(t, e.nc.ConnectedUrl())
	js := testenv.JetStream(t, nc)
	dyingSess := &testSessions{client: e.client, changed: make(chan struct{})}
	e.sess.mu.Lock()
	account := e.sess.account
	e.sess.mu.Unlock()
	dyingSess.setOnline(account)
	dying := e.cfg
	dying.JS, dying.Sessions = js, dyingSess
	var err error
	if dying.SentKV, err = js.KeyValue(testenv.Context(t), e.kv.Bucket()); err != nil {
		t.Fatal(err)
	}
	stopDying := e.run(e.newEgress(dying))
	return func() {
		nc.Close()
		dyingSess.mu.Lock()
		dyingSess.endTerm()
		dyingSess.mu.Unlock()
		go stopDying()
	}
}
