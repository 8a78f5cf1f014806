// Package acceptance is qqbridge's acceptance suite: end-to-end scenarios
// that talk to a running bridge only over its public interfaces — the NATS
// subjects of docs/events.md, the simulator's HTTP control API of
// docs/qqsim.md, and /healthz and /readyz — so that the same suite runs
// against the bridge in either of two ways (an Env):
//
//   - process mode (this package's TestAcceptance): `bridge run` and `qqsim`
//     built with go build and run as separate processes;
//   - in-process mode (cmd/bridge's TestAcceptance): the binary's run
//     function called in the test process, the simulator on httptest.
//
// In both, NATS is an embedded nats-server in the test process. The package
// is for tests only (it links the nats-server and the simulator).
package acceptance

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
)

// Env starts the programs under test.
type Env interface {
	// StartSim starts a simulator whose empty polls are held briefly
	// (200ms) and that has no rate limit, and returns its base URL. It is
	// stopped when the test ends.
	StartSim(t *testing.T) string
	// StartBridge starts `bridge` with args (the first is "run") and returns
	// it running. It is stopped when the test ends, if the test did not stop
	// it.
	StartBridge(t *testing.T, args []string) Bridge
}

// Bridge is one running bridge.
type Bridge interface {
	// Stop stops the bridge gracefully (SIGTERM to a process, the end of
	// run's context in-process), waits until it has exited, and returns
	// its error: nil for a clean exit (exit status 0).
	Stop() error
	// Logs returns what the bridge wrote so far (for a failure message).
	Logs() string
}

// Run runs every scenario against env: first a bridge started before
// JetStream is there, then, in order on one world (an embedded NATS server, a
// simulator and one bridge), the life of a bridge from its QR login to its
// stop.
func Run(t *testing.T, env Env) {
	t.Run("StartsBeforeJetStream", func(t *testing.T) { startsBeforeJetStream(t, env) })
	w := newWorld(t, env, testenv.StartNATS(t))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bridge logs:\n%s", w.bridge.Logs())
		}
	})
	steps := []struct {
		name string
		run  func(*testing.T, *world)
	}{
		{"QRLoginGoesOnline", qrLoginGoesOnline},
		{"InboundMessagesAreEvents", inboundMessagesAreEvents},
		{"SendGoesOutOnceWithResult", sendGoesOutOnceWithResult},
		{"SameIDTwiceIsSentOnce", sameIDTwiceIsSentOnce},
		{"SessionExpiryReconnectsWithoutQR", sessionExpiryReconnectsWithoutQR},
		{"GracefulStop", gracefulStop},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) { s.run(t, w) }) {
			t.Fatalf("%s failed; the later scenarios depend on it", s.name)
		}
	}
}

// world is the scene of the scenarios.
type world struct {
	env      Env
	s        schema.Subjects
	nats     *testenv.NATS
	nc       *nats.Conn
	js       jetstream.JetStream
	sim      *testenv.SimControl
	bridge   Bridge
	httpAddr string
	rec      *testenv.Recorder // every message under the prefix
	onlineAt int               // index in rec of the first online state
	qrs      int               // QR messages at the first login
}

func newWorld(t *testing.T, env Env, n *testenv.NATS) *world {
	t.Helper()
	w := &world{env: env, nats: n}
	w.s, _ = schema.NewSubjects(schema.DefaultPrefix)
	w.nc, w.js = w.nats.Connect()
	// Subscribed before the bridge starts: the scenarios see every message.
	w.rec = testenv.Record(t, w.nc, w.s.Prefix()+".>")
	simURL := env.StartSim(t)
	w.sim = testenv.NewSimControl(t, simURL)
	w.httpAddr = testenv.FreeAddr(t)
	w.bridge = env.StartBridge(t, []string{
		"run",
		"--nats", w.nats.URL(),
		"--qq-endpoint", simURL,
		"--data-dir", t.TempDir(),
		"--http", w.httpAddr,
		"--log-format", "json",
		"--log-level", "debug",
		"--qr-poll-interval", "50ms",
		"--poll-timeout", "5s",
		"--leader-ttl", "2s",
		"--rate", "50",
		"--burst", "10",
		"--shutdown-timeout", "10s",
	})
	return w
}

