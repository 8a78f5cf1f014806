package egress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/directory"
	"github.com/qqbridge/qqbridge/natsembed"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
	"github.com/qqbridge/qqbridge/session"
)

// The real session manager and directory fit the interfaces the stand-ins
// implement.
var (
	_ Sessions  = (*session.Manager)(nil)
	_ Directory = (*directory.Directory)(nil)
)

// Stable numbers of qqsim's default world used by the tests.
const (
	alice     = int64(123456)   // friend, member of group devChat
	carol     = int64(2468024)  // not a friend; member of devChat (temporary sessions)
	devChat   = int64(987654)   // group
	lunchDisc = int64(1008611)  // discussion (the simulator's stable id)
	nobody    = int64(99999999) // nobody the account knows
)

const waitFor = 20 * time.Second

// env is one bridge under test: an embedded nats-server with the bridge's
// streams, a simulator logged in through a real client, the test stand-ins
// for the session manager and the directory, and an Egress.
type env struct {
	t       *testing.T
	subj    schema.Subjects
	nc      *nats.Conn
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	sim     *qqsim.Server
	client  *qqclient.Client
	sess    *testSessions
	dir     *testDirectory
	eg      *Egress
	cfg     Config
	results chan *nats.Msg
}

type envOption func(*envOptions)

