package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/schema"
)

// Defaults of SetupConfig.
const (
	DefaultAttemptTimeout = 5 * time.Second
	DefaultInitialBackoff = 250 * time.Millisecond
	DefaultMaxBackoff     = 5 * time.Second
)

// SetupConfig configures Setup.
type SetupConfig struct {
	// Subjects names the streams and buckets.
	Subjects schema.Subjects
	// Replicas is the number of replicas of every stream and bucket; default 1.
	Replicas int
	// Streams are the limits of the streams; its Replicas field is ignored
	// (Replicas above applies).
	Streams StreamOptions
	// LeaderTTL, when positive, makes Setup also create the leadership bucket
	// (LeaderKV) with this lease TTL; 0 leaves it to the session manager.
	LeaderTTL time.Duration

	// AttemptTimeout bounds one attempt of the whole set-up; an attempt that
	// runs out of it (JetStream did not answer) is retried. Default
	// DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// InitialBackoff and MaxBackoff bound the wait between attempts, which
	// doubles from the first to the second; defaults DefaultInitialBackoff and
	// DefaultMaxBackoff.
	InitialBackoff, MaxBackoff time.Duration

	// Log receives one warning "waiting for JetStream: <reason>" per wait;
	// the zero Logger logs nothing.
	Log zerolog.Logger
	// OnWait, when set, is called before each wait (from the goroutine that
	// runs Setup), so that the caller can report itself not ready meanwhile.
	OnWait func(Wait)
}

// Wait describes one wait of Setup for JetStream.
type Wait struct {
	// Reason says in words what Setup waits for, e.g. "JetStream did not
	// answer in time (a cluster without a meta leader yet?)".
	Reason string
	// Err is the error of the attempt that made it wait.
	Err error
	// Attempt counts the attempts made so far (1 at the first wait).
	Attempt int
	// RetryIn is how long Setup waits before the next attempt.
	RetryIn time.Duration
}

// Buckets are the key-value buckets Setup made.
type Buckets struct {
	Session jetstream.KeyValue // SessionKV
	Sent    jetstream.KeyValue // SentKV
	Leader  jetstream.KeyValue // LeaderKV; nil unless SetupConfig.LeaderTTL > 0
}

// ErrJetStreamDisabled is the wait reason of Setup, in words, when the
// connected server announces no JetStream at all (it may still be turned on).
// A server that answers that JetStream is not enabled for the account
// (API error 10039) is a configuration matter: Setup returns at once with an
// error wrapping ErrSetup and the jetstream.APIError.
var ErrJetStreamDisabled = errors.New("JetStream is not enabled on this server")

// ErrSetup is matched (errors.Is) by the errors of Setup other than the end
// of its context: JetStream answered, and refused the set-up.
var ErrSetup = errors.New("bus: set-up refused")

// Setup creates or updates everything the bridge needs in JetStream: the
// three streams (EnsureStreams), the session and sent buckets and, with a
// LeaderTTL, the leadership bucket. It is idempotent and safe to run from
// several replicas at once.
//
// While JetStream is not ready — the server does not answer JetStream
// requests (no responders, or no answer in time, as in a cluster that has not
// elected its meta leader yet), or it answers that it is temporarily
// unavailable, has no peers for the replicas yet or is not connected — Setup
// waits with backoff and tries again, calling OnWait and logging the reason
// each time, until it succeeds or ctx ends (then it returns ctx's error,
// wrapped). Any other error (a refused configuration, JetStream disabled for
// the account) is returned at once, wrapping ErrSetup.
func Setup(ctx context.Context, js jetstream.JetStream, cfg SetupConfig) (Buckets, error) {
	if cfg.LeaderTTL > 0 && cfg.LeaderTTL < time.Second {
		return Buckets{}, fmt.Errorf("%w: leader TTL %v is below one second", ErrSetup, cfg.LeaderTTL)
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = DefaultAttemptTimeout
	}
	if cfg.InitialBackoff <= 0 {
		cfg.InitialBackoff = DefaultInitialBackoff
	}
	if cfg.MaxBackoff < cfg.InitialBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.InitialBackoff)
	}
	var b Buckets
	attempts, err := untilReady(ctx, js, waitPolicy{
		attempt: cfg.AttemptTimeout, initial: cfg.InitialBackoff, max: cfg.MaxBackoff,
		log: cfg.Log, what: "waiting for JetStream: ", onWait: cfg.OnWait,
	}, func(ctx context.Context) (err error) {
		b, err = setupOnce(ctx, js, cfg)
		return err
	})
	switch {
	case err == nil:
		if attempts > 1 {
			cfg.Log.Info().Int("attempts", attempts).Msg("JetStream ready: streams and buckets set up")
		}
		return b, nil
	case ctx.Err() != nil:
		return Buckets{}, fmt.Errorf("bus: set-up: waiting for JetStream: %w (last error: %v)", ctx.Err(), err)
	default:
		return Buckets{}, fmt.Errorf("%w: %w", ErrSetup, err)
	}
}

