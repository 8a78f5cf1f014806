package egress

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/micro"

	"github.com/qqbridge/qqbridge/schema"
)

// API error codes, in the micro error header Nats-Service-Error-Code, by
// result code. The body of an error reply is JSON in every case: the Result
// for a send, {"ok":false,"error":{"code","message"}} otherwise.
const (
	apiCodeInvalid     = "400" // invalid_request
	apiCodeUnknown     = "404" // unknown_target
	apiCodeRateLimited = "429" // rate_limited
	apiCodeMaybeSent   = "500" // maybe_sent: do not resend
	apiCodeNotSent     = "501" // no directory configured
	apiCodeQQError     = "502" // qq_error
	apiCodeUnavailable = "503" // session_unavailable, login could not start
)

// apiFailure is the JSON body of an error reply of the endpoints that do
// not send.
type apiFailure struct {
	OK    bool               `json:"ok"`
	Error schema.ResultError `json:"error"`
}

// Service starts the synchronous API, the NATS micro service
// schema.ServiceName ("qqbridge") in queue group QueueGroup, so that replicas
// share it. Its endpoints, under <prefix>.api.:
//
//	send.friend|group|discuss|sess    a Request (JSON or msgpack by Content-Type) → its Result
//	contacts.friends|groups|discussions  → []schema.Contact / []schema.GroupRef / []schema.DiscussRef
//	session.state                      → schema.SessionState
//	session.login                      start a new QR login → schema.SessionState
//
// A reply is encoded in the codec of the request's Content-Type, or
// Config.Codec when the request has none. A failed send is answered as a
// micro error (headers Nats-Service-Error-Code, see the apiCode constants,
// and Nats-Service-Error) with the Result as a JSON body. A send that cannot
// complete within Config.APITimeout is answered rate_limited or
// session_unavailable. The service stops when ctx ends; Wait then waits for
// the sends in flight.
func (e *Egress) Service(ctx context.Context) (micro.Service, error) {
	svc, err := micro.AddService(e.cfg.NC, micro.Config{
		Name:        schema.ServiceName,
		Version:     ServiceVersion,
		Description: "qqbridge: send QQ messages, list contacts, session state and login",
		QueueGroup:  QueueGroup,
	})
	if err != nil {
		return nil, fmt.Errorf("egress: micro service: %w", err)
	}
	g := svc.AddGroup(e.cfg.Subjects.API())
	sem := make(chan struct{}, e.cfg.APIConcurrent)
	type endpoint struct {
		subject string
		h       micro.HandlerFunc
	}
	var eps []endpoint
	for _, k := range []schema.Kind{schema.KindFriend, schema.KindGroup, schema.KindDiscuss, schema.KindSess} {
		eps = append(eps, endpoint{"send." + string(k), e.sendHandler(ctx, k, sem)})
	}
	eps = append(eps,
		endpoint{"contacts.friends", e.contactsHandler(func(d Directory) any { return nonNil(d.Friends()) })},
		endpoint{"contacts.groups", e.contactsHandler(func(d Directory) any { return nonNil(d.Groups()) })},
		endpoint{"contacts.discussions", e.contactsHandler(func(d Directory) any { return nonNil(d.Discussions()) })},
		endpoint{"session.state", func(r micro.Request) { e.respond(r, e.cfg.Session.State()) }},
		endpoint{"session.login", e.loginHandler(ctx)},
	)
	for _, ep := range eps {
		name := strings.ReplaceAll(ep.subject, ".", "-")
		if err := g.AddEndpoint(name, ep.h, micro.WithEndpointSubject(ep.subject)); err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("egress: endpoint %s: %w", ep.subject, err)
		}
	}
	context.AfterFunc(ctx, func() { _ = svc.Stop() })
	e.log.Info().Str("service", schema.ServiceName).Str("subjects", e.cfg.Subjects.APIWildcard()).Msg("API service running")
	return svc, nil
}

