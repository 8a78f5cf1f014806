// Package ingress is the bridge's inbound half: one poll2 loop per account
// that normalises every item (normalise.go) and publishes it, with a JetStream
// acknowledgement, into the inbound stream (QQ_IN) on
// <prefix>.in.<kind>.<id>.
//
// Guarantees:
//   - Nothing polled is dropped: a publish that fails (NATS unreachable, no
//     stream, a timeout) is retried with backoff until it is acknowledged, and
//     the next poll waits until the whole batch is published, in order.
//     Into a stream of one replica, a batch is published asynchronously, up
//     to Config.Window messages waiting for their ack, each expecting its
//     predecessor to be the stream's last message
//     (Nats-Expected-Last-Msg-Id): a message never lands ahead of one
//     published before it, and after a failure the retry loop resumes from
//     the first message not acknowledged. Into a replicated stream (a
//     clustered nats-server cannot take that expectation safely; see
//     publishWindow), in atomic batches when the stream allows them (all of
//     a batch stored, in order, or none of it; see publishAtomic), else one
//     message at a time, each acknowledged before the next.
//   - A repeated item is published once: every event carries a deterministic
//     id (schema.EventID) as Nats-Msg-Id, which the stream de-duplicates, and
//     a small set of recently published ids spares the repeat a publish.
//   - The account's own messages coming back through poll2 (echoes of sends)
//     are not published.
//   - A message too large for one NATS message is published in parts that
//     fit (Event.Part of Event.Parts, see docs/events.md); another event that
//     does not fit, without its raw value (Event.Truncated). Nothing polled
//     vanishes for its size.
//   - Polling runs under the leader's term (a live.Session): when the term
//     ends (the session generation ended, or another replica leads now) the
//     poll in flight is cancelled and the loop waits for the next term — that
//     is not a lost session. A lost session is reported through the
//     live.Session (Lost), and a kick (kick_message, published on
//     <prefix>.in.system.kick) too (Kicked).
//   - Polls that come back at once and empty (an immediate HTTP 502 or 504,
//     an early retcode 102) are not repeated in a tight loop: they back off,
//     up to MaxBackoff, until a poll is held by the server or brings events.
package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/internal/retry"
	"github.com/qqbridge/qqbridge/live"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

// Defaults of Config.
const (
	DefaultPublishTimeout = 5 * time.Second
	DefaultMaxBackoff     = 5 * time.Second
	DefaultRecentIDs      = 4096
	DefaultShutdownGrace  = 5 * time.Second
	DefaultMinHold        = time.Second
	DefaultMaxPayload     = 1 << 20 // the NATS server's default max_payload
	DefaultWindow         = 1024    // publishes of a batch waiting for their ack at once
)

// Poller makes one poll2 request; *qqclient.Client implements it.
type Poller interface {
	Poll(ctx context.Context) ([]qqclient.Event, error)
}

// Media takes the pictures of a message event once it is published (the
// pending image segments normalise made, in order, are msg.Pictures, in
// order); *media.Media implements it. Enqueue returns an error only when ctx
// ended first.
type Media interface {
	Enqueue(ctx context.Context, e *schema.Event, msg *qqclient.Message) error
}

