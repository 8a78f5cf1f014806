// Package media stores the pictures and files the account receives in the
// media bucket, a NATS JetStream Object Store (<prefix>_media).
//
// Pictures: ingress publishes a message event at once, with a pending image
// segment per picture ({"type":"image","image":{"state":"pending","ref":…}}),
// and hands the pictures to Enqueue, which puts one job per picture into the
// work-queue stream <PREFIX>_MEDIA_JOBS (Nats-Msg-Id = the object name, so a
// repeat is dropped). Run takes the jobs, at most Config.Concurrency at a
// time, on any replica with a live session: it fetches the picture through
// the session (get_offpic2), bounded by FetchTimeout and retried up to
// Attempts times, puts it into the bucket under the segment's ref and
// publishes media.stored (or media.failed with a reason: too_large,
// unsupported, unavailable, fetch_failed) on <prefix>.in.media.<conversation>.
// A slow picture holds up neither the poll batch nor the other pictures; a
// crash loses no job (it is acknowledged only once its outcome is published).
//
// Files: ingress publishes a file offer as a file.offer event; Accept (the
// API's file.accept) takes the file through a live session, stores it and
// publishes file.received; Refuse refuses it.
//
// The session's credentials (psessionid in the fetch URLs) are never logged:
// the qqclient errors carry no URL.
package media

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
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
	DefaultMaxBytes       = 8 << 20
	DefaultConcurrency    = 4
	DefaultFetchTimeout   = 90 * time.Second
	DefaultAttempts       = 3
	DefaultRetryWait      = time.Second
	DefaultSessionWait    = 30 * time.Second
	DefaultPublishTimeout = 5 * time.Second
	DefaultMaxDeliver     = 5
	DefaultConsumer       = "media"
	// MaxMaxBytes is the largest MaxBytes: qqclient reads at most 16 MiB of
	// an answer, so a limit at or above that could not tell a cut picture.
	MaxMaxBytes = 16<<20 - 1
)

// Errors of Accept and Refuse (errors.Is).
var (
	ErrOfferExpired = errors.New("media: the file offer expired or was answered already")
	ErrTooLarge     = errors.New("media: larger than the size limit")
	ErrNoSession    = errors.New("media: no live QQ session")
	ErrUnavailable  = errors.New("media: QQ did not serve it")
	ErrFetch        = errors.New("media: the transfer failed")
)

// Fetcher makes the transfer calls; *qqclient.Client implements it.
type Fetcher interface {
	Picture(ctx context.Context, fromUIN int64, filePath string) ([]byte, error)
	AcceptFile(ctx context.Context, f qqclient.FileOffer) ([]byte, error)
	RefuseFile(ctx context.Context, f qqclient.FileOffer) error
}

// Config configures a Media. Client, Sessions, JS and Store are required.
type Config struct {
	Client Fetcher
	// Sessions hands out live sessions (session.Manager's Sessions: any
	// replica with a live session fetches).
	Sessions live.Source
	JS       jetstream.JetStream
	// Store is the media bucket (bus.SetupMedia).
	Store    jetstream.ObjectStore
	Subjects schema.Subjects
	// Codec encodes the events; nil = JSON.
	Codec schema.Codec
	Log   zerolog.Logger
	// MaxBytes is the largest picture or file stored (default 8 MiB, at
	// most MaxMaxBytes); a larger one gives media.failed too_large.
	MaxBytes int64
	// Concurrency is the number of pictures fetched at once (default 4).
	Concurrency int
	// FetchTimeout bounds one fetch attempt (default 90s; QQ's servers took
	// 10–45 s).
	FetchTimeout time.Duration
	// Attempts is the number of tries of a picture that fails in transit
	// (default 3); RetryWait the pause before the second, doubling.
	Attempts  int
	RetryWait time.Duration
	// SessionWait is how long a job waits for a live session before it is
	// handed back for later (default 30s).
	SessionWait time.Duration
	// MaxDeliver is how often a job is taken before it fails fetch_failed
	// (default 5).
	MaxDeliver int
	// Consumer is the durable consumer name on the job stream (default
	// "media").
	Consumer       string
	PublishTimeout time.Duration
}

