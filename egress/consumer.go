package egress

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/internal/retry"
	"github.com/qqbridge/qqbridge/schema"
)

// fetchWait is how long one pull request waits for a message.
const fetchWait = 30 * time.Second

// pinGroup is the priority group of the consumer when InFlight is above 1:
// the consumer is pinned to one replica at a time (PriorityPolicyPinned), so
// requests to one target are never worked on by two replicas at once.
const pinGroup = "egress"

// Run consumes the send requests of stream Subjects.StreamOut() (subjects
// <prefix>.out.>, created beforehand by bus.EnsureStreams) through the
// durable pull consumer Config.Consumer and publishes each outcome on
// <prefix>.result.<kind>.
//
// With InFlight 1 (the default) one message is worked on at a time, in
// stream order (MaxAckPending 1, so replicas sharing the consumer keep the
// order too). With InFlight n above 1, up to n messages are delivered at a
// time (MaxAckPending n) to the one replica the consumer is pinned to; each
// target's requests wait in a lane of their own and are sent one after
// another in stream order, different targets' at the same time.
//
// A request that cannot be decoded or fails validation is answered
// invalid_request, an unknown target unknown_target; both are terminated
// (never redelivered). Transient failures are retried in place while the
// message is kept in progress, so no later request to the same target
// overtakes it. When ctx ends, the part being sent is finished, the progress
// recorded, the message handed back (nak) and Run returns nil; other errors
// are returned only when the stream or consumer cannot be set up.
func (e *Egress) Run(ctx context.Context) error {
	s := e.cfg.Subjects
	stream, err := e.cfg.JS.Stream(ctx, s.StreamOut())
	if err != nil {
		return fmt.Errorf("egress: stream %s: %w", s.StreamOut(), err)
	}
	created := stream.CachedInfo().Created
	cc := jetstream.ConsumerConfig{
		Durable:       e.cfg.Consumer,
		Description:   "qqbridge egress: sends the requests on " + s.OutWildcard() + ", in order per target",
		FilterSubject: s.OutWildcard(),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       e.cfg.AckWait,
		MaxDeliver:    e.cfg.MaxDeliver,
		MaxAckPending: e.cfg.InFlight,
	}
	if e.cfg.InFlight > 1 {
		cc.PriorityPolicy = jetstream.PriorityPolicyPinned
		cc.PriorityGroups = []string{pinGroup}
		cc.PinnedTTL = e.cfg.AckWait
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, cc)
	if err != nil {
		return fmt.Errorf("egress: consumer %s on %s: %w", e.cfg.Consumer, s.StreamOut(), err)
	}
	go e.cfg.Metrics.WatchConsumerPending(ctx, e.cfg.Consumer, 5*time.Second, func(ctx context.Context) (uint64, error) {
		info, err := cons.Info(ctx)
		if err != nil {
			return 0, err
		}
		return info.NumPending, nil
	})
	e.log.Info().Str("stream", s.StreamOut()).Str("consumer", e.cfg.Consumer).Int("in_flight", e.cfg.InFlight).Msg("egress consumer running")
	name := stream.CachedInfo().Config.Name
	if e.cfg.InFlight > 1 {
		e.runLanes(ctx, cons, name, created)
	} else {
		e.runSerial(ctx, cons, name, created)
	}
	e.log.Info().Msg("egress consumer stopped")
	return nil
}

// runSerial works the messages one at a time.
func (e *Egress) runSerial(ctx context.Context, cons jetstream.Consumer, name string, created time.Time) {
	// One pull request per message, made after the previous message was
	// answered (a pull issued ahead, as the Messages iterator does, was seen
	// to miss messages freed by an ack when MaxAckPending is 1).
	bo := retry.Backoff(e.cfg.RetryInitial, e.cfg.RetryMax)
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, fetchWait)
		msg, err := cons.Next(jetstream.FetchContext(fctx))
		cancel()
		if ctx.Err() != nil {
			if msg != nil { // delivered as ctx ended: hand it back untouched
				_ = msg.Nak()
			}
			break
		}
		if err != nil {
			if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
				continue // nothing to do: pull again
			}
			e.log.Warn().Err(err).Msg("pulling the next request failed; retrying")
			_ = retry.Sleep(ctx, bo.NextBackOff())
			continue
		}
		bo.Reset()
		if e.handle(ctx, msg, name, created) {
			_ = msg.Nak()
			break
		}
	}
}

// lane is the queue of one target's requests.
type lane struct {
	q []jetstream.Msg
}

