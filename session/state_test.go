package session_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/qqbridge/qqbridge/live"
	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
	"github.com/qqbridge/qqbridge/session"
)

// TestNewReasonInSameStatePublished: a saved session that is gone is first
// resumed, then re-logged in with its cookies — two reasons of one state,
// reconnecting. Both are published and the bucket keeps the latest.
func TestNewReasonInSameStatePublished(t *testing.T) {
	e := newEnv(t, qqsim.Config{})
	r1 := e.start(session.Config{})
	e.expectStates(schema.StateAwaitingScan)
	e.scan()
	r1.waitOnline(t)
	r1.stop()
	e.expectStates(schema.StateStopped)

	e.sim.ExpireSession() // the saved session is gone; its cookies still work
	e.start(session.Config{})
	first := e.nextState()
	second := e.nextState()
	if first.State != schema.StateReconnecting || second.State != schema.StateReconnecting {
		t.Fatalf("states %q (%s), %q (%s); want reconnecting twice", first.State, first.Reason, second.State, second.Reason)
	}
	if first.Reason == second.Reason {
		t.Errorf("the same reason %q twice", first.Reason)
	}
	if !strings.Contains(second.Reason, "cookies") {
		t.Errorf("second reason %q, want the re-login with the cookies", second.Reason)
	}
	e.expectStates(schema.StateOnline)
	if st := e.kvState(schema.JSON()); st.State != schema.StateOnline {
		t.Errorf("bucket state %q, want online", st.State)
	}
}

// TestLoginRequestKeepsLiveSession: a login request without force, on the
// leader or on a follower, leaves a live session alone and says why.
func TestLoginRequestKeepsLiveSession(t *testing.T) {
	e := newEnv(t, qqsim.Config{})
	a := e.start(session.Config{ReplicaID: "a"})
	eventually(t, "a leads", a.m.IsLeader)
	b := e.start(session.Config{ReplicaID: "b"})
	e.expectStates(schema.StateAwaitingScan)
	e.scan()
	lo := a.waitOnline(t)
	b.waitOnline(t)
	eventually(t, "the follower sees the leader's state", func() bool {
		return b.m.State().State == schema.StateOnline
	})
	qrs := e.counter("ptqrshow")

	for name, r := range map[string]*replica{"leader": a, "follower": b} {
		if err := r.m.RequestLogin(e.ctx(), false); !errors.Is(err, live.ErrAlreadyOnline) {
			t.Errorf("%s: RequestLogin while online: %v, want ErrAlreadyOnline", name, err)
		}
	}
	time.Sleep(300 * time.Millisecond) // room for a wrong new login to show
	e.noStateEvent()
	if n := e.counter("ptqrshow"); n != qrs {
		t.Errorf("%d QR codes fetched after the refused requests", n-qrs)
	}
	if o := a.waitOnline(t); o.Gen != lo.Gen {
		t.Errorf("leader gen %d, want %d (the session was replaced)", o.Gen, lo.Gen)
	}
	if st := a.m.State().State; st != schema.StateOnline {
		t.Errorf("state %q, want online", st)
	}
}

// TestShortReconnectNotPublished: a lost session re-logged in within the
// debounce publishes nothing — neither reconnecting nor the return to online.
func TestShortReconnectNotPublished(t *testing.T) {
	e := newEnv(t, qqsim.Config{})
	r := e.start(session.Config{StateDebounce: time.Minute})
	e.expectStates(schema.StateAwaitingScan)
	e.scan()
	o := r.waitOnline(t)

	e.sim.ExpireSession()
	_, err := r.pollUntilGone(t)
	o.Lost(err)
	eventually(t, "the re-login", func() bool {
		s := r.waitOnline(t)
		return s.Gen == o.Gen+1
	})
	e.noStateEvent()
	if st := r.m.State(); st.State != schema.StateOnline {
		t.Errorf("state %q, want online", st.State)
	}
	if st := e.kvState(schema.JSON()); st.State != schema.StateOnline {
		t.Errorf("bucket state %q, want online", st.State)
	}
}

// TestLongReconnectPublished: a re-login that takes longer than the debounce
// (QQ answers 502 for a while) is published as reconnecting, with the reason
// of the loss, then online.
func TestLongReconnectPublished(t *testing.T) {
	e := newEnv(t, qqsim.Config{})
	r := e.start(session.Config{StateDebounce: 100 * time.Millisecond})
	e.expectStates(schema.StateAwaitingScan)
	e.scan()
	o := r.waitOnline(t)

	e.sim.ExpireSession()
	_, err := r.pollUntilGone(t)
	e.sim.SetChaos(qqsim.Chaos{HTTP502Rate: 1})
	o.Lost(err)
	st := e.nextState()
	if st.State != schema.StateReconnecting || st.Reason != err.Error() {
		t.Errorf("state %q (%s), want reconnecting with the reason %q", st.State, st.Reason, err.Error())
	}
	if got := e.kvState(schema.JSON()); got.State != schema.StateReconnecting {
		t.Errorf("bucket state %q, want reconnecting", got.State)
	}
	e.sim.SetChaos(qqsim.Chaos{})
	e.expectStates(schema.StateOnline)
	e.noStateEvent()
}

// TestOnOnlineHookGetsTheSession: the hook runs with the new live session,
// whose term lasts, before Sessions hands it out; the term ends with the
// generation.
func TestOnOnlineHookGetsTheSession(t *testing.T) {
	e := newEnv(t, qqsim.Config{})
	hooked := make(chan live.Session, 4)
	r := e.startWith(session.Config{}, func(m *session.Manager) {
		m.OnOnline(func(s live.Session) {
			if s.Err() != nil {
				t.Errorf("the hook's session %d has ended", s.Gen)
			}
			hooked <- s
		})
	})
	e.expectStates(schema.StateAwaitingScan)
	e.scan()
	o := r.waitOnline(t)
	var h live.Session
	select {
	case h = <-hooked:
	default:
		t.Fatal("the session was handed out before the hook ran")
	}
	if h.Gen != o.Gen || h.Account != o.Account || h.Account == 0 {
		t.Errorf("hook got gen %d account %d, Sessions gen %d account %d", h.Gen, h.Account, o.Gen, o.Account)
	}
	e.sim.ExpireSession()
	_, err := r.pollUntilGone(t)
	o.Lost(err)
	e.skipTo(schema.StateOnline)
	if !errors.Is(h.Err(), live.ErrTermEnded) {
		t.Errorf("the first session's term: %v, want ended", h.Err())
	}
}
