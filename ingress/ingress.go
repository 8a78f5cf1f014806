// Package ingress is the bridge's inbound half: one poll2 loop per account
// that normalises every item (Normalise) and publishes it, with a JetStream
// acknowledgement, into the inbound stream (QQ_IN) on
// <prefix>.in.<kind>.<id>.
//
// Guarantees:
//   - Nothing polled is dropped: a publish that fails (NATS unreachable, no
//     stream, a timeout) is retried with backoff until it is acknowledged, and
//     the next poll waits until the whole batch is published, in order.
//   - A repeated item is published once: every event carries a deterministic
//     id (schema.EventID) as Nats-Msg-Id, which the stream de-duplicates, and
//     a small set of recently published ids spares the repeat a publish.
//   - The account's own messages coming back through poll2 (echoes of sends)
//     are not published.
//   - A lost session is reported to the session manager (ReportLost) and a
//     kick (kick_message, published on <prefix>.in.system.kick) too
//     (ReportKicked); the loop then waits for the next session.
package ingress

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

// Defaults of Config.
const (
	DefaultPublishTimeout = 5 * time.Second
	DefaultMaxBackoff     = 5 * time.Second
	DefaultRecentIDs      = 4096
	DefaultShutdownGrace  = 5 * time.Second
)

// Online describes a live session: Account is the account's QQ number, Gen a
// number that grows at every (re)login.
type Online struct {
	Account int64
	Gen     uint64
}

// SessionSource is what ingress needs of the session manager.
//
// WaitOnline blocks until a session is live (or ctx ends) and describes it.
// ReportLost says that polling in session gen failed with a session-gone
// error (qqclient.ErrSessionLost or qqclient.ErrNotLoggedIn); ReportKicked
// that a kick_message arrived in session gen. Neither blocks. After either,
// ingress calls WaitOnline again: an answer of the same gen is polled again
// after a pause growing up to Config.MaxBackoff when the session was lost,
// and never when it was kicked.
type SessionSource interface {
	WaitOnline(ctx context.Context) (Online, error)
	ReportLost(gen uint64, err error)
	ReportKicked(gen uint64, reason string)
}

// Poller makes one poll2 request; *qqclient.Client implements it.
type Poller interface {
	Poll(ctx context.Context) ([]qqclient.Event, error)
}

// Config configures an Ingress. Client, Session and JS are required.
type Config struct {
	// Client polls; normally the *qqclient.Client of the session manager.
	Client Poller
	// Session tells when a session is live and hears of lost sessions and
	// kicks.
	Session SessionSource
	// Dir resolves session numbers to contacts (a *directory.Directory);
	// leave it nil (not a typed nil pointer) for session numbers only.
	Dir Resolver
	// JS publishes into the stream; a jetstream.JetStream. Its connection
	// should reconnect forever (nats.MaxReconnects(-1)): events wait, in
	// memory, until a publish is acknowledged.
	JS jetstream.Publisher
	// Subjects names the subjects (prefix).
	Subjects schema.Subjects
	// Codec encodes events; nil = JSON.
	Codec schema.Codec
	// Log receives one line per notable event (never a credential).
	Log zerolog.Logger
	// PublishTimeout bounds one publish attempt (default 5s).
	PublishTimeout time.Duration
	// MaxBackoff caps the wait between publish attempts and between failed
	// polls (default 5s).
	MaxBackoff time.Duration
	// RecentIDs is the number of recently published event ids remembered to
	// skip repeats without a publish (default 4096).
	RecentIDs int
	// ShutdownGrace is how long, once Run's ctx ends, ingress still tries to
	// publish the rest of a batch it polled (default 5s).
	ShutdownGrace time.Duration
}

// Stats counts what an Ingress did since it was made.
type Stats struct {
	Polls      uint64 // poll2 requests answered (empty or not)
	Items      uint64 // poll items received
	Published  uint64 // events the stream acknowledged as new
	Duplicates uint64 // events the stream acknowledged as duplicates (Nats-Msg-Id)
	Repeats    uint64 // events skipped without a publish: their id was published recently
	Echoes     uint64 // the account's own messages, not published
	Retries    uint64 // publish attempts that failed and were retried
	Dropped    uint64 // events that can never be published (too large), logged and dropped
	Lost       uint64 // sessions reported lost
	Kicks      uint64 // kicks reported
}

// Ingress is the poll loop of one account. Run it once; it is not meant to
// run twice at the same time (only the newest poller of a session receives).
type Ingress struct {
	cfg    Config
	dir    Resolver
	codec  schema.Codec
	log    zerolog.Logger
	recent *recentSet

	polls, items, published, duplicates, repeats, echoes, retries, dropped, lost, kicks atomic.Uint64
}

