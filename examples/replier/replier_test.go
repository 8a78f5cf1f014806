package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/schema"
)

// TestTwoInstancesSplitTheWork runs two instances of the service, each with
// its own connection, on one durable consumer; 300 group messages and some
// events without a reply target arrive. Every message is answered by exactly
// one instance, both instances take a share, and QQ_OUT holds one request per
// message, each with its Content-Type and Nats-Msg-Id.
func TestTwoInstancesSplitTheWork(t *testing.T) {
	srv := testenv.StartNATS(t)
	s, _ := schema.NewSubjects("qq")
	nc := testenv.Connect(t, srv.URL())
	js := testenv.JetStream(t, nc)
	ctx := testenv.Context(t)
	if err := bus.EnsureStreams(ctx, js, s, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	by := map[string][]int{} // event id → the instances that answered it
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range 2 {
		inc := testenv.Connect(t, srv.URL())
		ijs := testenv.JetStream(t, inc)
		cfg := config{Subjects: s, Durable: "replier", AckWait: 5 * time.Second, Batch: 4,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			replied: func(id string) {
				time.Sleep(2 * time.Millisecond) // some work, so that one instance cannot take everything
				mu.Lock()
				by[id] = append(by[id], i)
				mu.Unlock()
			}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(runCtx, ijs, cfg); err != nil {
				t.Errorf("instance %d: %v", i, err)
			}
		}()
	}
	// Both bind the consumer before the events come (DeliverNew).
	testenv.Eventually(t, "the durable consumer exists", func() bool {
		_, err := js.Consumer(ctx, s.StreamIn(), "replier")
		return err == nil
	})

	const n = 300
	const account = 931996776
	publish := func(e *schema.Event) {
		body, h, err := e.Encode(schema.JSON())
		if err != nil {
			t.Fatal(err)
		}
		subj, err := s.In(e.Kind(), subjectID(e))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: subj, Data: body, Header: nats.Header(h)}); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	for i := range n {
		publish(&schema.Event{ID: schema.EventID(account, "group", int64(i+1)), Type: schema.TypeMessageGroup, Time: at,
			Account: account, MsgID: int64(i + 1), From: &schema.Contact{UIN: 11, QQ: 123456},
			Group: &schema.GroupRef{GID: 22, Number: 987654}, Text: fmt.Sprintf("m%d", i), Segments: []schema.Segment{schema.TextSegment(fmt.Sprintf("m%d", i))}})
		if i%50 == 0 { // no reply: a status change and the echo of an own send
			publish(&schema.Event{ID: schema.EventID(account, "status", int64(i+1)), Type: schema.TypeStatusBuddy, Time: at,
				Account: account, Status: &schema.Status{UIN: 11, Status: "online", ClientType: 1}})
			publish(&schema.Event{ID: schema.EventID(account, "group", int64(100000+i)), Type: schema.TypeMessageGroup, Time: at,
				Account: account, MsgID: int64(100000 + i), From: &schema.Contact{UIN: account, QQ: account},
				Group: &schema.GroupRef{GID: 22, Number: 987654}, Text: "own", Segments: []schema.Segment{schema.TextSegment("own")}})
		}
	}
	testenv.Eventually(t, "every message answered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(by) >= n
	})
	cancel()
	wg.Wait()

	share := [2]int{}
	for id, who := range by {
		if len(who) != 1 {
			t.Errorf("%s answered %d times (instances %v)", id, len(who), who)
		}
		share[who[0]]++
	}
	if len(by) != n {
		t.Errorf("%d events answered, want %d (the status and echo events get none)", len(by), n)
	}
	if share[0] == 0 || share[1] == 0 {
		t.Errorf("one instance did all the work: %v", share)
	}
	t.Logf("shares: %v", share)

	// QQ_OUT: one request per message, decodable, with both headers.
	st, err := js.Stream(ctx, s.StreamOut())
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != n {
		t.Errorf("QQ_OUT holds %d requests, want %d", info.State.Msgs, n)
	}
	m, err := st.GetMsg(ctx, info.State.FirstSeq)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(schema.HeaderContentType) != schema.ContentTypeJSON || m.Header.Get(schema.HeaderMsgID) == "" {
		t.Errorf("request headers %v", m.Header)
	}
	req, err := schema.DecodeRequest(m.Header.Get(schema.HeaderContentType), m.Data)
	if err != nil {
		t.Fatal(err)
	}
	// Published on its target subject, stored in a partition (bus).
	o, err := s.ParseOutSubject(m.Subject)
	if req.To != (schema.Target{Group: 987654}) || req.ID != m.Header.Get(schema.HeaderMsgID) || err != nil ||
		o.Kind != schema.KindGroup || o.Key != "987654" || o.Partition < 0 {
		t.Errorf("request %+v on %s", req, m.Subject)
	}
}

// TestRedeliveredEventRepliesOnce: an instance that took an event and died
// before acknowledging it (here: a consumer that never acks) leaves it to
// the next one after the ack wait; the reply is published twice with the
// same Nats-Msg-Id and the stream keeps one.
func TestRedeliveredEventRepliesOnce(t *testing.T) {
	srv := testenv.StartNATS(t)
	s, _ := schema.NewSubjects("qq")
	nc := testenv.Connect(t, srv.URL())
	js := testenv.JetStream(t, nc)
	ctx := testenv.Context(t)
	if err := bus.EnsureStreams(ctx, js, s, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := config{Subjects: s, Durable: "replier", AckWait: time.Second, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cons, err := js.CreateOrUpdateConsumer(ctx, s.StreamIn(), consumerConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	e := &schema.Event{ID: schema.EventID(931996776, "friend", 7), Type: schema.TypeMessageFriend, Time: time.Now().UTC(),
		Account: 931996776, MsgID: 7, From: &schema.Contact{UIN: 5, QQ: 123456}, Text: "hi", Segments: []schema.Segment{schema.TextSegment("hi")}}
	body, h, _ := e.Encode(schema.JSON())
	subj, _ := s.In(schema.KindFriend, subjectID(e))
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: subj, Data: body, Header: nats.Header(h)}); err != nil {
		t.Fatal(err)
	}
	// The first instance publishes the reply and "dies" before its ack.
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		kind, to, _ := schema.ReplyTarget(e)
		rb, rh, err := schema.EncodeRequest(schema.JSON(), kind, &schema.Request{ID: e.ID + ":reply", To: to, Text: "收到: hi"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: s.Out(kind), Data: rb, Header: nats.Header(rh)}); err != nil {
			t.Fatal(err)
		}
		_ = m // no ack
	}
	// The service takes it after the ack wait and answers again.
	done := make(chan string, 1)
	cfg.replied = func(id string) { done <- id }
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = run(runCtx, js, cfg) }()
	select {
	case id := <-done:
		if id != e.ID {
			t.Fatalf("answered %s", id)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the redelivered event was not answered")
	}
	st, _ := js.Stream(ctx, s.StreamOut())
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("QQ_OUT holds %d requests, want 1 (the repeat dropped by Nats-Msg-Id)", info.State.Msgs)
	}
}

// subjectID is the last token of an event's subject: the bridge uses the
// msg_id for messages and the hash for others (docs/events.md).
func subjectID(e *schema.Event) string {
	if e.MsgID != 0 {
		return fmt.Sprint(e.MsgID)
	}
	return "uin11"
}
