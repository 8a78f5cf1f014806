package egress

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/internal/retry"
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
// Owner is the token of the claim that wrote it: a claim whose write seems to
// have been overtaken re-reads the record and, finding its own token, knows
// the write was its own (applied, its reply lost) and not a takeover.
type record struct {
	State     string         `json:"state"`
	PartsSent int            `json:"parts_sent"`
	Parts     int            `json:"parts,omitempty"`
	Result    *schema.Result `json:"result,omitempty"`
	Owner     string         `json:"owner,omitempty"`
}

// errLost: the record was changed by someone else while this worker held it
// (another worker judged it stale); the worker must stop sending.
var errLost = errors.New("egress: idempotency record taken over by another worker")

// newOwner returns a fresh claim token.
func newOwner() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms
	return hex.EncodeToString(b[:])
}

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

// claim is the right to send one request, held through its record. Every
// change goes through update, which reads, changes and writes the record
// under mu: no write can carry an older state than the one before it.
type claim struct {
	kv    jetstream.KeyValue
	key   string
	owner string

	mu   sync.Mutex
	rev  uint64 // the revision of the last write known to be applied
	rec  record // the last state written (or meant to be, when a reply was lost)
	lost bool
}

// partsSent returns how many parts went out before this claim (or so far).
func (c *claim) partsSent() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec.PartsSent
}

// update applies change to the claim's record and stores the result as the
// next revision. A write whose outcome is unknown (a timeout: it may have
// been applied) returns its error but keeps the new state, which the next
// update writes again. A revision mismatch is resolved by reading the record:
// written under this claim's owner token, it was this claim's own write and
// the update is made on top of it; anything else means another worker took
// the request over, and update fails with errLost from then on.
func (c *claim) update(ctx context.Context, change func(*record)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lost {
		return errLost
	}
	rec := c.rec
	change(&rec)
	rec.Owner = c.owner
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	c.rec = rec
	for range 3 {
		rev, err := c.kv.Update(ctx, c.key, data, c.rev)
		if err == nil {
			c.rev = rev
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
			return err
		}
		entry, err := c.kv.Get(ctx, c.key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			c.lost = true
			return errLost
		}
		if err != nil {
			return err
		}
		var cur record
		if json.Unmarshal(entry.Value(), &cur) != nil || cur.Owner != c.owner {
			c.lost = true
			return errLost
		}
		c.rev = entry.Revision() // our own write, whose reply was lost
	}
	return fmt.Errorf("egress: idempotency record %s: revision keeps changing", c.key)
}

// progress records that n parts went out.
func (c *claim) progress(ctx context.Context, n int) error {
	return c.update(ctx, func(r *record) { r.PartsSent = n })
}

// touch rewrites the record unchanged, which shows other workers that its
// sender is alive.
func (c *claim) touch(ctx context.Context) error {
	return c.update(ctx, func(*record) {})
}

// finish stores the outcome: done with res, or paused (res is then not kept,
// the request may be taken up again). It retries a failing write a few times
// within ctx.
func (c *claim) finish(ctx context.Context, res schema.Result, paused bool) error {
	change := func(r *record) {
		if paused {
			r.State, r.Result = statePaused, nil
		} else {
			r.State, r.Result = stateDone, &res
		}
	}
	// Up to six attempts 100ms apart while the KV fails (a lost claim is
	// final); ctx's error once ctx ends.
	for attempt := 1; ; attempt++ {
		err := c.update(ctx, change)
		if err == nil || errors.Is(err, errLost) {
			return err
		}
		if attempt == 6 {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if err := retry.Sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// acquire takes the claim on key for a request of parts parts, or returns
// the outcome already known for it:
//   - no record: a new claim, nothing sent yet;
//   - done: the recorded result (nothing is sent again);
//   - paused: a claim that continues after the parts already sent;
//   - sending under this acquire's own token: its own write, whose reply was
//     lost — the claim;
//   - sending, touched recently: another worker is at it — wait for it;
//   - sending, stale (its worker died mid-send), or unreadable: the request is
//     finished as maybe_sent (built by stale) and never resent.
//
// KV failures are retried with backoff until ctx is done; the error is then
// ctx's.
func (e *Egress) acquire(ctx context.Context, key string, parts int, stale func(rec record) schema.Result) (*claim, *schema.Result, error) {
	kv := e.cfg.SentKV
	bo := retry.Backoff(e.cfg.RetryInitial, e.cfg.RetryMax)
	fail := func(err error) error {
		e.log.Warn().Err(err).Str("key", key).Msg("idempotency record unavailable; retrying")
		return retry.Sleep(ctx, bo.NextBackOff())
	}
	owner := newOwner()
	claimAt := func(rev uint64, rec record) *claim {
		return &claim{kv: kv, key: key, owner: owner, rev: rev, rec: rec}
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		fresh := record{State: stateSending, Parts: parts, Owner: owner}
		data, _ := json.Marshal(fresh)
		rev, err := kv.Create(ctx, key, data)
		if err == nil {
			return claimAt(rev, fresh), nil, nil
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
		case !bad && rec.State == stateSending && rec.Owner == owner:
			// Our own Create or Update, whose reply was lost.
			return claimAt(entry.Revision(), rec), nil, nil
		case !bad && rec.State == statePaused:
			rec.State, rec.Parts, rec.Owner = stateSending, parts, owner
			data, _ := json.Marshal(rec)
			rev, err := kv.Update(ctx, key, data, entry.Revision())
			if err == nil {
				return claimAt(rev, rec), nil, nil
			}
			if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
				if err := fail(err); err != nil {
					return nil, nil, err
				}
			}
			continue
		case !bad && rec.State == stateSending:
			if age := time.Since(entry.Created()); age < e.cfg.StaleAfter {
				if err := retry.Sleep(ctx, min(e.cfg.StaleAfter-age, e.heartbeat)); err != nil {
					return nil, nil, err
				}
				continue
			}
		}
		// Stale or unreadable: finish it as maybe_sent, unless someone else
		// changes it first.
		res := stale(rec)
		done := rec
		done.State, done.Result, done.Owner = stateDone, &res, owner
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
