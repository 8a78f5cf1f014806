package onebot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/schema"
)

// Backend is what the gateway needs of qqbridge: the public NATS contract
// (qq.api.send.<kind>, qq.api.contacts.*, qq.api.session.state). The error
// is a transport failure (no bridge answered); a send that the bridge
// answered, even as a failure, is a Result.
//
// Members lists the members of a group (qq.api.contacts.members; group is
// {Group: number} or {GID: gid}). An error matching ErrUnknownGroup says the
// bridge found no such group in its login (404 unknown_target); any other
// error (no bridge, a bridge without that endpoint, a list it could not
// have) makes the gateway answer from the members it saw speak.
type Backend interface {
	Send(ctx context.Context, kind schema.Kind, req *schema.Request) (schema.Result, error)
	Friends(ctx context.Context) ([]schema.Contact, error)
	Groups(ctx context.Context) ([]schema.GroupRef, error)
	Discussions(ctx context.Context) ([]schema.DiscussRef, error)
	Members(ctx context.Context, group schema.Target) ([]schema.Contact, error)
	SessionState(ctx context.Context) (schema.SessionState, error)
}

// ErrUnknownGroup is the error of Backend.Members for a group the bridge's
// login does not have.
var ErrUnknownGroup = errors.New("onebot: the bridge knows no such group")

// Reverse is one reverse WebSocket client: Universal (URL), or the API and
// event connections apart (APIURL, EventURL).
type Reverse struct {
	URL, APIURL, EventURL string
}

// Config configures a Gateway. Zero durations take their defaults.
type Config struct {
	// AccessToken, when set, is required of every HTTP API call and forward
	// WebSocket (Authorization: Bearer or Token, or ?access_token=) and sent
	// by the reverse WebSocket clients.
	AccessToken string
	// Secret, when set, signs every HTTP POST push: X-Signature: sha1=<HMAC-SHA1 hex>.
	Secret string
	// MessageFormat of events: FormatArray (default) or FormatString.
	MessageFormat string
	// Heartbeat is the interval of heartbeat meta events (default 15s;
	// negative: none).
	Heartbeat time.Duration
	// Reverse WebSocket clients, and how long to wait before redialling
	// one (default 3s).
	Reverse           []Reverse
	ReconnectInterval time.Duration
	// PostURLs receive every event as an HTTP POST; PostTimeout bounds one
	// (default 5s).
	PostURLs    []string
	PostTimeout time.Duration
	// EchoWindow is how long a send's echo keeps its request id (default
	// 10m): see RequestID.
	EchoWindow time.Duration
	// RateLimitInterval spaces the _rate_limited actions (default 500ms).
	RateLimitInterval time.Duration
	// ActionTimeout bounds one action's calls to the bridge (default 30s).
	ActionTimeout time.Duration
	// Version is the app_version of get_version_info.
	Version string
	Log     zerolog.Logger
	// HTTPClient posts events (default: a client with PostTimeout).
	HTTPClient *http.Client
}

// Gateway is one stateless OneBot v11 gateway replica. Everything replicas
// must agree on lives in the Store; the rest (connections, the cached
// session state) is per replica.
type Gateway struct {
	cfg     Config
	backend Backend
	store   Store
	log     zerolog.Logger
	http    *http.Client

	state  atomic.Pointer[schema.SessionState]
	selfID atomic.Int64

	mu        sync.Mutex
	conns     map[*conn]struct{} // open WebSocket connections, forward and reverse
	rateQueue chan func()
	bg        sync.WaitGroup
	runCtx    context.Context
}

// New returns a gateway; Run starts its reverse clients and heartbeats.
func New(cfg Config, backend Backend, store Store) (*Gateway, error) {
	if backend == nil || store == nil {
		return nil, errors.New("onebot: backend and store are required")
	}
	switch cfg.MessageFormat {
	case "":
		cfg.MessageFormat = FormatArray
	case FormatArray, FormatString:
	default:
		return nil, fmt.Errorf("onebot: message format %q: want array or string", cfg.MessageFormat)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.Heartbeat, 15*time.Second)
	def(&cfg.ReconnectInterval, 3*time.Second)
	def(&cfg.PostTimeout, 5*time.Second)
	def(&cfg.EchoWindow, 10*time.Minute)
	def(&cfg.RateLimitInterval, 500*time.Millisecond)
	def(&cfg.ActionTimeout, 30*time.Second)
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	for _, r := range cfg.Reverse {
		if r.URL == "" && r.APIURL == "" && r.EventURL == "" {
			return nil, errors.New("onebot: a reverse client needs a URL, or an API and an event URL")
		}
	}
	g := &Gateway{cfg: cfg, backend: backend, store: store, log: cfg.Log, conns: map[*conn]struct{}{},
		rateQueue: make(chan func(), 1024), runCtx: context.Background()}
	g.http = cfg.HTTPClient
	if g.http == nil {
		g.http = &http.Client{Timeout: cfg.PostTimeout}
	}
	return g, nil
}

