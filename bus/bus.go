// Package bus is the NATS plumbing of qqbridge: the streams and key-value
// buckets the bridge uses, each created or updated idempotently so that any
// number of replicas may run the same set-up at once. It speaks only the NATS
// client protocol; the embedded nats-server is package natsembed, which
// library packages do not import.
//
// The names of every stream and bucket come from schema.Subjects (one place);
// the only names made here are those schema does not define: the idempotency
// bucket of sent requests (SentBucket) and the replica-leadership lease
// bucket (LeaderBucket).
package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/qqbridge/qqbridge/schema"
)

// Defaults of StreamOptions and of the buckets.
const (
	DefaultInMaxAge     = 7 * 24 * time.Hour
	DefaultDuplicates   = 20 * time.Minute
	DefaultResultMaxAge = 24 * time.Hour
	DefaultSentTTL      = 24 * time.Hour

	DefaultInMaxBytes     = 1 << 30 // 1 GiB
	DefaultInMaxMsgs      = 1_000_000
	DefaultOutMaxBytes    = 64 << 20 // 64 MiB
	DefaultOutMaxMsgs     = 100_000
	DefaultOutMaxAge      = 24 * time.Hour
	DefaultResultMaxBytes = 256 << 20
	DefaultResultMaxMsgs  = 1_000_000

	// DefaultOutPartitions is the number of partitions of the target
	// subjects in the outbound work queue (StreamOptions.OutPartitions);
	// MaxOutPartitions the most it may have.
	DefaultOutPartitions = 8
	MaxOutPartitions     = 256
)

// StreamOptions are the limits of the bridge's streams. Zero fields take
// their defaults.
type StreamOptions struct {
	// Replicas is the number of stream replicas in a cluster; default 1.
	Replicas int
	// InMaxAge is how long inbound events are kept; default 7 days.
	InMaxAge time.Duration
	// Duplicates is the de-duplication window (Nats-Msg-Id) of the in and
	// out streams; default 20 minutes.
	Duplicates time.Duration
	// ResultMaxAge is how long send results are kept; default 24 hours.
	ResultMaxAge time.Duration
	// OutMaxAge is how long a send request waits in the work queue before
	// it is dropped unsent; default 24 hours.
	OutMaxAge time.Duration

	// The size limits of each stream: bytes and messages; 0 takes the
	// default (DefaultInMaxBytes, …), -1 is unlimited. The inbound and
	// result streams drop their oldest messages at the limit; the outbound
	// work queue refuses new requests instead (the publisher gets an error),
	// so that queued sends are never dropped silently.
	InMaxBytes, OutMaxBytes, ResultMaxBytes int64
	InMaxMsgs, OutMaxMsgs, ResultMaxMsgs    int64

	// OutPartitions is the number of partitions the outbound work queue
	// spreads the target subjects (<prefix>.out.<kind>.<key>, see
	// schema.Subjects.OutTo) over: each partition is worked one request at a
	// time, in order, different partitions at once. 0 takes
	// DefaultOutPartitions, -1 turns the partitions off (the target subjects
	// are then stored as published and worked one at a time with the
	// others); at most MaxOutPartitions. Every replica must be given the same
	// number, or each start changes the stream.
	OutPartitions int
}

// Validate checks the options that have no sensible reading when out of
// range. EnsureStreams calls it.
func (o StreamOptions) Validate() error {
	if o.OutPartitions < -1 || o.OutPartitions > MaxOutPartitions {
		return fmt.Errorf("bus: OutPartitions %d: want 1 to %d, 0 for the default (%d) or -1 for none", o.OutPartitions, MaxOutPartitions, DefaultOutPartitions)
	}
	return nil
}

func (o StreamOptions) withDefaults() StreamOptions {
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.InMaxAge <= 0 {
		o.InMaxAge = DefaultInMaxAge
	}
	if o.Duplicates <= 0 {
		o.Duplicates = DefaultDuplicates
	}
	if o.ResultMaxAge <= 0 {
		o.ResultMaxAge = DefaultResultMaxAge
	}
	if o.OutMaxAge <= 0 {
		o.OutMaxAge = DefaultOutMaxAge
	}
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		} else if *v < 0 {
			*v = -1
		}
	}
	def(&o.InMaxBytes, DefaultInMaxBytes)
	def(&o.InMaxMsgs, DefaultInMaxMsgs)
	def(&o.OutMaxBytes, DefaultOutMaxBytes)
	def(&o.OutMaxMsgs, DefaultOutMaxMsgs)
	def(&o.ResultMaxBytes, DefaultResultMaxBytes)
	def(&o.ResultMaxMsgs, DefaultResultMaxMsgs)
	switch {
	case o.OutPartitions == 0:
		o.OutPartitions = DefaultOutPartitions
	case o.OutPartitions < 0:
		o.OutPartitions = -1
	case o.OutPartitions > MaxOutPartitions:
		o.OutPartitions = MaxOutPartitions
	}
	return o
}

