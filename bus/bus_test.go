package bus_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/schema"
)

// startJS starts an embedded server on a random loopback port and returns a
// JetStream context connected to it.
func startJS(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, js := testenv.StartNATS(t).Connect()
	return js
}

func TestEnsureStreams(t *testing.T) {
	js := startJS(t)
	ctx := testenv.Context(t)
	prefixes := []struct {
		prefix              string
		in, out, result     string
		inSubj, outSubj, rs string
	}{
		{"qq", "QQ_IN", "QQ_OUT", "QQ_RESULT", "qq.in.>", "qq.out.>", "qq.result.>"},
		{"acct-1.qq", "ACCT_1_QQ_IN", "ACCT_1_QQ_OUT", "ACCT_1_QQ_RESULT", "acct-1.qq.in.>", "acct-1.qq.out.>", "acct-1.qq.result.>"},
	}
	for _, p := range prefixes {
		t.Run(p.prefix, func(t *testing.T) {
			s, err := schema.NewSubjects(p.prefix)
			if err != nil {
				t.Fatal(err)
			}
			// Twice, and then from several replicas at once: idempotent.
			for range 2 {
				if err := bus.EnsureStreams(ctx, js, s, bus.StreamOptions{}); err != nil {
					t.Fatalf("EnsureStreams: %v", err)
				}
			}
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for range 4 {
				wg.Go(func() { errs <- bus.EnsureStreams(ctx, js, s, bus.StreamOptions{}) })
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatalf("concurrent EnsureStreams: %v", err)
				}
			}

			want := []struct {
				name       string
				subject    string
				retention  jetstream.RetentionPolicy
				maxAge     time.Duration
				duplicates time.Duration
			}{
				{p.in, p.inSubj, jetstream.LimitsPolicy, bus.DefaultInMaxAge, bus.DefaultDuplicates},
				{p.out, p.outSubj, jetstream.WorkQueuePolicy, bus.DefaultOutMaxAge, bus.DefaultDuplicates},
				{p.result, p.rs, jetstream.LimitsPolicy, bus.DefaultResultMaxAge, bus.DefaultDuplicates},
			}
			for _, w := range want {
				st, err := js.Stream(ctx, w.name)
				if err != nil {
					t.Fatalf("stream %s: %v", w.name, err)
				}
				cfg := st.CachedInfo().Config
				if len(cfg.Subjects) != 1 || cfg.Subjects[0] != w.subject {
					t.Errorf("%s subjects = %v, want [%s]", w.name, cfg.Subjects, w.subject)
				}
				if cfg.Retention != w.retention {
					t.Errorf("%s retention = %v, want %v", w.name, cfg.Retention, w.retention)
				}
				if cfg.Storage != jetstream.FileStorage {
					t.Errorf("%s storage = %v, want file", w.name, cfg.Storage)
				}
				if cfg.MaxAge != w.maxAge {
					t.Errorf("%s MaxAge = %v, want %v", w.name, cfg.MaxAge, w.maxAge)
				}
				if cfg.Duplicates != w.duplicates {
					t.Errorf("%s Duplicates = %v, want %v", w.name, cfg.Duplicates, w.duplicates)
				}
				if cfg.Replicas != 1 {
					t.Errorf("%s replicas = %d, want 1", w.name, cfg.Replicas)
				}
			}
		})
	}
}

