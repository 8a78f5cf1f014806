package api

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/directory"
	"github.com/qqbridge/qqbridge/egress"
	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/live"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

// The real components fit the interfaces the API needs.
var (
	_ Sender   = (*egress.Egress)(nil)
	_ Contacts = (*directory.Directory)(nil)
)

// Stable numbers of qqsim's default world used by the tests.
const (
	alice   = testenv.Alice   // friend
	carol   = testenv.Carol   // not a friend; member of devChat
	devChat = testenv.DevChat // group
	nobody  = int64(99999999) // nobody the account knows
)

// env is one bridge's API under test: an embedded nats-server with the
// bridge's streams, a simulator logged in through a real client, the real
// directory and egress, a stand-in for the session manager, and the API.
type env struct {
	t      *testing.T
	subj   schema.Subjects
	nc     *nats.Conn
	sim    *testenv.Sim
	client *qqclient.Client
	sess   *testSession
	dir    *directory.Directory
	api    *API
	svc    micro.Service
}

// newEnv starts everything; with online the client logs in first. cfg, when
// given, changes the API's Config.
func newEnv(t *testing.T, online bool, cfg func(*Config)) *env {
	t.Helper()
	ctx := testenv.Context(t)
	nc, js := testenv.StartNATS(t).Connect()
	subj, _ := schema.NewSubjects("")
	if err := bus.EnsureStreams(ctx, js, subj, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	kv, err := bus.SentKV(ctx, js, subj, 1)
	if err != nil {
		t.Fatal(err)
	}
	simCfg := testenv.SimConfig()
	simCfg.QRTTL, simCfg.Echo = 10*time.Second, false
	sim := testenv.StartSim(t, simCfg)
	client, err := qqclient.New(qqclient.WithBaseURL(sim.URL), qqclient.WithQRPollInterval(10*time.Millisecond),
		qqclient.WithRequestTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	dir := directory.New(client, log)
	e := &env{t: t, subj: subj, nc: nc, sim: sim, client: client, dir: dir, sess: newTestSession(dir)}
	eg, err := egress.New(egress.Config{
		Client: client, Sessions: e.sess, Dir: dir, JS: js, SentKV: kv, Subjects: subj, Log: log,
		Rate: 1000, Burst: 100, RetryInitial: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	c := Config{NC: nc, Sender: eg, Contacts: dir, Session: e.sess, Subjects: subj, Log: log, Timeout: 10 * time.Second}
	if cfg != nil {
		cfg(&c)
	}
	if e.api, err = New(c); err != nil {
		t.Fatalf("New: %v", err)
	}
	sctx, stop := context.WithCancel(context.Background())
	if e.svc, err = e.api.Start(sctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { stop(); e.api.Wait() })
	if online {
		e.login()
	}
	return e
}

// login logs the client in by QR, the test playing the phone, and puts the
// session stand-in online.
func (e *env) login() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
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
	if err := e.dir.Refresh(ctx); err != nil {
		e.t.Fatalf("Refresh: %v", err)
	}
	e.sess.setOnline(s.UIN)
}

// request calls an endpoint; header, when given, is added to the request.
func (e *env) request(subject string, body []byte, header nats.Header) *nats.Msg {
	e.t.Helper()
	m := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
	for k, v := range header {
		m.Header[k] = v
	}
	reply, err := e.nc.RequestMsg(m, testenv.WaitTimeout)
	if err != nil {
		e.t.Fatalf("request %s: %v", subject, err)
	}
	return reply
}

// testSession stands in for the session manager: a live.Source whose one
// term starts with setOnline, the state, and login requests counted.
type testSession struct {
	dir *directory.Directory

	mu      sync.Mutex
	online  chan struct{} // closed by setOnline
	account int64
	logins  []bool // the force of each login request that started one
}

func newTestSession(dir *directory.Directory) *testSession {
	return &testSession{dir: dir, online: make(chan struct{})}
}

func (s *testSession) setOnline(account int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.account = account
	close(s.online)
}

// Await implements live.Source.
func (s *testSession) Await(ctx context.Context) (live.Session, error) {
	s.mu.Lock()
	ch := s.online
	s.mu.Unlock()
	select {
	case <-ctx.Done():
		return live.Session{}, ctx.Err()
	case <-ch:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return live.New(context.Background(), s.account, 1, s), nil
}

func (s *testSession) Lost(uint64, error)    {}
func (s *testSession) Kicked(uint64, string) {}

func (s *testSession) isOnline() bool {
	select {
	case <-s.online:
		return true
	default:
		return false
	}
}

func (s *testSession) State() schema.SessionState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := schema.SessionState{State: schema.StateAwaitingScan, Time: time.Unix(1700000000, 0).UTC()}
	if s.isOnline() {
		st.State, st.Account = schema.StateOnline, s.account
	}
	return st
}

// RequestLogin refuses to drop a live session without force, as the
// session manager does.
func (s *testSession) RequestLogin(_ context.Context, force bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.isOnline() && !force {
		return live.ErrAlreadyOnline
	}
	s.logins = append(s.logins, force)
	return nil
}

func (s *testSession) loginRequests() []bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]bool(nil), s.logins...)
}
