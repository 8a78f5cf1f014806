package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/api"
	"github.com/qqbridge/qqbridge/schema"
)

// sendFlags are the parsed flags of `bridge send`.
type sendFlags struct {
	client  *clientFlags
	kind    schema.Kind
	req     *schema.Request
	codec   schema.Codec
	timeout time.Duration
}

// parseSendFlags reads `bridge send` flags and builds the request.
func (c *cli) parseSendFlags(args []string) (*sendFlags, error) {
	f := c.newFlagSet("send", `bridge send (--friend QQ | --group NUMBER | --discuss DID | --sess QQ --group NUMBER) [flags] "text"`,
		"Sends one message through a running bridge and waits for its outcome. It asks the bridge's\n"+
			"API (<prefix>.api.send.<kind>) first, with a deadline (header Qq-Deadline) a little before\n"+
			"--timeout: the bridge starts no send after it, and answers \"not sent\" instead. When no\n"+
			"bridge answers there it queues the request on <prefix>.out.<kind> (durable: a bridge sends\n"+
			"it when it can) and waits for the result on <prefix>.result.<kind>.\n"+
			"Exit 0: sent; 1: not sent (or no outcome in time); 2: bad flags.")
	cf, prefix := f.clientFlags()
	var friend, group, discuss, sess int64
	var id, format string
	f.fs.Int64Var(&friend, "friend", 0, "send to the friend with this `QQ` number")
	f.fs.Int64Var(&group, "group", 0, "send to the group with this group `number` (with --sess: the group the temporary chat goes through)")
	f.fs.Int64Var(&discuss, "discuss", 0, "send to the discussion with this session number (`did`; discussions have no stable number)")
	f.fs.Int64Var(&sess, "sess", 0, "send a temporary chat to the group member with this `QQ` number (needs --group)")
	f.fs.StringVar(&id, "id", "", "idempotency `key` of the request (default: a random one)")
	f.fs.StringVar(&format, "format", "json", "encoding of the request: json or msgpack")
	timeout := f.fs.Duration("timeout", 30*time.Second, "how long to wait for the outcome")
	pos, err := f.parse(args)
	if err != nil {
		return nil, err
	}
	if err := cf.check(f, *prefix); err != nil {
		return nil, err
	}
	sf := &sendFlags{client: cf, timeout: *timeout, req: &schema.Request{ID: id}}
	if err := f.checkPositive("timeout", sf.timeout); err != nil {
		return nil, err
	}
	var ok bool
	if sf.codec, ok = formatCodec(format); !ok {
		return nil, f.badf("format", "%q: want json or msgpack", format)
	}
	for _, n := range []struct {
		name string
		v    int64
	}{{"friend", friend}, {"group", group}, {"discuss", discuss}, {"sess", sess}} {
		if n.v < 0 {
			return nil, f.badf(n.name, "must be a positive number, got %d", n.v)
		}
	}
	targets := 0
	for _, v := range []int64{friend, discuss, sess} {
		if v != 0 {
			targets++
		}
	}
	switch {
	case targets > 1, friend != 0 && group != 0, discuss != 0 && group != 0:
		return nil, usageErrorf("send: give one target: --friend, --group, --discuss, or --sess with --group")
	case sess != 0 && group == 0:
		return nil, f.badf("sess", "needs --group: the group the temporary chat goes through")
	case friend != 0:
		sf.kind, sf.req.To = schema.KindFriend, schema.Target{QQ: friend}
	case sess != 0:
		sf.kind, sf.req.To = schema.KindSess, schema.Target{QQ: sess, Group: group}
	case group != 0:
		sf.kind, sf.req.To = schema.KindGroup, schema.Target{Group: group}
	case discuss != 0:
		sf.kind, sf.req.To = schema.KindDiscuss, schema.Target{DID: discuss}
	default:
		return nil, usageErrorf("send: no target: give --friend, --group, --discuss, or --sess with --group")
	}
	if len(pos) == 0 {
		return nil, usageErrorf(`send: no text: bridge send --group 987654 "hello"`)
	}
	sf.req.Text = strings.Join(pos, " ")
	if sf.req.ID == "" {
		sf.req.ID = newRequestID()
	}
	if err := sf.req.Validate(sf.kind); err != nil {
		return nil, usageErrorf("send: %v", err)
	}
	return sf, nil
}

// newRequestID returns a random request id: "send-" and 16 hex digits.
func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms
	return "send-" + hex.EncodeToString(b[:])
}

// errNotSent is wrapped by send's error when the bridge answered that the message
// was not sent (or may not have been).
var errNotSent = errors.New("not sent")

