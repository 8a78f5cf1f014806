package egress

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/pace"
	"github.com/qqbridge/qqbridge/schema"
)

// TestSharedPaceAcrossReplicas runs three replicas, each with its own
// pace.Limiter on the shared bucket, answering Send (the API's path) from
// several goroutines while their consumers work queued requests: the
// simulator never receives more of the account's sends in a second than
// rate + burst (+1 for the jitter of the loopback between the grant and the
// simulator's clock).
func TestSharedPaceAcrossReplicas(t *testing.T) {
	const rate, burst = 10.0, 2
	e := newEnv(t)
	var replicas []*Egress
	for range 3 {
		cfg := e.cfg
		l, err := pace.New(e.kv, rate, burst)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Pacer = l
		eg := e.newEgress(cfg)
		e.run(eg)
		replicas = append(replicas, eg)
	}
	for i := range 10 {
		e.publishJSON(schema.KindGroup, schema.Request{To: schema.Target{Group: testenv.DevChat}, Text: fmt.Sprintf("queued %d", i)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for g := range 6 {
		eg := replicas[g%3]
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				eg.Send(ctx, schema.KindFriend, &schema.Request{To: schema.Target{QQ: testenv.Alice}, Text: fmt.Sprintf("api %d.%d", g, n)})
			}
		})
	}
	wg.Wait()
	var times []time.Time
	for _, s := range e.sent() {
		times = append(times, s.Time)
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	if len(times) < int(rate) {
		t.Fatalf("only %d sends in 3s at %v/s", len(times), rate)
	}
	limit := int(rate) + burst + 1
	for i, start := range times {
		n := 0
		for _, tm := range times[i:] {
			if tm.Sub(start) >= time.Second {
				break
			}
			n++
		}
		if n > limit {
			t.Fatalf("%d sends in the second from %v, want at most %d", n, start, limit)
		}
	}
}