// Config configures an Ingress. Client, Terms and JS are required.
type Config struct {
	// Client polls; normally the *qqclient.Client of the session manager.
	Client Poller
	// Terms hands out the live sessions to poll, each for one term: the
	// session manager's LeaderTerms, so that only the leader polls. Lost
	// sessions and kicks are reported through the live.Session.
	Terms live.Source
	// Dir resolves session numbers to contacts (a *directory.Directory);
	// leave it nil (not a typed nil pointer) for session numbers only.
	Dir Resolver
	// JS publishes into the stream; a jetstream.JetStream. Its connection
	// should reconnect forever (nats.MaxReconnects(-1)): events wait, in
	// memory, until a publish is acknowledged. A Publisher that cannot
	// look up streams (no Stream method) is taken to publish into a
	// replicated stream: one message at a time (see publishWindow).
	JS jetstream.Publisher
	// Subjects names the subjects (prefix).
	Subjects schema.Subjects
	// Codec encodes events; nil = JSON.
	Codec schema.Codec
	// Log receives one line per notable event (never a credential).
	Log zerolog.Logger
	// PublishTimeout bounds one publish attempt (default 5s).
	PublishTimeout time.Duration
	// MaxBackoff caps the wait between publish attempts, between failed
	// polls and between immediate empty polls (default 5s).
	MaxBackoff time.Duration
	// MinHold is the shortest time the server is expected to hold an empty
	// poll: an empty poll answered sooner (an immediate HTTP 502 or 504, an
	// early retcode 102) backs off before the next (default 1s).
	MinHold time.Duration
	// MaxPayload is the largest message the NATS server takes, headers
	// included (nats.Conn.MaxPayload); a larger event is published in parts.
	// Default 1 MiB, the server's default.
	MaxPayload int
	// RecentIDs is the number of recently published event ids remembered to
	// skip repeats without a publish (default 4096).
	RecentIDs int
	// ShutdownGrace is how long, once Run's ctx ends, ingress still tries to
	// publish the rest of a batch it polled (default 5s).
	ShutdownGrace time.Duration
	// Journal, when set, keeps each poll answer until its events are
	// published, and replays what a dead leader left (journal.go).
	Journal *Journal
	// Window is the number of a batch's publishes that may wait for their
	// JetStream ack at once (default 1024); 1 publishes one by one.
	Window int
	// Metrics, when set, counts polls and publishes (*metrics.Metrics).
	Metrics Metrics
	// Media, when set, receives the pictures of every published message
	// that has some; nil leaves their image segments pending.
	Media Media
}

// Metrics is what ingress reports to; *metrics.Metrics implements it. Each
// method must be safe for concurrent use.
type Metrics interface {
	PollDone(outcome string)
	Published(kind string, took time.Duration)
	Duplicate(kind string, took time.Duration)
	PublishRetry()
	Echo(kind string)
}

// Poll outcomes given to Metrics.PollDone (the values of package metrics).
const (
	pollEvents = "events"
	pollEmpty  = "empty"
	pollError  = "error"
	pollLost   = "lost"
)

// nopMetrics reports nowhere.
type nopMetrics struct{}

func (nopMetrics) PollDone(string)                 {}
func (nopMetrics) Published(string, time.Duration) {}
func (nopMetrics) Duplicate(string, time.Duration) {}
func (nopMetrics) PublishRetry()                   {}
func (nopMetrics) Echo(string)                     {}

// Stats counts what an Ingress did since it was made.
type Stats struct {
	Polls      uint64 // poll2 requests answered (empty or not)
	Items      uint64 // poll items received
	Published  uint64 // events the stream acknowledged as new
	Duplicates uint64 // events the stream acknowledged as duplicates (Nats-Msg-Id)
	Repeats    uint64 // events skipped without a publish: their id was published recently
	Echoes     uint64 // the account's own messages, not published
	Retries    uint64 // publish attempts that failed and were retried
	Dropped    uint64 // events that can never be published (no subject, not encodable), logged and dropped
	Split      uint64 // events too large for one message, published in parts
	Truncated  uint64 // events too large for one message, published without their raw value
	Lost       uint64 // sessions reported lost (not the end of a term)
	Kicks      uint64 // kicks reported
	Replayed   uint64 // items replayed from the journal
	Atomic     uint64 // atomic batches the stream stored (a replicated stream: publishAtomic)
}

// Ingress is the poll loop of one account. Run it once; it is not meant to
// run twice at the same time (only the newest poller of a session receives).
type Ingress struct {
	cfg     Config
	dir     Resolver
	enc     *schema.Encoder
	log     zerolog.Logger
	recent  *recentSet
	metrics Metrics
	// replicated: the inbound stream has more than one replica, so a
	// batch is published in atomic batches (on batchConn, set when the
	// stream allows them) or one message at a time (see
	// publishWindow); read at the start of each term. Only the polling
	// goroutine uses them.
	replicated bool
	batchConn  *nats.Conn

	polls, items, published, duplicates, repeats, echoes, retries, dropped, split, truncated, lost, kicks, replayed, atomicBatches atomic.Uint64
}

