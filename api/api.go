package api

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/schema"
)

// ServiceVersion is the version the micro service announces.
const ServiceVersion = "1.2.0"

// semVer matches a semantic version (semver.org), as micro requires.
var semVer = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$`)

// QueueGroup is the queue group of the service's endpoints, so that the
// replicas of one bridge share the requests.
const QueueGroup = "qqbridge"

// DefaultTimeout is Config.Timeout's default.
const DefaultTimeout = 30 * time.Second

// ErrConfig is wrapped by the errors of New for an unusable Config.
var ErrConfig = errors.New("api: bad config")

// Sender sends one request and returns its outcome; *egress.Egress
// implements it. No part is started after ctx ended.
type Sender interface {
	Send(ctx context.Context, kind schema.Kind, req *schema.Request) schema.Result
}

// Contacts lists the account's contacts; *directory.Directory implements it.
// ResolveFriends looks up the QQ numbers of the friends not resolved yet, so
// that the friend list carries them. Members lists the members of the group
// target names (Group: its group number, or GID: its session number); an
// error with a method ErrorCode() schema.ErrorCode is answered with that code
// (unknown_target: the login has no such group; invalid_request;
// rate_limited), any other as session_unavailable.
type Contacts interface {
	ResolveFriends(ctx context.Context) error
	Friends() []schema.Contact
	Groups() []schema.GroupRef
	Discussions() []schema.DiscussRef
	Members(ctx context.Context, target schema.Target) ([]schema.Contact, error)
}

// Session is what the API needs of the session manager: its state, and a
// login request. RequestLogin without force returns an error wrapping
// live.ErrAlreadyOnline while a session is online.
type Session interface {
	State() schema.SessionState
	RequestLogin(ctx context.Context, force bool) error
}

// Config configures an API. NC, Sender, Contacts and Session are required.
type Config struct {
	NC       *nats.Conn
	Sender   Sender
	Contacts Contacts
	Session  Session
	Subjects schema.Subjects
	// Codec encodes the replies to requests without a Content-Type; nil = JSON.
	Codec schema.Codec
	Log   zerolog.Logger
	// Version is the version the service announces (semantic, without a
	// leading v, e.g. the bridge's module version); "" or one that is not a
	// semantic version announces ServiceVersion.
	Version string
	// Metadata annotates the service in $SRV.INFO (e.g. the bridge's build
	// version, its prefix, account and replica); "api" is always set to
	// ServiceVersion, the version of this API's contract.
	Metadata map[string]string
	// Timeout bounds the work on one request: a send without a deadline of
	// its own (header Qq-Deadline) or with a later one starts no part after
	// Timeout; a login request waits at most that long. Default
	// DefaultTimeout.
	Timeout time.Duration
	// Files, when set, serves file.accept and file.refuse (a
	// *media.Media); FileTimeout bounds one (default DefaultFileTimeout).
	Files       Files
	FileTimeout time.Duration
}

// API is the micro service. Start it once.
type API struct {
	cfg Config
	log zerolog.Logger

	inFlight sync.WaitGroup
}

// New checks cfg and returns an API. Errors wrap ErrConfig.
func New(cfg Config) (*API, error) {
	switch {
	case cfg.NC == nil:
		return nil, fmt.Errorf("%w: NC is required", ErrConfig)
	case cfg.Sender == nil:
		return nil, fmt.Errorf("%w: Sender is required", ErrConfig)
	case cfg.Contacts == nil:
		return nil, fmt.Errorf("%w: Contacts is required", ErrConfig)
	case cfg.Session == nil:
		return nil, fmt.Errorf("%w: Session is required", ErrConfig)
	}
	if cfg.Codec == nil {
		cfg.Codec = schema.JSON()
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &API{
		cfg: cfg,
		log: cfg.Log.With().Str("component", "api").Str("prefix", cfg.Subjects.Prefix()).Logger(),
	}, nil
}

// Start adds the micro service with its endpoints; it stops when ctx ends
// (Wait then waits for the requests being handled).
func (a *API) Start(ctx context.Context) (micro.Service, error) {
	version := strings.TrimPrefix(a.cfg.Version, "v")
	if !semVer.MatchString(version) {
		version = ServiceVersion
	}
	md := map[string]string{}
	for k, v := range a.cfg.Metadata {
		md[k] = v
	}
	md["api"] = ServiceVersion
	svc, err := micro.AddService(a.cfg.NC, micro.Config{
		Name:        schema.ServiceName,
		Version:     version,
		Metadata:    md,
		Description: "qqbridge: send QQ messages, list contacts, session state and login",
		QueueGroup:  QueueGroup,
	})
	if err != nil {
		return nil, fmt.Errorf("api: micro service: %w", err)
	}
	g := svc.AddGroup(a.cfg.Subjects.API())
	type endpoint struct {
		subject string
		h       func(context.Context, micro.Request)
	}
	var eps []endpoint
	for _, k := range []schema.Kind{schema.KindFriend, schema.KindGroup, schema.KindDiscuss, schema.KindSess} {
		eps = append(eps, endpoint{"send." + string(k), a.sendHandler(k)})
	}
	c := a.cfg.Contacts
	eps = append(eps,
		endpoint{"contacts.friends", a.friends},
		endpoint{"contacts.groups", func(_ context.Context, r micro.Request) { a.respond(r, nonNil(c.Groups())) }},
		endpoint{"contacts.discussions", func(_ context.Context, r micro.Request) { a.respond(r, nonNil(c.Discussions())) }},
		endpoint{"contacts.members", a.members},
		endpoint{"session.state", func(_ context.Context, r micro.Request) { a.respond(r, a.cfg.Session.State()) }},
		endpoint{"session.login", a.login},
	)
	if a.cfg.Files != nil {
		for _, subject := range []string{"file.accept", "file.refuse"} {
			eps = append(eps, endpoint{subject, a.fileEndpoints()[subject]})
		}
	}
	for _, ep := range eps {
		name := strings.ReplaceAll(ep.subject, ".", "-")
		if err := g.AddEndpoint(name, a.handle(ctx, ep.h), micro.WithEndpointSubject(ep.subject)); err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("api: endpoint %s: %w", ep.subject, err)
		}
	}
	context.AfterFunc(ctx, func() { _ = svc.Stop() })
	a.log.Info().Str("service", schema.ServiceName).Str("subjects", a.cfg.Subjects.APIWildcard()).Msg("API service running")
	return svc, nil
}

// handle runs h on micro's goroutine, so that the answer is made before the
// handler returns (micro counts errors and measures the processing time when
// it does), and counts it in flight for Wait.
func (a *API) handle(ctx context.Context, h func(context.Context, micro.Request)) micro.HandlerFunc {
	return func(r micro.Request) {
		a.inFlight.Add(1)
		defer a.inFlight.Done()
		h(ctx, r)
	}
}

// friends serves contacts.friends: the friend list with their QQ numbers,
// looked up first (within Timeout) for the friends not resolved yet; a lookup
// that fails leaves the number out (zero), the list is answered anyway.
func (a *API) friends(ctx context.Context, r micro.Request) {
	rctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	if err := a.cfg.Contacts.ResolveFriends(rctx); err != nil {
		a.log.Info().Err(err).Msg("some friends' QQ numbers could not be resolved; answering the list without them")
	}
	a.respond(r, nonNil(a.cfg.Contacts.Friends()))
}

// Wait blocks until the requests being handled have been answered. Call it
// after the ctx given to Start has ended.
func (a *API) Wait() { a.inFlight.Wait() }

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
