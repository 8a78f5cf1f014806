package egress

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/live"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

// Defaults of Config.
const (
	DefaultRate         = 1.0             // messages per second per account
	DefaultBurst        = 3               // messages sent back to back before pacing starts
	DefaultConsumer     = "bridge-egress" // durable consumer name on the QQ_OUT stream
	DefaultRetryFor     = 10 * time.Minute
	DefaultRetryInitial = time.Second
	DefaultRetryMax     = 30 * time.Second
	DefaultAckWait      = 10 * time.Second // a dead replica's request resumes within it (Config.AckWait)
	DefaultMaxDeliver   = 10
	DefaultInFlight     = 4 // requests one replica works at once (Config.InFlight)
)

// ErrConfig is wrapped by the errors of New for an unusable Config.
var ErrConfig = errors.New("egress: bad config")

// Resolver turns the target of a request into the current login's numbers;
// *directory.Directory implements it. An error wrapping
// directory.ErrUnknownTarget is a finding (the request is answered
// unknown_target and dropped); any other error is retried like a transient
// send failure.
type Resolver interface {
	Resolve(ctx context.Context, kind schema.Kind, to schema.Target) (qqclient.Target, error)
}

// Pacer paces the sends of each account; *pace.Limiter implements it. Wait
// returns when account may send one message, with how long it waited, or
// ctx's error when ctx ends first (the turn is then given back).
type Pacer interface {
	Wait(ctx context.Context, account int64) (time.Duration, error)
}

// Sender sends one message part; *qqclient.Client is the implementation.
type Sender interface {
	SendPart(ctx context.Context, t qqclient.Target, segs []qqclient.Segment) error
}

// Config configures an Egress. Client, Sessions, Dir, JS and SentKV are
// required. Every zero duration or number takes its default.
type Config struct {
	Client   Sender
	Sessions live.Source // the live sessions the parts are sent in
	Dir      Resolver
	JS       jetstream.JetStream
	SentKV   jetstream.KeyValue // idempotency records ("<prefix>_sent", TTL 24h)
	Subjects schema.Subjects
	Codec    schema.Codec // of published results; nil = JSON
	Log      zerolog.Logger

	// Rate is the number of messages per second sent per account (each part
	// of a split text counts); Burst the number sent back to back. Every
	// send of the Egress (consumer and Send) shares the pace.
	Rate  float64
	Burst int
	// Pacer, when set, paces the sends instead of the Egress's own token
	// buckets (Rate and Burst are then the Pacer's business): a
	// *pace.Limiter, whose buckets every replica shares, so that an account
	// keeps its pace however many replicas send.
	Pacer Pacer

	// Consumer is the durable name of the serial pull consumer on the QQ_OUT
	// stream; the consumers of its partitions are named after it
	// (PartitionConsumer: Consumer-p0, Consumer-p1, …). Replicas that use the
	// same name share the work.
	Consumer string
	// AckWait is the consumers' ack wait. The message being worked on is
	// kept in progress, and its
	// claim touched, every AckWait/3 (StaleAfter/3 when that is shorter), so
	// a request held by a replica that died is redelivered at most AckWait
	// after the death and taken up at once: sent, or answered maybe_sent
	// when its claim says it was being sent. A live replica is taken for
	// dead only when three heartbeats in a row are lost. The default, 10 s,
	// keeps that within the 15 s a failover is allowed. MaxDeliver bounds
	// redeliveries (a bridge that crashes on a message does not loop on it
	// forever).
	AckWait    time.Duration
	MaxDeliver int

	// RetryFor is how long a send keeps retrying transient failures (rate
	// limited, session reconnecting, contact lists that cannot be loaded)
	// before it gives up with rate_limited or session_unavailable; the
	// window restarts after each part sent. RetryInitial and RetryMax bound
	// the backoff between tries.
	RetryFor     time.Duration
	RetryInitial time.Duration
	RetryMax     time.Duration

	// StaleAfter is how old a "sending" idempotency record must be (no
	// heartbeat) before another worker treats its sender as dead and answers
	// maybe_sent; default AckWait. A redelivered request finds its dead
	// sender's record about AckWait old, so it is answered at once; a live
	// sender touches its record every StaleAfter/3 at most.
	StaleAfter time.Duration

	// InFlight is the number of requests of the stream this replica works
	// on at once, across the consumers of Run (default DefaultInFlight); each
	// replica adds its own. Each consumer (the serial one, one per partition
	// of the target subjects) has one request out at a time across the
	// replicas, so at most partitions+1 requests are worked on at once
	// whatever the replicas' InFlight, and requests to one target are sent
	// one after another in stream order. Pacing (Pacer, Rate) applies on top.
	InFlight int

	// Metrics, when set, counts the sends and the pacing waits and watches
	// the consumer's backlog (*metrics.Metrics).
	Metrics Metrics
}

// Metrics is what egress reports to; *metrics.Metrics implements it. Each
// method must be safe for concurrent use.
type Metrics interface {
	Sent(kind, code string, took time.Duration)
	PacingWait(d time.Duration)
	WatchConsumerPending(ctx context.Context, consumer string, every time.Duration, pending func(context.Context) (uint64, error))
}

// codeOK is the code of a sent request for Metrics.Sent (metrics.CodeOK).
const codeOK = "ok"

