// Package pace paces the sends of a QQ account across every replica of the
// bridge: one token bucket per account, kept in a JetStream key-value bucket
// and changed only by compare-and-set updates, so that all replicas (the
// durable qq.out.* consumer and every replica's qq.api.send.* handlers) draw
// from the same bucket.
//
// The bucket holds up to Burst tokens and gains Rate tokens per second. A
// send reserves one token; when none is left the reservation is for the
// moment the next one comes (the bucket's count goes below zero: later
// reservations queue behind it). So in any interval of length T the grants
// of one account number at most Rate×T + Burst, whichever replica asked.
//
// Time is each replica's clock: replicas whose clocks disagree by d may
// together send up to Rate×d more in the first interval after a change of
// hands; keep the clocks synchronised (NTP), as any JetStream cluster needs.
//
// When the key-value store cannot be reached, Wait keeps retrying until its
// ctx ends: a send is never let through unpaced.
package pace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrConfig is wrapped by New's errors for an unusable configuration.
var ErrConfig = errors.New("pace: bad config")

// KeyPrefix is the prefix of the limiter's keys: pace.<account>.
const KeyPrefix = "pace."

// maxTries bounds the compare-and-set attempts of one reservation before it
// backs off (other replicas winning every race).
const maxTries = 16

// Limiter is the shared token bucket of each account. It is safe for
// concurrent use; any number of Limiters (one per replica) may share a
// bucket.
type Limiter struct {
	kv    jetstream.KeyValue
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu    sync.Mutex
	cache map[int64]entry // the last state seen per account, to try an update without a read
}

// entry is a known state of an account's bucket at a revision.
type entry struct {
	rev uint64
	st  state
}

// state is the stored value: the tokens at a time (they may be below zero:
// reservations queued).
type state struct {
	Tokens float64 `json:"tokens"`
	At     int64   `json:"at"` // unix nanoseconds
}

// New returns a Limiter of rate sends per second and bursts of burst,
// keeping its buckets in kv (the bridge uses its SentKV bucket).
func New(kv jetstream.KeyValue, rate float64, burst int) (*Limiter, error) {
	switch {
	case kv == nil:
		return nil, fmt.Errorf("%w: a key-value bucket is required", ErrConfig)
	case !(rate > 0):
		return nil, fmt.Errorf("%w: rate must be above 0", ErrConfig)
	case burst < 1:
		return nil, fmt.Errorf("%w: burst must be at least 1", ErrConfig)
	}
	return &Limiter{kv: kv, rate: rate, burst: float64(burst), now: time.Now, cache: map[int64]entry{}}, nil
}

// Reservation is one granted send.
type Reservation struct {
	// At is when the send may go: now, or later when the bucket is empty.
	At time.Time

	l       *Limiter
	account int64
}

// Reserve takes one token of account's bucket and says when the send may go.
// It retries a store that cannot be reached until ctx ends, and then returns
// ctx's error.
func (l *Limiter) Reserve(ctx context.Context, account int64) (Reservation, error) {
	at, err := l.change(ctx, account, func(s *state, now time.Time) time.Time {
		s.Tokens--
		if s.Tokens >= 0 {
			return now
		}
		return now.Add(time.Duration(-s.Tokens / l.rate * float64(time.Second)))
	})
	if err != nil {
		return Reservation{}, err
	}
	return Reservation{At: at, l: l, account: account}, nil
}

// Cancel gives the token back when the send has not gone and its time has
// not come yet (ctx ended while it waited), so that later sends need not
// wait for it. It is best effort: a token not given back only slows sends.
func (r Reservation) Cancel(ctx context.Context) {
	if r.l == nil || !r.l.now().Before(r.At) {
		return
	}
	_, _ = r.l.change(ctx, r.account, func(s *state, now time.Time) time.Time {
		s.Tokens++
		return now
	})
}

// Wait reserves a send of account and sleeps until its time. It returns how
// long it waited; when ctx ends first the token is given back and ctx's error
// returned.
func (l *Limiter) Wait(ctx context.Context, account int64) (time.Duration, error) {
	r, err := l.Reserve(ctx, account)
	if err != nil {
		return 0, err
	}
	d := r.At.Sub(l.now())
	if d <= 0 {
		return 0, nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return d, nil
	case <-ctx.Done():
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		r.Cancel(cctx)
		return 0, ctx.Err()
	}
}

func key(account int64) string { return KeyPrefix + strconv.FormatInt(account, 10) }

// change applies f to account's bucket, refilled up to now, and stores the
// result with a compare-and-set update, retrying on a concurrent change.
func (l *Limiter) change(ctx context.Context, account int64, f func(s *state, now time.Time) time.Time) (time.Time, error) {
	k := key(account)
	backoff := time.Millisecond
	for {
		for range maxTries {
			cur, known, err := l.current(ctx, account, k)
			if err != nil {
				break
			}
			now := l.now()
			st := l.refill(cur.st, known, now)
			at := f(&st, now)
			data, _ := json.Marshal(st)
			var rev uint64
			if known {
				rev, err = l.kv.Update(ctx, k, data, cur.rev)
			} else {
				rev, err = l.kv.Create(ctx, k, data)
			}
			if err == nil {
				l.remember(account, entry{rev: rev, st: st})
				return at, nil
			}
			l.forget(account)
			if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				break // the store failed: back off
			}
		}
		if ctx.Err() != nil {
			return time.Time{}, ctx.Err()
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return time.Time{}, ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, 250*time.Millisecond)
	}
}

// current is the last known state of account's bucket: the cached one, else
// the stored one; known is false when there is none yet.
func (l *Limiter) current(ctx context.Context, account int64, k string) (entry, bool, error) {
	l.mu.Lock()
	c, ok := l.cache[account]
	l.mu.Unlock()
	if ok {
		return c, true, nil
	}
	e, err := l.kv.Get(ctx, k)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return entry{}, false, nil
	}
	if err != nil {
		return entry{}, false, err
	}
	var st state
	if json.Unmarshal(e.Value(), &st) != nil {
		st = state{Tokens: 0, At: l.now().UnixNano()} // unreadable: start empty, never above the pace
	}
	return entry{rev: e.Revision(), st: st}, true, nil
}

// refill adds the tokens gained since s.At, up to the burst; a bucket not
// stored yet is full.
func (l *Limiter) refill(s state, known bool, now time.Time) state {
	if !known {
		return state{Tokens: l.burst, At: now.UnixNano()}
	}
	if el := now.UnixNano() - s.At; el > 0 {
		s.Tokens = min(l.burst, s.Tokens+float64(el)/float64(time.Second)*l.rate)
		s.At = now.UnixNano()
	}
	return s
}

func (l *Limiter) remember(account int64, e entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cache[account] = e
}

func (l *Limiter) forget(account int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.cache, account)
}