// New checks cfg and makes an Ingress.
func New(cfg Config) (*Ingress, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("ingress: Config.Client is required")
	case cfg.Session == nil:
		return nil, errors.New("ingress: Config.Session is required")
	case cfg.JS == nil:
		return nil, errors.New("ingress: Config.JS is required")
	case cfg.PublishTimeout < 0 || cfg.MaxBackoff < 0 || cfg.RecentIDs < 0 || cfg.ShutdownGrace < 0:
		return nil, errors.New("ingress: negative PublishTimeout, MaxBackoff, RecentIDs or ShutdownGrace")
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = DefaultShutdownGrace
	}
	if cfg.PublishTimeout == 0 {
		cfg.PublishTimeout = DefaultPublishTimeout
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.RecentIDs == 0 {
		cfg.RecentIDs = DefaultRecentIDs
	}
	i := &Ingress{
		cfg:    cfg,
		dir:    cfg.Dir,
		codec:  cfg.Codec,
		log:    cfg.Log.With().Str("component", "ingress").Logger(),
		recent: newRecentSet(cfg.RecentIDs),
	}
	if i.dir == nil {
		i.dir = numbersOnly{}
	}
	if i.codec == nil {
		i.codec = schema.JSON()
	}
	return i, nil
}

// Stats returns the counters.
func (i *Ingress) Stats() Stats {
	return Stats{
		Polls: i.polls.Load(), Items: i.items.Load(), Published: i.published.Load(),
		Duplicates: i.duplicates.Load(), Repeats: i.repeats.Load(), Echoes: i.echoes.Load(),
		Retries: i.retries.Load(), Dropped: i.dropped.Load(), Lost: i.lost.Load(), Kicks: i.kicks.Load(),
	}
}

// Run polls and publishes until ctx ends, and returns ctx's error (or the
// error of WaitOnline). Each round waits for a live session, then polls it
// until it is lost or kicked; each batch is published completely, in order,
// before the next poll.
//
// After a lost session, a WaitOnline that still answers the same gen (the
// manager has not caught up, or this replica polls the same session again)
// is followed after a growing pause; after a kick, ingress waits for a new
// gen, so that a kicked session is never polled again.
func (i *Ingress) Run(ctx context.Context) error {
	pause := i.newBackoff(100 * time.Millisecond)
	var last Online
	var started, kicked bool
	for {
		on, err := i.cfg.Session.WaitOnline(ctx)
		if err != nil {
			return err
		}
		if started && on.Gen == last.Gen {
			if err := sleep(ctx, pause.NextBackOff()); err != nil {
				return err
			}
			if kicked {
				continue
			}
			if on, err = i.cfg.Session.WaitOnline(ctx); err != nil {
				return err
			}
		}
		started, last = true, on
		log := i.log.With().Int64("account", on.Account).Uint64("gen", on.Gen).Logger()
		log.Info().Msg("polling")
		var polled bool
		polled, kicked = i.pollSession(ctx, on, log)
		if err := ctx.Err(); err != nil {
			return err
		}
		if polled {
			pause.Reset()
		}
	}
}

// pollSession polls session on until it is lost or kicked or ctx ends. It
// reports whether any poll succeeded and whether the session was kicked.
func (i *Ingress) pollSession(ctx context.Context, on Online, log zerolog.Logger) (polled, kicked bool) {
	b := i.newBackoff(200 * time.Millisecond)
	for {
		evs, err := i.cfg.Client.Poll(ctx)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return polled, false
			case errors.Is(err, qqclient.ErrSessionLost) || errors.Is(err, qqclient.ErrNotLoggedIn):
				i.lost.Add(1)
				log.Warn().Err(err).Msg("session lost")
				i.cfg.Session.ReportLost(on.Gen, err)
				return polled, false
			}
			wait := b.NextBackOff()
			log.Warn().Err(err).Dur("retry_in", wait).Msg("poll failed")
			if sleep(ctx, wait) != nil {
				return polled, false
			}
			continue
		}
		b.Reset()
		polled = true
		i.polls.Add(1)
		i.items.Add(uint64(len(evs)))
		var kick *qqclient.Kick
		if err := i.publishBatch(ctx, on, evs, log); err != nil {
			log.Error().Err(err).Msg("stopped before the batch was published")
			return polled, false
		}
		for _, ev := range evs {
			if ev.Kick != nil {
				kick = ev.Kick
				break
			}
		}
		if kick != nil {
			i.kicks.Add(1)
			log.Warn().Str("reason", kick.Reason).Msg("kicked: another login replaced this one")
			i.cfg.Session.ReportKicked(on.Gen, kick.Reason)
			return polled, true
		}
	}
}

// publishBatch publishes the items of one poll in order. Once ctx ends, it
// still tries for ShutdownGrace to finish the batch, which poll2 would not
// deliver again.
func (i *Ingress) publishBatch(ctx context.Context, on Online, evs []qqclient.Event, log zerolog.Logger) error {
	if len(evs) == 0 {
		return nil
	}
	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(i.cfg.ShutdownGrace, cancel) })
	defer stop()
	for n, ev := range evs {
		if err := i.handle(bctx, on, ev, log); err != nil {
			return fmt.Errorf("ingress: %d of %d items not published: %w", len(evs)-n, len(evs), err)
		}
	}
	return nil
}

