package egress

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

// Defaults of Config.
const (
	DefaultRate          = 1.0             // messages per second per account
	DefaultBurst         = 3               // messages sent back to back before pacing starts
	DefaultConsumer      = "bridge-egress" // durable consumer name on the QQ_OUT stream
	DefaultRetryFor      = 10 * time.Minute
	DefaultRetryInitial  = time.Second
	DefaultRetryMax      = 30 * time.Second
	DefaultAckWait       = 30 * time.Second
	DefaultMaxDeliver    = 10
	DefaultAPITimeout    = 30 * time.Second
	DefaultAPIConcurrent = 32
)

// ServiceVersion is the version the qq.api.* micro service announces.
const ServiceVersion = "1.0.0"

// QueueGroup is the queue group of the micro service's endpoints, so that the
// replicas of one bridge share the requests.
const QueueGroup = "qqbridge"

// ErrConfig is wrapped by the errors of New for an unusable Config.
var ErrConfig = errors.New("egress: bad config")

// Online describes a live session: Account is the QQ number; Gen increments
// at every (re)login. (Transitional: the session package hands out
// live.Session now; cmd/bridge adapts it until egress takes live.Source.)
type Online struct {
	Account int64
	Gen     uint64
}

// Sessions is what egress needs of the session manager (cmd/bridge adapts
// *session.Manager to it).
//
// WaitOnline blocks until a session is live (or ctx is done) and returns it.
// ReportLost tells the manager that a call in session gen failed with
// qqclient.ErrSessionLost; the manager re-logs in once per generation.
// State and RequestLogin serve qq.api.session.state and qq.api.session.login.
type Sessions interface {
	WaitOnline(ctx context.Context) (Online, error)
	ReportLost(gen uint64, err error)
	State() schema.SessionState
	RequestLogin(ctx context.Context) error
}

// Directory resolves stable numbers to the current session's numbers and
// lists the contacts.
//
// FriendUIN returns the uin of the friend with QQ number qq; MemberUIN the uin
// of the member with QQ number qq of the group with session number gid (for
// temporary sessions); GroupGID the gid of the group with number number. An
// error that wraps none of qqclient's transient errors (ErrSessionLost,
// ErrRateLimited, ErrHTTP, ErrNotLoggedIn) nor a context error means the
// target is unknown (directory.ErrUnknownTarget). The listing methods serve
// qq.api.contacts.*. *directory.Directory implements it.
type Directory interface {
	FriendUIN(ctx context.Context, qq int64) (int64, error)
	MemberUIN(ctx context.Context, gid, qq int64) (int64, error)
	GroupGID(ctx context.Context, number int64) (int64, error)
	Friends() []schema.Contact
	Groups() []schema.GroupRef
	Discussions() []schema.DiscussRef
}

// Sender sends one message part; *qqclient.Client is the implementation.
type Sender interface {
	SendPart(ctx context.Context, t qqclient.Target, segs []qqclient.Segment) error
}

// Config configures an Egress. Client, Session, NC, JS and SentKV are
// required; Dir is required for stable targets (qq, group) and the contacts
// endpoints. Every zero duration or number takes its default.
type Config struct {
	Client   Sender
	Session  Sessions
	Dir      Directory
	NC       *nats.Conn
	JS       jetstream.JetStream
	SentKV   jetstream.KeyValue // idempotency records ("<prefix>_sent", TTL 24h)
	Subjects schema.Subjects
	Codec    schema.Codec // of published results; nil = JSON
	Log      zerolog.Logger

	// Rate is the number of messages per second sent per account (each part
	// of a split text counts); Burst the number sent back to back. The
	// consumer and the API share the pace.
	Rate  float64
	Burst int

	// Consumer is the durable name of the pull consumer on the QQ_OUT
	// stream; replicas that use the same name share the work.
	Consumer string
	// AckWait is the consumer's ack wait; the message being worked on is
	// kept in progress every AckWait/3. MaxDeliver bounds redeliveries (a
	// bridge that crashes on a message does not loop on it forever).
	AckWait    time.Duration
	MaxDeliver int

	// RetryFor is how long a send keeps retrying transient failures (rate
	// limited, session reconnecting) before it gives up with rate_limited or
	// session_unavailable; the window restarts after each part sent.
	// RetryInitial and RetryMax bound the backoff between tries.
	RetryFor     time.Duration
	RetryInitial time.Duration
	RetryMax     time.Duration

	// StaleAfter is how old a "sending" idempotency record must be (no
	// heartbeat) before another worker treats its sender as dead and answers
	// maybe_sent; default 3×AckWait/3 = AckWait.
	StaleAfter time.Duration

	// APITimeout bounds one qq.api.send.* request; when it expires before the
	// message could be sent the answer is rate_limited or
	// session_unavailable. APIConcurrent bounds the sends served at once.
	APITimeout    time.Duration
	APIConcurrent int
}

// Egress sends the messages requested on qq.out.* (Run) and through the
// qq.api.* micro service (Service). It is safe for concurrent use.
type Egress struct {
	cfg       Config
	codec     schema.Codec
	heartbeat time.Duration
	log       zerolog.Logger

	mu     sync.Mutex
	pacers map[int64]*rate.Limiter // per account

	api sync.WaitGroup // API sends in flight
}

// New checks cfg, fills the defaults and returns an Egress. Errors wrap
// ErrConfig.
func New(cfg Config) (*Egress, error) {
	switch {
	case cfg.Client == nil:
		return nil, fmt.Errorf("%w: Client is required", ErrConfig)
	case cfg.Session == nil:
		return nil, fmt.Errorf("%w: Session is required", ErrConfig)
	case cfg.NC == nil:
		return nil, fmt.Errorf("%w: NC is required", ErrConfig)
	case cfg.JS == nil:
		return nil, fmt.Errorf("%w: JS is required", ErrConfig)
	case cfg.SentKV == nil:
		return nil, fmt.Errorf("%w: SentKV is required", ErrConfig)
	case cfg.Rate < 0 || cfg.Burst < 0:
		return nil, fmt.Errorf("%w: Rate and Burst must not be negative", ErrConfig)
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
	if err := schema.ValidToken(cfg.Consumer); err != nil {
		return nil, fmt.Errorf("%w: Consumer: %v", ErrConfig, err)
	}
	setDefault(&cfg.AckWait, DefaultAckWait)
	setDefault(&cfg.RetryFor, DefaultRetryFor)
	setDefault(&cfg.RetryInitial, DefaultRetryInitial)
	setDefault(&cfg.RetryMax, DefaultRetryMax)
	setDefault(&cfg.APITimeout, DefaultAPITimeout)
	setDefault(&cfg.StaleAfter, cfg.AckWait)
	if cfg.MaxDeliver == 0 {
		cfg.MaxDeliver = DefaultMaxDeliver
	}
	if cfg.APIConcurrent <= 0 {
		cfg.APIConcurrent = DefaultAPIConcurrent
	}
	if cfg.RetryMax < cfg.RetryInitial {
		cfg.RetryMax = cfg.RetryInitial
	}
	hb := cfg.AckWait / 3
	if s := cfg.StaleAfter / 3; s < hb {
		hb = s
	}
	hb = max(hb, 10*time.Millisecond)
	return &Egress{
		cfg:       cfg,
		codec:     cfg.Codec,
		heartbeat: hb,
		log:       cfg.Log.With().Str("component", "egress").Str("prefix", cfg.Subjects.Prefix()).Logger(),
		pacers:    map[int64]*rate.Limiter{},
	}, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
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