// SetState records the bridge's session state (from qq.session.state or
// qq.api.session.state); it feeds get_status, heartbeats and self_id.
func (g *Gateway) SetState(st schema.SessionState) {
	g.state.Store(&st)
	if st.Account != 0 {
		g.selfID.Store(st.Account)
	}
}

// SelfID is the account's QQ number, 0 before the bridge has logged in once.
func (g *Gateway) SelfID() int64 { return g.selfID.Load() }

func (g *Gateway) status() Status {
	if st := g.state.Load(); st != nil {
		return StatusOf(*st)
	}
	return Status{}
}

// refreshState asks the bridge for its state when none is known yet.
func (g *Gateway) refreshState(ctx context.Context) {
	if g.state.Load() != nil && g.SelfID() != 0 {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if st, err := g.backend.SessionState(cctx); err == nil {
		g.SetState(st)
	}
}

// HasPush reports whether this replica pushes events (reverse WebSocket or
// HTTP POST): only then should it read the shared durable consumer.
func (g *Gateway) HasPush() bool { return len(g.cfg.Reverse) > 0 || len(g.cfg.PostURLs) > 0 }

// Out is an event converted for the bots: its JSON, and the qqbridge event
// for a quick operation.
type Out struct {
	JSON  []byte
	Event *schema.Event // nil for meta events and session notices
	ob    *Event
}

// ErrSkip is returned by Convert for an event OneBot has no form for
// (input.notify, system.*): acknowledge it and move on.
var ErrSkip = errors.New("onebot: event has no OneBot form")

// Convert maps a qqbridge event to its OneBot event, recording in the store
// what makes the numbers resolvable back: the message_id, session numbers
// used as user_id / group_id, the group a temporary chat came through, the
// group member who spoke.
func (g *Gateway) Convert(ctx context.Context, e *schema.Event) (*Out, error) {
	if e.Account != 0 {
		g.selfID.CompareAndSwap(0, e.Account)
	}
	if ob, ok := BuddyStatusNotice(e); ok {
		return g.out(ob, e)
	}
	switch e.Type {
	case schema.TypeMessageFriend, schema.TypeMessageGroup, schema.TypeMessageDiscuss, schema.TypeMessageSess:
	default:
		return nil, ErrSkip
	}
	n := NumbersOf(e)
	ob, _ := MessageEvent(e, 0, g.cfg.MessageFormat)
	ref := MsgRef{Ref: e.ID, Time: ob.Time, MessageType: ob.MessageType, UserID: ob.UserID, GroupID: ob.GroupID, DiscussID: ob.DiscussID, Nickname: ob.Sender.Nickname, Message: FromSchema(e)}
	id, err := MessageIDOf(ctx, g.store, ref)
	if err != nil {
		return nil, err
	}
	ob.MessageID = id
	if n.UserSession && n.User != 0 {
		if err := g.store.Put(ctx, "uin."+strconv.FormatInt(n.User, 10), []byte("1")); err != nil {
			return nil, err
		}
	}
	if n.GroupSes && n.Group != 0 {
		if err := g.store.Put(ctx, "gid."+strconv.FormatInt(n.Group, 10), []byte("1")); err != nil {
			return nil, err
		}
	}
	switch e.Type {
	case schema.TypeMessageSess:
		if n.User != 0 && n.Group != 0 {
			if err := g.store.Put(ctx, "sess."+strconv.FormatInt(n.User, 10), []byte(strconv.FormatInt(n.Group, 10))); err != nil {
				return nil, err
			}
		}
	case schema.TypeMessageGroup:
		if n.User != 0 && n.Group != 0 {
			m, _ := json.Marshal(Member{Nickname: ob.Sender.Nickname, Card: ob.Sender.Card, LastSentTime: ob.Time})
			if err := g.store.Put(ctx, memberKey(n.Group, n.User), m); err != nil {
				return nil, err
			}
		}
	}
	return g.out(ob, e)
}

func memberKey(group, user int64) string {
	return "member." + strconv.FormatInt(group, 10) + "." + strconv.FormatInt(user, 10)
}

func (g *Gateway) out(ob *Event, e *schema.Event) (*Out, error) {
	b, err := marshalNoEscape(ob)
	if err != nil {
		return nil, err
	}
	return &Out{JSON: b, Event: e, ob: ob}, nil
}

// Broadcast sends an event to this replica's forward WebSocket clients
// (universal and event). Every replica broadcasts every event: a bot that
// connected to any of them sees all.
func (g *Gateway) Broadcast(o *Out) {
	for _, c := range g.eventConns(false) {
		c.send(o.JSON)
	}
}

// ErrNoTarget is returned (joined) by Push when this replica has reverse
// WebSocket clients configured but none of them is connected: the event
// should be delivered again later (to this or another replica).
var ErrNoTarget = errors.New("onebot: no reverse WebSocket connected")

// Push delivers an event to the reverse WebSocket clients (universal and
// event) of this replica and posts it to every POST URL, honouring a quick
// operation in a POST's reply. The replicas share these through one durable
// consumer, so each event is pushed by one replica; an error means some
// target did not get it and the event should be redelivered (at least once).
func (g *Gateway) Push(ctx context.Context, o *Out) error {
	var errs []error
	rev := g.eventConns(true)
	if len(g.cfg.Reverse) > 0 && len(rev) == 0 {
		errs = append(errs, ErrNoTarget)
	}
	for _, c := range rev {
		wctx, cancel := context.WithTimeout(ctx, wsWriteTimeout)
		if err := c.sendWait(wctx, o.JSON); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	for _, u := range g.cfg.PostURLs {
		if err := g.post(ctx, u, o); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// emitLocal sends an event this replica makes itself (heartbeat, session
// notice) to all of its event connections, forward and reverse.
func (g *Gateway) emitLocal(ob *Event) {
	b, err := marshalNoEscape(ob)
	if err != nil {
		return
	}
	for _, c := range g.eventConns(false) {
		c.send(b)
	}
	for _, c := range g.eventConns(true) {
		c.send(b)
	}
}

// SessionChanged records a session state change and tells the bots with a
// session_state notice (an extension) on this replica's connections.
func (g *Gateway) SessionChanged(ctx context.Context, st schema.SessionState) {
	g.SetState(st)
	ob := SessionNotice(st, g.SelfID())
	g.emitLocal(ob)
	o, err := g.out(ob, nil)
	if err != nil {
		return
	}
	for _, u := range g.cfg.PostURLs {
		_ = g.post(ctx, u, o)
	}
}

func (g *Gateway) eventConns(reverse bool) []*conn {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []*conn
	for c := range g.conns {
		if c.events && c.reverse == reverse {
			out = append(out, c)
		}
	}
	return out
}

func (g *Gateway) addConn(c *conn) {
	g.mu.Lock()
	g.conns[c] = struct{}{}
	g.mu.Unlock()
}

func (g *Gateway) removeConn(c *conn) {
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
}

// Run runs the reverse WebSocket clients, the heartbeats and the
// _rate_limited queue until ctx ends, and posts lifecycle enable / disable
// to the POST URLs.
func (g *Gateway) Run(ctx context.Context) error {
	g.mu.Lock()
	g.runCtx = ctx
	g.mu.Unlock()
	g.refreshState(ctx)
	var wg sync.WaitGroup
	for _, r := range g.cfg.Reverse {
		if r.URL != "" {
			wg.Add(1)
			go func() { defer wg.Done(); g.reverseLoop(ctx, r.URL, roleUniversal) }()
			continue
		}
		if r.APIURL != "" {
			wg.Add(1)
			go func() { defer wg.Done(); g.reverseLoop(ctx, r.APIURL, roleAPI) }()
		}
		if r.EventURL != "" {
			wg.Add(1)
			go func() { defer wg.Done(); g.reverseLoop(ctx, r.EventURL, roleEvent) }()
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(g.cfg.RateLimitInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case f := <-g.rateQueue:
				f()
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	g.postLifecycle(ctx, "enable")
	if g.cfg.Heartbeat > 0 {
		t := time.NewTicker(g.cfg.Heartbeat)
		defer t.Stop()
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case <-t.C:
				g.refreshState(ctx)
				hb := Heartbeat(g.SelfID(), g.status(), g.cfg.Heartbeat, time.Now())
				g.emitLocal(hb)
				if o, err := g.out(hb, nil); err == nil {
					for _, u := range g.cfg.PostURLs {
						_ = g.post(ctx, u, o)
					}
				}
			}
		}
	} else {
		<-ctx.Done()
	}
	dctx, cancel := context.WithTimeout(context.Background(), g.cfg.PostTimeout)
	g.postLifecycle(dctx, "disable")
	cancel()
	g.mu.Lock()
	for c := range g.conns {
		c.close()
	}
	g.mu.Unlock()
	wg.Wait()
	g.bg.Wait()
	return nil
}

func (g *Gateway) postLifecycle(ctx context.Context, sub string) {
	if len(g.cfg.PostURLs) == 0 {
		return
	}
	o, err := g.out(Lifecycle(sub, g.SelfID(), time.Now()), nil)
	if err != nil {
		return
	}
	for _, u := range g.cfg.PostURLs {
		if err := g.post(ctx, u, o); err != nil {
			g.log.Warn().Err(err).Str("url", redactURL(u)).Msg("lifecycle post failed")
		}
	}
}

func (g *Gateway) background() context.Context {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.runCtx
}

// HasForward reports whether a forward WebSocket client that takes events
// is connected to this replica.
func (g *Gateway) HasForward() bool { return len(g.eventConns(false)) > 0 }