// waitPolicy is how untilReady tries again.
type waitPolicy struct {
	attempt, initial, max time.Duration // one try's bound; the first wait, doubling up to max
	log                   zerolog.Logger
	what                  string     // the log message's start, before the reason
	onWait                func(Wait) // called before each wait, when set
}

// untilReady runs f, each try bounded by p.attempt, until it succeeds, fails
// for another reason than JetStream not being ready yet (notReady), or ctx
// ends; it waits with backoff between tries, logging why. It returns the
// tries made and the last error.
func untilReady(ctx context.Context, js jetstream.JetStream, p waitPolicy, f func(ctx context.Context) error) (int, error) {
	wait := p.initial
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, p.attempt)
		err := f(actx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return attempt, err
		}
		reason, transient := notReady(err)
		if !transient {
			return attempt, err
		}
		if js != nil && (errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled)) {
			if on, _ := js.Conn().ConnectedServerJetStream(); !on {
				reason = ErrJetStreamDisabled.Error() + " (no JetStream API answers; waiting in case it is being turned on)"
			}
		}
		p.log.Warn().Err(err).Int("attempt", attempt).Dur("retry_in", wait).Msg(p.what + reason)
		if p.onWait != nil {
			p.onWait(Wait{Reason: reason, Err: err, Attempt: attempt, RetryIn: wait})
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return attempt, err
		case <-t.C:
		}
		wait = min(2*wait, p.max)
	}
}

// setupOnce is one attempt of Setup, bounded by cfg.AttemptTimeout.
func setupOnce(ctx context.Context, js jetstream.JetStream, cfg SetupConfig) (Buckets, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.AttemptTimeout)
	defer cancel()
	replicas := max(cfg.Replicas, 1)
	so := cfg.Streams
	so.Replicas = replicas
	var b Buckets
	var err error
	if err = EnsureStreams(ctx, js, cfg.Subjects, so); err != nil {
		return Buckets{}, err
	}
	if b.Session, err = SessionKV(ctx, js, cfg.Subjects, replicas); err != nil {
		return Buckets{}, err
	}
	if b.Sent, err = SentKV(ctx, js, cfg.Subjects, replicas); err != nil {
		return Buckets{}, err
	}
	if cfg.LeaderTTL > 0 {
		if b.Leader, err = LeaderKV(ctx, js, cfg.Subjects, replicas, cfg.LeaderTTL); err != nil {
			return Buckets{}, err
		}
	}
	return b, nil
}

// JetStream API error codes that mean "not ready yet" rather than "no".
const (
	codeClusterNoPeers       = 10005 // no suitable peers for placement (the cluster is still forming)
	codeClusterNotAssigned   = 10007
	codeClusterNotAvailable  = 10008 // JetStream system temporarily unavailable
	codeClusterNotLeader     = 10009
	codeInsufficientResource = 10023 // also answered while peers are still unknown
	codeStreamOffline        = 10118
	codeNotEnabledForAccount = 10039 // a configuration matter: not waited for
)

// notReady reports whether err means that JetStream is not ready yet (so the
// set-up should wait and try again), and says why in words.
func notReady(err error) (string, bool) {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return "JetStream did not answer in time (a cluster without a meta leader yet?)", true
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return "no JetStream on the server yet (no responders)", true
	case errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrConnectionReconnecting):
		return "the NATS connection is down", true
	case errors.As(err, &apiErr):
		switch apiErr.ErrorCode {
		case codeClusterNoPeers, codeInsufficientResource:
			return "the JetStream cluster has not enough peers yet for the replicas: " + apiErr.Description, true
		case codeClusterNotAvailable, codeClusterNotAssigned, codeClusterNotLeader, codeStreamOffline:
			return "JetStream is temporarily unavailable: " + apiErr.Description, true
		}
		if apiErr.Code == 503 && apiErr.ErrorCode != codeNotEnabledForAccount {
			return "JetStream is unavailable: " + apiErr.Description, true
		}
	}
	return "", false
}

// WhileNotReady runs f until it succeeds, fails for another reason than
// JetStream not being ready yet (the transient errors Setup waits out: no
// answer in time, no responders, no peers yet, temporarily unavailable), or
// ctx ends. Each try is bounded by DefaultAttemptTimeout; between tries it
// waits with backoff (DefaultInitialBackoff doubling up to
// DefaultMaxBackoff) and logs why. What names the work in the log.
func WhileNotReady(ctx context.Context, log zerolog.Logger, what string, f func(ctx context.Context) error) error {
	_, err := untilReady(ctx, nil, waitPolicy{attempt: DefaultAttemptTimeout, initial: DefaultInitialBackoff, max: DefaultMaxBackoff,
		log: log, what: what + ": waiting for JetStream: "}, f)
	return err
}
