package main

import (
	"context"
	"testing"
	"time"

	"github.com/qqbridge/qqbridge/egress"
)

func newBenchEnv(b *testing.B) *Env {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := NewEnv(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(e.Close)
	return e
}

// BenchmarkIngress is one poll answer of 5,000 group messages, published by
// the bridge and by the raw baselines; ns/op is per event.
func BenchmarkIngress(b *testing.B) {
	const n = 5000
	e := newBenchEnv(b)
	ctx := context.Background()
	if _, err := e.IngressBridge(ctx, n); err != nil {
		b.Fatal(err)
	}
	msgs, err := e.Published(ctx)
	if err != nil {
		b.Fatal(err)
	}
	run := func(name string, f func() (time.Duration, error)) {
		b.Run(name, func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				d, err := f()
				if err != nil {
					b.Fatal(err)
				}
				total += d
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N*n), "ns/event")
			b.ReportMetric(float64(b.N*n)/total.Seconds(), "events/s")
		})
	}
	var answered, decoded time.Duration
	runs := 0
	run("bridge", func() (time.Duration, error) {
		d, err := e.IngressBridge(ctx, n)
		answered += e.LastAnswered
		decoded += e.LastDecoded
		runs++
		return d, err
	})
	runs = max(runs, 1)
	b.Logf("bridge: after the items were queued, the poll answer arrived after %v and was decoded after %v, on average",
		answered/time.Duration(runs), decoded/time.Duration(runs))
	run("async-256", func() (time.Duration, error) { return e.IngressAsync(ctx, msgs, 256) })
	run("sync", func() (time.Duration, error) { return e.IngressSync(ctx, msgs) })
}

// BenchmarkEgress is 2,000 queued group requests on their target subjects
// answered by one and two replicas (at the default InFlight and at 1), the
// same on the serial subject, and the plain send loop.
func BenchmarkEgress(b *testing.B) {
	const n = 2000
	e := newBenchEnv(b)
	ctx := context.Background()
	run := func(name string, f func() (time.Duration, error)) {
		b.Run(name, func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				d, err := f()
				if err != nil {
					b.Fatal(err)
				}
				total += d
			}
			b.ReportMetric(float64(b.N*n)/total.Seconds(), "req/s")
		})
	}
	one := func(c *egress.Config) { c.InFlight = 1 }
	run("bridge-1", func() (time.Duration, error) { return e.EgressBridge(ctx, n, EgressOptions{Replicas: 1}) })
	run("bridge-2", func() (time.Duration, error) { return e.EgressBridge(ctx, n, EgressOptions{Replicas: 2}) })
	run("bridge-1-inflight-1", func() (time.Duration, error) {
		return e.EgressBridge(ctx, n, EgressOptions{Replicas: 1, Configure: one})
	})
	run("bridge-2-inflight-1", func() (time.Duration, error) {
		return e.EgressBridge(ctx, n, EgressOptions{Replicas: 2, Configure: one})
	})
	run("bridge-1-serial", func() (time.Duration, error) { return e.EgressBridge(ctx, n, EgressOptions{Replicas: 1, Serial: true}) })
	run("plain-loop", func() (time.Duration, error) { return e.EgressBaseline(ctx, n) })
}

// TestRunSmall runs the harness once, small, and checks that it reports
// every row with a positive ratio (not a timing assertion).
func TestRunSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS and the simulator")
	}
	var out discard
	rows, err := Run(context.Background(), Config{Reps: 1, Events: 200, Requests: 50, LatencyRequests: 40, Contacts: 100}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 5 {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows {
		if !(r.Ratio > 0) {
			t.Errorf("row %q: ratio %v", r.Path, r.Ratio)
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestRSSSmall runs the RSS mode briefly at a low rate: the bridge process
// stores every message it was fed and its peak RSS is read (not a limit:
// the figure is the harness's output).
func TestRSSSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	r, err := RunRSS(ctx, RSSConfig{Rate: 200, Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Fed == 0 || r.Stored < uint64(r.Fed) {
		t.Errorf("fed %d, stored %d", r.Fed, r.Stored)
	}
	if r.PeakRSS <= 0 || r.BeforeFeed <= 0 || len(r.Samples) == 0 {
		t.Errorf("no RSS read: %+v", r)
	}
}
