package media

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/internal/retry"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

// pullWait is how long one pull request waits for a job.
const pullWait = 10 * time.Second

// maxAckPending bounds the jobs in hand across all replicas.
const maxAckPending = 256

// Run takes the picture jobs of stream Subjects.StreamMediaJobs() (made by
// bus.SetupMedia) through the durable consumer Config.Consumer, at most
// Concurrency at a time, until ctx ends; then the jobs in hand are handed
// back and Run returns nil (Wait waits for them). A consumer that cannot be
// set up is retried; Run returns an error only when the job stream does not
// exist.
func (m *Media) Run(ctx context.Context) error {
	s := m.cfg.Subjects
	cfg := jetstream.ConsumerConfig{
		Durable:     m.cfg.Consumer,
		Description: "qqbridge media: fetches the pictures of received messages",
		AckPolicy:   jetstream.AckExplicitPolicy,
		AckWait:     m.cfg.FetchTimeout + 30*time.Second, // kept in progress between attempts
		MaxDeliver:  m.cfg.MaxDeliver,
		// The bound per replica is Concurrency (the slots below); this one
		// is the same on every replica, so that they do not rewrite it.
		MaxAckPending: maxAckPending,
	}
	bo := retry.Backoff(100*time.Millisecond, 5*time.Second)
	var cons jetstream.Consumer
	for attempt := 1; ; attempt++ {
		var err error
		if cons, err = m.cfg.JS.CreateOrUpdateConsumer(ctx, s.StreamMediaJobs(), cfg); err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil // stopped before it started
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("media: consumer %s on %s: %w", m.cfg.Consumer, s.StreamMediaJobs(), err)
		}
		// Pictures wait in the stream meanwhile; the rest of the bridge goes on.
		if attempt == 1 || attempt%20 == 0 {
			m.log.Warn().Err(err).Int("attempt", attempt).Msg("the picture job consumer cannot be set up yet; retrying")
		}
		if retry.Sleep(ctx, bo.NextBackOff()) != nil {
			return nil
		}
	}
	m.log.Info().Str("stream", s.StreamMediaJobs()).Int("concurrency", m.cfg.Concurrency).Msg("media worker running")
	slots := make(chan struct{}, m.cfg.Concurrency)
	bo.Reset()
	for {
		select {
		case <-ctx.Done():
			return nil
		case slots <- struct{}{}:
		}
		fctx, cancel := context.WithTimeout(ctx, pullWait)
		msg, err := cons.Next(jetstream.FetchContext(fctx))
		cancel()
		if ctx.Err() != nil {
			if msg != nil {
				_ = msg.Nak()
			}
			return nil
		}
		if err != nil {
			<-slots
			if !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
				m.log.Warn().Err(err).Msg("pulling the next picture job failed; retrying")
				_ = retry.Sleep(ctx, bo.NextBackOff())
			}
			continue
		}
		bo.Reset()
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer func() { <-slots }()
			m.handle(ctx, msg)
		}()
	}
}

// handle fetches, stores and reports one picture, then acknowledges the job;
// a job that cannot go on now (no session, ctx ended) is handed back.
func (m *Media) handle(ctx context.Context, msg jetstream.Msg) {
	var j job
	if err := json.Unmarshal(msg.Data(), &j); err != nil || j.Ref == "" || j.Subject == "" {
		m.log.Error().Msg("undecodable picture job; dropped")
		_ = msg.Term()
		return
	}
	log := m.log.With().Str("ref", j.Ref).Logger()
	// Stored already (a job redelivered after a crash between the put and
	// the event): report it again; the event id de-duplicates.
	if info, err := m.cfg.Store.GetInfo(ctx, j.Ref); err == nil && !info.Deleted {
		img := schema.Image{State: schema.ImageStored, Ref: j.Ref, Bucket: m.cfg.Subjects.MediaBucket(), Size: int64(info.Size),
			ContentType: info.Headers.Get(schema.HeaderContentType), SHA256: info.Headers.Get("Qq-Sha256")}
		m.finish(ctx, msg, &j, img)
		return
	}
	img, again := m.fetch(ctx, msg, &j)
	if again {
		meta, _ := msg.Metadata()
		if ctx.Err() == nil && meta != nil && int(meta.NumDelivered) >= m.cfg.MaxDeliver {
			m.finish(ctx, msg, &j, schema.Image{State: schema.ImageFailed, Ref: j.Ref, Reason: schema.ReasonFetchFailed})
			return
		}
		log.Info().Msg("picture handed back for later")
		_ = msg.NakWithDelay(5 * time.Second)
		return
	}
	m.finish(ctx, msg, &j, img)
}