// Media is the picture worker and the file store. Enqueue is safe for
// concurrent use; Run runs once.
type Media struct {
	cfg   Config
	codec schema.Codec
	log   zerolog.Logger
	wg    sync.WaitGroup
}

// New checks cfg and makes a Media.
func New(cfg Config) (*Media, error) {
	switch {
	case cfg.Client == nil || cfg.Sessions == nil || cfg.JS == nil || cfg.Store == nil:
		return nil, errors.New("media: Config.Client, Sessions, JS and Store are required")
	case cfg.MaxBytes < 0 || cfg.MaxBytes > MaxMaxBytes:
		return nil, fmt.Errorf("media: MaxBytes %d: want 1 to %d", cfg.MaxBytes, MaxMaxBytes)
	case cfg.Concurrency < 0 || cfg.Attempts < 0 || cfg.FetchTimeout < 0 || cfg.RetryWait < 0 || cfg.SessionWait < 0:
		return nil, errors.New("media: negative Concurrency, Attempts, FetchTimeout, RetryWait or SessionWait")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.FetchTimeout, DefaultFetchTimeout)
	def(&cfg.RetryWait, DefaultRetryWait)
	def(&cfg.SessionWait, DefaultSessionWait)
	def(&cfg.PublishTimeout, DefaultPublishTimeout)
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Attempts == 0 {
		cfg.Attempts = DefaultAttempts
	}
	if cfg.MaxDeliver <= 0 {
		cfg.MaxDeliver = DefaultMaxDeliver
	}
	if cfg.Consumer == "" {
		cfg.Consumer = DefaultConsumer
	}
	m := &Media{cfg: cfg, codec: cfg.Codec, log: cfg.Log.With().Str("component", "media").Logger()}
	if m.codec == nil {
		m.codec = schema.JSON()
	}
	return m, nil
}

// job is one picture to fetch, as it waits in the job stream.
type job struct {
	Ref      string             `json:"ref"`
	Event    string             `json:"event"` // the message event's id
	Subject  string             `json:"subject"`
	Account  int64              `json:"account"`
	MsgID    int64              `json:"msg_id,omitempty"`
	From     *schema.Contact    `json:"from,omitempty"`
	Group    *schema.GroupRef   `json:"group,omitempty"`
	Discuss  *schema.DiscussRef `json:"discuss,omitempty"`
	Sess     *schema.SessRef    `json:"sess,omitempty"`
	FromUIN  int64              `json:"from_uin"`  // f_uin of get_offpic2: a session number
	FilePath string             `json:"file_path"` // not a secret, but not for consumers
}

// Enqueue takes the pictures of message event e, published already, whose
// image segments (in order) are m.Pictures (in order): one job per offpic
// picture; a cface picture (groups, discussions) gets media.failed
// unsupported at once. It retries until the jobs are in the stream and
// returns an error only when ctx ends first.
func (m *Media) Enqueue(ctx context.Context, e *schema.Event, msg *qqclient.Message) error {
	var refs []string
	for _, s := range e.Segments {
		if s.Type == schema.SegmentImage && s.Image != nil {
			refs = append(refs, s.Image.Ref)
		}
	}
	subject, err := m.cfg.Subjects.In(schema.KindMedia, conversationID(e))
	if err != nil {
		m.log.Error().Err(err).Str("event_id", e.ID).Msg("no media subject for the event; its pictures stay pending")
		return nil
	}
	for n, p := range msg.Pictures {
		if n >= len(refs) {
			break
		}
		j := job{Ref: refs[n], Event: e.ID, Subject: subject, Account: e.Account, MsgID: e.MsgID,
			From: e.From, Group: e.Group, Discuss: e.Discuss, Sess: e.Sess, FromUIN: msg.FromUIN, FilePath: p.FilePath}
		if p.Kind != qqclient.PictureOffPic || p.FilePath == "" {
			if err := m.publishOutcome(ctx, &j, schema.Image{State: schema.ImageFailed, Ref: j.Ref, Reason: schema.ReasonUnsupported}); err != nil {
				return err
			}
			continue
		}
		data, _ := json.Marshal(&j)
		jm := &nats.Msg{Subject: m.cfg.Subjects.MediaJobs(), Data: data, Header: nats.Header{schema.HeaderMsgID: {j.Ref}}}
		if err := m.publish(ctx, jm); err != nil {
			return err
		}
	}
	return nil
}

