package session_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
	"github.com/qqbridge/qqbridge/session"
)

// startSpread runs a Spread for replica id until the returned stop.
func (e *env) startSpread(id string, accounts int, ttl time.Duration) (*session.Spread, func()) {
	e.t.Helper()
	_, js := e.connect()
	sp, err := session.NewSpread(e.ctx(), session.SpreadConfig{JS: js, ReplicaID: id, Accounts: accounts, TTL: ttl, Log: zerolog.Nop()})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sp.Run(ctx); close(done) }()
	stop := func() { cancel(); <-done }
	e.t.Cleanup(func() { cancel() })
	return sp, stop
}

// take takes leases on sp while it may, up to n, and returns how many.
func take(sp *session.Spread, n int) int {
	k := 0
	for k < n && sp.Reserve() {
		k++
	}
	return k
}

// ready reports whether sp may take a lease, without keeping one.
func ready(sp *session.Spread) bool {
	if sp.Reserve() {
		sp.Released()
		return true
	}
	return false
}

// TestSpreadConcurrentReserve: Managers asking at once never exceed the
// share together.
func TestSpreadConcurrentReserve(t *testing.T) {
	e := newEnv(t, qqsim.Config{})
	sp, _ := e.startSpread("a", 4, 2*time.Second)
	_, _ = e.startSpread("b", 4, 2*time.Second)
	eventually(t, "a sees b", func() bool { return len(sp.Peers()) == 2 && ready(sp) })
	var wg sync.WaitGroup
	var got atomic.Int32
	for range 16 {
		wg.Go(func() {
			if sp.Reserve() {
				got.Add(1)
			}
		})
	}
	wg.Wait()
	if got.Load() != 2 || sp.Held() != 2 {
		t.Errorf("16 Managers at once reserved %d (held %d), want 2 of 4 accounts on 2 replicas", got.Load(), sp.Held())
	}
}

// TestSpreadQuota: 6 accounts on 3 replicas: each may take 2; when one
// leaves, the others may take 3; when it returns, one with 3 hands one back
// (and only one at a time), and the returning one may take 2.
func TestSpreadQuota(t *testing.T) {
	e := newEnv(t, qqsim.Config{})
	const ttl = 2 * time.Second
	a, _ := e.startSpread("a", 6, ttl)
	b, _ := e.startSpread("b", 6, ttl)
	c, stopC := e.startSpread("c", 6, ttl)
	eventually(t, "all see three replicas", func() bool {
		return len(a.Peers()) == 3 && len(b.Peers()) == 3 && len(c.Peers()) == 3 && ready(a) && ready(b) && ready(c)
	})
	for _, sp := range []*session.Spread{a, b, c} {
		if got := take(sp, 6); got != 2 {
			t.Fatalf("took %d leases with three replicas, want 2", got)
		}
		if sp.ShouldYield() {
			t.Error("yields at its quota")
		}
	}

	// c dies with its two leases (its entry is deleted; a kill -9 lets it expire).
	stopC()
	eventually(t, "a and b see two replicas", func() bool { return len(a.Peers()) == 2 && len(b.Peers()) == 2 })
	if got := take(a, 6) + take(b, 6); got != 2 {
		t.Fatalf("a and b took %d more leases, want 2 (3 each)", got)
	}

	// c returns empty: a and b each hand one back, once.
	c2, _ := e.startSpread("c", 6, ttl)
	eventually(t, "all see c again", func() bool {
		pa, pb := a.Peers(), b.Peers()
		_, okA := pa["c"]
		_, okB := pb["c"]
		return okA && okB && len(c2.Peers()) == 3 && ready(c2)
	})
	for name, sp := range map[string]*session.Spread{"a": a, "b": b} {
		if !sp.ShouldYield() {
			t.Fatalf("%s holds 3 of a quota of 2 and does not yield", name)
		}
		if sp.ShouldYield() {
			t.Errorf("%s yields a second lease before the first was released", name)
		}
		sp.Released()
		if sp.ShouldYield() {
			t.Errorf("%s yields again at its quota", name)
		}
		if sp.Reserve() {
			t.Errorf("%s may take a lease back at its quota", name)
			sp.Released()
		}
	}
	if got := take(c2, 6); got != 2 {
		t.Errorf("the returning replica took %d, want 2", got)
	}
}

// TestSpreadHandsLeaseOver: two replicas of one account, each with a
// Spread; the leader's replica holds a second lease (another account), so it
// is above its quota while the other replica has room: it hands this
// account's lease back and the other replica leads, resuming the saved
// session (no new QR login).
func TestSpreadHandsLeaseOver(t *testing.T) {
	e := newEnv(t, qqsim.Config{})
	const ttl = 3 * time.Second
	spA, _ := e.startSpread("a", 2, ttl)
	a := e.start(session.Config{ReplicaID: "a", LeaderTTL: ttl, Spread: spA})
	eventually(t, "a leads", a.m.IsLeader)
	e.expectStates(schema.StateAwaitingScan)
	e.scan()
	a.waitOnline(t)
	qrs := e.counter("ptqrshow")

	spB, _ := e.startSpread("b", 2, ttl)
	b := e.start(session.Config{ReplicaID: "b", LeaderTTL: ttl, Spread: spB})
	b.waitOnline(t)
	if b.m.IsLeader() {
		t.Fatal("b leads while a holds the lease")
	}
	spA.Taken() // a leads another account too: 2 leases, quota 1, b has none
	eventually(t, "b leads", b.m.IsLeader)
	eventually(t, "a no longer leads", func() bool { return !a.m.IsLeader() })
	if h := spA.Held(); h != 1 {
		t.Errorf("a holds %d leases after handing one back, want 1", h)
	}
	if h := spB.Held(); h != 1 {
		t.Errorf("b holds %d leases, want 1", h)
	}
	b.waitOnline(t)
	if e.counter("ptqrshow") != qrs {
		t.Error("the hand-over asked for a new QR login")
	}
	// No flapping: a, at its quota, does not take it back.
	time.Sleep(2 * ttl)
	if !b.m.IsLeader() || a.m.IsLeader() {
		t.Errorf("after %v: a leads %v, b leads %v", 2*ttl, a.m.IsLeader(), b.m.IsLeader())
	}
}