// finish publishes the outcome and acknowledges the job.
func (m *Media) finish(ctx context.Context, msg jetstream.Msg, j *job, img schema.Image) {
	if err := m.publishOutcome(ctx, j, img); err != nil {
		_ = msg.Nak()
		return
	}
	_ = msg.Ack()
}

// fetch gets the picture and stores it. again is true when the job should
// be tried later (no live session, ctx ended) rather than finished with img.
func (m *Media) fetch(ctx context.Context, msg jetstream.Msg, j *job) (img schema.Image, again bool) {
	failed := func(reason string, size int64) (schema.Image, bool) {
		return schema.Image{State: schema.ImageFailed, Ref: j.Ref, Reason: reason, Size: size}, false
	}
	wait := retry.Backoff(m.cfg.RetryWait, 8*m.cfg.RetryWait)
	for attempt := 1; ; attempt++ {
		sctx, cancel := context.WithTimeout(ctx, m.cfg.SessionWait)
		s, err := m.cfg.Sessions.Await(sctx)
		cancel()
		if err != nil {
			return schema.Image{}, true
		}
		_ = msg.InProgress()
		fctx, cancel := context.WithTimeout(s.Context(), m.cfg.FetchTimeout)
		stop := context.AfterFunc(ctx, cancel)
		data, err := m.cfg.Client.Picture(fctx, j.FromUIN, j.FilePath)
		stop()
		cancel()
		var re *qqclient.RetcodeError
		switch {
		case err == nil:
			if int64(len(data)) > m.cfg.MaxBytes {
				return failed(schema.ReasonTooLarge, int64(len(data)))
			}
			_ = msg.InProgress()
			size, ct, sum, err := m.put(ctx, j.Ref, data)
			if err != nil {
				m.log.Warn().Err(err).Str("ref", j.Ref).Msg("storing the picture failed")
				if ctx.Err() != nil {
					return schema.Image{}, true
				}
				return failed(schema.ReasonFetchFailed, 0)
			}
			return schema.Image{State: schema.ImageStored, Ref: j.Ref, Bucket: m.cfg.Subjects.MediaBucket(),
				Size: size, ContentType: ct, SHA256: sum}, false
		case ctx.Err() != nil:
			return schema.Image{}, true
		case errors.Is(err, qqclient.ErrSessionLost):
			s.Lost(err)
			return failed(schema.ReasonUnavailable, 0) // f_uin was a number of the session that ended
		case errors.As(err, &re), errors.Is(err, qqclient.ErrBadRequest):
			m.log.Warn().Err(err).Str("ref", j.Ref).Msg("QQ did not serve the picture")
			return failed(schema.ReasonUnavailable, 0)
		}
		if attempt >= m.cfg.Attempts {
			m.log.Warn().Err(err).Str("ref", j.Ref).Int("attempts", attempt).Msg("fetching the picture failed")
			return failed(schema.ReasonFetchFailed, 0)
		}
		d := wait.NextBackOff()
		m.log.Info().Err(err).Str("ref", j.Ref).Int("attempt", attempt).Dur("retry_in", d).Msg("fetching the picture failed; retrying")
		_ = msg.InProgress()
		if retry.Sleep(ctx, d) != nil {
			return schema.Image{}, true
		}
	}
}
