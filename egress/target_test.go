package egress

import (
	"strings"
	"testing"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/schema"
)

// relogin ends the simulator's session and logs in again from the client's
// cookies: every session number changes. It returns the numbers of the
// session that ended.
func (e *env) relogin() (old struct{ alice, carol, devChat, lunch int64 }) {
	e.t.Helper()
	st := e.sim.State()
	old.alice, old.carol, old.devChat, old.lunch = st.Friends[testenv.Alice], st.Friends[testenv.Carol], st.Groups[testenv.DevChat], st.Discussions[testenv.Lunch]
	e.sim.ExpireSession()
	ctx := testenv.Context(e.t)
	s, err := e.client.Relogin(ctx)
	if err != nil {
		e.t.Fatalf("Relogin: %v", err)
	}
	e.sess.setOnline(s.UIN)
	now := e.sim.State()
	if now.Friends[testenv.Alice] == old.alice || now.Groups[testenv.DevChat] == old.devChat || now.Discussions[testenv.Lunch] == old.lunch {
		e.t.Fatal("the simulator kept session numbers across the re-login")
	}
	return old
}

// TestStaleSessionNumbersRefused: a request that names its target by a
// session number of an older login is answered unknown_target and nothing
// reaches QQ (it used to be sent, and answered qq_error by QQ).
func TestStaleSessionNumbersRefused(t *testing.T) {
	e := newEnv(t)
	e.run(e.eg)
	old := e.relogin()
	now := e.sim.State()
	for _, c := range []struct {
		kind schema.Kind
		to   schema.Target
		want string
	}{
		{schema.KindFriend, schema.Target{UIN: old.alice}, "to.uin"},
		{schema.KindGroup, schema.Target{GID: old.devChat}, "to.gid"},
		{schema.KindDiscuss, schema.Target{DID: old.lunch}, "to.did"},
		{schema.KindSess, schema.Target{UIN: old.carol, GID: old.devChat}, "to.gid"},
		{schema.KindSess, schema.Target{UIN: old.carol, GID: now.Groups[testenv.DevChat]}, "to.uin"},
	} {
		e.publishJSON(c.kind, schema.Request{To: c.to, Text: "to an old number"})
		_, res := e.result()
		if res.Error == nil || res.Error.Code != schema.CodeUnknownTarget {
			t.Errorf("%s to %+v: result %+v (error %+v), want unknown_target", c.kind, c.to, res, res.Error)
			continue
		}
		if !strings.Contains(res.Error.Message, c.want) {
			t.Errorf("%s to %+v: message %q does not name %s", c.kind, c.to, res.Error.Message, c.want)
		}
	}
	if sent := e.sent(); len(sent) != 0 {
		t.Fatalf("simulator received %+v, want nothing", sent)
	}
	// The current numbers still go out.
	e.publishJSON(schema.KindFriend, schema.Request{To: schema.Target{UIN: now.Friends[testenv.Alice]}, Text: "to the new number"})
	if _, res := e.result(); !res.OK {
		t.Fatalf("result %+v (error %+v), want ok", res, res.Error)
	}
	e.noMoreResults()
}

// TestResolveFailureRetried: a contact list that cannot be loaded (QQ's
// answer is garbled) is not a finding that the target is unknown: the
// request is retried and sent once the list loads (it used to be answered
// unknown_target and dropped).
func TestResolveFailureRetried(t *testing.T) {
	e := newEnv(t, offline())
	e.run(e.eg)
	e.faults.set("/get_user_friends2")
	e.login() // the refresh at login fails: the directory has no lists
	e.publishJSON(schema.KindFriend, schema.Request{ID: "garbled", To: schema.Target{QQ: testenv.Alice}, Text: "still valid"})
	// Two garbled friend lists: the login's refresh, then the request's.
	testenv.Eventually(t, "two garbled friend lists", func() bool { return e.faults.count() >= 2 })
	e.faults.set("")
	_, res := e.result()
	if !res.OK || res.ID != "garbled" {
		t.Fatalf("result %+v (error %+v), want ok once the friend list loads", res, res.Error)
	}
	if sent := e.sent(); len(sent) != 1 || sent[0].Stable != testenv.Alice {
		t.Fatalf("sent %+v, want one message to %d", sent, testenv.Alice)
	}
	e.noMoreResults()
}