// New checks cfg and makes an Ingress.
func New(cfg Config) (*Ingress, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("ingress: Config.Client is required")
	case cfg.Terms == nil:
		return nil, errors.New("ingress: Config.Terms is required")
	case cfg.JS == nil:
		return nil, errors.New("ingress: Config.JS is required")
	case cfg.PublishTimeout < 0 || cfg.MaxBackoff < 0 || cfg.RecentIDs < 0 || cfg.ShutdownGrace < 0 ||
		cfg.MinHold < 0 || cfg.MaxPayload < 0 || cfg.Window < 0:
		return nil, errors.New("ingress: negative PublishTimeout, MaxBackoff, RecentIDs, ShutdownGrace, MinHold, MaxPayload or Window")
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MinHold == 0 {
		cfg.MinHold = DefaultMinHold
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = DefaultMaxPayload
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
		cfg:     cfg,
		dir:     cfg.Dir,
		enc:     schema.NewEncoder(cfg.Codec),
		log:     cfg.Log.With().Str("component", "ingress").Logger(),
		recent:  newRecentSet(cfg.RecentIDs),
		metrics: cfg.Metrics,
	}
	if i.metrics == nil {
		i.metrics = nopMetrics{}
	}
	if i.dir == nil {
		i.dir = numbersOnly{}
	}
	return i, nil
}

// Stats returns the counters.
func (i *Ingress) Stats() Stats {
	return Stats{
		Polls: i.polls.Load(), Items: i.items.Load(), Published: i.published.Load(),
		Duplicates: i.duplicates.Load(), Repeats: i.repeats.Load(), Echoes: i.echoes.Load(),
		Retries: i.retries.Load(), Dropped: i.dropped.Load(), Split: i.split.Load(), Truncated: i.truncated.Load(), Lost: i.lost.Load(), Kicks: i.kicks.Load(),
		Replayed: i.replayed.Load(), Atomic: i.atomicBatches.Load(),
	}
}

// Run polls and publishes until ctx ends, and returns ctx's error (or the
// error of Terms). Each round waits for a term, then polls its session until
// the term ends or the session is lost or kicked; each batch is published
// completely, in order, before the next poll.
//
// After a lost session, a term of the same generation (the manager knows
// better, or has not caught up) is polled again after a growing pause; after
// a kick, ingress waits for that term to end, so that a kicked session is
// never polled again.
func (i *Ingress) Run(ctx context.Context) error {
	pause := retry.Backoff(min(100*time.Millisecond, i.cfg.MaxBackoff), i.cfg.MaxBackoff)
	var last live.Session
	var started bool
	var end roundEnd
	for {
		s, err := i.cfg.Terms.Await(ctx)
		if err != nil {
			return err
		}
		if started && s.Gen == last.Gen && end != termEnded {
			if end == kicked {
				select { // the manager ends a kicked session's term
				case <-ctx.Done():
					return ctx.Err()
				case <-s.Done():
				}
				continue
			}
			if err := retry.Sleep(ctx, pause.NextBackOff()); err != nil {
				return err
			}
			if s, err = i.cfg.Terms.Await(ctx); err != nil {
				return err
			}
		}
		started, last = true, s
		log := i.log.With().Int64("account", s.Account).Uint64("gen", s.Gen).Logger()
		log.Info().Msg("polling")
		var polled bool
		polled, end = i.pollSession(ctx, s, log)
		if err := ctx.Err(); err != nil {
			return err
		}
		if polled {
			pause.Reset()
		}
	}
}

// roundEnd is why pollSession returned.
type roundEnd int

const (
	stopped   roundEnd = iota // Run's ctx ended, or a batch could not be finished
	termEnded                 // the term ended: not this loop's business
	lost                      // the session is gone; reported
	kicked                    // another login replaced this one; reported
)