func TestEnsureStreamsUpdates(t *testing.T) {
	js := startJS(t)
	ctx := testenv.Context(t)
	s, _ := schema.NewSubjects("qq")
	if err := bus.EnsureStreams(ctx, js, s, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	o := bus.StreamOptions{InMaxAge: 48 * time.Hour, Duplicates: 5 * time.Minute, ResultMaxAge: 2 * time.Hour}
	if err := bus.EnsureStreams(ctx, js, s, o); err != nil {
		t.Fatalf("EnsureStreams with new options: %v", err)
	}
	in, _ := js.Stream(ctx, s.StreamIn())
	if c := in.CachedInfo().Config; c.MaxAge != 48*time.Hour || c.Duplicates != 5*time.Minute {
		t.Errorf("in stream not updated: MaxAge %v, Duplicates %v", c.MaxAge, c.Duplicates)
	}
	res, _ := js.Stream(ctx, s.StreamResult())
	if c := res.CachedInfo().Config; c.MaxAge != 2*time.Hour {
		t.Errorf("result stream not updated: MaxAge %v", c.MaxAge)
	}
}

// TestStreamsBehave checks the retention the bridge relies on: the in stream
// drops a repeated Nats-Msg-Id, and the out stream is a work queue whose
// acknowledged messages are gone.
func TestStreamsBehave(t *testing.T) {
	js := startJS(t)
	ctx := testenv.Context(t)
	s, _ := schema.NewSubjects("qq")
	if err := bus.EnsureStreams(ctx, js, s, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	subj, _ := s.In(schema.KindGroup, "987654")
	for range 2 {
		if _, err := js.Publish(ctx, subj, []byte(`{}`), jetstream.WithMsgID("931996776:group:50873")); err != nil {
			t.Fatal(err)
		}
	}
	in, _ := js.Stream(ctx, s.StreamIn())
	info, _ := in.Info(ctx)
	if info.State.Msgs != 1 {
		t.Errorf("in stream holds %d messages after a repeated msg id, want 1", info.State.Msgs)
	}

	if _, err := js.Publish(ctx, s.Out(schema.KindFriend), []byte(`{"to":{"qq":1},"text":"hi"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, s.Result(schema.KindFriend), []byte(`{"ok":true}`)); err != nil {
		t.Fatalf("result subject not captured: %v", err)
	}
	out, _ := js.Stream(ctx, s.StreamOut())
	cons, err := out.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "w", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for msg := range msgs.Messages() {
		n++
		if err := msg.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n != 1 {
		t.Fatalf("fetched %d requests, want 1", n)
	}
	info, _ = out.Info(ctx)
	if info.State.Msgs != 0 {
		t.Errorf("out stream holds %d messages after the ack, want 0 (work queue)", info.State.Msgs)
	}
}

func TestBuckets(t *testing.T) {
	js := startJS(t)
	ctx := testenv.Context(t)
	s, _ := schema.NewSubjects("qq")
	type open func() (jetstream.KeyValue, error)
	cases := []struct {
		name    string
		open    open
		bucket  string
		ttl     time.Duration
		storage jetstream.StorageType
	}{
		{"session", func() (jetstream.KeyValue, error) { return bus.SessionKV(ctx, js, s, 1) }, "qq_session", 0, jetstream.FileStorage},
		{"sent", func() (jetstream.KeyValue, error) { return bus.SentKV(ctx, js, s, 1) }, "qq_sent", 24 * time.Hour, jetstream.FileStorage},
		{"leader", func() (jetstream.KeyValue, error) { return bus.LeaderKV(ctx, js, s, 1, 3*time.Second) }, "qq_session_leader", 3 * time.Second, jetstream.MemoryStorage},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var kv jetstream.KeyValue
			for i := range 2 {
				var err error
				if kv, err = c.open(); err != nil {
					t.Fatalf("open #%d: %v", i+1, err)
				}
			}
			if kv.Bucket() != c.bucket {
				t.Errorf("bucket = %q, want %q", kv.Bucket(), c.bucket)
			}
			st, err := kv.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.TTL() != c.ttl {
				t.Errorf("TTL = %v, want %v", st.TTL(), c.ttl)
			}
			if st.History() != 1 {
				t.Errorf("history = %d, want 1", st.History())
			}
			if got := st.Config().Storage; got != c.storage {
				t.Errorf("storage = %v, want %v", got, c.storage)
			}
			if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
				t.Errorf("put: %v", err)
			}
		})
	}
}

func TestBucketsConcurrent(t *testing.T) {
	js := startJS(t)
	ctx := testenv.Context(t)
	s, _ := schema.NewSubjects("acct7")
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for range 4 {
		wg.Go(func() {
			_, err := bus.SessionKV(ctx, js, s, 1)
			errs <- err
			_, err = bus.SentKV(ctx, js, s, 1)
			errs <- err
			_, err = bus.LeaderKV(ctx, js, s, 1, 2*time.Second)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent set-up: %v", err)
		}
	}
	names := map[string]bool{}
	for name := range js.KeyValueStoreNames(ctx).Name() {
		names[name] = true
	}
	for _, want := range []string{"acct7_session", "acct7_sent", "acct7_session_leader"} {
		if !names[want] {
			t.Errorf("bucket %s missing; have %v", want, names)
		}
	}
}

func TestLeaderKVRejectsShortTTL(t *testing.T) {
	js := startJS(t)
	s, _ := schema.NewSubjects("qq")
	if _, err := bus.LeaderKV(testenv.Context(t), js, s, 1, 500*time.Millisecond); err == nil {
		t.Fatal("LeaderKV accepted a TTL below one second")
	}
}

// TestLeaderLeaseSemantics checks the KV behaviour the lease is built on:
// Create fails while the key lives, Update needs the held revision, and the
// key is gone after the bucket's TTL so that Create succeeds again.
func TestLeaderLeaseSemantics(t *testing.T) {
	js := startJS(t)
	ctx := testenv.Context(t)
	s, _ := schema.NewSubjects("qq")
	kv, err := bus.LeaderKV(ctx, js, s, 1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := kv.Create(ctx, bus.LeaderKey, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, bus.LeaderKey, []byte("b")); !errors.Is(err, jetstream.ErrKeyExists) {
		t.Errorf("second Create: %v, want ErrKeyExists", err)
	}
	if _, err := kv.Update(ctx, bus.LeaderKey, []byte("b"), rev+100); !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		t.Errorf("Update at a wrong revision: %v, want ErrKeyRevisionMismatch", err)
	}
	if _, err := kv.Update(ctx, bus.LeaderKey, []byte("a"), rev); err != nil {
		t.Errorf("Update at the held revision: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := kv.Create(ctx, bus.LeaderKey, []byte("b"))
		if err == nil {
			break
		}
		if !errors.Is(err, jetstream.ErrKeyExists) || time.Now().After(deadline) {
			t.Fatalf("Create after the TTL: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestStreamLimits: the size limits and the work queue's age apply, with
// defaults, -1 for none, and an existing stream (the old configuration without
// limits, discarding old messages) is updated to them.
func TestStreamLimits(t *testing.T) {
	js := startJS(t)
	ctx := testenv.Context(t)
	s, _ := schema.NewSubjects("qq")
	// A stream set up by an older bridge: no limits, discard old.
	old := bus.StreamConfigs(s, bus.StreamOptions{})[1]
	old.MaxAge, old.MaxBytes, old.MaxMsgs, old.Discard = 0, -1, -1, jetstream.DiscardOld
	if _, err := js.CreateStream(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(ctx, js, s, bus.StreamOptions{}); err != nil {
		t.Fatalf("EnsureStreams: %v", err)
	}
	type limits struct {
		bytes, msgs int64
		age         time.Duration
		discard     jetstream.DiscardPolicy
	}
	check := func(name string, want limits) {
		t.Helper()
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		c := st.CachedInfo().Config
		if got := (limits{c.MaxBytes, c.MaxMsgs, c.MaxAge, c.Discard}); got != want {
			t.Errorf("%s limits %+v, want %+v", name, got, want)
		}
	}
	check(s.StreamIn(), limits{bus.DefaultInMaxBytes, bus.DefaultInMaxMsgs, bus.DefaultInMaxAge, jetstream.DiscardOld})
	check(s.StreamOut(), limits{bus.DefaultOutMaxBytes, bus.DefaultOutMaxMsgs, bus.DefaultOutMaxAge, jetstream.DiscardNew})
	check(s.StreamResult(), limits{bus.DefaultResultMaxBytes, bus.DefaultResultMaxMsgs, bus.DefaultResultMaxAge, jetstream.DiscardOld})

	o := bus.StreamOptions{InMaxBytes: 1 << 20, InMaxMsgs: -1, OutMaxBytes: -1, OutMaxMsgs: 2, OutMaxAge: time.Hour, ResultMaxBytes: -7, ResultMaxMsgs: 10}
	if err := bus.EnsureStreams(ctx, js, s, o); err != nil {
		t.Fatalf("EnsureStreams with limits: %v", err)
	}
	check(s.StreamIn(), limits{1 << 20, -1, bus.DefaultInMaxAge, jetstream.DiscardOld})
	check(s.StreamOut(), limits{-1, 2, time.Hour, jetstream.DiscardNew})
	check(s.StreamResult(), limits{-1, 10, bus.DefaultResultMaxAge, jetstream.DiscardOld})

	// The full work queue refuses the third request instead of dropping the first.
	for i := range 3 {
		_, err := js.Publish(ctx, "qq.out.group", []byte("x"), jetstream.WithMsgID(time.Now().String()+string(rune('a'+i))))
		if i < 2 && err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if i == 2 && err == nil {
			t.Error("the full work queue accepted a third request")
		}
	}
}
