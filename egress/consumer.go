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

	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/internal/retry"
	"github.com/qqbridge/qqbridge/schema"
)

// fetchWait is how long one pull request waits for a message.
const fetchWait = 30 * time.Second

// Run consumes the send requests of stream Subjects.StreamOut() (subjects
// <prefix>.out.>, created beforehand by bus.EnsureStreams) and publishes each
// outcome on <prefix>.result.<kind>. Every replica pulls from every consumer:
//
//   - Config.Consumer, the serial consumer of the subjects stored as
//     published (<prefix>.out.<kind>, and target subjects when the stream has
//     no partitions): one request at a time across the replicas, in stream
//     order (MaxAckPending 1);
//   - Config.Consumer-p<n>, one consumer per partition n of the target
//     subjects (<prefix>.outp.<n>.<kind>.<key>, see bus.StreamOptions), each
//     also one request at a time in stream order, different partitions at
//     the same time.
//
// The partitions are the stream's (its subject transform, bus.OutPartitions),
// and any partition beyond them that still holds requests. This replica
// works at most Config.InFlight requests at once across all its consumers; a
// request delivered to it while it is busy waits (kept in progress) for its
// turn.
//
// A request that cannot be decoded or fails validation is answered
// invalid_request, an unknown target unknown_target; both are terminated
// (never redelivered). Transient failures are retried in place while the
// message is kept in progress, so no later request of its consumer overtakes
// it. When ctx ends, the parts being sent are finished, the progress
// recorded, the messages handed back (nak) and Run returns nil; other errors
// are returned only when the stream or consumers cannot be set up (a
// JetStream that is not ready, or does not answer in time, is waited for:
// bus.WhileNotReady).
func (e *Egress) Run(ctx context.Context) error {
	s := e.cfg.Subjects
	var cons []jetstream.Consumer
	var info *jetstream.StreamInfo
	// Replicas starting together on a cluster race to create the same
	// consumers; an attempt JetStream does not answer in time is tried again.
	err := bus.WhileNotReady(ctx, e.log, "egress consumers", func(ctx context.Context) (err error) {
		cons, info, err = e.setUp(ctx)
		return err
	})
	if err != nil {
		return err
	}
	created, name, parts := info.Created, info.Config.Name, len(cons)-1
	go e.cfg.Metrics.WatchConsumerPending(ctx, e.cfg.Consumer, 5*time.Second, func(ctx context.Context) (uint64, error) {
		var sum uint64
		for _, c := range cons {
			info, err := c.Info(ctx)
			if err != nil {
				return 0, err
			}
			sum += info.NumPending
		}
		return sum, nil
	})
	e.log.Info().Str("stream", s.StreamOut()).Str("consumer", e.cfg.Consumer).Int("partitions", parts).
		Int("in_flight", e.cfg.InFlight).Msg("egress consumers running")
	slots := make(chan struct{}, e.cfg.InFlight)
	var wg sync.WaitGroup
	for _, c := range cons {
		wg.Go(func() { e.consume(ctx, c, slots, name, created) })
	}
	wg.Wait()
	e.log.Info().Msg("egress consumers stopped")
	return nil
}

// PartitionConsumer returns the durable name of the consumer of partition n
// of the outbound queue for the serial consumer named consumer:
// consumer-p<n> ("bridge-egress-p3").
func PartitionConsumer(consumer string, n int) string {
	return consumer + "-p" + strconv.Itoa(n)
}

// consumerConfig is the configuration of every consumer of Run: one message
// at a time (MaxAckPending 1), so that the replicas sharing it keep the
// stream order.
func (e *Egress) consumerConfig(durable, filter, description string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       durable,
		Description:   description,
		FilterSubject: filter,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       e.cfg.AckWait,
		MaxDeliver:    e.cfg.MaxDeliver,
		MaxAckPending: 1,
	}
}

// partitions returns the number of partition consumers to run: the stream's
// partitions, or more when requests are left in a partition beyond them (the
// count was lowered while they waited).
func (e *Egress) partitions(ctx context.Context, stream jetstream.Stream) (int, error) {
	s := e.cfg.Subjects
	n := bus.OutPartitions(s, stream.CachedInfo().Config)
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(s.OutPartitionBase()+".>"))
	if err != nil {
		return 0, fmt.Errorf("egress: stream %s: %w", s.StreamOut(), err)
	}
	for subj := range info.State.Subjects {
		if o, _ := s.ParseOutSubject(subj); o.Partition >= n && o.Partition < bus.MaxOutPartitions {
			n = o.Partition + 1
		}
	}
	return n, nil
}

