package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/onebot"
	"github.com/qqbridge/qqbridge/schema"
)

// onebotConfig is the configuration of `bridge onebot`.
type onebotConfig struct {
	Subjects  schema.Subjects
	Listen    string        // host:port of the HTTP API and forward WebSocket; "" none
	Durable   string        // the durable consumer on QQ_IN that push replicas share
	Bucket    string        // the KV bucket of the shared state
	StoreTTL  time.Duration // how long a message_id, a member or a marker is kept
	Replicas  int           // KV replicas
	APITimout time.Duration // one call to qq.api.*
	Gateway   onebot.Config
}

// defaultOnebotConfig is the configuration with every default.
func defaultOnebotConfig() onebotConfig {
	return onebotConfig{Subjects: schema.Subjects{}, Listen: "127.0.0.1:6700", Durable: "onebot", StoreTTL: 7 * 24 * time.Hour, Replicas: 1, APITimout: 30 * time.Second}
}

// onebotBucket is the gateway's KV bucket: the session bucket's name with
// "_onebot" for "_session" ("qq_onebot"), so that schema stays the one place
// names come from.
func onebotBucket(s schema.Subjects) string {
	return strings.TrimSuffix(s.SessionBucket(), "_session") + "_onebot"
}

// parseOnebotFlags reads the flags of `bridge onebot`.
func (c *cli) parseOnebotFlags(args []string) (*clientFlags, onebotConfig, zerolog.Level, error) {
	oc := defaultOnebotConfig()
	f := c.newFlagSet("onebot", "bridge onebot [flags]",
		"Runs a OneBot v11 gateway on a running bridge: the HTTP API and forward WebSocket on\n"+
			"--listen, reverse WebSocket clients (--reverse-url, or --reverse-api-url with\n"+
			"--reverse-event-url), HTTP POST event push (--post-url). It uses the public NATS\n"+
			"contract only and is stateless: run any number of replicas. See docs/onebot.md.")
	cf, prefix := f.clientFlags()
	var reverse, reverseAPI, reverseEvent, post, level string
	g := &oc.Gateway
	f.fs.StringVar(&oc.Listen, "listen", oc.Listen, "`host:port` of the HTTP API and the forward WebSocket (/, /api, /event); empty: none")
	f.fs.StringVar(&g.AccessToken, "access-token", "", "access `token` required of the bots and sent by the reverse clients")
	f.fs.StringVar(&g.Secret, "secret", "", "HMAC-SHA1 `key` of the X-Signature of HTTP POST pushes")
	f.fs.StringVar(&g.MessageFormat, "message-format", onebot.FormatArray, "format of message in events: array or string (CQ codes)")
	f.fs.DurationVar(&g.Heartbeat, "heartbeat", 15*time.Second, "interval of heartbeat meta events (0: none)")
	f.fs.StringVar(&reverse, "reverse-url", "", "universal reverse WebSocket `URLs`, comma-separated")
	f.fs.StringVar(&reverseAPI, "reverse-api-url", "", "reverse WebSocket `URL` of the API connection (with --reverse-event-url)")
	f.fs.StringVar(&reverseEvent, "reverse-event-url", "", "reverse WebSocket `URL` of the event connection (with --reverse-api-url)")
	f.fs.DurationVar(&g.ReconnectInterval, "reconnect-interval", 3*time.Second, "wait before redialling a reverse WebSocket")
	f.fs.StringVar(&post, "post-url", "", "HTTP POST event push `URLs`, comma-separated")
	f.fs.DurationVar(&g.PostTimeout, "post-timeout", 5*time.Second, "bound of one HTTP POST push")
	f.fs.DurationVar(&g.EchoWindow, "echo-window", 10*time.Minute, "a send repeated with the same echo and content within this window is sent once")
	f.fs.DurationVar(&g.RateLimitInterval, "rate-limit-interval", 500*time.Millisecond, "spacing of the _rate_limited actions")
	f.fs.StringVar(&oc.Durable, "durable", oc.Durable, "`name` of the durable consumer on the inbound stream shared by the pushing replicas")
	f.fs.DurationVar(&oc.StoreTTL, "store-ttl", oc.StoreTTL, "how long message ids, members and number markers are kept (KV <prefix>_onebot)")
	f.fs.IntVar(&oc.Replicas, "store-replicas", 1, "replicas of the KV bucket (a NATS cluster)")
	f.fs.StringVar(&level, "log-level", "info", "log `level`: debug, info, warn, error")
	pos, err := f.parse(args)
	if err != nil {
		return nil, oc, 0, err
	}
	if err := f.noArgs(pos); err != nil {
		return nil, oc, 0, err
	}
	if err := cf.check(f, *prefix); err != nil {
		return nil, oc, 0, err
	}
	oc.Subjects = cf.subjects
	if oc.Listen != "" {
		if err := f.checkHostPort("listen", oc.Listen); err != nil {
			return nil, oc, 0, err
		}
	}
	if g.MessageFormat != onebot.FormatArray && g.MessageFormat != onebot.FormatString {
		return nil, oc, 0, f.badf("message-format", "%q: want array or string", g.MessageFormat)
	}
	if g.Heartbeat == 0 {
		g.Heartbeat = -1
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"reconnect-interval", g.ReconnectInterval}, {"post-timeout", g.PostTimeout}, {"echo-window", g.EchoWindow}, {"rate-limit-interval", g.RateLimitInterval}, {"store-ttl", oc.StoreTTL}} {
		if err := f.checkPositive(d.name, d.v); err != nil {
			return nil, oc, 0, err
		}
	}
	if err := schema.ValidToken(oc.Durable); err != nil {
		return nil, oc, 0, f.badf("durable", "%q: one token of letters, digits, '_' or '-'", oc.Durable)
	}
	for _, u := range splitList(reverse) {
		g.Reverse = append(g.Reverse, onebot.Reverse{URL: u})
	}
	if (reverseAPI == "") != (reverseEvent == "") {
		return nil, oc, 0, usageErrorf("onebot: --reverse-api-url and --reverse-event-url go together")
	}
	if reverseAPI != "" {
		g.Reverse = append(g.Reverse, onebot.Reverse{APIURL: reverseAPI, EventURL: reverseEvent})
	}
	g.PostURLs = splitList(post)
	if oc.Listen == "" && len(g.Reverse) == 0 && len(g.PostURLs) == 0 {
		return nil, oc, 0, usageErrorf("onebot: nothing to serve: give --listen, --reverse-url or --post-url")
	}
	lvl, err := parseLogLevel(level)
	if err != nil {
		return nil, oc, 0, f.badf("log-level", "%v", err)
	}
	return cf, oc, lvl, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// runOnebot is `bridge onebot`.