// pollSession polls s until its term ends, it is lost or kicked, or ctx
// ends. Each poll runs under the term: a term that ends cancels the poll in
// flight. It reports whether any poll succeeded, and why it returned.
func (i *Ingress) pollSession(ctx context.Context, s live.Session, log zerolog.Logger) (polled bool, end roundEnd) {
	failed := retry.Backoff(min(200*time.Millisecond, i.cfg.MaxBackoff), i.cfg.MaxBackoff)
	early := retry.Backoff(min(100*time.Millisecond, i.cfg.MaxBackoff), i.cfg.MaxBackoff)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.Context(), cancel)()
	i.replicated, i.batchConn = i.inboundMode(ctx, log)
	replayed := i.replayJournalFirst(ctx, s, log)
	for {
		if !replayed {
			replayed = i.replayJournal(ctx, s, log)
		}
		start := time.Now()
		evs, err := i.cfg.Client.Poll(pctx)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return polled, stopped
			case s.Err() != nil:
				log.Info().Msg("the polling term ended; waiting for the next")
				return polled, termEnded
			case errors.Is(err, qqclient.ErrSessionLost) || errors.Is(err, qqclient.ErrNotLoggedIn):
				i.metrics.PollDone(pollLost)
				i.lost.Add(1)
				log.Warn().Err(err).Msg("session lost")
				s.Lost(err)
				return polled, lost
			}
			i.metrics.PollDone(pollError)
			wait := failed.NextBackOff()
			log.Warn().Err(err).Dur("retry_in", wait).Msg("poll failed")
			if retry.Sleep(pctx, wait) != nil {
				if ctx.Err() != nil {
					return polled, stopped
				}
				return polled, termEnded
			}
			continue
		}
		failed.Reset()
		polled = true
		i.polls.Add(1)
		i.items.Add(uint64(len(evs)))
		if len(evs) == 0 {
			i.metrics.PollDone(pollEmpty)
		} else {
			i.metrics.PollDone(pollEvents)
		}
		if len(evs) == 0 && time.Since(start) < i.cfg.MinHold {
			// Not held by the server: an immediate 502/504 or an early 102.
			wait := early.NextBackOff()
			log.Debug().Dur("retry_in", wait).Msg("empty poll answered at once; backing off")
			if retry.Sleep(pctx, wait) != nil {
				if ctx.Err() != nil {
					return polled, stopped
				}
				return polled, termEnded
			}
			continue
		}
		early.Reset()
		seq := i.journalRecord(ctx, s, evs, log)
		if err := i.publishBatch(ctx, s, evs, log); err != nil {
			log.Error().Err(err).Msg("stopped before the batch was published")
			return polled, stopped
		}
		i.journalDone(ctx, seq, log)
		for _, ev := range evs {
			if ev.Kick != nil {
				i.kicks.Add(1)
				log.Warn().Str("reason", ev.Kick.Reason).Msg("kicked: another login replaced this one")
				s.Kicked(ev.Kick.Reason)
				return polled, kicked
			}
		}
		if s.Err() != nil {
			log.Info().Msg("the polling term ended; waiting for the next")
			return polled, termEnded
		}
	}
}

