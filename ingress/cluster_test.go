package ingress

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/schema"
)

// TestWindowClusterForeignPublisher publishes a batch into a stream of three
// replicas while another publisher (as the media worker does) stores
// messages in the same stream between the batch's: every event arrives once,
// in order, and the stream still takes messages afterwards. (When the
// batch's messages expected their predecessor's Nats-Msg-Id there too, the
// first foreign message between two of them stalled the stream: a clustered
// stream checks that header only as each replica applies the message, and
// every replica stopped at the mismatch.)
//
// The stream allows atomic batches (bus.StreamConfigs), and ingress
// publishes in them: another publisher's messages land only between two
// batches.
func TestWindowClusterForeignPublisher(t *testing.T) {
	st := foreignBetween(t, clusterHarness(t))
	if st.Atomic == 0 {
		t.Errorf("no atomic batch: %+v", st)
	}
}

// clusterHarness is a harness on a 3-node cluster whose streams have three
// replicas.
func clusterHarness(t testing.TB) *harness {
	c := testenv.NewCluster(t, 3)
	c.StartAll()
	var urls []string
	for i := range c.Nodes {
		urls = append(urls, c.URL(i))
	}
	nc := testenv.Connect(t, strings.Join(urls, ","))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	so := bus.StreamOptions{Replicas: 3}
	subjects, _ := schema.NewSubjects("")
	// Three replicas can be placed once every node knows the others.
	testenv.Eventually(t, "the streams on three replicas", func() bool {
		ctx, cancel := context.WithTimeout(testenv.Context(t), 5*time.Second)
		defer cancel()
		err := bus.EnsureStreams(ctx, js, subjects, so)
		if err != nil {
			t.Log(err)
		}
		return err == nil
	})
	return newHarnessOn(t, nc, js, so)
}

// TestWindowForeignPublisher is the same on one server, through the window
// whose messages expect their predecessor: a message refused because a
// foreign one came between is published again, and the rest follow it.
func TestWindowForeignPublisher(t *testing.T) {
	if st := foreignBetween(t, newHarness(t)); st.Atomic != 0 {
		t.Errorf("atomic batches into a stream of one replica: %+v", st)
	}
}

// foreignBetween has h's ingress publish a batch while foreign messages go
// into the same stream, checks the batch and returns the ingress's stats.
func foreignBetween(t *testing.T, h *harness) Stats {
	t.Helper()
	js := h.js
	ing := h.start(nil)
	testenv.Eventually(t, "the first poll", func() bool { return h.sim.State().Counters["polls_held"] > 0 })

	foreign := h.foreignPublisher()
	const first, n = 600000, 3000
	h.inject(h.windowItems(first, n)...)
	h.waitMsgID(first + n - 1)
	fseqs := foreign.stop()

	msgs := h.stream()
	checkOnceInOrder(t, msgs, first, n)
	var lo, hi uint64 // the batch's first and last sequence
	gaps := 0         // places where something else came between two of the batch's messages
	for _, m := range msgs {
		if id := m.Event.MsgID; id >= first && id < first+n {
			if lo == 0 {
				lo = m.Seq
			} else if m.Seq != hi+1 {
				gaps++
			}
			hi = m.Seq
		}
	}
	between := 0
	for _, s := range fseqs {
		if s > lo && s < hi {
			between++
		}
	}
	if between == 0 {
		t.Fatalf("no foreign message was stored among the batch's (%d foreign, batch at %d–%d): nothing tested", len(fseqs), lo, hi)
	}
	st := ing.Stats()
	if st.Published != n {
		t.Errorf("stats %+v: want %d published", st, n)
	}
	if st.Atomic > 0 && st.Retries == 0 && gaps > int(st.Atomic)-1 {
		t.Errorf("foreign messages in %d places among the batch's %d atomic batches: one landed inside a batch", gaps, st.Atomic)
	}
	ctx, cancel := context.WithTimeout(h.ctx(), 5*time.Second)
	defer cancel()
	subject, _ := h.subjects.In(schema.KindSystem, "after")
	if _, err := js.Publish(ctx, subject, []byte("{}")); err != nil {
		t.Fatalf("the stream takes no message after the batch: %v", err)
	}
	t.Logf("%d foreign messages, %d of them among the batch's, in %d places; %d atomic batches", len(fseqs), between, gaps, st.Atomic)
	return st
}

// foreign is a publisher of other events into the inbound stream.
type foreign struct {
	stopc chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	seqs  []uint64
}

// foreignPublisher publishes media events into the inbound stream one
// after another, each acknowledged, until stop.
func (h *harness) foreignPublisher() *foreign {
	f := &foreign{stopc: make(chan struct{})}
	subject, err := h.subjects.In(schema.KindMedia, "1")
	if err != nil {
		h.t.Fatal(err)
	}
	f.wg.Go(func() {
		for k := 0; ; k++ {
			select {
			case <-f.stopc:
				return
			default:
			}
			e := &schema.Event{V: schema.Version, ID: fmt.Sprintf("foreign-%d", k), Type: "media.stored",
				Time: time.Now().UTC(), Account: 931996776}
			data, hd, err := e.Encode(schema.JSON())
			if err != nil {
				h.t.Error(err)
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ack, err := h.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data, Header: nats.Header(hd)})
			cancel()
			if err != nil {
				continue // the stream is busy or stalled: the test sees which
			}
			f.mu.Lock()
			f.seqs = append(f.seqs, ack.Sequence)
			f.mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	})
	return f
}

// stop ends the publishing and returns the sequences stored.
func (f *foreign) stop() []uint64 {
	close(f.stopc)
	f.wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seqs
}

// TestAtomicClusterStoredBefore: a poll answer whose first messages are in
// the stream already (a replayed journal entry, or items QQ gives a new
// leader again). The stream refuses a whole atomic batch that holds a
// message it stored before; that batch goes again one message at a time
// (the stored ones answered as duplicates) and the rest in atomic batches:
// every message once, in order.
func TestAtomicClusterStoredBefore(t *testing.T) {
	h := clusterHarness(t)
	polled := func(after int64) {
		testenv.Eventually(t, "a held poll", func() bool { return h.sim.State().Counters["polls_held"] > after })
	}
	h.start(nil)
	polled(0)
	const first, n, before = 800000, 1200, 100
	items := h.windowItems(first, n)
	h.inject(items[:before]...)
	h.waitMsgID(first + before - 1)
	h.stop()

	held := h.sim.State().Counters["polls_held"]
	ing := h.start(nil) // a new leader: it has not published them
	polled(held)
	h.inject(items...)
	h.waitMsgID(first + n - 1)
	checkOnceInOrder(t, h.stream(), first, n)
	st := ing.Stats()
	if st.Duplicates != before || st.Published != n-before {
		t.Errorf("stats %+v: want %d duplicates and %d published", st, before, n-before)
	}
	if st.Atomic == 0 {
		t.Errorf("no atomic batch after the refused one: %+v", st)
	}
	for k, m := range h.lastMessages(2) {
		t.Logf("stored message %d's headers: %v", k, m.Header)
	}
}