// runSend is `bridge send`.
func (c *cli) runSend(ctx context.Context, args []string) error {
	sf, err := c.parseSendFlags(args)
	if err != nil {
		return err
	}
	nc, err := sf.client.connect("qqbridge send")
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, sf.timeout)
	defer cancel()
	res, how, err := sendRequest(ctx, nc, sf.client.subjects, sf.kind, sf.req, sf.codec)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s (%s)\n", resultSummary(res), how)
	if !res.OK {
		return fmt.Errorf("%w: %s", errNotSent, resultSummary(res))
	}
	return nil
}

// sendDeadline is the deadline given to the bridge for a send whose wait ends at
// end: before it by a margin for the answer (a quarter of the wait, at most two
// seconds), so that the bridge's "not sent" arrives in time.
func sendDeadline(now, end time.Time) time.Time {
	return end.Add(-min(end.Sub(now)/4, 2*time.Second))
}

// sendRequest sends req through the bridge and returns its outcome and how it went
// ("via <api subject>" or "queued on <out subject>, stream seq N"). It asks the API
// first — when ctx has a deadline, telling the bridge a deadline a little before it
// (sendDeadline), after which it starts no send; with no responder there it
// publishes to the out stream (with the id as Nats-Msg-Id) and waits for the
// matching result. ctx bounds the whole wait. When the API does not answer within
// ctx, the error says what is known: the message may have been sent before the
// deadline, and not after it.
func sendRequest(ctx context.Context, nc *nats.Conn, s schema.Subjects, kind schema.Kind, req *schema.Request, codec schema.Codec) (*schema.Result, string, error) {
	data, err := codec.Marshal(req)
	if err != nil {
		return nil, "", fmt.Errorf("encode request: %w", err)
	}
	subject := s.API("send", string(kind))
	msg := nats.NewMsg(subject)
	msg.Header.Set(schema.HeaderContentType, codec.ContentType())
	start := time.Now()
	end, hasDeadline := ctx.Deadline()
	deadline := sendDeadline(start, end)
	if hasDeadline {
		msg.Header.Set(api.HeaderDeadline, deadline.UTC().Format(time.RFC3339Nano))
	}
	msg.Data = data
	reply, err := nc.RequestMsgWithContext(ctx, msg)
	switch {
	case err == nil:
		res, err := decodeResult(reply)
		if err != nil {
			return nil, "", fmt.Errorf("answer of %s: %w", subject, err)
		}
		return res, "via " + subject, nil
	case errors.Is(err, context.DeadlineExceeded) && hasDeadline:
		return nil, "", fmt.Errorf("no answer from %s within %v: maybe sent — the bridge starts no send after %s, "+
			"but one may have started before; `bridge send --id %s` with the same message answers its outcome without sending it twice",
			subject, time.Since(start).Round(time.Millisecond), deadline.UTC().Format(time.RFC3339Nano), req.ID)
	case !errors.Is(err, nats.ErrNoResponders):
		return nil, "", fmt.Errorf("request on %s: %w", subject, err)
	}

	// No bridge answers the API: queue the request durably and wait for its result.
	results := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(s.Result(kind), results)
	if err != nil {
		return nil, "", fmt.Errorf("subscribe to %s: %w", s.Result(kind), err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, "", err
	}
	out := nats.NewMsg(s.Out(kind))
	out.Header.Set(schema.HeaderContentType, codec.ContentType())
	out.Header.Set(schema.HeaderMsgID, req.ID)
	out.Data = data
	ack, err := js.PublishMsg(ctx, out)
	if err != nil {
		return nil, "", fmt.Errorf("publish to %s: %w (does stream %s exist? a bridge creates it at start)", s.Out(kind), err, s.StreamOut())
	}
	how := fmt.Sprintf("queued on %s, stream %s seq %d", s.Out(kind), ack.Stream, ack.Sequence)
	if ack.Duplicate {
		how += " (duplicate id: already queued)"
	}
	for {
		select {
		case <-ctx.Done():
			return nil, "", fmt.Errorf("no result for %s within the timeout: %s; a bridge sends it when one is online: %w", req.ID, how, ctx.Err())
		case m := <-results:
			res, err := decodeResult(m)
			if err != nil || res.ID != req.ID {
				continue // another sender's outcome
			}
			return res, how, nil
		}
	}
}

// decodeResult decodes a result message by its Content-Type.
func decodeResult(m *nats.Msg) (*schema.Result, error) {
	var r schema.Result
	if err := schema.Decode(schema.HeaderValue(m.Header, schema.HeaderContentType), m.Data, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