// StreamConfigs returns the configurations EnsureStreams applies, in order:
// the inbound stream, the outbound work queue and the result stream.
//
//   - s.StreamIn(): subjects <prefix>.in.>, limits retention, file storage,
//     MaxAge InMaxAge, InMaxBytes, InMaxMsgs (the oldest go first), the
//     Duplicates window; with more than one replica, atomic batch publish
//     allowed.
//   - s.StreamOut(): subjects <prefix>.out.>, work-queue retention (each
//     request is taken by one bridge replica and gone once acknowledged),
//     file storage, MaxAge OutMaxAge, OutMaxBytes, OutMaxMsgs (a full queue
//     refuses new requests), the Duplicates window. Unless OutPartitions is
//     -1, a subject transform stores each request of a target subject
//     <prefix>.out.<kind>.<key> as <prefix>.outp.<n>.<kind>.<key>, n =
//     partition(OutPartitions) of kind and key (the server's hash: one
//     target, one partition); egress works each partition in order through
//     a consumer of its own (see OutPartitions).
//   - s.StreamResult(): subjects <prefix>.result.>, limits retention, file
//     storage, MaxAge ResultMaxAge, ResultMaxBytes, ResultMaxMsgs, so that an
//     outcome waits for a consumer that was away.
func StreamConfigs(s schema.Subjects, o StreamOptions) []jetstream.StreamConfig {
	o = o.withDefaults()
	var transform *jetstream.SubjectTransformConfig
	if o.OutPartitions > 0 {
		transform = &jetstream.SubjectTransformConfig{
			Source:      s.OutTargetWildcard(),
			Destination: fmt.Sprintf("%s.{{partition(%d,1,2)}}.{{wildcard(1)}}.{{wildcard(2)}}", s.OutPartitionBase(), o.OutPartitions),
		}
	}
	return []jetstream.StreamConfig{
		{
			Name:        s.StreamIn(),
			Description: "qqbridge inbound QQ events",
			Subjects:    []string{s.InWildcard()},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    o.Replicas,
			MaxAge:      o.InMaxAge,
			MaxBytes:    o.InMaxBytes,
			MaxMsgs:     o.InMaxMsgs,
			Duplicates:  min(o.Duplicates, o.InMaxAge),
			Discard:     jetstream.DiscardOld,
			// Replicated, ingress publishes a poll answer in atomic
			// batches (nats-server 2.12 and later; see ingress).
			AllowAtomicPublish: o.Replicas > 1,
		},
		{
			Name:        s.StreamOut(),
			Description: "qqbridge outbound send requests (work queue)",
			Subjects:    []string{s.OutWildcard()},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    o.Replicas,
			MaxAge:      o.OutMaxAge,
			MaxBytes:    o.OutMaxBytes,
			MaxMsgs:     o.OutMaxMsgs,
			Duplicates:  min(o.Duplicates, o.OutMaxAge),
			Discard:     jetstream.DiscardNew,

			SubjectTransform: transform,
		},
		{
			Name:        s.StreamResult(),
			Description: "qqbridge send results",
			Subjects:    []string{s.ResultWildcard()},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    o.Replicas,
			MaxAge:      o.ResultMaxAge,
			MaxBytes:    o.ResultMaxBytes,
			MaxMsgs:     o.ResultMaxMsgs,
			Duplicates:  min(o.Duplicates, o.ResultMaxAge),
			Discard:     jetstream.DiscardOld,
		},
	}
}

// EnsureStreams creates the bridge's three streams (see StreamConfigs) or
// updates them to the given options. It is idempotent and safe to run from
// several replicas at once: creating a stream that exists with the same
// configuration is a no-op, and one that exists with another is updated. It
// makes one try; Setup waits for JetStream and tries again.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, s schema.Subjects, o StreamOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	for _, cfg := range StreamConfigs(s, o) {
		if err := ensureStream(ctx, js, cfg); err != nil {
			return err
		}
	}
	return nil
}

func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) error {
	// Create first, update only a stream that exists with another
	// configuration: creating an identical stream is a no-op, while on a
	// cluster an update racing with another replica's create of the same new
	// stream leaves both requests unanswered.
	var err error
	for range 3 {
		if _, err = js.CreateStream(ctx, cfg); err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			break
		}
		if _, err = js.UpdateStream(ctx, cfg); err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			break
		}
		// Deleted in between: create it again.
	}
	return fmt.Errorf("bus: stream %s: %w", cfg.Name, err)
}