// publishBatch publishes the items of one poll in order. Once ctx ends, it
// still tries for ShutdownGrace to finish the batch, which poll2 would not
// deliver again.
//
// The batch's items are normalised and encoded by a goroutine of their own
// (prepareAll), at most Config.Window events ahead of the publishes, so
// that preparing and publishing use two cores. The messages are published
// asynchronously, at most Config.Window unacknowledged, and their acks are
// checked in order (publishWindow). At the first message that is not
// acknowledged, the event it belongs to is published again by the retry
// loop (publishEvent), which waits until it is acknowledged, and the rest of
// the batch follows asynchronously again. Every message but the first of
// such a run expects the one before it to be the stream's last
// (Nats-Expected-Last-Msg-Id), so a message never lands in the stream ahead
// of one published before it; a message published again is answered as a
// duplicate by its Nats-Msg-Id. (Into a replicated stream: atomic batches,
// or one message at a time, without the expectation; see publishWindow.)
func (i *Ingress) publishBatch(ctx context.Context, s live.Session, evs []qqclient.Event, log zerolog.Logger) error {
	if len(evs) == 0 {
		return nil
	}
	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(i.cfg.ShutdownGrace, cancel) })
	defer stop()
	if r, ok := i.dir.(batchResolver); ok {
		bctx = r.Pin(bctx)
		r.ResolveAccounts(bctx, senders(evs, s.Account))
	}
	pctx, stopPrepare := context.WithCancel(bctx)
	ready := make(chan *pending, min(i.cfg.Window, len(evs)))
	done := make(chan bool, 1)
	go i.prepareAll(pctx, s.Account, evs, log, ready, done)
	b := &batch{ready: ready, done: done}
	defer func() {
		stopPrepare()
		b.drain() // prepareAll has returned
	}()
	for k := 0; ; {
		k += i.publishWindow(bctx, b, k, log)
		if _, ok := b.at(k); !ok {
			if b.complete {
				return nil
			}
			return fmt.Errorf("ingress: %d of %d items not published: %w", len(evs)-b.itemOf(k), len(evs), bctx.Err())
		}
		if bctx.Err() != nil {
			return fmt.Errorf("ingress: %d of %d items not published: %w", len(evs)-b.itemOf(k), len(evs), bctx.Err())
		}
		// The first message not acknowledged: its whole event again, by the
		// retry loop (earlier parts are answered as duplicates).
		p := b.out[k].ev
		if err := i.publishEvent(bctx, p.e, p.subject, log); err != nil {
			return fmt.Errorf("ingress: %d of %d items not published: %w", len(evs)-b.itemOf(k), len(evs), err)
		}
		if err := i.enqueueMedia(bctx, p); err != nil {
			return fmt.Errorf("ingress: %d of %d items not published: %w", len(evs)-b.itemOf(k), len(evs), err)
		}
		i.recent.add(p.e.ID)
		for k < len(b.out) && b.out[k].ev == p {
			k++
		}
	}
}

// prepareAll normalises and encodes the items of a batch in order and hands
// each event to be published to ready (the items not published — echoes,
// repeats — are left out). It closes ready after the last item, or when ctx
// ends first, and sends done whether it prepared every item.
func (i *Ingress) prepareAll(ctx context.Context, account int64, evs []qqclient.Event, log zerolog.Logger, ready chan<- *pending, done chan<- bool) {
	defer close(ready)
	seen := make(map[string]struct{}, len(evs))
	for k, ev := range evs {
		p := i.prepare(ctx, account, ev, seen, log)
		if p == nil {
			continue
		}
		p.item = k
		select {
		case ready <- p:
		case <-ctx.Done():
			done <- false
			return
		}
	}
	done <- true
}

// batch is the messages of one poll's items as they come from prepareAll,
// in order; the publishing side reads them.
type batch struct {
	ready    <-chan *pending
	done     <-chan bool
	complete bool // prepareAll prepared every item, and all are in out
	out      []outMsg
	next     int // the item after the last one in out
}

// at returns message k of the batch, waiting for items to be prepared up to
// it; false past the last, and when the preparing stopped first (complete
// says which).
func (b *batch) at(k int) (outMsg, bool) {
	for len(b.out) <= k && b.ready != nil {
		p, ok := <-b.ready
		if !ok {
			b.complete, b.ready = <-b.done, nil
			break
		}
		b.next = p.item + 1
		for n, m := range p.msgs {
			b.out = append(b.out, outMsg{msg: m, ev: p, last: n == len(p.msgs)-1, item: p.item})
		}
	}
	if k < len(b.out) {
		return b.out[k], true
	}
	return outMsg{}, false
}

// drain waits for prepareAll to return (its ctx ended or it is done).
func (b *batch) drain() {
	if b.ready == nil {
		return
	}
	for range b.ready {
	}
	<-b.done
	b.ready = nil
}

