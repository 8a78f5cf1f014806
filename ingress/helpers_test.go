package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
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

// login runs a whole QR login of c against sim, the test playing the phone.
func login(ctx context.Context, c *qqclient.Client, sim *qqsim.Server) error {
	if _, err := c.FetchQR(ctx); err != nil {
		return err
	}
	if err := sim.ScanQR(); err != nil {
		return err
	}
	if err := sim.ConfirmQR(); err != nil {
		return err
	}
	st, err := c.CheckQR(ctx)
	if err != nil {
		return err
	}
	if st != qqclient.QRConfirmed {
		return errors.New("QR login not confirmed")
	}
	_, err = c.CompleteLogin(ctx)
	return err
}

// testSession is a small stand-in for the session manager, a live.Source
// with its live.Reports: it logs in once by QR, re-logs in with the cookies
// when told the session is lost (a new gen), refreshes the directory at each
// login, and stays offline after a kick. Each gen is one term; endTerm ends
// one without a loss, as a leadership change does. It drives the real client
// against the real simulator.
type testSession struct {
	c    *qqclient.Client
	dir  *directory.Directory
	acct int64 // the account's QQ number (login2 uin)

	mu         sync.Mutex
	gen        uint64
	online     bool
	term       context.Context
	stopTerm   context.CancelFunc
	ignoreLost bool // as a manager that knows the loss is not the session's
	changed    chan struct{}
	lost       []uint64
	kicked     []string
}

func newTestSession(ctx context.Context, c *qqclient.Client, sim *qqsim.Server, dir *directory.Directory) (*testSession, error) {
	if err := login(ctx, c, sim); err != nil {
		return nil, err
	}
	if err := dir.Refresh(ctx); err != nil {
		return nil, err
	}
	sess, ok := c.Session()
	if !ok {
		return nil, errors.New("no session after login")
	}
	s := &testSession{c: c, dir: dir, acct: sess.UIN, changed: make(chan struct{})}
	s.mu.Lock()
	s.nextGenLocked()
	s.mu.Unlock()
	return s, nil
}

// nextGenLocked starts the next gen, online, with a term of its own.
func (s *testSession) nextGenLocked() {
	s.gen++
	s.online = true
	s.term, s.stopTerm = context.WithCancel(context.Background())
	close(s.changed)
	s.changed = make(chan struct{})
}

// offlineLocked ends the term of the current gen.
func (s *testSession) offlineLocked() {
	s.online = false
	s.stopTerm()
}

// endTerm ends the current term without a loss and starts the next gen on
// the same QQ session.
func (s *testSession) endTerm() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offlineLocked()
	s.nextGenLocked()
}

func (s *testSession) Await(ctx context.Context) (live.Session, error) {
	for {
		s.mu.Lock()
		if s.online {
			on := live.New(s.term, s.acct, s.gen, s)
			s.mu.Unlock()
			return on, nil
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

func (s *testSession) Lost(gen uint64, _ error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.gen || !s.online {
		return
	}
	s.lost = append(s.lost, gen)
	if s.ignoreLost {
		return
	}
	s.offlineLocked()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
		defer cancel()
		if _, err := s.c.Relogin(ctx); err != nil {
			return // stays offline; the test fails waiting
		}
		_ = s.dir.Refresh(ctx)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.nextGenLocked()
	}()
}

func (s *testSession) Kicked(gen uint64, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.gen {
		return
	}
	s.offlineLocked()
	s.kicked = append(s.kicked, reason)
}

func (s *testSession) reports() (lost []uint64, kicked []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.lost...), append([]string(nil), s.kicked...)
}

// harness is everything ingress runs against: an embedded NATS server with
// JetStream and the bridge's streams, the simulator on a loopback listener,
// a logged-in client, a directory and the session stand-in.
type harness struct {
	t        testing.TB
	subjects schema.Subjects
	nats     *testenv.NATS // stopped and restarted on its port and store by some tests
	nc       *nats.Conn
	js       jetstream.JetStream
	sim      *testenv.Sim
	c        *qqclient.Client
	dir      *directory.Directory
	sess     *testSession
	log      zerolog.Logger

	ing    *Ingress
	cancel context.CancelFunc
	done   chan error
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	n := testenv.StartNATS(t)
	nc, js := n.Connect()
	h := newHarnessOn(t, nc, js, bus.StreamOptions{})
	h.nats = n
	return h
}

// newHarnessOn is a harness whose streams (made with so) are on the NATS
// of nc and js (h.nats is nil).
func newHarnessOn(t testing.TB, nc *nats.Conn, js jetstream.JetStream, so bus.StreamOptions) *harness {
	t.Helper()
	h := &harness{t: t, log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel), nc: nc, js: js}
	h.subjects, _ = schema.NewSubjects("")
	ctx := h.ctx()
	if err := bus.EnsureStreams(ctx, h.js, h.subjects, so); err != nil {
		t.Fatalf("EnsureStreams: %v", err)
	}

	h.sim = testenv.StartSim(t, testenv.SimConfig())
	var err error
	h.c, err = qqclient.New(qqclient.WithBaseURL(h.sim.URL), qqclient.WithPollTimeout(5*time.Second),
		qqclient.WithRequestTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("qqclient.New: %v", err)
	}
	h.dir = directory.New(h.c, h.log)
	if h.sess, err = newTestSession(ctx, h.c, h.sim.Server, h.dir); err != nil {
		t.Fatalf("login: %v", err)
	}
	return h
}

