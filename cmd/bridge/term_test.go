package main

import (
	"context"
	"strings"
	"testing"

	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
)

// TestLoginRequestIsNotALostSession: a forced login request ends the leader's
// polling term; ingress waits for the next session without calling it lost
// (no "session lost" log, Stats().Lost stays 0), and polls the new one.
func TestLoginRequestIsNotALostSession(t *testing.T) {
	sim, simURL := newSim(t)
	cfg := testConfig(t, simURL)
	rb := wireBridge(t, cfg)
	s := cfg.Subjects
	nc := connect(t, rb.b.NATSURL())
	rec := record(t, nc, s.Prefix()+".>")
	rb.start(t)
	onlineAt := loginByQR(t, sim, rec, s)

	subject := "qq.in.friend.123456"
	if _, err := sim.Say(qqsim.Say{Kind: "friend", From: aliceQQ, Text: "first session"}); err != nil {
		t.Fatal(err)
	}
	rec.waitAfter(t, 0, "the first message", isEventText(subject, "first session"))

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := rb.b.Session().RequestLogin(ctx, true); err != nil {
		t.Fatal(err)
	}
	at, _ := rec.waitAfter(t, onlineAt+1, "state awaiting_scan", isState(s, schema.StateAwaitingScan))
	if err := sim.ScanQR(); err != nil {
		t.Fatal(err)
	}
	if err := sim.ConfirmQR(); err != nil {
		t.Fatal(err)
	}
	rec.waitAfter(t, at+1, "state online", isState(s, schema.StateOnline))
	if _, err := sim.Say(qqsim.Say{Kind: "friend", From: aliceQQ, Text: "second session"}); err != nil {
		t.Fatal(err)
	}
	rec.waitAfter(t, at+1, "the second message", isEventText(subject, "second session"))

	if st := rb.b.in.Stats(); st.Lost != 0 {
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
	sim, simURL := newSim(t)
	cfg := testConfig(t, simURL)
	rb := wireBridge(t, cfg)
	s := cfg.Subjects
	nc := connect(t, rb.b.NATSURL())
	rec := record(t, nc, s.Prefix()+".>")
	rb.start(t)
	onlineAt := loginByQR(t, sim, rec, s)

	reply, err := nc.Request(s.API("session", "login"), nil, waitFor)
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
	rec.waitAfter(t, onlineAt+1, "a message after the refused request", isEventText(subject, "still online"))
	if n := rec.count(isState(s, schema.StateAwaitingScan)); n != 1 {
		t.Errorf("%d awaiting_scan states, want the first login's only", n)
	}
	if st := rb.b.Session().State(); st.State != schema.StateOnline {
		t.Errorf("state %q, want online", st.State)
	}
}