// consume works the messages of cons one at a time, each when one of slots
// is free.
func (e *Egress) consume(ctx context.Context, cons jetstream.Consumer, slots chan struct{}, name string, created time.Time) {
	// One subscription and one pull of one message at a time, asked for as
	// soon as the previous message arrived: the server delivers the next one
	// the moment the previous is acknowledged (MaxAckPending 1), without a
	// round trip in between.
	bo := retry.Backoff(e.cfg.RetryInitial, e.cfg.RetryMax)
	for ctx.Err() == nil {
		it, err := cons.Messages(jetstream.PullMaxMessages(1), jetstream.PullExpiry(fetchWait))
		if err != nil {
			e.log.Warn().Err(err).Msg("pulling requests failed; retrying")
			_ = retry.Sleep(ctx, bo.NextBackOff())
			continue
		}
		// When ctx ends, the iterator hands out what it holds, then closes;
		// that is handed back untouched.
		stop := context.AfterFunc(ctx, it.Drain)
		for {
			msg, err := it.Next()
			if err != nil {
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
					break
				}
				// The iterator goes on (a missed heartbeat, a connection
				// problem).
				e.log.Debug().Err(err).Msg("pulling requests: retrying")
				_ = retry.Sleep(ctx, bo.NextBackOff())
				continue
			}
			bo.Reset()
			if ctx.Err() != nil || !e.takeSlot(ctx, msg, slots) {
				_ = msg.Nak()
				continue
			}
			handBack := e.handle(ctx, msg, name, created)
			<-slots
			if handBack {
				_ = msg.Nak()
			}
		}
		stop()
		it.Stop()
	}
}

// takeSlot takes one of slots for msg, keeping msg in progress while it
// waits; false when ctx ended first.
func (e *Egress) takeSlot(ctx context.Context, msg jetstream.Msg, slots chan struct{}) bool {
	select {
	case slots <- struct{}{}:
		return true
	default:
	}
	// The heartbeat runs beside the wait, so that the wait keeps its place
	// among the others (a channel's waiters are served in turn).
	stop := make(chan struct{})
	var beat sync.WaitGroup
	beat.Go(func() {
		t := time.NewTicker(e.heartbeat)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	})
	defer func() { close(stop); beat.Wait() }()
	select {
	case slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
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

	o, req, verr := decodeOut(e.cfg.Subjects, msg.Subject(), msg.Headers(), msg.Data())
	kind := o.Kind
	resultSubject := e.resultSubject(o)
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

// decodeOut decodes and validates a message of stream StreamOut. The
// subject is one of schema.Subjects.ParseOutSubject; the body's target must
// match the key of a target subject. o is the subject as far as it could be
// read (its kind even when it is not a sendable kind, for the result
// subject); req is set when the body could be decoded (its id is then
// usable) even if validation failed.
func decodeOut(s schema.Subjects, subject string, h nats.Header, data []byte) (schema.OutSubject, *schema.Request, error) {
	o, serr := s.ParseOutSubject(subject)
	req, err := schema.DecodeRequest(schema.HeaderValue(h, schema.HeaderContentType), data)
	if serr != nil {
		return o, req, serr
	}
	if err != nil {
		return o, nil, err
	}
	if err := req.Validate(o.Kind); err != nil {
		return o, req, err
	}
	if o.Key != "" {
		if err := schema.CheckTargetKey(o.Kind, o.Key, req.To); err != nil {
			return o, req, err
		}
	}
	return o, req, nil
}

// resultSubject is where the outcome of a request on a subject o goes:
// <prefix>.result.<kind>, or for a subject of no known kind the same tokens
// after "result" as after "out" (as published), so the sender can still find
// it.
func (e *Egress) resultSubject(o schema.OutSubject) string {
	if o.Kind.Sendable() {
		return e.cfg.Subjects.Result(o.Kind)
	}
	rest := o.Rest
	for _, tok := range strings.Split(rest, ".") {
		if schema.ValidToken(tok) != nil {
			rest = "invalid"
			break
		}
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

// setUp looks up the outbound stream and creates or updates its consumers:
// the serial one, then one per partition.
func (e *Egress) setUp(ctx context.Context) ([]jetstream.Consumer, *jetstream.StreamInfo, error) {
	s := e.cfg.Subjects
	stream, err := e.cfg.JS.Stream(ctx, s.StreamOut())
	if err != nil {
		return nil, nil, fmt.Errorf("egress: stream %s: %w", s.StreamOut(), err)
	}
	parts, err := e.partitions(ctx, stream)
	if err != nil {
		return nil, nil, err
	}
	cons := make([]jetstream.Consumer, 0, parts+1)
	// The serial consumer takes every subject under <prefix>.out. — spelt as
	// two filters, not as the stream's own subject: a consumer whose filter
	// is the stream's subject counts as unfiltered, and the server would then
	// keep the partitions' messages for it after their ack.
	scc := e.consumerConfig(e.cfg.Consumer, "", "qqbridge egress: sends the requests on "+s.OutWildcard()+" one at a time, in order")
	scc.FilterSubjects = []string{s.Prefix() + ".out.*", s.Prefix() + ".out.*.>"}
	serial, err := stream.CreateOrUpdateConsumer(ctx, scc)
	if err != nil {
		return nil, nil, fmt.Errorf("egress: consumer %s on %s: %w", e.cfg.Consumer, s.StreamOut(), err)
	}
	cons = append(cons, serial)
	for n := range parts {
		durable := PartitionConsumer(e.cfg.Consumer, n)
		c, err := stream.CreateOrUpdateConsumer(ctx, e.consumerConfig(durable, s.OutPartition(n),
			fmt.Sprintf("qqbridge egress: sends the requests of partition %d one at a time, in order", n)))
		if err != nil {
			return nil, nil, fmt.Errorf("egress: consumer %s on %s: %w", durable, s.StreamOut(), err)
		}
		cons = append(cons, c)
	}
	return cons, stream.CachedInfo(), nil
}