// release lets message k, acknowledged, go (its body and headers); the
// event stays for its later parts.
func (b *batch) release(k int) { b.out[k].msg = nil }

// itemOf is the item of message k (or the item after the last prepared).
func (b *batch) itemOf(k int) int {
	if k < len(b.out) {
		return b.out[k].item
	}
	return b.next
}

// pending is one event of a batch, encoded.
type pending struct {
	item    int // the poll item's index
	e       *schema.Event
	kind    schema.Kind
	subject string
	msgs    []*nats.Msg
	msg     *qqclient.Message // the poll item's message, for Config.Media
}

// enqueueMedia hands the pictures of p, once published, to Config.Media. It
// returns an error only when ctx ended first.
func (i *Ingress) enqueueMedia(ctx context.Context, p *pending) error {
	if i.cfg.Media == nil || p.msg == nil || len(p.msg.Pictures) == 0 {
		return nil
	}
	return i.cfg.Media.Enqueue(ctx, p.e, p.msg)
}

// outMsg is one message of a batch; last marks the last message of its event.
type outMsg struct {
	msg  *nats.Msg
	ev   *pending
	last bool
	item int // the poll item's index
}

// publishWindow publishes the messages of b from message from on
// asynchronously, at most Config.Window without an ack, and returns how many
// of them, from the first on, were acknowledged
// (as new or as duplicates) before the first that was not: refused, not
// answered within PublishTimeout, or not published because ctx ended.
//
// On a stream of more than one replica, the messages go without the
// expectation, in atomic batches where the stream allows them
// (publishAtomic), else one at a time, each acknowledged before the next:
// a clustered stream checks Nats-Expected-Last-Msg-Id only as each replica
// applies the message, and nats-server (2.15) answers a mismatch there — another
// publisher's message (a picture's media.stored) between two of a batch, or
// a publish lost as the stream's leader changes — with a critical write
// error on every replica: the stream stops taking messages for good.
// (Nats-Expected-Last-Sequence is checked before the message is proposed,
// but another publisher's message can take the place it expects.)
func (i *Ingress) publishWindow(ctx context.Context, b *batch, from int, log zerolog.Logger) int {
	if i.replicated && i.batchConn != nil {
		return i.publishAtomic(ctx, b, from, log)
	}
	return i.publishUpTo(ctx, b, from, -1, log)
}

// publishUpTo is publishWindow without atomic batches, publishing messages
// from on up to (not including) message upto, or to the batch's end when
// upto is negative.
func (i *Ingress) publishUpTo(ctx context.Context, b *batch, from, upto int, log zerolog.Logger) int {
	type flight struct {
		f     jetstream.PubAckFuture
		start time.Time
	}
	limit, chained := i.cfg.Window, true
	if i.replicated {
		limit, chained = 1, false
	}
	window := make([]flight, 0, min(limit, 1024))
	next, acked := from, from
	var prevID []string // the Nats-Msg-Id value of the message published before
	timeout := time.NewTimer(i.cfg.PublishTimeout)
	defer timeout.Stop()
	// wait checks the oldest publish in flight; false when it failed.
	wait := func() bool {
		fl := window[0]
		window = window[1:]
		timeout.Reset(max(i.cfg.PublishTimeout-time.Since(fl.start), 0))
		m := b.out[acked]
		select {
		case ack := <-fl.f.Ok():
			if !i.acked(ctx, b, acked, ack.Duplicate, time.Since(fl.start)) {
				return false // ctx ended: the batch stops here
			}
			acked++
			return true
		case err := <-fl.f.Err():
			if !isWrongLast(err) {
				i.retries.Add(1)
				i.metrics.PublishRetry()
				log.Debug().Err(err).Str("subject", m.msg.Subject).Msg("publish in the window failed; publishing again from it")
			}
		case <-timeout.C:
			i.retries.Add(1)
			i.metrics.PublishRetry()
		case <-ctx.Done():
		}
		return false
	}
	for {
		for len(window) < limit && ctx.Err() == nil && (upto < 0 || next < upto) {
			om, ok := b.at(next)
			if !ok {
				break
			}
			m := om.msg
			if chained && prevID != nil {
				m.Header[jetstream.ExpectedLastMsgIDHeader] = prevID // one value, never changed: shared
			} else {
				delete(m.Header, jetstream.ExpectedLastMsgIDHeader)
			}
			f, err := i.cfg.JS.PublishMsgAsync(m)
			if err != nil {
				break
			}
			prevID = m.Header[jetstream.MsgIDHeader]
			window = append(window, flight{f: f, start: time.Now()})
			next++
		}
		if len(window) == 0 || !wait() {
			return acked - from
		}
	}
}