func (c *cli) runOnebot(ctx context.Context, args []string) error {
	cf, oc, lvl, err := c.parseOnebotFlags(args)
	if err != nil {
		return err
	}
	log := newLogger(c.stderr, lvl, logAuto, c.isTerminal)
	nc, err := cf.connect("qqbridge onebot")
	if err != nil {
		return err
	}
	defer nc.Close()
	gw, err := startOnebot(ctx, nc, oc, log)
	if err != nil {
		return err
	}
	if gw.Addr != "" {
		log.Info().Str("addr", gw.Addr).Msg("OneBot v11 HTTP API and forward WebSocket listening")
	}
	<-ctx.Done()
	gw.Wait()
	return nil
}

// onebotGateway is a running gateway.
type onebotGateway struct {
	GW   *onebot.Gateway
	Addr string // where the HTTP API and forward WebSocket listen ("" none)
	done chan struct{}
}

// Wait blocks until the gateway stopped (its context ended).
func (o *onebotGateway) Wait() { <-o.done }

// startOnebot starts a gateway on nc until ctx ends: the shared KV bucket,
// the session state subscription, the inbound stream's consumers (an ordered
// one for this replica's forward WebSocket clients, the shared durable one
// for pushing), the listener and the gateway's own loops.
func startOnebot(ctx context.Context, nc *nats.Conn, oc onebotConfig, log zerolog.Logger) (*onebotGateway, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	s := oc.Subjects
	bucket := oc.Bucket
	if bucket == "" {
		bucket = onebotBucket(s)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, Description: "qqbridge OneBot gateway: message ids, members, number markers, echo records",
		TTL: oc.StoreTTL, History: 1, Replicas: oc.Replicas})
	if err != nil {
		return nil, fmt.Errorf("onebot: KV bucket %s: %w", bucket, err)
	}
	oc.Gateway.Log = log.With().Str("component", "onebot").Logger()
	gw, err := onebot.New(oc.Gateway, &natsBackend{nc: nc, s: s, timeout: oc.APITimout}, kvStore{kv})
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	sub, err := nc.Subscribe(s.SessionState(), func(m *nats.Msg) {
		var st schema.SessionState
		if schema.Decode(schema.HeaderValue(m.Header, schema.HeaderContentType), m.Data, &st) == nil {
			gw.SessionChanged(ctx, st)
		}
	})
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, func() { _ = sub.Unsubscribe() })
	o := &onebotGateway{GW: gw, done: make(chan struct{})}
	var srv *http.Server
	if oc.Listen != "" {
		ln, err := net.Listen("tcp", oc.Listen)
		if err != nil {
			return nil, fmt.Errorf("onebot: listen %s: %w", oc.Listen, err)
		}
		o.Addr = ln.Addr().String()
		srv = &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
	}
	glog := oc.Gateway.Log
	pending := make(chan struct{}, 2)
	go func() {
		defer func() { pending <- struct{}{} }()
		consumeInbound(ctx, js, s, "", gw, glog)
	}()
	if gw.HasPush() {
		go func() {
			defer func() { pending <- struct{}{} }()
			consumeInbound(ctx, js, s, oc.Durable, gw, glog)
		}()
	} else {
		pending <- struct{}{}
	}
	runDone := make(chan struct{})
	go func() {
		_ = gw.Run(ctx)
		close(runDone)
	}()
	go func() {
		<-ctx.Done()
		if srv != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = srv.Shutdown(sctx)
			cancel()
		}
		<-runDone
		<-pending
		<-pending
		close(o.done)
	}()
	return o, nil
}

