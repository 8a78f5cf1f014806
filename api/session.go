package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"

	"github.com/nats-io/nats.go/micro"

	"github.com/qqbridge/qqbridge/live"
	"github.com/qqbridge/qqbridge/schema"
)

// loginRequest is the body of a session.login request; an empty body is
// {"force":false}.
type loginRequest struct {
	Force bool `json:"force" msgpack:"force"`
}

// login serves <prefix>.api.session.login: without force it refuses to
// replace a live session (409, error.code session_online); with force, or
// while no session is online, it starts a new QR login and answers the
// state.
func (a *API) login(ctx context.Context, r micro.Request) {
	req, err := decodeLogin(schema.HeaderValue(r.Headers(), schema.HeaderContentType), r.Data())
	if err != nil {
		a.respondError(r, CodeInvalid, schema.CodeInvalidRequest, `invalid request: body: want {"force":true|false}: `+err.Error())
		return
	}
	lctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	err = a.cfg.Session.RequestLogin(lctx, req.Force)
	switch {
	case errors.Is(err, live.ErrAlreadyOnline):
		a.respondError(r, CodeOnline, ErrorSessionOnline, `a session is online; send {"force":true} to replace it with a new QR login`)
		return
	case err != nil:
		a.respondError(r, CodeUnavailable, schema.CodeSessionUnavailable, "login could not start: "+err.Error())
		return
	}
	a.respond(r, a.cfg.Session.State())
}

// decodeLogin decodes a login request strictly (an unknown field is an
// error, so that a misspelt "force" does not pass for false).
func decodeLogin(contentType string, data []byte) (loginRequest, error) {
	var req loginRequest
	if len(bytes.TrimSpace(data)) == 0 {
		return req, nil
	}
	c, err := schema.CodecFor(contentType)
	if err != nil {
		return req, err
	}
	if c.ContentType() != schema.ContentTypeJSON {
		return req, c.Unmarshal(data, &req)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return req, dec.Decode(&req)
}