// inboundMode reports whether the inbound stream has more than one replica
// (true when its configuration cannot be read: the safe way) and, when it
// has and allows atomic batch publish, the connection to publish the
// batches' messages on.
func (i *Ingress) inboundMode(ctx context.Context, log zerolog.Logger) (bool, *nats.Conn) {
	sm, ok := i.cfg.JS.(interface {
		Stream(context.Context, string) (jetstream.Stream, error)
		Conn() *nats.Conn
	})
	if !ok {
		return true, nil
	}
	ictx, cancel := context.WithTimeout(ctx, i.cfg.PublishTimeout)
	defer cancel()
	st, err := sm.Stream(ictx, i.cfg.Subjects.StreamIn())
	if err != nil {
		log.Warn().Err(err).Msg("the inbound stream's configuration cannot be read; publishing one message at a time this term")
		return true, nil
	}
	cfg := st.CachedInfo().Config
	if cfg.Replicas <= 1 {
		return false, nil
	}
	if !cfg.AllowAtomicPublish {
		return true, nil
	}
	return true, sm.Conn()
}

// acked accounts message k of b as stored (new, or a duplicate), hands its
// event's pictures on once its last message is stored, and lets the
// message go. It is false when the pictures could not be handed on (ctx
// ended): the batch stops there.
func (i *Ingress) acked(ctx context.Context, b *batch, k int, duplicate bool, took time.Duration) bool {
	m := b.out[k]
	if m.last && i.enqueueMedia(ctx, m.ev) != nil {
		return false
	}
	if duplicate {
		i.duplicates.Add(1)
		i.metrics.Duplicate(string(m.ev.kind), took)
	} else {
		i.published.Add(1)
		i.metrics.Published(string(m.ev.kind), took)
	}
	if m.last {
		i.recent.add(m.ev.e.ID)
	}
	b.release(k)
	return true
}

// errCodeWrongLastMsgID is JetStream's error code "wrong last msg ID".
const errCodeWrongLastMsgID jetstream.ErrorCode = 10070

// isWrongLast reports whether err is the stream's refusal of a message whose
// predecessor is not the stream's last (Nats-Expected-Last-Msg-Id): that
// predecessor failed, not this message.
func isWrongLast(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && api.ErrorCode == errCodeWrongLastMsgID
}

// prepare normalises and encodes one item. It returns nil for an item that
// is not published (an echo, a repeat, not publishable).
func (i *Ingress) prepare(ctx context.Context, account int64, ev qqclient.Event, seen map[string]struct{}, log zerolog.Logger) *pending {
	if ev.Err != nil {
		log.Warn().Err(ev.Err).Str("poll_type", string(ev.Type)).Msg("malformed poll item, published as a system event")
	}
	e, kind, id, ok := normalise(ctx, account, ev, i.dir)
	if !ok {
		i.echoes.Add(1)
		i.metrics.Echo(string(echoKind(ev.Type)))
		log.Debug().Str("poll_type", string(ev.Type)).Msg("own message echoed, not published")
		return nil
	}
	_, again := seen[e.ID]
	if again || i.recent.contains(e.ID) {
		i.repeats.Add(1)
		log.Debug().Str("event_id", e.ID).Msg("repeated item, not published again")
		return nil
	}
	subject, err := i.cfg.Subjects.In(kind, id)
	if err != nil { // normalise makes valid ids only; never expected
		i.dropped.Add(1)
		log.Error().Err(err).Str("event_id", e.ID).Msg("no subject for event, dropped")
		return nil
	}
	if len(e.Raw) > 0 && !json.Valid(e.Raw) { // both codecs take a raw value that is JSON
		log.Warn().Str("event_id", e.ID).Msg("raw value not encodable (not JSON), published without it")
		e.Raw = nil
	}
	msgs := i.encodeEvent(e, subject, log)
	if msgs == nil {
		return nil
	}
	seen[e.ID] = struct{}{}
	return &pending{e: e, kind: kind, subject: subject, msgs: msgs, msg: ev.Message}
}