// consumeInbound reads the inbound stream until ctx ends: with durable ""
// an ordered consumer from now on whose events go to this replica's forward
// WebSocket clients; else the named durable consumer that the pushing
// replicas share, each event pushed once and acknowledged when delivered.
// It waits for the stream when no bridge has created it yet.
func consumeInbound(ctx context.Context, js jetstream.JetStream, s schema.Subjects, durable string, gw *onebot.Gateway, log zerolog.Logger) {
	for ctx.Err() == nil {
		err := consumeOnce(ctx, js, s, durable, gw, log)
		if ctx.Err() != nil {
			return
		}
		log.Warn().Err(err).Str("stream", s.StreamIn()).Str("durable", durable).Msg("inbound consumer stopped; retrying")
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func consumeOnce(ctx context.Context, js jetstream.JetStream, s schema.Subjects, durable string, gw *onebot.Gateway, log zerolog.Logger) error {
	var cons jetstream.Consumer
	var err error
	if durable == "" {
		cons, err = js.OrderedConsumer(ctx, s.StreamIn(), jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{s.InWildcard()}, DeliverPolicy: jetstream.DeliverNewPolicy})
	} else {
		cons, err = js.CreateOrUpdateConsumer(ctx, s.StreamIn(), jetstream.ConsumerConfig{
			Durable: durable, Description: "qqbridge OneBot gateway: events pushed to reverse WebSocket and HTTP POST",
			FilterSubject: s.InWildcard(), DeliverPolicy: jetstream.DeliverNewPolicy,
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxAckPending: 1})
	}
	if err != nil {
		return err
	}
	handle := func(m jetstream.Msg) {
		if durable == "" && !gw.HasForward() {
			return
		}
		ev, err := schema.DecodeEvent(m.Headers(), m.Data())
		if err != nil {
			log.Warn().Err(err).Str("subject", m.Subject()).Msg("undecodable event skipped")
			if durable != "" {
				_ = m.Term()
			}
			return
		}
		out, err := gw.Convert(ctx, ev)
		if errors.Is(err, onebot.ErrSkip) {
			if durable != "" {
				_ = m.Ack()
			}
			return
		}
		if err != nil {
			log.Warn().Err(err).Str("id", ev.ID).Msg("event not converted")
			if durable != "" {
				_ = m.NakWithDelay(time.Second)
			}
			return
		}
		if durable == "" {
			gw.Broadcast(out)
			return
		}
		if err := gw.Push(ctx, out); err != nil {
			lvl := zerolog.DebugLevel
			if md, merr := m.Metadata(); merr == nil && md.NumDelivered%30 == 0 {
				lvl = zerolog.WarnLevel // about every half minute while a target stays away
			}
			log.WithLevel(lvl).Err(err).Str("id", ev.ID).Msg("push not delivered; redelivering later (later events wait behind it)")
			_ = m.NakWithDelay(time.Second)
			return
		}
		_ = m.Ack()
	}
	cc, err := cons.Consume(handle)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		cc.Stop()
		return nil
	case <-cc.Closed():
		return errors.New("consumer closed")
	}
}

// natsBackend is onebot.Backend over the public NATS API (qq.api.*).
type natsBackend struct {
	nc      *nats.Conn
	s       schema.Subjects
	timeout time.Duration
}

func (b *natsBackend) request(ctx context.Context, subject string, body []byte) (*nats.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	m := nats.NewMsg(subject)
	m.Data = body
	m.Header.Set(schema.HeaderContentType, schema.ContentTypeJSON)
	return b.nc.RequestMsgWithContext(ctx, m)
}

// Send implements onebot.Backend: qq.api.send.<kind>.
func (b *natsBackend) Send(ctx context.Context, kind schema.Kind, req *schema.Request) (schema.Result, error) {
	body, err := schema.JSON().Marshal(req)
	if err != nil {
		return schema.Result{}, err
	}
	reply, err := b.request(ctx, b.s.API("send", string(kind)), body)
	if err != nil {
		return schema.Result{}, err
	}
	var res schema.Result
	if err := schema.Decode(schema.HeaderValue(reply.Header, schema.HeaderContentType), reply.Data, &res); err != nil || res.Kind == "" {
		code := reply.Header.Get("Nats-Service-Error-Code")
		return schema.Result{}, fmt.Errorf("undecodable send reply (error code %q)", code)
	}
	return res, nil
}