// handle normalises and publishes one item. It returns an error only when
// ctx ended before the item was published.
func (i *Ingress) handle(ctx context.Context, on Online, ev qqclient.Event, log zerolog.Logger) error {
	if ev.Err != nil {
		log.Warn().Err(ev.Err).Str("poll_type", string(ev.Type)).Msg("malformed poll item, published as a system event")
	}
	e, kind, id, ok := Normalise(ctx, on.Account, ev, i.dir)
	if !ok {
		i.echoes.Add(1)
		log.Debug().Str("poll_type", string(ev.Type)).Msg("own message echoed, not published")
		return nil
	}
	if i.recent.contains(e.ID) {
		i.repeats.Add(1)
		log.Debug().Str("event_id", e.ID).Msg("repeated item, not published again")
		return nil
	}
	subject, err := i.cfg.Subjects.In(kind, id)
	if err != nil { // Normalise makes valid ids only; never expected
		i.dropped.Add(1)
		log.Error().Err(err).Str("event_id", e.ID).Msg("no subject for event, dropped")
		return nil
	}
	data, hdr, err := e.Encode(i.codec)
	if err != nil && len(e.Raw) > 0 {
		log.Warn().Err(err).Str("event_id", e.ID).Msg("raw value not encodable, published without it")
		e.Raw = nil
		data, hdr, err = e.Encode(i.codec)
	}
	if err != nil {
		i.dropped.Add(1)
		log.Error().Err(err).Str("event_id", e.ID).Msg("event not encodable, dropped")
		return nil
	}
	msg := &nats.Msg{Subject: subject, Header: nats.Header(hdr), Data: data}
	if err := i.publish(ctx, msg, e.ID, log); err != nil {
		return err
	}
	i.recent.add(e.ID)
	return nil
}

// publish publishes msg until the stream acknowledges it, waiting between
// attempts with exponential backoff. It returns nil once acknowledged (or
// dropped for good, for a message the stream can never take) and ctx's
// error when ctx ends first.
func (i *Ingress) publish(ctx context.Context, msg *nats.Msg, id string, log zerolog.Logger) error {
	b := i.newBackoff(100 * time.Millisecond)
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, i.cfg.PublishTimeout)
		ack, err := i.cfg.JS.PublishMsg(actx, msg)
		cancel()
		if err == nil {
			if ack.Duplicate {
				i.duplicates.Add(1)
			} else {
				i.published.Add(1)
			}
			if attempt > 1 {
				log.Info().Str("subject", msg.Subject).Str("event_id", id).Int("attempts", attempt).Msg("published after retries")
			} else {
				log.Debug().Str("subject", msg.Subject).Str("event_id", id).Bool("duplicate", ack.Duplicate).Msg("published")
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if permanent(err) {
			i.dropped.Add(1)
			log.Error().Err(err).Str("subject", msg.Subject).Str("event_id", id).Msg("event can never be published, dropped")
			return nil
		}
		i.retries.Add(1)
		wait := b.NextBackOff()
		if attempt == 1 || attempt%20 == 0 {
			log.Warn().Err(err).Str("subject", msg.Subject).Str("event_id", id).Int("attempt", attempt).
				Dur("retry_in", wait).Msg("publish failed, retrying; polling waits")
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// permanent reports whether a publish error will repeat whatever the wait:
// a message larger than the server or the stream allows.
func permanent(err error) bool {
	if errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadSubject) {
		return true
	}
	var api *jetstream.APIError
	return errors.As(err, &api) && api.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum
}

// newBackoff returns an endless exponential backoff from initial up to
// MaxBackoff.
func (i *Ingress) newBackoff(initial time.Duration) backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = min(initial, i.cfg.MaxBackoff)
	b.MaxInterval = i.cfg.MaxBackoff
	b.MaxElapsedTime = 0
	b.Reset()
	return b
}

// sleep waits d or until ctx ends (returning its error).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("ingress: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}

// recentSet remembers the last n ids added.
type recentSet struct {
	mu   sync.Mutex
	ids  map[string]struct{}
	ring []string
	next int
}

func newRecentSet(n int) *recentSet {
	return &recentSet{ids: make(map[string]struct{}, n), ring: make([]string, n)}
}

func (r *recentSet) contains(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.ids[id]
	return ok
}

func (r *recentSet) add(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.ids[id]; ok {
		return
	}
	if old := r.ring[r.next]; old != "" {
		delete(r.ids, old)
	}
	r.ring[r.next] = id
	r.ids[id] = struct{}{}
	r.next = (r.next + 1) % len(r.ring)
}
