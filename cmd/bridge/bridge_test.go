package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
	"github.com/qqbridge/qqbridge/session"
)

// Stable numbers of qqsim's default world.
const (
	aliceQQ  = testenv.Alice
	devGroup = testenv.DevChat
)

// loginByQR waits for the bridge's QR code, checks it, and plays the phone: scan,
// confirm. It returns the index of the online state event.
func loginByQR(t *testing.T, sim *testenv.Sim, rec *testenv.Recorder, s schema.Subjects) int {
	t.Helper()
	_, qrMsg := rec.WaitFrom(0, "a QR code", func(m *nats.Msg) bool { return m.Subject == s.SessionQR() })
	qr, err := decodeQR(qrMsg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(qr.PNG)); err != nil {
		t.Fatalf("the QR message is not a PNG: %v", err)
	}
	if qr.ExpiresAt.IsZero() {
		t.Errorf("the QR message has no expiry")
	}
	rec.WaitFrom(0, "state awaiting_scan", testenv.IsState(s, schema.StateAwaitingScan))
	if err := sim.ScanQR(); err != nil {
		t.Fatal(err)
	}
	rec.WaitFrom(0, "state scanned", testenv.IsState(s, schema.StateScanned))
	if err := sim.ConfirmQR(); err != nil {
		t.Fatal(err)
	}
	i, _ := rec.WaitFrom(0, "state online", testenv.IsState(s, schema.StateOnline))
	return i
}

