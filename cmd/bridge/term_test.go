package main

import (
	"context"
	"strings"
	"testing"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
)

// TestLoginRequestIsNotALostSession: a forced login request ends the leader's
// polling term; ingress waits for the next session without calling it lost
// (no "session lost" log, Stats().Lost stays 0), and polls the new one.
func TestLoginRequestIsNotALostSession(t *testing.T) {
	sim := testenv.StartSim(t, testenv.SimConfig())
	cfg := testConfig(t, sim.URL)
	rb := wireBridge(t, cfg)
	s := cfg.Subjects
	nc := testenv.Connect(t, rb.b.NATSURL())
	rec := testenv.Record(t, nc, s.Prefix()+".>")
	rb.start(t)
	onlineAt := loginByQR(t, sim, rec, s)

	subject := "qq.in.friend.123456"
	if _, err := sim.Say(qqsim.Say{Kind: "friend", From: aliceQQ, Text: "first session"}); err != nil {
		t.Fatal(err)
	}
	rec.WaitFrom(0, "the first message", testenv.IsEvent(subject, "first session"))

	ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
	defer cancel()
	if err := rb.b.Session().RequestLogin(ctx, true); err != nil {
		t.Fatal(err)
	}
	at, _ := rec.WaitFrom(onlineAt+1, "state awaiting_scan", testenv.IsState(s, schema.StateAwaitingScan))
	if err := sim.ScanQR(); err != nil {
		t.Fatal(err)
	}
	if err := sim.ConfirmQR(); err != nil {
		t.Fatal(err)
	}
	rec.WaitFrom(at+1, "state online", testenv.IsState(s, schema.StateOnline))
	if _, err := sim.Say(qqsim.Say{Kind: "friend", From: aliceQQ, Text: "second session"}); err != nil {
		t.Fatal(err)
	}
	rec.WaitFrom(at+1, "the second message", testenv.IsEvent(subject, "second session"))

	if st := rb.b.first().in.Stats(); st.Lost != 0 {
		t.Errorf("ingress stats %+v: the end of a term counted as a lost session", st)
	}
	if strings.Contains(rb.logs.String(), `"session lost"`) {
		t.Error(`the end of a term logged as "session lost"`)
	}
}

// TestAPILoginKeepsOnlineSession: a request on qq.api.session.login that does
// not say force, while the bridge is online, is answered with an error and
// the session stays: no new QR code, no state change, messages still arrive.
func TestAPILoginKeepsOnlineSession(t *testing.T) {
	sim := testenv.StartSim(t, testenv.SimConfig())
	cfg := testConfig(t, sim.URL)
	rb := wireBridge(t, cfg)
	s := cfg.Subjects
	nc := testenv.Connect(t, rb.b.NATSURL())
	rec := testenv.Record(t, nc, s.Prefix()+".>")
	rb.start(t)
	onlineAt := loginByQR(t, sim, rec, s)

	reply, err := nc.Request(s.API("session", "login"), nil, testenv.WaitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if reply.Header.Get("Nats-Service-Error-Code") == "" {
		t.Errorf("the login request while online was answered %q, want an error", reply.Data)
	}
	subject := "qq.in.friend.123456"
	if _, err := sim.Say(qqsim.Say{Kind: "friend", From: aliceQQ, Text: "still online"}); err != nil {
		t.Fatal(err)
	}
	rec.WaitFrom(onlineAt+1, "a message after the refused request", testenv.IsEvent(subject, "still online"))
	if n := rec.Count(testenv.IsState(s, schema.StateAwaitingScan)); n != 1 {
		t.Errorf("%d awaiting_scan states, want the first login's only", n)
	}
	if st := rb.b.Session().State(); st.State != schema.StateOnline {
		t.Errorf("state %q, want online", st.State)
	}
}