// runLanes works up to InFlight messages at a time, each target's in a lane
// of its own, in stream order.
func (e *Egress) runLanes(ctx context.Context, cons jetstream.Consumer, name string, created time.Time) {
	var (
		mu    sync.Mutex
		lanes = map[string]*lane{}
		wg    sync.WaitGroup
	)
	work := func(key string, l *lane) {
		stopBeat := make(chan struct{})
		var beat sync.WaitGroup
		beat.Go(func() { // keep the queued messages in progress
			t := time.NewTicker(e.heartbeat)
			defer t.Stop()
			for {
				select {
				case <-stopBeat:
					return
				case <-t.C:
				}
				mu.Lock()
				for _, m := range l.q {
					_ = m.InProgress()
				}
				mu.Unlock()
			}
		})
		defer func() { close(stopBeat); beat.Wait() }()
		for {
			mu.Lock()
			if len(l.q) == 0 {
				delete(lanes, key)
				mu.Unlock()
				return
			}
			msg := l.q[0]
			l.q = l.q[1:]
			mu.Unlock()
			if ctx.Err() != nil || e.handle(ctx, msg, name, created) {
				_ = msg.Nak()
			}
		}
	}
	bo := retry.Backoff(e.cfg.RetryInitial, e.cfg.RetryMax)
	for ctx.Err() == nil {
		it, err := cons.Messages(jetstream.PullMaxMessages(e.cfg.InFlight), jetstream.PullPriorityGroup(pinGroup),
			jetstream.PullExpiry(fetchWait))
		if err != nil {
			e.log.Warn().Err(err).Msg("pulling requests failed; retrying")
			_ = retry.Sleep(ctx, bo.NextBackOff())
			continue
		}
		stop := context.AfterFunc(ctx, it.Stop)
		for {
			msg, err := it.Next()
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					break
				}
				// The iterator goes on (a missed heartbeat, a connection
				// problem): messages it holds stay in order behind this.
				e.log.Debug().Err(err).Msg("pulling requests: retrying")
				_ = retry.Sleep(ctx, bo.NextBackOff())
				continue
			}
			bo.Reset()
			if ctx.Err() != nil {
				_ = msg.Nak()
				break
			}
			key := e.laneKey(msg)
			mu.Lock()
			l, ok := lanes[key]
			if !ok {
				l = &lane{}
				lanes[key] = l
			}
			l.q = append(l.q, msg)
			mu.Unlock()
			if !ok {
				wg.Go(func() { work(key, l) })
			}
		}
		stop()
		it.Stop()
	}
	wg.Wait()
}

// laneKey names the target of a message: its requests share a lane. A
// message that cannot be decoded gets a lane of its own.
func (e *Egress) laneKey(msg jetstream.Msg) string {
	kind, req, err := decodeOut(e.cfg.Subjects, msg.Subject(), msg.Headers(), msg.Data())
	if err != nil || req == nil {
		if meta, merr := msg.Metadata(); merr == nil {
			return "invalid." + strconv.FormatUint(meta.Sequence.Stream, 10)
		}
		return "invalid"
	}
	t := req.To
	return fmt.Sprintf("%s.%d.%d.%d.%d.%d", kind, t.QQ, t.Group, t.UIN, t.GID, t.DID)
}

