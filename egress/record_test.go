package egress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/schema"
)

// faultKV is a real KV bucket with two faults injected: the reply of the
// next loseReplies writes (Create or Update) is lost — the write is applied,
// the caller gets a timeout — and every applied Update is shown to observe.
type faultKV struct {
	jetstream.KeyValue

	mu          sync.Mutex
	loseReplies int
	observe     func(value []byte)
}

func (f *faultKV) loseReply() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.loseReplies > 0 {
		f.loseReplies--
		return true
	}
	return false
}

func (f *faultKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	rev, err := f.KeyValue.Create(ctx, key, value, opts...)
	if err == nil && f.loseReply() {
		return 0, nats.ErrTimeout
	}
	return rev, err
}

func (f *faultKV) Update(ctx context.Context, key string, value []byte, last uint64) (uint64, error) {
	rev, err := f.KeyValue.Update(ctx, key, value, last)
	if err == nil {
		f.mu.Lock()
		obs := f.observe
		f.mu.Unlock()
		if obs != nil {
			obs(value)
		}
		if f.loseReply() {
			return 0, nats.ErrTimeout
		}
	}
	return rev, err
}

func (f *faultKV) lose(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loseReplies = n
}

func noStale(rec record) schema.Result {
	return schema.Result{Error: &schema.ResultError{Code: schema.CodeMaybeSent, Message: fmt.Sprintf("stale after %d", rec.PartsSent)}}
}

// readRecord returns the stored record of key.
func readRecord(t *testing.T, kv jetstream.KeyValue, key string) record {
	t.Helper()
	entry, err := kv.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	var rec record
	if err := json.Unmarshal(entry.Value(), &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestClaimProgressNeverGoesBack: heartbeats (touch) run while progress is
// recorded; no stored revision may show fewer parts sent than an earlier
// one, and the last revision holds the last progress. (A heartbeat that
// read the record before progress wrote it used to land after it and move
// PartsSent back, so that a retry resent a part.)
func TestClaimProgressNeverGoesBack(t *testing.T) {
	e := newEnv(t, offline())
	fkv := &faultKV{KeyValue: e.kv}
	var mu sync.Mutex
	high, backwards := 0, 0
	fkv.observe = func(v []byte) {
		var rec record
		_ = json.Unmarshal(v, &rec)
		mu.Lock()
		defer mu.Unlock()
		if rec.PartsSent < high {
			backwards++
		}
		high = max(high, rec.PartsSent)
	}
	cfg := e.cfg
	cfg.SentKV = fkv
	eg := e.newEgress(cfg)
	ctx := context.Background()
	const parts = 300
	c, prior, err := eg.acquire(ctx, idKey("race"), parts, noStale)
	if err != nil || prior != nil {
		t.Fatalf("acquire: %v %v", prior, err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := c.touch(ctx); err != nil {
					t.Errorf("touch: %v", err)
					return
				}
			}
		}()
	}
	for n := 1; n <= parts; n++ {
		if err := c.progress(ctx, n); err != nil {
			t.Fatalf("progress %d: %v", n, err)
		}
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if backwards > 0 {
		t.Errorf("%d stored revisions moved parts_sent back", backwards)
	}
	if got := readRecord(t, e.kv, idKey("race")).PartsSent; got != parts {
		t.Errorf("record holds parts_sent %d, want %d", got, parts)
	}
}

// TestClaimRecognisesItsOwnWrite: a write whose reply was lost (applied, but
// the caller saw a timeout) is not mistaken for another worker's takeover —
// neither for a Create at acquire nor for an Update while sending — and the
// request finishes with its real outcome.
func TestClaimRecognisesItsOwnWrite(t *testing.T) {
	e := newEnv(t, offline())
	fkv := &faultKV{KeyValue: e.kv}
	cfg := e.cfg
	cfg.SentKV = fkv
	eg := e.newEgress(cfg)
	ctx := context.Background()
	key := idKey("own-write")

	fkv.lose(1) // the Create is applied, its reply lost
	c, prior, err := eg.acquire(ctx, key, 3, noStale)
	if err != nil || prior != nil {
		t.Fatalf("acquire after a lost Create reply: claim %v, prior %+v, %v; want the claim", c, prior, err)
	}
	for n := 1; n <= 3; n++ {
		fkv.lose(1) // every progress write is applied, its reply lost
		if err := c.progress(ctx, n); err != nil && !errors.Is(err, nats.ErrTimeout) {
			t.Fatalf("progress %d: %v; want success or the timeout, never a takeover", n, err)
		}
		if err := c.touch(ctx); err != nil {
			t.Fatalf("touch after progress %d: %v", n, err)
		}
	}
	res := schema.Result{V: schema.Version, ID: "own-write", Kind: schema.KindFriend, OK: true, Parts: 3}
	if err := c.finish(ctx, res, false); err != nil {
		t.Fatalf("finish: %v", err)
	}
	rec := readRecord(t, e.kv, key)
	if rec.State != stateDone || rec.Result == nil || !rec.Result.OK || rec.PartsSent != 3 {
		t.Fatalf("record %+v, want done, ok, 3 parts", rec)
	}

	// A takeover by another worker is still noticed.
	c2, _, err := eg.acquire(ctx, idKey("taken"), 1, noStale)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := e.kv.Get(ctx, idKey("taken"))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(record{State: stateSending, Parts: 1, Owner: "another worker"})
	if _, err := e.kv.Update(ctx, idKey("taken"), data, entry.Revision()); err != nil {
		t.Fatal(err)
	}
	if err := c2.progress(ctx, 1); !errors.Is(err, errLost) {
		t.Fatalf("progress after a takeover: %v, want errLost", err)
	}
}