// probe GETs /healthz or /readyz of the bridge: the status (0 when nothing
// answers) and the body.
func (w *world) probe(path string) (int, string) {
	resp, err := http.Get("http://" + w.httpAddr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// startsBeforeJetStream is defect 12 seen from outside: a bridge started
// against a NATS server whose JetStream is not there yet waits for it (and
// says so) instead of exiting, is not ready meanwhile, and carries on once
// JetStream is on.
func startsBeforeJetStream(t *testing.T, env Env) {
	n := testenv.StartNATSWith(t, testenv.NATSOptions{NoJetStream: true})
	w := newWorld(t, env, n)
	defer func() {
		if t.Failed() {
			t.Logf("bridge logs:\n%s", w.bridge.Logs())
		}
	}()
	testenv.Eventually(t, `the bridge logging "waiting for JetStream"`, func() bool {
		return strings.Contains(w.bridge.Logs(), "waiting for JetStream: ")
	})
	if code, body := w.probe("/readyz"); code == http.StatusOK {
		t.Errorf("/readyz answers 200 while the bridge waits for JetStream: %s", body)
	}
	n.EnableJetStream()
	testenv.WaitState(w.rec, w.s, 0, schema.StateAwaitingScan)
	testenv.Eventually(t, "/readyz answering 200", func() bool { code, _ := w.probe("/readyz"); return code == http.StatusOK })
	if err := w.bridge.Stop(); err != nil {
		t.Errorf("the bridge did not exit cleanly: %v", err)
	}
}

func qrLoginGoesOnline(t *testing.T, w *world) {
	testenv.Eventually(t, "/healthz answering 200", func() bool { code, _ := w.probe("/healthz"); return code == http.StatusOK })
	_, st := testenv.WaitState(w.rec, w.s, 0, schema.StateAwaitingScan)
	if st.Account != 0 {
		t.Errorf("awaiting_scan with account %d", st.Account)
	}
	if code, body := w.probe("/readyz?online=1"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz?online=1 before the login: %d %s, want 503", code, body)
	}
	w.rec.Wait("a QR on "+w.s.SessionQR(), func(m *nats.Msg) bool { return m.Subject == w.s.SessionQR() })
	w.sim.ScanAndConfirm()
	i, st := testenv.WaitState(w.rec, w.s, 0, schema.StateOnline)
	if st.Account != testenv.Self {
		t.Errorf("online with account %d, want %d", st.Account, testenv.Self)
	}
	w.onlineAt = i
	w.qrs = w.rec.Count(func(m *nats.Msg) bool { return m.Subject == w.s.SessionQR() })
	for _, path := range []string{"/healthz", "/readyz", "/readyz?online=1"} {
		testenv.Eventually(t, path+" answering 200", func() bool { code, _ := w.probe(path); return code == http.StatusOK })
	}
	var health struct {
		OK      bool         `json:"ok"`
		State   schema.State `json:"state"`
		Account int64        `json:"account"`
	}
	_, body := w.probe("/readyz")
	if err := json.Unmarshal([]byte(body), &health); err != nil || !health.OK || health.State != schema.StateOnline || health.Account != testenv.Self {
		t.Errorf("/readyz = %s (%v)", body, err)
	}
}

func inboundMessagesAreEvents(t *testing.T, w *world) {
	cases := []struct {
		say     qqsim.Say
		subject string // "" = any subject starting with prefix
		prefix  string
		typ     string
	}{
		{qqsim.Say{Kind: "group", From: testenv.Alice, Group: testenv.DevChat, Text: "acceptance: hello group"},
			w.in(schema.KindGroup, testenv.DevChat), "", "message.group"},
		{qqsim.Say{Kind: "friend", From: testenv.Alice, Text: "acceptance: hello friend"},
			w.in(schema.KindFriend, testenv.Alice), "", "message.friend"},
		{qqsim.Say{Kind: "discuss", From: testenv.Bob, DID: testenv.Lunch, Text: "acceptance: hello discussion"},
			"", w.s.Prefix() + ".in.discuss.", "message.discuss"},
	}
	for _, c := range cases {
		w.sim.Say(c.say)
	}
	for _, c := range cases {
		_, m := w.rec.WaitFrom(w.onlineAt, "the event of "+c.say.Text, testenv.IsEvent(c.subject, c.say.Text))
		if c.prefix != "" && !strings.HasPrefix(m.Subject, c.prefix) {
			t.Errorf("%q arrived on %s, want %s…", c.say.Text, m.Subject, c.prefix)
		}
		ev, err := schema.DecodeEvent(m.Header, m.Data)
		if err != nil {
			t.Fatalf("event on %s: %v", m.Subject, err)
		}
		if ev.Type != c.typ || ev.Account != testenv.Self || ev.ID == "" || m.Header.Get(schema.HeaderMsgID) != ev.ID {
			t.Errorf("event on %s: type %q account %d id %q (Nats-Msg-Id %q), want type %q account %d", m.Subject, ev.Type, ev.Account, ev.ID, m.Header.Get(schema.HeaderMsgID), c.typ, testenv.Self)
		}
		if ev.From == nil || ev.From.QQ != c.say.From {
			t.Errorf("event on %s: from %+v, want QQ %d", m.Subject, ev.From, c.say.From)
		}
	}
	// The events are kept in the inbound stream. A subscriber of the subject
	// can see a message before the stream's store of it is done (the bridge's
	// publish is acknowledged only after it), so wait for the count.
	st, err := w.js.Stream(testenv.Context(t), w.s.StreamIn())
	if err != nil {
		t.Fatalf("stream %s: %v", w.s.StreamIn(), err)
	}
	testenv.Eventually(t, fmt.Sprintf("stream %s to hold at least %d messages", w.s.StreamIn(), len(cases)), func() bool {
		info, err := st.Info(testenv.Context(t))
		return err == nil && info.State.Msgs >= uint64(len(cases))
	})
}

// in is the subject of an inbound event with a stable id.
func (w *world) in(kind schema.Kind, stable int64) string {
	subj, err := w.s.In(kind, schema.StableID(stable))
	if err != nil {
		panic(err)
	}
	return subj
}

// publish puts a request body on <prefix>.out.<kind> through JetStream;
// msgID (optional) becomes Nats-Msg-Id.
func (w *world) publish(t *testing.T, kind schema.Kind, body, msgID string) {
	t.Helper()
	m := nats.NewMsg(w.s.Out(kind))
	m.Data = []byte(body)
	m.Header.Set(schema.HeaderContentType, schema.ContentTypeJSON)
	if msgID != "" {
		m.Header.Set(schema.HeaderMsgID, msgID)
	}
	if _, err := w.js.PublishMsg(testenv.Context(t), m); err != nil {
		t.Fatalf("publish on %s: %v", m.Subject, err)
	}
}

func sendGoesOutOnceWithResult(t *testing.T, w *world) {
	from := w.rec.Len()
	w.publish(t, schema.KindGroup, `{"id":"acceptance-g-1","to":{"group":987654},"text":"acceptance: reply to the group"}`, "acceptance-g-1")
	_, m := w.rec.WaitFrom(from, "the result of acceptance-g-1", testenv.IsResult(w.s, "acceptance-g-1"))
	res, _ := testenv.DecodeResult(m)
	if m.Subject != w.s.Result(schema.KindGroup) || !res.OK || res.Kind != schema.KindGroup || res.Parts != 1 {
		t.Errorf("result on %s: %+v, want ok with 1 part on %s", m.Subject, res, w.s.Result(schema.KindGroup))
	}
	match := testenv.SentText("group", testenv.DevChat, "acceptance: reply to the group")
	w.sim.WaitSent("the reply to the group", match)
	if n := len(w.sim.SentMatching(match)); n != 1 {
		t.Errorf("the simulator received the reply %d times, want once", n)
	}
}

func sameIDTwiceIsSentOnce(t *testing.T, w *world) {
	// Without Nats-Msg-Id the stream keeps both: the bridge's own
	// idempotency (the request id) must keep the second from going out.
	body := `{"id":"acceptance-once","to":{"qq":123456},"text":"acceptance: only once"}`
	w.publish(t, schema.KindFriend, body, "")
	w.publish(t, schema.KindFriend, body, "")
	results := w.rec.WaitN(2, "a result of acceptance-once", func(m *nats.Msg) bool {
		return m.Subject == w.s.Result(schema.KindFriend) && testenv.IsResult(w.s, "acceptance-once")(m)
	})
	for _, m := range results {
		if res, _ := testenv.DecodeResult(m); !res.OK {
			t.Errorf("result %+v, want ok (a repeat gets the first outcome)", res)
		}
	}
	if n := len(w.sim.SentMatching(testenv.SentText("friend", testenv.Alice, "acceptance: only once"))); n != 1 {
		t.Errorf("a request sent twice with one id reached QQ %d times, want once", n)
	}
}

func sessionExpiryReconnectsWithoutQR(t *testing.T, w *world) {
	from := w.rec.Len()
	w.sim.ExpireSession()
	// Said while the session is gone: the simulator keeps it for the next
	// session.
	w.sim.Say(qqsim.Say{Kind: "friend", From: testenv.Hey, Text: "acceptance: said during the outage"})
	// A re-login within the state debounce publishes no reconnecting (see
	// docs/events.md): the message said during the outage is what shows that
	// the bridge is polling a new session.
	subject := w.in(schema.KindFriend, testenv.Hey)
	j, _ := w.rec.WaitFrom(from, "the message said during the outage", testenv.IsEvent(subject, "acceptance: said during the outage"))
	// A marker said afterwards: once it is through, a repeat would be too.
	w.sim.Say(qqsim.Say{Kind: "friend", From: testenv.Hey, Text: "acceptance: marker"})
	w.rec.WaitFrom(j, "the marker", testenv.IsEvent(subject, "acceptance: marker"))
	if n := w.rec.Count(testenv.IsEvent(subject, "acceptance: said during the outage")); n != 1 {
		t.Errorf("the message said during the outage arrived %d times, want once", n)
	}
	if n := w.rec.Count(func(m *nats.Msg) bool { return m.Subject == w.s.SessionQR() }); n != w.qrs {
		t.Errorf("%d QR messages after the expiry, %d before: the re-login needed a QR", n, w.qrs)
	}
	for _, st := range testenv.States(w.rec, w.s, from) {
		if st == schema.StateAwaitingScan || st == schema.StateSessionLost {
			t.Errorf("state %s during the re-login; states since the expiry: %v", st, testenv.States(w.rec, w.s, from))
		}
	}
	// Sending works in the new session (new session numbers).
	w.publish(t, schema.KindGroup, `{"id":"acceptance-after-expiry","to":{"group":987654},"text":"acceptance: after the expiry"}`, "acceptance-after-expiry")
	_, m := w.rec.WaitFrom(j, "the result of acceptance-after-expiry", testenv.IsResult(w.s, "acceptance-after-expiry"))
	if res, _ := testenv.DecodeResult(m); !res.OK {
		t.Errorf("send after the expiry: %+v", res)
	}
}

func gracefulStop(t *testing.T, w *world) {
	from := w.rec.Len()
	done := make(chan error, 1)
	go func() { done <- w.bridge.Stop() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the bridge did not exit cleanly: %v", err)
		}
	case <-time.After(testenv.WaitTimeout):
		t.Fatal("the bridge did not stop")
	}
	_, st := testenv.WaitState(w.rec, w.s, from, schema.StateStopped)
	if st.Account != 0 && st.Account != testenv.Self {
		t.Errorf("stopped with account %d", st.Account)
	}
	if code, _ := w.probe("/healthz"); code == http.StatusOK {
		t.Error("/healthz still answers 200 after the stop")
	}
	// The streams outlive the bridge: they belong to NATS.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := w.js.Stream(ctx, w.s.StreamIn()); err != nil {
		t.Errorf("stream %s after the stop: %v", w.s.StreamIn(), err)
	}
}

// String describes a world for a failure message.
func (w *world) String() string {
	return fmt.Sprintf("NATS %s, bridge http %s", w.nats.URL(), w.httpAddr)
}
