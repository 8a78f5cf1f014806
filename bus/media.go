package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/schema"
)

// DefaultMediaTTL is how long pictures and files stay in the media bucket
// unless configured otherwise.
const DefaultMediaTTL = 7 * 24 * time.Hour

// MediaStoreConfig is the configuration of the media bucket
// (s.MediaBucket()): an Object Store with file storage whose objects expire
// ttl after they were put (0: never).
func MediaStoreConfig(s schema.Subjects, replicas int, ttl time.Duration) jetstream.ObjectStoreConfig {
	return jetstream.ObjectStoreConfig{
		Bucket:      s.MediaBucket(),
		Description: "qqbridge pictures and files received",
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	}
}

// MediaJobsStreamConfig is the configuration of the picture job stream
// (s.StreamMediaJobs()): a work queue on s.MediaJobs(), file storage, the
// given de-duplication window (0: DefaultDuplicates), so that a job survives
// a crash and is taken by one replica.
func MediaJobsStreamConfig(s schema.Subjects, replicas int, duplicates time.Duration) jetstream.StreamConfig {
	if duplicates <= 0 {
		duplicates = DefaultDuplicates
	}
	return jetstream.StreamConfig{
		Name:        s.StreamMediaJobs(),
		Description: "qqbridge pictures to fetch (work queue)",
		Subjects:    []string{s.MediaJobs()},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		Duplicates:  duplicates,
		Discard:     jetstream.DiscardOld,
	}
}

// SetupMedia creates or updates the picture job stream and the media bucket
// (MediaJobsStreamConfig, MediaStoreConfig) and returns the bucket. It makes
// one try and is idempotent.
func SetupMedia(ctx context.Context, js jetstream.JetStream, s schema.Subjects, replicas int, ttl time.Duration) (jetstream.ObjectStore, error) {
	if ttl < 0 {
		return nil, fmt.Errorf("bus: media TTL %v is negative", ttl)
	}
	if err := ensureStream(ctx, js, MediaJobsStreamConfig(s, replicas, 0)); err != nil {
		return nil, err
	}
	cfg := MediaStoreConfig(s, replicas, ttl)
	return createOrUpdate(cfg.Bucket,
		func() (jetstream.ObjectStore, error) { return js.CreateObjectStore(ctx, cfg) },
		func() (jetstream.ObjectStore, error) { return js.UpdateObjectStore(ctx, cfg) })
}
