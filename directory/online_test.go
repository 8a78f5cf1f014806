package directory

import (
	"testing"
	"time"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/live"
	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
)

type nopReports struct{}

func (nopReports) Lost(uint64, error)    {}
func (nopReports) Kicked(uint64, string) {}

// TestRefreshInBackground: after a relogin the lists load in the background.
// An inbound lookup meanwhile names nobody from the old session's lists: with
// WithListsWait(0) it is not held up (session number and QQ number only); by
// default it waits for the login's lists and has the names and the group's
// number. An outbound lookup waits for them.
func TestRefreshInBackground(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  []Option
		names bool // an inbound lookup during the refresh has the names
	}{
		{"no wait", []Option{WithListsWait(0)}, false},
		{"default wait", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := testenv.Context(t)
			d := New(e.c, testLog(t), tc.opts...)
			if err := d.Refresh(ctx); err != nil {
				t.Fatalf("Refresh: %v", err)
			}
			e.relogin(t)
			st := e.sim.State()
			key, _ := d.sessionKey()
			e.sim.SetChaos(qqsim.Chaos{LatencyMS: 150}) // a slow refresh
			d.RefreshInBackground(live.New(ctx, 931996776, 2, nopReports{}))
			waitTrue(t, "the refresh to start", func() bool {
				d.mu.RLock()
				defer d.mu.RUnlock()
				return d.attemptSess == key
			})
			c := d.Friend(ctx, st.Friends[alice])
			if c.QQ != alice || c.UIN != st.Friends[alice] || (c.Nick != "") != tc.names {
				t.Errorf("Friend(alice) during the refresh = %+v: want her session and QQ numbers, a nick %v", c, tc.names)
			}
			if g := d.Group(ctx, st.Groups[devChat]); (g.Name != "" && g.Number == devChat) != tc.names {
				t.Errorf("Group during the refresh = %+v: want its name and number %v", g, tc.names)
			}
			e.sim.SetChaos(qqsim.Chaos{})
			if _, err := d.Resolve(ctx, schema.KindGroup, schema.Target{Group: devChat}); err != nil {
				t.Fatalf("Resolve during the refresh: %v (want it to wait for the lists)", err)
			}
			if c := d.Friend(ctx, st.Friends[alice]); c.Nick == "" {
				t.Errorf("Friend(alice) after the refresh = %+v: want her nick", c)
			}
		})
	}
}

// TestResolveAccounts: the senders of a batch are looked up together, each
// once; the lookups after it make no request.
func TestResolveAccounts(t *testing.T) {
	e := newEnv(t)
	ctx := testenv.Context(t)
	d := New(e.c, testLog(t))
	if err := d.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	st := e.sim.State()
	// Alice and Bob are known from the discussion's list; Hey and Dave not.
	uins := []int64{st.Friends[alice], st.Friends[hey], st.Friends[dave], st.Friends[hey]}
	before := e.sim.State().Counters["get_friend_uin2"]
	d.ResolveAccounts(ctx, uins)
	if n := e.sim.State().Counters["get_friend_uin2"] - before; n != 2 {
		t.Errorf("get_friend_uin2 asked %d times for two unknown people, want 2", n)
	}
	before = e.sim.State().Counters["get_friend_uin2"]
	for qq, uin := range map[int64]int64{alice: st.Friends[alice], hey: st.Friends[hey]} {
		if got := d.Friend(ctx, uin).QQ; got != qq {
			t.Errorf("Friend(%d).QQ = %d, want %d", uin, got, qq)
		}
	}
	if got := d.Member(ctx, st.Groups[hiking], st.Friends[dave]).QQ; got != dave {
		t.Errorf("Member(dave).QQ = %d, want %d", got, dave)
	}
	if n := e.sim.State().Counters["get_friend_uin2"] - before; n != 0 {
		t.Errorf("get_friend_uin2 asked %d more times after ResolveAccounts, want 0", n)
	}
}

func waitTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestListsWaitGivesUpOnce: when the login's lists do not load within the
// wait, the lookup goes on without names, and the session is marked so that
// later lookups of it do not wait again.
func TestListsWaitGivesUpOnce(t *testing.T) {
	e := newEnv(t)
	ctx := testenv.Context(t)
	d := New(e.c, testLog(t), WithListsWait(50*time.Millisecond))
	st := e.sim.State()
	key, _ := d.sessionKey()
	e.sim.SetChaos(qqsim.Chaos{LatencyMS: 1000}) // lists slower than the wait
	d.RefreshInBackground(live.New(ctx, 931996776, 1, nopReports{}))
	waitTrue(t, "the refresh to start", func() bool {
		d.mu.RLock()
		defer d.mu.RUnlock()
		return d.attemptSess == key
	})
	if g := d.Group(ctx, st.Groups[devChat]); g.Name != "" {
		t.Errorf("Group after the wait ran out = %+v: want no name", g)
	}
	d.mu.RLock()
	gaveUp := d.gaveUp
	d.mu.RUnlock()
	if gaveUp != key {
		t.Errorf("the session was not marked after the wait ran out")
	}
	e.sim.SetChaos(qqsim.Chaos{})
}