// TestBridgeEndToEnd runs the whole bridge against the simulator: QR login, an
// inbound group message, outbound sends through the stream and through the API,
// the health endpoints, a session expiry survived without a new QR and without a
// lost or doubled message, and a graceful stop.
func TestBridgeEndToEnd(t *testing.T) {
	sim := testenv.StartSim(t, testenv.SimConfig())
	cfg := testConfig(t, sim.URL)
	rb := wireBridge(t, cfg)
	s := cfg.Subjects
	nc := testenv.Connect(t, rb.b.NATSURL())
	rec := testenv.Record(t, nc, s.Prefix()+".>")
	rb.start(t)
	health := "http://" + rb.b.HTTPAddr()

	var st healthStatus
	if code := getJSON(t, health+"/readyz?online=1", &st); code != 503 || st.OK {
		t.Errorf("readyz?online=1 before login: %d %+v", code, st)
	}

	onlineAt := loginByQR(t, sim, rec, s)
	qrsAtLogin := rec.Count(func(m *nats.Msg) bool { return m.Subject == s.SessionQR() })

	t.Run("state kept in KV", func(t *testing.T) {
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		kv, err := js.KeyValue(context.Background(), s.SessionBucket())
		if err != nil {
			t.Fatal(err)
		}
		e, err := kv.Get(context.Background(), schema.SessionKeyState)
		if err != nil {
			t.Fatal(err)
		}
		var got schema.SessionState
		if err := json.Unmarshal(e.Value(), &got); err != nil {
			t.Fatal(err)
		}
		if got.State != schema.StateOnline || got.Account != sim.WorldView().Self.QQ {
			t.Errorf("KV state %+v", got)
		}
	})

	t.Run("health", func(t *testing.T) {
		var st healthStatus
		if code := getJSON(t, health+"/healthz", &st); code != 200 || !st.OK {
			t.Errorf("healthz: %d %+v", code, st)
		}
		if code := getJSON(t, health+"/readyz?online=1", &st); code != 200 || !st.OK || st.State != schema.StateOnline || !st.Leader || st.NATS != "CONNECTED" {
			t.Errorf("readyz: %d %+v", code, st)
		}
	})

	t.Run("inbound group message", func(t *testing.T) {
		if _, err := sim.Say(qqsim.Say{Kind: "group", From: aliceQQ, Group: devGroup, Text: "hello <bridge> & all", Faces: []int{14}}); err != nil {
			t.Fatal(err)
		}
		subject := "qq.in.group.987654"
		_, m := rec.WaitFrom(onlineAt, "the group message", func(m *nats.Msg) bool { return m.Subject == subject })
		ev, err := schema.DecodeEvent(m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type != schema.TypeMessageGroup || ev.Group == nil || ev.Group.Number != devGroup || ev.From == nil || ev.From.QQ != aliceQQ ||
			ev.From.Card != "Alice@dev" || !strings.HasPrefix(ev.Text, "hello <bridge> & all") {
			t.Errorf("event %+v from %+v group %+v", ev, ev.From, ev.Group)
		}
		if got := schema.HeaderValue(m.Header, schema.HeaderMsgID); got == "" || got != ev.ID {
			t.Errorf("Nats-Msg-Id %q, event id %q", got, ev.ID)
		}
	})

	t.Run("outbound through the stream", func(t *testing.T) {
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		body, err := json.Marshal(schema.Request{ID: "e2e-out-1", To: schema.Target{Group: devGroup}, Text: "reply through qq.out"})
		if err != nil {
			t.Fatal(err)
		}
		msg := nats.NewMsg(s.Out(schema.KindGroup))
		msg.Header.Set(schema.HeaderMsgID, "e2e-out-1")
		msg.Data = body
		if _, err := js.PublishMsg(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
		_, m := rec.WaitFrom(onlineAt, "the result of e2e-out-1", testenv.IsResult(s, "e2e-out-1"))
		res, _ := decodeResult(m)
		if !res.OK || res.Parts != 1 || res.Kind != schema.KindGroup || m.Subject != s.Result(schema.KindGroup) {
			t.Errorf("result %+v on %s", res, m.Subject)
		}
		sim.Control.WaitSent("group reply through qq.out", testenv.SentText("group", devGroup, "reply through qq.out"))
	})

	t.Run("outbound through the API", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
		defer cancel()
		res, how, err := sendRequest(ctx, nc, s, schema.KindFriend, &schema.Request{ID: "e2e-api-1", To: schema.Target{QQ: aliceQQ}, Text: "reply through the API"}, schema.JSON())
		if err != nil {
			t.Fatal(err)
		}
		if !res.OK || !strings.Contains(how, "api.send.friend") {
			t.Errorf("result %+v (%s)", res, how)
		}
		if got := sim.Control.SentTexts("friend", aliceQQ); len(got) != 1 || got[0] != "reply through the API" {
			t.Errorf("the simulator received %q", got)
		}
	})

	t.Run("session expiry", func(t *testing.T) {
		from := rec.Len()
		sim.ExpireSession()
		if _, err := sim.Say(qqsim.Say{Kind: "friend", From: aliceQQ, Text: "said during the outage"}); err != nil {
			t.Fatal(err)
		}
		i, _ := rec.WaitFrom(from, "state reconnecting", testenv.IsState(s, schema.StateReconnecting))
		j, _ := rec.WaitFrom(i, "state online again", testenv.IsState(s, schema.StateOnline))
		subject := "qq.in.friend.123456"
		rec.WaitFrom(from, "the message said during the outage", testenv.IsEvent(subject, "said during the outage"))
		// A marker said after the outage: once it is through, a repeat would be too.
		if _, err := sim.Say(qqsim.Say{Kind: "friend", From: aliceQQ, Text: "marker"}); err != nil {
			t.Fatal(err)
		}
		rec.WaitFrom(j, "the marker", testenv.IsEvent(subject, "marker"))
		if n := rec.Count(testenv.IsEvent(subject, "said during the outage")); n != 1 {
			t.Errorf("the message said during the outage arrived %d times", n)
		}
		if n := rec.Count(func(m *nats.Msg) bool { return m.Subject == s.SessionQR() }); n != qrsAtLogin {
			t.Errorf("%d QR codes after the expiry, %d before: a re-login needed no QR", n, qrsAtLogin)
		}
		if n := rec.Count(testenv.IsState(s, schema.StateAwaitingScan)); n != 1 {
			t.Errorf("awaiting_scan %d times", n)
		}
		// Sending works in the new session (new session numbers).
		ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
		defer cancel()
		res, _, err := sendRequest(ctx, nc, s, schema.KindGroup, &schema.Request{ID: "e2e-after-expiry", To: schema.Target{Group: devGroup}, Text: "after the expiry"}, schema.JSON())
		if err != nil || !res.OK {
			t.Fatalf("send after the expiry: %+v %v", res, err)
		}
	})

	t.Run("own sends are not inbound events", func(t *testing.T) {
		for _, text := range []string{"reply through qq.out", "reply through the API", "after the expiry"} {
			if n := rec.Count(func(m *nats.Msg) bool {
				ev, err := schema.DecodeEvent(m.Header, m.Data)
				return strings.HasPrefix(m.Subject, "qq.in.") && err == nil && ev.Text == text
			}); n != 0 {
				t.Errorf("%q came back as %d inbound events", text, n)
			}
		}
	})

	t.Run("graceful stop", func(t *testing.T) {
		from := rec.Len()
		if err := rb.stopBridge(t); err != nil {
			t.Fatalf("Run: %v", err)
		}
		rec.WaitFrom(from, "state stopped", testenv.IsState(s, schema.StateStopped))
	})

	t.Run("no secret in the logs", func(t *testing.T) {
		logs := rb.logs.String()
		if !strings.Contains(logs, `"account":931996776`) {
			t.Errorf("no line carries the account as a field")
		}
		for _, secret := range sessionSecrets(t, rb) {
			if strings.Contains(logs, secret) {
				t.Errorf("a log line holds a session secret")
			}
		}
	})
}

// sessionSecrets returns the secret values of the session the bridge saved (the
// bridge runs without a session key, so the saved session is readable), read from
// the store of its embedded server after it stopped.
func sessionSecrets(t *testing.T, rb *runningBridge) []string {
	t.Helper()
	// The bridge stopped; start a server on the same store to read the bucket.
	cfg := rb.b.cfg
	b, err := wire(context.Background(), cfg, newLogger(&bytes.Buffer{}, cfg.LogLevel, logJSON, false))
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	kv, err := b.js.KeyValue(context.Background(), cfg.Subjects.SessionBucket())
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), session.KeySession)
	if err != nil {
		t.Fatal(err)
	}
	saved, err := session.DecodeSaved(e.Value(), nil)
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{saved.PtWebQQ, saved.VFWebQQ, saved.PSessionID}
	for _, c := range saved.Cookies {
		if len(c.Value) >= 8 {
			secrets = append(secrets, c.Value)
		}
	}
	for _, s := range secrets[:3] {
		if len(s) < 8 {
			t.Fatalf("a session secret is too short to search for")
		}
	}
	return secrets
}