type nopMetrics struct{}

func (nopMetrics) Sent(string, string, time.Duration) {}
func (nopMetrics) PacingWait(time.Duration)           {}
func (nopMetrics) WatchConsumerPending(context.Context, string, time.Duration, func(context.Context) (uint64, error)) {
}

// Egress sends the messages requested on qq.out.* (Run) and by Send (the
// qq.api.send.* endpoints of package api). It is safe for concurrent use.
type Egress struct {
	cfg       Config
	heartbeat time.Duration
	log       zerolog.Logger
	pipeline  handler

	mu     sync.Mutex
	pacers map[int64]*rate.Limiter // per account
}

// New checks cfg, fills the defaults and returns an Egress. Errors wrap
// ErrConfig.
func New(cfg Config) (*Egress, error) {
	switch {
	case cfg.Client == nil:
		return nil, fmt.Errorf("%w: Client is required", ErrConfig)
	case cfg.Sessions == nil:
		return nil, fmt.Errorf("%w: Sessions is required", ErrConfig)
	case cfg.Dir == nil:
		return nil, fmt.Errorf("%w: Dir is required (every target is checked against the current login's contacts)", ErrConfig)
	case cfg.JS == nil:
		return nil, fmt.Errorf("%w: JS is required", ErrConfig)
	case cfg.SentKV == nil:
		return nil, fmt.Errorf("%w: SentKV is required", ErrConfig)
	case cfg.Rate < 0 || cfg.Burst < 0:
		return nil, fmt.Errorf("%w: Rate and Burst must not be negative", ErrConfig)
	case cfg.InFlight < 0:
		return nil, fmt.Errorf("%w: InFlight must not be negative", ErrConfig)
	case cfg.MaxDeliver < -1:
		return nil, fmt.Errorf("%w: MaxDeliver must be -1 (unlimited) or more", ErrConfig)
	}
	if cfg.Codec == nil {
		cfg.Codec = schema.JSON()
	}
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Burst == 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.Consumer == "" {
		cfg.Consumer = DefaultConsumer
	}
	if err := schema.ValidToken(PartitionConsumer(cfg.Consumer, bus.MaxOutPartitions)); err != nil {
		return nil, fmt.Errorf("%w: Consumer (with the partition suffix -p%d): %v", ErrConfig, bus.MaxOutPartitions, err)
	}
	setDefault(&cfg.AckWait, DefaultAckWait)
	setDefault(&cfg.RetryFor, DefaultRetryFor)
	setDefault(&cfg.RetryInitial, DefaultRetryInitial)
	setDefault(&cfg.RetryMax, DefaultRetryMax)
	setDefault(&cfg.StaleAfter, cfg.AckWait)
	if cfg.InFlight == 0 {
		cfg.InFlight = DefaultInFlight
	}
	if cfg.Metrics == nil {
		cfg.Metrics = nopMetrics{}
	}
	if cfg.MaxDeliver == 0 {
		cfg.MaxDeliver = DefaultMaxDeliver
	}
	if cfg.RetryMax < cfg.RetryInitial {
		cfg.RetryMax = cfg.RetryInitial
	}
	hb := min(cfg.AckWait/3, cfg.StaleAfter/3)
	hb = max(hb, 10*time.Millisecond)
	e := &Egress{
		cfg:       cfg,
		heartbeat: hb,
		log:       cfg.Log.With().Str("component", "egress").Str("prefix", cfg.Subjects.Prefix()).Logger(),
		pacers:    map[int64]*rate.Limiter{},
	}
	e.pipeline = e.newPipeline()
	return e, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Send validates req as a request of kind and sends it through the pipeline
// the consumer uses. A request with an id is sent at most once per id
// (across replicas and restarts, for 24 hours): a repeat gets the first
// outcome.
//
// ctx bounds the start of each part, not the parts in flight: once ctx ends,
// no part is started any more (a part being sent is finished, since a send
// cut short could not be told from a sent one), and Send returns at once
// with rate_limited or session_unavailable, saying why in the message — the
// text of context.Cause(ctx) when it has one. The parts not sent yet are sent
// by a later request with the same id.
func (e *Egress) Send(ctx context.Context, kind schema.Kind, req *schema.Request) schema.Result {
	if err := req.Validate(kind); err != nil {
		id := ""
		if req != nil {
			id = req.ID
		}
		return invalidResult(id, kind, err)
	}
	j := newJob(kind, req, req.ID, "")
	if req.ID != "" {
		j.key = idKey(req.ID)
	}
	start := time.Now()
	res, _ := e.pipeline(ctx, j)
	e.sent(j, res, time.Since(start))
	return res
}

// sent reports the outcome of j to the metrics.
func (e *Egress) sent(j *job, res schema.Result, took time.Duration) {
	code := codeOK
	if res.Error != nil {
		code = string(res.Error.Code)
	}
	e.cfg.Metrics.Sent(string(j.kind), code, took)
}

// pacer returns the token bucket of account, shared by every send path.
func (e *Egress) pacer(account int64) *rate.Limiter {
	e.mu.Lock()
	defer e.mu.Unlock()
	l, ok := e.pacers[account]
	if !ok {
		l = rate.NewLimiter(rate.Limit(e.cfg.Rate), e.cfg.Burst)
		e.pacers[account] = l
	}
	return l
}