// Wait blocks until the API sends in flight have been answered. Call it after
// the ctx given to Service has ended.
func (e *Egress) Wait() { e.api.Wait() }

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// sendHandler serves <prefix>.api.send.<kind>. Each request is sent on its
// own goroutine (at most cap(sem) at once; the pace is shared anyway), so
// that one waiting send does not hold up the answers to others.
func (e *Egress) sendHandler(ctx context.Context, kind schema.Kind, sem chan struct{}) micro.HandlerFunc {
	return func(r micro.Request) {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			e.respondResult(r, failed("", kind, schema.CodeSessionUnavailable, "the bridge is stopping", 0, 0))
			return
		}
		e.api.Add(1)
		go func() {
			defer e.api.Done()
			defer func() { <-sem }()
			req, err := schema.DecodeRequest(schema.HeaderValue(r.Headers(), schema.HeaderContentType), r.Data())
			if err != nil {
				e.respondResult(r, invalidResult("", kind, err))
				return
			}
			sctx, cancel := context.WithTimeout(ctx, e.cfg.APITimeout)
			res := e.Send(sctx, kind, req)
			cancel()
			if res.Error != nil {
				e.log.Info().Str("kind", string(kind)).Str("id", req.ID).Str("code", string(res.Error.Code)).Str("reason", res.Error.Message).Msg("API send failed")
			}
			e.respondResult(r, res)
		}()
	}
}

func (e *Egress) contactsHandler(list func(Directory) any) micro.HandlerFunc {
	return func(r micro.Request) {
		if e.cfg.Dir == nil {
			e.respondError(r, apiCodeNotSent, schema.CodeSessionUnavailable, "the bridge has no contact directory")
			return
		}
		e.respond(r, list(e.cfg.Dir))
	}
}

func (e *Egress) loginHandler(ctx context.Context) micro.HandlerFunc {
	return func(r micro.Request) {
		lctx, cancel := context.WithTimeout(ctx, e.cfg.APITimeout)
		defer cancel()
		if err := e.cfg.Session.RequestLogin(lctx); err != nil {
			e.respondError(r, apiCodeUnavailable, schema.CodeSessionUnavailable, "login could not start: "+err.Error())
			return
		}
		e.respond(r, e.cfg.Session.State())
	}
}

// replyCodec is the codec of a reply to r: its Content-Type's, else the
// configured one.
func (e *Egress) replyCodec(r micro.Request) schema.Codec {
	if ct := schema.HeaderValue(r.Headers(), schema.HeaderContentType); ct != "" {
		if c, err := schema.CodecFor(ct); err == nil {
			return c
		}
	}
	return e.codec
}

// respond answers r with v in the reply codec.
func (e *Egress) respond(r micro.Request, v any) {
	c := e.replyCodec(r)
	data, err := c.Marshal(v)
	if err != nil {
		e.respondError(r, apiCodeUnavailable, schema.CodeQQError, "cannot encode the reply: "+err.Error())
		return
	}
	if err := r.Respond(data, micro.WithHeaders(micro.Headers{schema.HeaderContentType: {c.ContentType()}})); err != nil {
		e.log.Debug().Err(err).Msg("API reply failed")
	}
}

// respondResult answers a send: the Result in the reply codec when it
// succeeded, else a micro error with the Result as JSON.
func (e *Egress) respondResult(r micro.Request, res schema.Result) {
	if res.Error == nil {
		e.respond(r, res)
		return
	}
	data, err := json.Marshal(res)
	if err != nil {
		data = nil
	}
	e.replyError(r, apiCodeFor(res.Error.Code), res.Error.Message, data)
}

// respondError answers r with a micro error and {"ok":false,"error":…}.
func (e *Egress) respondError(r micro.Request, apiCode string, code schema.ErrorCode, msg string) {
	data, _ := json.Marshal(apiFailure{Error: schema.ResultError{Code: code, Message: msg}})
	e.replyError(r, apiCode, msg, data)
}

func (e *Egress) replyError(r micro.Request, apiCode, msg string, data []byte) {
	desc := strings.NewReplacer("\r", " ", "\n", " ").Replace(msg)
	if err := r.Error(apiCode, desc, data, micro.WithHeaders(micro.Headers{schema.HeaderContentType: {schema.ContentTypeJSON}})); err != nil {
		e.log.Debug().Err(err).Msg("API error reply failed")
	}
}

// apiCodeFor maps a result code to the micro error code.
func apiCodeFor(c schema.ErrorCode) string {
	switch c {
	case schema.CodeInvalidRequest:
		return apiCodeInvalid
	case schema.CodeUnknownTarget:
		return apiCodeUnknown
	case schema.CodeRateLimited:
		return apiCodeRateLimited
	case schema.CodeMaybeSent:
		return apiCodeMaybeSent
	case schema.CodeQQError:
		return apiCodeQQError
	}
	return apiCodeUnavailable
}