// TestBridgeStopFinishesSend stops the bridge while a send is in flight (the
// simulator answers slowly): the send completes, once.
func TestBridgeStopFinishesSend(t *testing.T) {
	sim := testenv.StartSim(t, testenv.SimConfig())
	cfg := testConfig(t, sim.URL)
	rb := wireBridge(t, cfg)
	s := cfg.Subjects
	nc := testenv.Connect(t, rb.b.NATSURL())
	rec := testenv.Record(t, nc, s.Prefix()+".>")
	rb.start(t)
	loginByQR(t, sim, rec, s)

	sim.SetChaos(qqsim.Chaos{LatencyMS: 1500})
	before := sim.State().Counters["send_qun_msg2"]
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
		defer cancel()
		_, _, _ = sendRequest(ctx, nc, s, schema.KindGroup, &schema.Request{ID: "in-flight", To: schema.Target{Group: devGroup}, Text: "in flight at the stop"}, schema.JSON())
	}()
	deadline := time.Now().Add(testenv.WaitTimeout)
	for sim.State().Counters["send_qun_msg2"] == before {
		if time.Now().After(deadline) {
			t.Fatal("the send never reached the simulator")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := rb.stopBridge(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := sim.Control.SentTexts("group", devGroup); len(got) != 1 || got[0] != "in flight at the stop" {
		t.Errorf("after the stop the simulator has %q", got)
	}
}

// TestTwoReplicas runs two bridges on one NATS: one leads (logs in, polls), both
// send; when the leader stops, the other takes over with the saved session — no
// QR — and nothing said is lost or doubled.
func TestTwoReplicas(t *testing.T) {
	sim := testenv.StartSim(t, testenv.SimConfig())
	ns := testenv.StartNATS(t)
	replica := func() *runningBridge {
		cfg := testConfig(t, sim.URL)
		cfg.NATSURL = ns.URL()
		cfg.SessionKey = "shared by the replicas"
		return startBridge(t, cfg)
	}
	nc := testenv.Connect(t, ns.URL())
	s := schema.Subjects{}
	rec := testenv.Record(t, nc, s.Prefix()+".>")
	a, b := replica(), replica()
	loginByQR(t, sim, rec, s)

	testenv.Eventually(t, "both replicas online", func() bool {
		return a.b.Session().State().State == schema.StateOnline && b.b.Session().State().State == schema.StateOnline &&
			readyOnline(t, a) && readyOnline(t, b)
	})
	if a.b.Session().IsLeader() == b.b.Session().IsLeader() {
		t.Fatalf("leaders: a %v, b %v", a.b.Session().IsLeader(), b.b.Session().IsLeader())
	}
	leader, follower := a, b
	if b.b.Session().IsLeader() {
		leader, follower = b, a
	}

	subject := "qq.in.friend.123456"
	say := func(text string) {
		t.Helper()
		if _, err := sim.Say(qqsim.Say{Kind: "friend", From: aliceQQ, Text: text}); err != nil {
			t.Fatal(err)
		}
		rec.WaitFrom(0, text, testenv.IsEvent(subject, text))
	}
	say("to both replicas")

	ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
	defer cancel()
	for i := range 4 {
		req := &schema.Request{ID: fmt.Sprintf("two-%d", i), To: schema.Target{Group: devGroup}, Text: fmt.Sprintf("message %d", i)}
		if res, _, err := sendRequest(ctx, nc, s, schema.KindGroup, req, schema.JSON()); err != nil || !res.OK {
			t.Fatalf("send %d: %+v %v", i, res, err)
		}
	}
	if got := sim.Control.SentTexts("group", devGroup); len(got) != 4 {
		t.Errorf("the simulator received %q", got)
	}

	qrs := rec.Count(func(m *nats.Msg) bool { return m.Subject == s.SessionQR() })
	if err := leader.stopBridge(t); err != nil {
		t.Fatalf("leader: %v", err)
	}
	if _, err := sim.Say(qqsim.Say{Kind: "friend", From: aliceQQ, Text: "said during the handover"}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the follower leads", follower.b.Session().IsLeader)
	rec.WaitFrom(0, "the message said during the handover", testenv.IsEvent(subject, "said during the handover"))
	say("after the handover")
	for _, text := range []string{"to both replicas", "said during the handover", "after the handover"} {
		if n := rec.Count(testenv.IsEvent(subject, text)); n != 1 {
			t.Errorf("%q arrived %d times", text, n)
		}
	}
	if n := rec.Count(func(m *nats.Msg) bool { return m.Subject == s.SessionQR() }); n != qrs {
		t.Errorf("%d QR codes after the handover, %d before", n, qrs)
	}
	if err := follower.stopBridge(t); err != nil {
		t.Fatalf("follower: %v", err)
	}
}

// readyOnline asks a bridge's /readyz?online=1.
func readyOnline(t *testing.T, rb *runningBridge) bool {
	t.Helper()
	var st healthStatus
	return getJSON(t, "http://"+rb.b.HTTPAddr()+"/readyz?online=1", &st) == 200 && st.OK
}