// conversationID is the subject id of the conversation of a message event:
// the group, the discussion, or the person.
func conversationID(e *schema.Event) string {
	switch {
	case e.Group != nil && e.Group.Number > 0:
		return schema.StableID(e.Group.Number)
	case e.Group != nil:
		return schema.SessionNumberID(schema.IDPrefixGID, e.Group.GID)
	case e.Discuss != nil:
		return schema.SessionNumberID(schema.IDPrefixDID, e.Discuss.DID)
	case e.From != nil && e.From.QQ > 0:
		return schema.StableID(e.From.QQ)
	case e.From != nil:
		return schema.SessionNumberID(schema.IDPrefixUIN, e.From.UIN)
	}
	return ""
}

// publish publishes msg into JetStream until acknowledged or ctx ends.
func (m *Media) publish(ctx context.Context, msg *nats.Msg) error {
	b := retry.Backoff(50*time.Millisecond, 2*time.Second)
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, m.cfg.PublishTimeout)
		_, err := m.cfg.JS.PublishMsg(pctx, msg)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("media: publish on %s: %w", msg.Subject, ctx.Err())
		}
		if attempt == 1 || attempt%20 == 0 {
			m.log.Warn().Err(err).Str("subject", msg.Subject).Int("attempt", attempt).Msg("publish failed; retrying")
		}
		if err := retry.Sleep(ctx, b.NextBackOff()); err != nil {
			return fmt.Errorf("media: publish on %s: %w", msg.Subject, err)
		}
	}
}

// publishOutcome publishes media.stored or media.failed for j.
func (m *Media) publishOutcome(ctx context.Context, j *job, img schema.Image) error {
	typ := schema.TypeMediaStored
	if img.State == schema.ImageFailed {
		typ = schema.TypeMediaFailed
	}
	img.Event = j.Event
	e := &schema.Event{ID: j.Ref, Type: typ, Time: time.Now().UTC(), Account: j.Account, MsgID: j.MsgID,
		From: j.From, Group: j.Group, Discuss: j.Discuss, Sess: j.Sess, Image: &img}
	data, h, err := e.Encode(m.codec)
	if err != nil {
		return fmt.Errorf("media: %w", err)
	}
	if err := m.publish(ctx, &nats.Msg{Subject: j.Subject, Data: data, Header: nats.Header(h)}); err != nil {
		return err
	}
	ev := m.log.Info()
	if img.State == schema.ImageFailed {
		ev = m.log.Warn().Str("reason", img.Reason)
	}
	ev.Str("ref", j.Ref).Int64("size", img.Size).Msg("picture " + img.State)
	return nil
}

// put stores data under name with its content type and returns the object's
// description.
func (m *Media) put(ctx context.Context, name string, data []byte) (size int64, contentType, sum string, err error) {
	contentType = http.DetectContentType(data)
	h := sha256.Sum256(data)
	sum = hex.EncodeToString(h[:])
	_, err = m.cfg.Store.Put(ctx, jetstream.ObjectMeta{
		Name:    name,
		Headers: nats.Header{schema.HeaderContentType: {contentType}, "Qq-Sha256": {sum}},
	}, bytes.NewReader(data))
	if err != nil {
		return 0, "", "", fmt.Errorf("media: put %s: %w", name, err)
	}
	return int64(len(data)), contentType, sum, nil
}

// Wait waits for the jobs being handled after Run returned.
func (m *Media) Wait() { m.wg.Wait() }