func (h *harness) ctx() context.Context { return testenv.Context(h.t) }

// start runs an Ingress with codec (nil = JSON) until the test ends or stop.
func (h *harness) start(codec schema.Codec) *Ingress {
	h.t.Helper()
	return h.startWith(func(c *Config) { c.Codec = codec })
}

// startWith runs an Ingress of the test configuration changed by mod.
func (h *harness) startWith(mod func(*Config)) *Ingress {
	h.t.Helper()
	cfg := Config{
		Client: h.c, Terms: h.sess, Dir: h.dir, JS: h.js, Subjects: h.subjects, Log: h.log,
		PublishTimeout: 500 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		MinHold: 50 * time.Millisecond, // the simulator holds an empty poll 200ms
	}
	mod(&cfg)
	ing, err := New(cfg)
	if err != nil {
		h.t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.ing, h.cancel, h.done = ing, cancel, make(chan error, 1)
	go func() { h.done <- ing.Run(ctx) }()
	h.t.Cleanup(h.stop)
	return ing
}

// stop ends the running Ingress and checks that Run returned ctx's error.
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if !errors.Is(err, context.Canceled) {
			h.t.Errorf("Run returned %v, want context.Canceled", err)
		}
	case <-time.After(testenv.WaitTimeout):
		h.t.Error("Run did not return after cancel")
	}
}

// received is one message of the inbound stream.
type received struct {
	Seq     uint64
	Subject string
	Header  nats.Header
	Event   *schema.Event
}

// stream returns every message of the inbound stream, in order.
func (h *harness) stream() []received {
	h.t.Helper()
	ctx := h.ctx()
	st, err := h.js.Stream(ctx, h.subjects.StreamIn())
	if err != nil {
		h.t.Fatalf("stream: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		h.t.Fatalf("stream info: %v", err)
	}
	var out []received
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			h.t.Fatalf("get msg %d: %v", seq, err)
		}
		ev, err := schema.DecodeEvent(m.Header, m.Data)
		if err != nil {
			h.t.Fatalf("message %d on %s: %v", seq, m.Subject, err)
		}
		out = append(out, received{Seq: seq, Subject: m.Subject, Header: m.Header, Event: ev})
	}
	return out
}

// waitFor waits until the stream holds a message that satisfies pred and
// returns every message up to and including the first such one.
func (h *harness) waitFor(pred func(received) bool) []received {
	h.t.Helper()
	deadline := time.Now().Add(testenv.WaitTimeout)
	for {
		msgs := h.stream()
		for i, m := range msgs {
			if pred(m) {
				return msgs[:i+1]
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting; the stream holds %d messages: %s", len(msgs), describe(msgs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitMsgID waits for the event with msg_id id.
func (h *harness) waitMsgID(id int64) []received {
	h.t.Helper()
	return h.waitFor(func(m received) bool { return m.Event.MsgID == id })
}

// say makes a contact say something and returns its msg_id.
func (h *harness) say(m qqsim.Say) int64 {
	h.t.Helper()
	id, err := h.sim.Say(m)
	if err != nil {
		h.t.Fatalf("Say(%+v): %v", m, err)
	}
	return id
}

// inject queues raw poll items.
func (h *harness) inject(items ...string) {
	h.t.Helper()
	raw := make([]json.RawMessage, len(items))
	for i, it := range items {
		raw[i] = json.RawMessage(it)
	}
	if err := h.sim.Inject(raw); err != nil {
		h.t.Fatalf("Inject: %v", err)
	}
}

func describe(msgs []received) string {
	b, _ := json.Marshal(msgs)
	return string(b)
}

// readTestdata returns a file of testdata/.
func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
