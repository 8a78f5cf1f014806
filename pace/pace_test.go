package pace

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/natsembed"
	"github.com/qqbridge/qqbridge/schema"
)

// newKVs starts an embedded NATS server and returns n handles of the
// bridge's SentKV bucket, each through a connection of its own (as n
// replicas have).
func newKVs(t *testing.T, n int) []jetstream.KeyValue {
	t.Helper()
	srv, err := natsembed.Start(natsembed.Options{DataDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	subj, _ := schema.NewSubjects("")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var kvs []jetstream.KeyValue
	for range n {
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		kv, err := bus.SentKV(ctx, js, subj, 1)
		if err != nil {
			t.Fatal(err)
		}
		kvs = append(kvs, kv)
	}
	return kvs
}

// TestSharedAcrossReplicas has three limiters (three replicas) reserve
// sends of one account from nine goroutines at once, each waiting for its
// turn as a sender does: in every window of one second the grants number
// at most rate + burst, and the other account is paced on its own.
func TestSharedAcrossReplicas(t *testing.T) {
	const rate, burst, account = 40.0, 5, 931996776
	kvs := newKVs(t, 3)
	var lims []*Limiter
	for _, kv := range kvs {
		l, err := New(kv, rate, burst)
		if err != nil {
			t.Fatal(err)
		}
		lims = append(lims, l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	var mu sync.Mutex
	var grants []time.Time
	var other int
	var wg sync.WaitGroup
	for g := range 9 {
		l := lims[g%3]
		wg.Go(func() {
			for {
				r, err := l.Reserve(ctx, account)
				if err != nil {
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Until(r.At)):
				}
				mu.Lock()
				grants = append(grants, r.At)
				mu.Unlock()
			}
		})
	}
	wg.Go(func() { // another account, from the first replica
		for {
			if _, err := lims[0].Wait(ctx, account+1); err != nil {
				return
			}
			mu.Lock()
			other++
			mu.Unlock()
		}
	})
	wg.Wait()
	slices.SortFunc(grants, func(a, b time.Time) int { return a.Compare(b) })
	if len(grants) < burst+int(rate) {
		t.Fatalf("only %d grants in 2.5s at %v/s: the limiter starves its callers", len(grants), rate)
	}
	limit := int(rate*1) + burst
	for i, start := range grants {
		n := 0
		for _, g := range grants[i:] {
			if g.Sub(start) >= time.Second {
				break
			}
			n++
		}
		if n > limit {
			t.Fatalf("%d grants in the second from %v, want at most %d (rate %v, burst %d)", n, start, limit, rate, burst)
		}
	}
	if other < burst {
		t.Errorf("the other account got %d sends: it shares no bucket with the first", other)
	}
}

// TestCancelGivesBack: a reservation cancelled before its time gives its
// token back, so the next one is due as early as if it had not been made.
func TestCancelGivesBack(t *testing.T) {
	kvs := newKVs(t, 1)
	l, err := New(kvs[0], 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	l.now = func() time.Time { return now }
	ctx := context.Background()
	first, err := l.Reserve(ctx, 1)
	if err != nil || !first.At.Equal(now) {
		t.Fatalf("first reservation %v, %v: want now (burst 1)", first.At, err)
	}
	second, err := l.Reserve(ctx, 1)
	if err != nil || !second.At.Equal(now.Add(time.Second)) {
		t.Fatalf("second reservation %v, %v: want in 1s", second.At, err)
	}
	second.Cancel(ctx)
	third, err := l.Reserve(ctx, 1)
	if err != nil || !third.At.Equal(now.Add(time.Second)) {
		t.Fatalf("after a cancel the next reservation is at %v, %v: want in 1s, not 2s", third.At, err)
	}
	now = now.Add(10 * time.Second) // idle: the bucket refills to its burst, no more
	a, _ := l.Reserve(ctx, 1)
	b, _ := l.Reserve(ctx, 1)
	if !a.At.Equal(now) || !b.At.Equal(now.Add(time.Second)) {
		t.Errorf("after an idle 10s: %v, %v; want now and in 1s (burst 1)", a.At.Sub(now), b.At.Sub(now))
	}
}

func TestNewRejects(t *testing.T) {
	kvs := newKVs(t, 1)
	for name, f := range map[string]func() (*Limiter, error){
		"no kv":      func() (*Limiter, error) { return New(nil, 1, 1) },
		"zero rate":  func() (*Limiter, error) { return New(kvs[0], 0, 1) },
		"zero burst": func() (*Limiter, error) { return New(kvs[0], 1, 0) },
	} {
		if _, err := f(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