// publish publishes msg until the stream acknowledges it, waiting between
// attempts with exponential backoff. It returns nil once acknowledged (or
// dropped for good, for a subject the server refuses), an error wrapping
// errTooLarge for a message too large for the server or the stream, and
// ctx's error when ctx ends first.
func (i *Ingress) publish(ctx context.Context, msg *nats.Msg, log zerolog.Logger) error {
	id := msg.Header.Get(schema.HeaderMsgID)
	kind := kindOf(i.cfg.Subjects, msg.Subject)
	b := retry.Backoff(min(100*time.Millisecond, i.cfg.MaxBackoff), i.cfg.MaxBackoff)
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, i.cfg.PublishTimeout)
		start := time.Now()
		ack, err := i.cfg.JS.PublishMsg(actx, msg)
		cancel()
		if err == nil {
			if ack.Duplicate {
				i.duplicates.Add(1)
				i.metrics.Duplicate(kind, time.Since(start))
			} else {
				i.published.Add(1)
				i.metrics.Published(kind, time.Since(start))
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
		if tooLarge(err) {
			return fmt.Errorf("%w: %w", errTooLarge, err)
		}
		if errors.Is(err, nats.ErrBadSubject) {
			i.dropped.Add(1)
			log.Error().Err(err).Str("subject", msg.Subject).Str("event_id", id).Msg("event can never be published, dropped")
			return nil
		}
		i.retries.Add(1)
		i.metrics.PublishRetry()
		wait := b.NextBackOff()
		if attempt == 1 || attempt%20 == 0 {
			log.Warn().Err(err).Str("subject", msg.Subject).Str("event_id", id).Int("attempt", attempt).
				Dur("retry_in", wait).Msg("publish failed, retrying; polling waits")
		}
		if err := retry.Sleep(ctx, wait); err != nil {
			return err
		}
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

// batchResolver is a Resolver that can note the session for the lookups of
// a batch (Pin) and look up many senders' QQ numbers together
// (*directory.Directory).
type batchResolver interface {
	Pin(ctx context.Context) context.Context
	ResolveAccounts(ctx context.Context, uins []int64)
}

// senders returns the uins of the people who sent the messages of evs, but
// the account's own.
func senders(evs []qqclient.Event, account int64) []int64 {
	var out []int64
	for _, ev := range evs {
		m := ev.Message
		if m == nil {
			continue
		}
		u := m.FromUIN
		if ev.Type == qqclient.PollGroupMessage || ev.Type == qqclient.PollDiscuMessage {
			u = m.SendUIN
		}
		if u != account {
			out = append(out, u)
		}
	}
	return out
}

// echoKind is the kind of an echoed message of poll type t.
func echoKind(t qqclient.PollType) schema.Kind {
	switch t {
	case qqclient.PollMessage:
		return schema.KindFriend
	case qqclient.PollGroupMessage:
		return schema.KindGroup
	case qqclient.PollDiscuMessage:
		return schema.KindDiscuss
	case qqclient.PollSessMessage:
		return schema.KindSess
	case qqclient.PollInputNotify:
		return schema.KindInput
	}
	return schema.KindSystem
}

// kindOf is the kind token of an inbound subject, for the metrics.
func kindOf(s schema.Subjects, subject string) string {
	if k, _, err := s.ParseInSubject(subject); err == nil {
		return string(k)
	}
	return string(schema.KindSystem)
}