type envOptions struct {
	offline bool // do not log in
	cfg     func(*Config)
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
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()

	srv, err := natsembed.Start(natsembed.Options{DataDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatalf("natsembed.Start: %v", err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatalf("nats.Connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	subj, _ := schema.NewSubjects("")
	if err := bus.EnsureStreams(ctx, js, subj, bus.StreamOptions{}); err != nil {
		t.Fatalf("EnsureStreams: %v", err)
	}
	kv, err := bus.SentKV(ctx, js, subj, 1)
	if err != nil {
		t.Fatalf("SentKV: %v", err)
	}

	sim, err := qqsim.New(qqsim.Config{PollHold: 200 * time.Millisecond, QRTTL: 10 * time.Second, RateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	t.Cleanup(sim.Close)
	client, err := qqclient.New(qqclient.WithBaseURL(ts.URL), qqclient.WithQRPollInterval(10*time.Millisecond),
		qqclient.WithRequestTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	dir := &testDirectory{sim: sim}
	sess := &testSessions{client: client, changed: make(chan struct{}), onOnline: dir.refresh}
	e := &env{
		t: t, subj: subj, nc: nc, js: js, kv: kv, sim: sim, client: client, sess: sess,
		dir: dir, results: make(chan *nats.Msg, 64),
	}
	e.cfg = Config{
		Client: client, Session: sess, Dir: e.dir, NC: nc, JS: js, SentKV: kv, Subjects: subj,
		Log:  testLogger(t),
		Rate: 1000, Burst: 100,
		AckWait: 2 * time.Second, RetryInitial: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond,
		RetryFor: 10 * time.Second, APITimeout: 10 * time.Second,
	}
	if o.cfg != nil {
		o.cfg(&e.cfg)
	}
	e.eg = e.newEgress(e.cfg)
	if !o.offline {
		e.login()
	}
	sub, err := nc.ChanSubscribe(subj.ResultWildcard(), e.results)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return e
}

// login logs the client in by QR, the test playing the phone, and puts the
// session stand-in online.
func (e *env) login() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	s, err := e.client.LoginQR(ctx, func(ev qqclient.LoginEvent) {
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
			case <-time.After(waitFor):
				e.t.Errorf("Run did not return after its ctx ended")
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

// serve starts eg's micro service until the test ends.
func (e *env) serve(eg *Egress) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := eg.Service(ctx); err != nil {
		e.t.Fatalf("Service: %v", err)
	}
	e.t.Cleanup(func() { cancel(); eg.Wait() })
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
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ack, err := e.js.PublishMsg(ctx, m)
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
	select {
	case m := <-e.results:
		var r schema.Result
		if err := schema.Decode(m.Header.Get(schema.HeaderContentType), m.Data, &r); err != nil {
			e.t.Fatalf("result on %s: %v: %q", m.Subject, err, m.Data)
		}
		return m.Subject, r
	case <-time.After(waitFor):
		e.t.Fatalf("no result within %v", waitFor)
	}
	return "", schema.Result{}
}

// noMoreResults checks that no other result was published.
func (e *env) noMoreResults() {
	e.t.Helper()
	// Results are published before the request is acked, and the stream is
	// empty once every request was acked: wait for that, then look.
	e.waitOutEmpty()
	select {
	case m := <-e.results:
		e.t.Errorf("unexpected result on %s: %s", m.Subject, m.Data)
	default:
	}
}

// waitOutEmpty waits until the QQ_OUT stream holds no request (every one
// acked or terminated).
func (e *env) waitOutEmpty() {
	e.t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := e.js.Stream(ctx, e.subj.StreamOut())
		var n uint64
		if err == nil {
			var info *jetstream.StreamInfo
			info, err = s.Info(ctx)
			if err == nil {
				n = info.State.Msgs
			}
		}
		cancel()
		if err != nil {
			e.t.Fatalf("stream info: %v", err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d requests still in %s", n, e.subj.StreamOut())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// request calls a micro service endpoint.
func (e *env) request(subject string, body []byte, contentType string) *nats.Msg {
	e.t.Helper()
	m := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
	if contentType != "" {
		m.Header.Set(schema.HeaderContentType, contentType)
	}
	reply, err := e.nc.RequestMsg(m, waitFor)
	if err != nil {
		e.t.Fatalf("request %s: %v", subject, err)
	}
	return reply
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
// the test; a reported loss re-logs in with the client's cookies (a new
// generation with new session numbers).
type testSessions struct {
	client   *qqclient.Client
	onOnline func() // runs at every login before WaitOnline returns it

	mu      sync.Mutex
	online  bool
	account int64
	gen     uint64
	changed chan struct{} // closed at every change of online
	lost    []uint64
	logins  int
}

func (s *testSessions) setOnline(account int64) {
	if s.onOnline != nil {
		s.onOnline()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.online, s.account = true, account
	s.gen++
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *testSessions) WaitOnline(ctx context.Context) (session.Online, error) {
	for {
		s.mu.Lock()
		if s.online {
			o := session.Online{Account: s.account, Gen: s.gen}
			s.mu.Unlock()
			return o, nil
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return session.Online{}, ctx.Err()
		case <-ch:
		}
	}
}

func (s *testSessions) ReportLost(gen uint64, _ error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.online || gen != s.gen {
		return
	}
	s.lost = append(s.lost, gen)
	s.online = false
	close(s.changed)
	s.changed = make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		sess, err := s.client.Relogin(ctx)
		if err != nil {
			return // stays offline
		}
		s.setOnline(sess.UIN)
	}()
}

func (s *testSessions) State() schema.SessionState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := schema.SessionState{State: schema.StateAwaitingScan, Time: time.Unix(1700000000, 0).UTC()}
	if s.online {
		st.State, st.Account = schema.StateOnline, s.account
	}
	return st
}

func (s *testSessions) RequestLogin(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logins++
	return nil
}

func (s *testSessions) lostGens() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.lost...)
}

// testDirectory stands in for the directory: it keeps a snapshot of the
// simulator's session numbers, taken at every login (refresh), like a real
// directory that refreshes its contacts when the session comes online.
type testDirectory struct {
	sim *qqsim.Server

	mu sync.Mutex
	st qqsim.State
}

var errNoSuchTarget = errors.New("test directory: unknown target")

func (d *testDirectory) refresh() {
	st := d.sim.State()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st = st
}

func (d *testDirectory) snapshot() qqsim.State {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st
}

func (d *testDirectory) FriendUIN(_ context.Context, qq int64) (int64, error) {
	for _, f := range d.sim.WorldView().Friends {
		if f.QQ == qq {
			if uin, ok := d.snapshot().Friends[qq]; ok {
				return uin, nil
			}
		}
	}
	return 0, fmt.Errorf("%w: no friend with QQ number %d", errNoSuchTarget, qq)
}

func (d *testDirectory) MemberUIN(_ context.Context, gid, qq int64) (int64, error) {
	st := d.snapshot()
	for _, g := range d.sim.WorldView().Groups {
		if st.Groups[g.Number] != gid {
			continue
		}
		for _, m := range g.Members {
			if m.QQ == qq {
				return st.Friends[qq], nil
			}
		}
	}
	return 0, fmt.Errorf("%w: no member with QQ number %d in gid%d", errNoSuchTarget, qq, gid)
}

func (d *testDirectory) GroupGID(_ context.Context, number int64) (int64, error) {
	if gid, ok := d.snapshot().Groups[number]; ok {
		return gid, nil
	}
	return 0, fmt.Errorf("%w: no group with number %d", errNoSuchTarget, number)
}

func (d *testDirectory) Friends() []schema.Contact {
	st := d.snapshot()
	var out []schema.Contact
	for _, f := range d.sim.WorldView().Friends {
		out = append(out, schema.Contact{UIN: st.Friends[f.QQ], QQ: f.QQ, Nick: f.Nick})
	}
	return out
}

func (d *testDirectory) Groups() []schema.GroupRef {
	st := d.snapshot()
	var out []schema.GroupRef
	for _, g := range d.sim.WorldView().Groups {
		out = append(out, schema.GroupRef{GID: st.Groups[g.Number], Number: g.Number, Name: g.Name})
	}
	return out
}

func (d *testDirectory) Discussions() []schema.DiscussRef {
	st := d.snapshot()
	var out []schema.DiscussRef
	for _, dd := range d.sim.WorldView().Discussions {
		out = append(out, schema.DiscussRef{DID: st.Discussions[dd.ID], Name: dd.Name})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DID < out[j].DID })
	return out
}