// handle works one message of the stream to its end. It returns true when
// ctx ended before the request was finished: the caller hands the message
// back (its progress is recorded).
func (e *Egress) handle(ctx context.Context, msg jetstream.Msg, streamName string, created time.Time) (handBack bool) {
	meta, err := msg.Metadata()
	if err != nil { // not a JetStream message: nothing to answer to
		e.log.Error().Err(err).Str("subject", msg.Subject()).Msg("message without JetStream metadata; terminated")
		_ = msg.TermWithReason("no metadata")
		return false
	}
	seq := meta.Sequence.Stream
	seqID := "seq:" + strconv.FormatUint(seq, 10)
	msgKey := seqKey(streamName, created, seq)
	log := e.log.With().Str("subject", msg.Subject()).Uint64("seq", seq).Logger()

	kind, req, verr := decodeOut(e.cfg.Subjects, msg.Subject(), msg.Headers(), msg.Data())
	resultSubject := e.resultSubject(msg.Subject(), kind)
	if verr != nil {
		id := seqID
		if req != nil && req.ID != "" {
			id = req.ID
		}
		res := invalidResult(id, kind, verr)
		log.Info().Str("id", id).Str("reason", verr.Error()).Msg("invalid request; terminated")
		if err := e.publishResult(ctx, resultSubject, res, msgKey); err != nil {
			log.Warn().Err(err).Msg("could not publish the result; the request will be answered again")
			return true
		}
		_ = msg.TermWithReason("invalid_request")
		return false
	}
	j := newJob(kind, req, seqID, msgKey)
	j.inProgress = func() { _ = msg.InProgress() }
	if req.ID != "" {
		j.resultID, j.key = req.ID, idKey(req.ID)
	}
	j.report = func(ctx context.Context, res schema.Result) error {
		return e.publishResult(ctx, resultSubject, res, msgKey)
	}
	start := time.Now()
	res, st := e.pipeline(ctx, j)
	if st == statusInterrupted {
		log.Info().Str("id", j.resultID).Msg("stopping: request handed back with its progress recorded")
		return true
	}
	e.sent(j, res, time.Since(start))
	err = j.reportErr
	if !j.reported { // answered from the record: publish it again
		err = e.publishResult(ctx, resultSubject, res, msgKey)
	}
	if err != nil {
		log.Warn().Err(err).Msg("could not publish the result; the request will be answered again")
		return true
	}
	ev := log.Info()
	if res.Error != nil {
		ev = log.Warn().Str("code", string(res.Error.Code)).Str("reason", res.Error.Message)
	}
	ev.Str("id", j.resultID).Bool("ok", res.OK).Int("parts", res.Parts).Msg("request answered")
	if res.Error != nil && res.Error.Code == schema.CodeUnknownTarget {
		_ = msg.TermWithReason("unknown_target")
		return false
	}
	// A plain ack: the outcome is recorded, so a redelivery (the ack lost)
	// is answered from the record, never sent again.
	if err := msg.Ack(); err != nil {
		log.Warn().Err(err).Msg("ack failed")
	}
	return false
}

// decodeOut decodes and validates a message of <prefix>.out.<kind>. kind is
// the subject's kind token even when it is not a sendable kind (for the
// result subject); req is set when the body could be decoded (its id is then
// usable) even if validation failed.
func decodeOut(s schema.Subjects, subject string, h nats.Header, data []byte) (schema.Kind, *schema.Request, error) {
	kind, kerr := schema.KindFromOutSubject(s, subject)
	if kerr != nil {
		kind = schema.Kind(strings.TrimPrefix(subject, s.Prefix()+".out."))
	}
	req, err := schema.DecodeRequest(schema.HeaderValue(h, schema.HeaderContentType), data)
	if kerr != nil {
		return kind, req, &schema.ValidationError{Field: "kind", Reason: fmt.Sprintf(
			"subject %q: the kind must be friend, group, discuss or sess", subject)}
	}
	if err != nil {
		return kind, nil, err
	}
	if err := req.Validate(kind); err != nil {
		return kind, req, err
	}
	return kind, req, nil
}

// resultSubject is where the outcome of a request on subject goes:
// <prefix>.result.<kind>, or for a subject of no known kind the same tokens
// after "result" as after "out", so the sender can still find it.
func (e *Egress) resultSubject(subject string, kind schema.Kind) string {
	if kind.Sendable() {
		return e.cfg.Subjects.Result(kind)
	}
	rest := strings.TrimPrefix(subject, e.cfg.Subjects.Prefix()+".out.")
	if rest == "" || rest == subject {
		rest = "invalid"
	}
	return e.cfg.Subjects.Prefix() + ".result." + rest
}

// publishResult publishes res on subject with a JetStream ack, retrying until
// acked (within ctx, and a few seconds past its end so that a finished send is
// still reported while the bridge stops). msgID de-duplicates a republish of
// the same request message.
func (e *Egress) publishResult(ctx context.Context, subject string, res schema.Result, msgID string) error {
	data, err := e.cfg.Codec.Marshal(res)
	if err != nil {
		return fmt.Errorf("egress: encode result: %w", err)
	}
	m := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	m.Header.Set(schema.HeaderContentType, e.cfg.Codec.ContentType())
	m.Header.Set(jetstream.MsgIDHeader, "result."+msgID)
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(5*time.Second, cancel)
		context.AfterFunc(pctx, func() { t.Stop() })
	})
	defer stop()
	bo := retry.Backoff(e.cfg.RetryInitial, e.cfg.RetryMax)
	for {
		actx, acancel := context.WithTimeout(pctx, 5*time.Second)
		_, err := e.cfg.JS.PublishMsg(actx, m)
		acancel()
		if err == nil {
			return nil
		}
		e.log.Warn().Err(err).Str("subject", subject).Msg("publishing a result failed; retrying")
		if err := retry.Sleep(pctx, bo.NextBackOff()); err != nil {
			return fmt.Errorf("egress: publish result on %s: %w", subject, err)
		}
	}
}
