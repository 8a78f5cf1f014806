package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/qqbridge/qqbridge/media"
	"github.com/qqbridge/qqbridge/schema"
)

// DefaultFileTimeout is Config.FileTimeout's default: QQ's file server took
// up to 45 s per transfer.
const DefaultFileTimeout = 2 * time.Minute

// Error codes of the file endpoints (header Nats-Service-Error-Code).
const (
	CodeOfferExpired = "410" // offer_expired
	CodeTooLarge     = "413" // too_large
)

// Error codes (error.code) of the file endpoints, besides invalid_request,
// session_unavailable and qq_error.
const (
	ErrorOfferExpired schema.ErrorCode = schema.ReasonOfferExpired
	ErrorTooLarge     schema.ErrorCode = schema.ReasonTooLarge
)

// Files answers file offers; *media.Media implements it. Its errors match
// media's (media.ErrOfferExpired, …) or schema.ErrInvalidRequest.
type Files interface {
	Accept(ctx context.Context, offer string) (*schema.File, error)
	Refuse(ctx context.Context, offer string) error
}

// fileAccepted is the answer of file.accept.
type fileAccepted struct {
	OK   bool         `json:"ok" msgpack:"ok"`
	File *schema.File `json:"file" msgpack:"file"`
}

// fileRefused is the answer of file.refuse.
type fileRefused struct {
	OK bool `json:"ok" msgpack:"ok"`
}

// fileEndpoints are the endpoints of Config.Files: file.accept and
// file.refuse. Each request is handled on a goroutine of its own, so that a
// slow transfer does not hold up the next request.
func (a *API) fileEndpoints() map[string]func(context.Context, micro.Request) {
	async := func(h func(context.Context, micro.Request)) func(context.Context, micro.Request) {
		return func(ctx context.Context, r micro.Request) {
			a.inFlight.Add(1)
			go func() {
				defer a.inFlight.Done()
				h(ctx, r)
			}()
		}
	}
	return map[string]func(context.Context, micro.Request){
		"file.accept": async(a.fileAccept),
		"file.refuse": async(a.fileRefuse),
	}
}

// fileAccept serves <prefix>.api.file.accept {"offer":"…"}: the file is
// taken, stored in the media bucket and announced (file.received); the
// answer is {"ok":true,"file":{…}} once it is stored.
func (a *API) fileAccept(ctx context.Context, r micro.Request) {
	offer, ok := a.fileRequest(r)
	if !ok {
		return
	}
	fctx, cancel := context.WithTimeout(ctx, a.fileTimeout())
	defer cancel()
	f, err := a.cfg.Files.Accept(fctx, offer)
	if err != nil {
		a.fileError(r, err)
		return
	}
	a.respond(r, fileAccepted{OK: true, File: f})
}

// fileRefuse serves <prefix>.api.file.refuse {"offer":"…"}.
func (a *API) fileRefuse(ctx context.Context, r micro.Request) {
	offer, ok := a.fileRequest(r)
	if !ok {
		return
	}
	fctx, cancel := context.WithTimeout(ctx, a.fileTimeout())
	defer cancel()
	if err := a.cfg.Files.Refuse(fctx, offer); err != nil {
		a.fileError(r, err)
		return
	}
	a.respond(r, fileRefused{OK: true})
}

func (a *API) fileTimeout() time.Duration {
	if a.cfg.FileTimeout > 0 {
		return a.cfg.FileTimeout
	}
	return DefaultFileTimeout
}

// fileRequest decodes a schema.FileRequest (strictly, in JSON), answering
// invalid_request when it cannot.
func (a *API) fileRequest(r micro.Request) (string, bool) {
	var req schema.FileRequest
	var err error
	c, cerr := schema.CodecFor(schema.HeaderValue(r.Headers(), schema.HeaderContentType))
	switch {
	case cerr != nil:
		err = cerr
	case c.ContentType() != schema.ContentTypeJSON:
		err = c.Unmarshal(r.Data(), &req)
	default:
		dec := json.NewDecoder(bytes.NewReader(r.Data()))
		dec.DisallowUnknownFields()
		err = dec.Decode(&req)
	}
	if err == nil && req.Offer == "" {
		err = errors.New("no offer")
	}
	if err != nil {
		a.respondError(r, CodeInvalid, schema.CodeInvalidRequest, `invalid request: body: want {"offer":"<file.offer's offer>"}: `+err.Error())
		return "", false
	}
	return req.Offer, true
}

// fileError answers a failed accept or refuse.
func (a *API) fileError(r micro.Request, err error) {
	switch {
	case errors.Is(err, schema.ErrInvalidRequest):
		a.respondError(r, CodeInvalid, schema.CodeInvalidRequest, err.Error())
	case errors.Is(err, media.ErrOfferExpired):
		a.respondError(r, CodeOfferExpired, ErrorOfferExpired, "the file offer expired or was answered already")
	case errors.Is(err, media.ErrTooLarge):
		a.respondError(r, CodeTooLarge, ErrorTooLarge, err.Error())
	case errors.Is(err, media.ErrNoSession):
		a.respondError(r, CodeUnavailable, schema.CodeSessionUnavailable, err.Error())
	default:
		a.respondError(r, CodeQQError, schema.CodeQQError, err.Error())
	}
}
