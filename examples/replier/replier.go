package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/schema"
)

// config is one instance's configuration. Every instance of the service uses
// the same Durable: they then share one JetStream consumer, and the server
// hands each event to one of them.
type config struct {
	Subjects schema.Subjects
	Durable  string        // the shared consumer's name
	AckWait  time.Duration // how long an instance may hold an event before the server gives it to another
	Batch    int           // events fetched at a time by one instance
	Log      *slog.Logger

	// replied, when set, is called after a reply was published and its
	// event acknowledged (the tests count with it).
	replied func(eventID string)
}

// consumerConfig is the durable consumer every instance creates or binds to:
// message events of the four conversation kinds, explicit acks.
func consumerConfig(cfg config) jetstream.ConsumerConfig {
	s := cfg.Subjects
	return jetstream.ConsumerConfig{
		Durable: cfg.Durable,
		FilterSubjects: []string{
			s.InKindWildcard(schema.KindFriend), s.InKindWildcard(schema.KindGroup),
			s.InKindWildcard(schema.KindDiscuss), s.InKindWildcard(schema.KindSess),
		},
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverNewPolicy,
	}
}

// run consumes events until ctx ends and answers each message with "收到"
// and its text, as a send request on the reply target's subject
// <prefix>.out.<kind>.<key> (schema.Subjects.OutTo), so that the bridge
// sends the replies to different conversations at once, each
// conversation's in order.
func run(ctx context.Context, js jetstream.JetStream, cfg config) error {
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 16
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, cfg.Subjects.StreamIn(), consumerConfig(cfg))
	if err != nil {
		return fmt.Errorf("consumer %s on %s: %w", cfg.Durable, cfg.Subjects.StreamIn(), err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { handle(ctx, js, cfg, m) }, jetstream.PullMaxMessages(cfg.Batch))
	if err != nil {
		return err
	}
	<-ctx.Done()
	cc.Drain()
	<-cc.Closed()
	return nil
}

// handle answers one event. The reply's id is derived from the event's, so
// that an event delivered again (this instance died before its ack) gives
// the same Nats-Msg-Id: the stream drops the repeat and QQ gets one reply.
func handle(ctx context.Context, js jetstream.JetStream, cfg config, m jetstream.Msg) {
	e, err := schema.DecodeEvent(m.Headers(), m.Data())
	if err != nil {
		cfg.Log.Warn("undecodable event dropped", "subject", m.Subject(), "err", err)
		_ = m.Term() // it will not decode better next time
		return
	}
	kind, to, err := schema.ReplyTarget(e)
	switch {
	case errors.Is(err, schema.ErrNoReplyTarget):
		_ = m.Ack()
		return
	case e.From != nil && e.From.QQ == e.Account:
		_ = m.Ack() // the echo of the account's own send
		return
	case e.Part > 1:
		_ = m.Ack() // the parts of a long message share one reply
		return
	}
	req := &schema.Request{ID: e.ID + ":reply", To: to, Text: "收到: " + clip(e.Text, 200)}
	if e.Text == "" {
		req.Text = "收到"
	}
	body, h, err := schema.EncodeRequest(schema.JSON(), kind, req)
	if err != nil {
		cfg.Log.Warn("reply not encodable", "event", e.ID, "err", err)
		_ = m.Term()
		return
	}
	subject, err := cfg.Subjects.OutTo(kind, to) // to passed EncodeRequest's checks: no error
	if err != nil {
		cfg.Log.Warn("reply has no target subject", "event", e.ID, "err", err)
		_ = m.Term()
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(pctx, &nats.Msg{Subject: subject, Data: body, Header: nats.Header(h)}); err != nil {
		cfg.Log.Warn("reply not published; the event comes again", "event", e.ID, "err", err)
		_ = m.NakWithDelay(time.Second)
		return
	}
	if err := m.DoubleAck(pctx); err != nil {
		// The event comes again; the reply's Nats-Msg-Id keeps it single.
		cfg.Log.Warn("ack not confirmed", "event", e.ID, "err", err)
		return
	}
	if cfg.replied != nil {
		cfg.replied(e.ID)
	}
}

// clip shortens s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
