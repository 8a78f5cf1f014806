package egress

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/schema"
)

// States of an idempotency record.
const (
	// stateSending: a worker holds the request and is sending it; it touches
	// the record at every heartbeat. Found stale (the worker died), the
	// request is answered maybe_sent and never resent.
	stateSending = "sending"
	// statePaused: nobody holds the request; PartsSent parts went out and the
	// rest may be sent by whoever takes the request next (after a graceful
	// stop, or a rate_limited / session_unavailable outcome).
	statePaused = "paused"
	// stateDone: the request is finished; Result is its outcome, answered
	// again to a repeat of the request.
	stateDone = "done"
)

// record is the value of an idempotency record in the SentKV bucket (JSON).
type record struct {
	State     string         `json:"state"`
	PartsSent int            `json:"parts_sent"`
	Parts     int            `json:"parts,omitempty"`
	Result    *schema.Result `json:"result,omitempty"`
}

// errLost: the record was changed by someone else while this worker held it
// (another worker judged it stale); the worker must stop sending.
var errLost = errors.New("egress: idempotency record taken over by another worker")

// idKey is the record key of a request id: ids may hold any printable
// character, keys only [-/_=.a-zA-Z0-9], so the id is hashed.
func idKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "id." + hex.EncodeToString(sum[:16])
}

// seqKey is the record key of a request without an id: its place in the
// stream. The stream's creation time is part of it, so that a re-created
// stream (sequences start again at 1) does not meet old records.
func seqKey(stream string, created time.Time, seq uint64) string {
	return "seq." + stream + "." + strconv.FormatInt(created.UnixNano(), 10) + "." + strconv.FormatUint(seq, 10)
}

// claim is the right to send one request, held through its record.
type claim struct {
	kv  jetstream.KeyValue
	key string

	mu   sync.Mutex
	rev  uint64
	rec  record
	lost bool
}

// partsSent returns how many parts went out before this claim (or so far).
func (c *claim) partsSent() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec.PartsSent
}

// write stores rec as the next revision. It fails with errLost when the
// record changed under the claim.
func (c *claim) write(ctx context.Context, rec record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lost {
		return errLost
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	rev, err := c.kv.Update(ctx, c.key, data, c.rev)
	switch {
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyExists),
		errors.Is(err, jetstream.ErrKeyNotFound):
		c.lost = true
		return errLost
	case err != nil:
		return err
	}
	c.rev, c.rec = rev, rec
	return nil
}

// progress records that n parts went out.
func (c *claim) progress(ctx context.Context, n int) error {
	rec := c.current()
	rec.PartsSent = n
	return c.write(ctx, rec)
}

// touch rewrites the record unchanged, which shows other workers that its
// sender is alive.
func (c *claim) touch(ctx context.Context) error { return c.write(ctx, c.current()) }

func (c *claim) current() record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec
}

// finish stores the outcome: done with res, or paused (res is then not kept,
// the request may be taken up again). It retries a failing write a few times
// within ctx.
func (c *claim) finish(ctx context.Context, res schema.Result, paused bool) error {
	rec := c.current()
	if paused {
		rec.State, rec.Result = statePaused, nil
	} else {
		rec.State, rec.Result = stateDone, &res
	}
	b := backoff.WithContext(backoff.WithMaxRetries(backoff.NewConstantBackOff(100*time.Millisecond), 5), ctx)
	return backoff.Retry(func() error {
		err := c.write(ctx, rec)
		if errors.Is(err, errLost) {
			return backoff.Permanent(err)
		}
		return err
	}, b)
}

// acquire takes the claim on key for a request of parts parts, or returns
// the outcome already known for it:
//   - no record: a new claim, nothing sent yet;
//   - done: the recorded result (nothing is sent again);
//   - paused: a claim that continues after the parts already sent;
//   - sending, touched recently: another worker is at it — wait for it;
//   - sending, stale (its worker died mid-send), or unreadable: the request is
//     finished as maybe_sent (built by stale) and never resent.
//
// KV failures are retried with backoff until ctx is done; the error is then
// ctx's.
func (e *Egress) acquire(ctx context.Context, key string, parts int, stale func(rec record) schema.Result) (*claim, *schema.Result, error) {
	kv := e.cfg.SentKV
	bo := e.newBackoff()
	fail := func(err error) error {
		e.log.Warn().Err(err).Str("key", key).Msg("idempotency record unavailable; retrying")
		return sleepCtx(ctx, bo.NextBackOff())
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		fresh := record{State: stateSending, Parts: parts}
		data, _ := json.Marshal(fresh)
		rev, err := kv.Create(ctx, key, data)
		if err == nil {
			return &claim{kv: kv, key: key, rev: rev, rec: fresh}, nil, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			if err := fail(err); err != nil {
				return nil, nil, err
			}
			continue
		}
		entry, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // gone in between: create again
		}
		if err != nil {
			if err := fail(err); err != nil {
				return nil, nil, err
			}
			continue
		}
		var rec record
		bad := json.Unmarshal(entry.Value(), &rec) != nil
		switch {
		case !bad && rec.State == stateDone && rec.Result != nil:
			return nil, rec.Result, nil
		case !bad && rec.State == statePaused:
			rec.State = stateSending
			rec.Parts = parts
			data, _ := json.Marshal(rec)
			rev, err := kv.Update(ctx, key, data, entry.Revision())
			if err == nil {
				return &claim{kv: kv, key: key, rev: rev, rec: rec}, nil, nil
			}
			if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
				if err := fail(err); err != nil {
					return nil, nil, err
				}
			}
			continue
		case !bad && rec.State == stateSending:
			if age := time.Since(entry.Created()); age < e.cfg.StaleAfter {
				if err := sleepCtx(ctx, min(e.cfg.StaleAfter-age, e.heartbeat)); err != nil {
					return nil, nil, err
				}
				continue
			}
		}
		// Stale or unreadable: finish it as maybe_sent, unless someone else
		// changes it first.
		res := stale(rec)
		done := rec
		done.State, done.Result = stateDone, &res
		data, _ = json.Marshal(done)
		if _, err := kv.Update(ctx, key, data, entry.Revision()); err != nil {
			if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
				if err := fail(err); err != nil {
					return nil, nil, err
				}
			}
			continue
		}
		e.log.Warn().Str("key", key).Int("parts_sent", rec.PartsSent).Msg("found a send interrupted by a crash; answered maybe_sent")
		return nil, &res, nil
	}
}

// newBackoff returns the retry backoff of Config.
func (e *Egress) newBackoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = e.cfg.RetryInitial
	b.MaxInterval = e.cfg.RetryMax
	b.MaxElapsedTime = 0
	b.Reset()
	return b
}

// sleepCtx waits d or until ctx is done (then it returns ctx's error).
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
