package ingress

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkPublishCluster: a poll answer of 1,000 messages into an inbound
// stream of three replicas on a 3-node cluster (loopback), against the
// same messages published by a bare loop of PublishMsg, one by one, and
// with PublishMsgAsync, 256 unacknowledged (which would not keep the order
// when a publish fails). Ingress publishes atomic batches there (the
// stream allows them: bus.StreamConfigs). Compare the ev/s of the three:
//
//	go test -run xxx -bench PublishCluster -benchtime 5x ./ingress
func BenchmarkPublishCluster(b *testing.B) {
	const n = 1000
	h := clusterHarness(b)
	ing := h.start(nil)
	for h.sim.State().Counters["polls_held"] == 0 {
		time.Sleep(time.Millisecond)
	}
	first := int64(700000)
	batch := func() {
		target := ing.Stats().Published + n
		h.inject(h.windowItems(first, n)...)
		first += n
		for ing.Stats().Published < target {
			time.Sleep(100 * time.Microsecond)
		}
	}
	batch() // the messages the baselines publish again
	msgs := h.lastMessages(n)

	rate := func(b *testing.B, start time.Time) {
		b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "ev/s")
	}
	b.Run("bridge", func(b *testing.B) {
		start := time.Now()
		for range b.N {
			batch()
		}
		rate(b, start)
	})
	round := 0
	again := func() []*nats.Msg { // the messages with ids not seen yet
		round++
		out := make([]*nats.Msg, len(msgs))
		for k, m := range msgs {
			c := &nats.Msg{Subject: m.Subject, Data: m.Data, Header: nats.Header{}}
			for key, v := range m.Header {
				if !strings.HasPrefix(key, "Nats-Batch-") { // the bridge's atomic batches'
					c.Header[key] = v
				}
			}
			c.Header.Set(nats.MsgIdHdr, m.Header.Get(nats.MsgIdHdr)+"-"+strconv.Itoa(round))
			out[k] = c
		}
		return out
	}
	b.Run("sync", func(b *testing.B) {
		var d time.Duration
		for range b.N {
			ms := again()
			start := time.Now()
			for _, m := range ms {
				if _, err := h.js.PublishMsg(context.Background(), m); err != nil {
					b.Fatal(err)
				}
			}
			d += time.Since(start)
		}
		b.ReportMetric(float64(n*b.N)/d.Seconds(), "ev/s")
	})
	b.Run("async-256", func(b *testing.B) {
		js, err := jetstream.New(h.nc, jetstream.WithPublishAsyncMaxPending(256))
		if err != nil {
			b.Fatal(err)
		}
		var d time.Duration
		for range b.N {
			ms := again()
			start := time.Now()
			fs := make([]jetstream.PubAckFuture, 0, len(ms))
			for _, m := range ms {
				f, err := js.PublishMsgAsync(m)
				if err != nil {
					b.Fatal(err)
				}
				fs = append(fs, f)
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				b.Fatal("async publishes not acknowledged within a minute")
			}
			d += time.Since(start)
			for _, f := range fs {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(n*b.N)/d.Seconds(), "ev/s")
	})
}

// lastMessages returns the last n messages of the inbound stream as they
// were published (subject, headers, data).
func (h *harness) lastMessages(n int) []*nats.Msg {
	h.t.Helper()
	ctx := h.ctx()
	st, err := h.js.Stream(ctx, h.subjects.StreamIn())
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []*nats.Msg
	for seq := info.State.LastSeq - uint64(n) + 1; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			h.t.Fatal(err)
		}
		out = append(out, &nats.Msg{Subject: m.Subject, Data: m.Data, Header: m.Header})
	}
	return out
}