// OutPartitions returns the number of partitions of the outbound work queue
// whose configuration is cfg: the n of the subject transform StreamConfigs
// makes, 0 when the stream has none (set up with OutPartitions -1, or by an
// older bridge), in which case the target subjects are stored as published.
func OutPartitions(s schema.Subjects, cfg jetstream.StreamConfig) int {
	t := cfg.SubjectTransform
	if t == nil || t.Source != s.OutTargetWildcard() {
		return 0
	}
	rest, ok := strings.CutPrefix(t.Destination, s.OutPartitionBase()+".{{partition(")
	if !ok {
		return 0
	}
	num, rest, ok := strings.Cut(rest, ",")
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n < 1 || rest != "1,2)}}.{{wildcard(1)}}.{{wildcard(2)}}" {
		return 0
	}
	return n
}

// SentBucket returns the name of the KV bucket of send idempotency records:
// the session bucket's base with "_sent" (prefix "qq" → "qq_sent").
func SentBucket(s schema.Subjects) string { return bucketBase(s) + "_sent" }

// LeaderBucket returns the name of the KV bucket that holds the replica
// leadership lease (key LeaderKey): the session bucket's name with "_leader"
// ("qq_session_leader"). The lease has a bucket of its own because its expiry
// is the bucket's TTL, which must not apply to the session's other keys.
func LeaderBucket(s schema.Subjects) string { return s.SessionBucket() + "_leader" }

// LeaderKey is the key of the lease in LeaderBucket.
const LeaderKey = "leader"

// bucketBase is the lower-case base of bucket names ("qq"), derived from the
// session bucket's name so that schema stays the one place names come from.
func bucketBase(s schema.Subjects) string {
	name := s.SessionBucket()
	const suffix = "_session"
	if len(name) > len(suffix) && name[len(name)-len(suffix):] == suffix {
		return name[:len(name)-len(suffix)]
	}
	return name
}

// SessionKVConfig is the configuration of the session bucket
// (s.SessionBucket()): file storage, one value per key, no TTL. Keys:
// "state", "qr", "session" (the saved login, encrypted when a session key is
// set) and "login" (a login request forwarded by a follower replica).
func SessionKVConfig(s schema.Subjects, replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      s.SessionBucket(),
		Description: "qqbridge session: latest state, QR and the saved login",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	}
}

// SentKVConfig is the configuration of the sent bucket (SentBucket): file
// storage, keys expire after 24 hours.
func SentKVConfig(s schema.Subjects, replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      SentBucket(s),
		Description: "qqbridge send idempotency records",
		History:     1,
		TTL:         DefaultSentTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	}
}

// LeaderKVConfig is the configuration of the leadership bucket
// (LeaderBucket): memory storage (a lease need not survive a server
// restart), every key expires ttl after its last write.
func LeaderKVConfig(s schema.Subjects, replicas int, ttl time.Duration) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      LeaderBucket(s),
		Description: "qqbridge replica leadership lease",
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.MemoryStorage,
		Replicas:    max(replicas, 1),
	}
}

// SessionKV creates or updates the session bucket (SessionKVConfig) and
// returns it.
func SessionKV(ctx context.Context, js jetstream.JetStream, s schema.Subjects, replicas int) (jetstream.KeyValue, error) {
	return ensureKV(ctx, js, SessionKVConfig(s, replicas))
}

// SentKV creates or updates the sent bucket (SentKVConfig) and returns it.
func SentKV(ctx context.Context, js jetstream.JetStream, s schema.Subjects, replicas int) (jetstream.KeyValue, error) {
	return ensureKV(ctx, js, SentKVConfig(s, replicas))
}

// LeaderKV creates or updates the leadership bucket (LeaderKVConfig) with the
// lease TTL and returns it. Every replica must use the same TTL, or each
// start changes it.
func LeaderKV(ctx context.Context, js jetstream.JetStream, s schema.Subjects, replicas int, ttl time.Duration) (jetstream.KeyValue, error) {
	if ttl < time.Second {
		return nil, fmt.Errorf("bus: LeaderKV: TTL %v is below one second", ttl)
	}
	return ensureKV(ctx, js, LeaderKVConfig(s, replicas, ttl))
}

func ensureKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return createOrUpdate(cfg.Bucket,
		func() (jetstream.KeyValue, error) { return js.CreateKeyValue(ctx, cfg) },
		func() (jetstream.KeyValue, error) { return js.UpdateKeyValue(ctx, cfg) })
}

// createOrUpdate makes a bucket (KV or Object Store): create first, as
// ensureStream does and for the same reason, then update one that exists;
// it tries again when another replica's create or delete raced with it.
func createOrUpdate[B any](bucket string, create, update func() (B, error)) (B, error) {
	var (
		b   B
		err error
	)
	for range 3 {
		if b, err = create(); err == nil {
			return b, nil
		}
		if !errors.Is(err, jetstream.ErrBucketExists) && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			break
		}
		if b, err = update(); err == nil {
			return b, nil
		}
		if !errors.Is(err, jetstream.ErrBucketNotFound) {
			break
		}
	}
	var zero B
	return zero, fmt.Errorf("bus: bucket %s: %w", bucket, err)
}