// list asks qq.api.contacts.<what> or qq.api.session.state into v.
func (b *natsBackend) list(ctx context.Context, v any, parts ...string) error {
	reply, err := b.request(ctx, b.s.API(parts...), nil)
	if err != nil {
		return err
	}
	if code := reply.Header.Get("Nats-Service-Error-Code"); code != "" {
		return fmt.Errorf("%s: %s %s", b.s.API(parts...), code, reply.Header.Get("Nats-Service-Error"))
	}
	return schema.Decode(schema.HeaderValue(reply.Header, schema.HeaderContentType), reply.Data, v)
}

func (b *natsBackend) Friends(ctx context.Context) ([]schema.Contact, error) {
	var v []schema.Contact
	return v, b.list(ctx, &v, "contacts", "friends")
}

func (b *natsBackend) Groups(ctx context.Context) ([]schema.GroupRef, error) {
	var v []schema.GroupRef
	return v, b.list(ctx, &v, "contacts", "groups")
}

func (b *natsBackend) Discussions(ctx context.Context) ([]schema.DiscussRef, error) {
	var v []schema.DiscussRef
	return v, b.list(ctx, &v, "contacts", "discussions")
}

// Members implements onebot.Backend: qq.api.contacts.members with
// {"group":…} or {"gid":…}; a 404 (unknown_target) is onebot.ErrUnknownGroup.
func (b *natsBackend) Members(ctx context.Context, group schema.Target) ([]schema.Contact, error) {
	body, err := schema.JSON().Marshal(group)
	if err != nil {
		return nil, err
	}
	subject := b.s.API("contacts", "members")
	reply, err := b.request(ctx, subject, body)
	if err != nil {
		return nil, err
	}
	switch code := reply.Header.Get("Nats-Service-Error-Code"); code {
	case "":
	case "404": // unknown_target (docs/events.md)
		return nil, fmt.Errorf("%w: %s", onebot.ErrUnknownGroup, reply.Header.Get("Nats-Service-Error"))
	default:
		return nil, fmt.Errorf("%s: %s %s", subject, code, reply.Header.Get("Nats-Service-Error"))
	}
	var v []schema.Contact
	return v, schema.Decode(schema.HeaderValue(reply.Header, schema.HeaderContentType), reply.Data, &v)
}

func (b *natsBackend) SessionState(ctx context.Context) (schema.SessionState, error) {
	var v schema.SessionState
	return v, b.list(ctx, &v, "session", "state")
}

// kvStore is onebot.Store on a JetStream KV bucket.
type kvStore struct{ kv jetstream.KeyValue }

func kvErr(err error) error {
	var apiErr *jetstream.APIError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted), errors.Is(err, jetstream.ErrNoKeysFound):
		return onebot.ErrNotFound
	case errors.Is(err, jetstream.ErrKeyExists):
		return onebot.ErrExists
	case errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence:
		return onebot.ErrExists
	}
	return err
}

func (k kvStore) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	e, err := k.kv.Get(ctx, key)
	if err != nil {
		return nil, 0, kvErr(err)
	}
	return e.Value(), e.Revision(), nil
}

func (k kvStore) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := k.kv.Create(ctx, key, value)
	return rev, kvErr(err)
}

func (k kvStore) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	r, err := k.kv.Update(ctx, key, value, rev)
	return r, kvErr(err)
}

func (k kvStore) Put(ctx context.Context, key string, value []byte) error {
	_, err := k.kv.Put(ctx, key, value)
	return kvErr(err)
}

func (k kvStore) Keys(ctx context.Context, pattern string) ([]string, error) {
	l, err := k.kv.ListKeysFiltered(ctx, pattern)
	if err != nil {
		if errors.Is(kvErr(err), onebot.ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for key := range l.Keys() {
		out = append(out, key)
	}
	return out, nil
}

// startDemoOnebot starts the gateway of `bridge demo --onebot host:port`: no
// access token, events in array format, until ctx ends.
func startDemoOnebot(ctx context.Context, nc *nats.Conn, s schema.Subjects, listen string, log zerolog.Logger, say func(string, ...any)) error {
	oc := defaultOnebotConfig()
	oc.Subjects, oc.Listen = s, listen
	gw, err := startOnebot(ctx, nc, oc, log)
	if err != nil {
		return err
	}
	say("OneBot v11 gateway at ws://%s/ (forward WebSocket) and http://%s/<action> — point a OneBot bot at it (docs/onebot.md)", gw.Addr, gw.Addr)
	return nil
}
