package main

import (
	"context"
	"flag"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/live"
	"github.com/qqbridge/qqbridge/media"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

// mediaConfig is the pictures-and-files part of config (flags --media-*).
type mediaConfig struct {
	TTL          time.Duration // how long objects stay in <prefix>_media (0: forever)
	MaxBytes     int64         // the largest picture or file stored
	Concurrency  int           // pictures fetched at once
	FetchTimeout time.Duration // one fetch attempt
}

func defaultMediaConfig() mediaConfig {
	return mediaConfig{TTL: bus.DefaultMediaTTL, MaxBytes: media.DefaultMaxBytes, Concurrency: media.DefaultConcurrency,
		FetchTimeout: media.DefaultFetchTimeout}
}

// addMediaFlags registers the --media-* flags into m.
func addMediaFlags(fs *flag.FlagSet, m *mediaConfig) {
	fs.DurationVar(&m.TTL, "media-ttl", m.TTL, "how long received pictures and files stay in the Object Store bucket <prefix>_media (0: forever)")
	fs.Int64Var(&m.MaxBytes, "media-max-bytes", m.MaxBytes, "largest picture or file stored, in `bytes`; a larger picture gives media.failed too_large")
	fs.IntVar(&m.Concurrency, "media-concurrency", m.Concurrency, "pictures fetched at once")
	fs.DurationVar(&m.FetchTimeout, "media-fetch-timeout", m.FetchTimeout, "bound of one picture or file transfer (QQ's servers took 10–45 s)")
}

// checkMediaFlags checks the --media-* values.
func (f *flagSet) checkMediaFlags(m mediaConfig) error {
	switch {
	case m.TTL < 0:
		return f.badf("media-ttl", "must not be negative, got %v", m.TTL)
	case m.MaxBytes < 1 || m.MaxBytes > media.MaxMaxBytes:
		return f.badf("media-max-bytes", "must be 1 to %d, got %d", media.MaxMaxBytes, m.MaxBytes)
	case m.Concurrency < 1 || m.Concurrency > 64:
		return f.badf("media-concurrency", "must be 1 to 64, got %d", m.Concurrency)
	}
	return f.checkPositive("media-fetch-timeout", m.FetchTimeout)
}

// newMedia makes the media bucket, the picture job stream and the worker.
func newMedia(ctx context.Context, js jetstream.JetStream, client *qqclient.Client, sessions live.Source, s schema.Subjects,
	codec schema.Codec, replicas int, m mediaConfig, log zerolog.Logger) (*media.Media, error) {
	// Replicas starting together on a cluster race to create the same
	// stream and bucket; an attempt JetStream does not answer in time is
	// tried again.
	var store jetstream.ObjectStore
	err := bus.WhileNotReady(ctx, log, "media set-up", func(ctx context.Context) (err error) {
		store, err = bus.SetupMedia(ctx, js, s, replicas, m.TTL)
		return err
	})
	if err != nil {
		return nil, err
	}
	return media.New(media.Config{
		Client: client, Sessions: sessions, JS: js, Store: store, Subjects: s, Codec: codec, Log: log,
		MaxBytes: m.MaxBytes, Concurrency: m.Concurrency, FetchTimeout: m.FetchTimeout,
	})
}
