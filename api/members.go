package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go/micro"

	"github.com/qqbridge/qqbridge/schema"
)

// membersUsage is what a contacts.members request must be.
const membersUsage = `want {"group":<group number>} or {"gid":<gid>}`

// maxMembersRequest bounds a contacts.members request body.
const maxMembersRequest = 1024

// membersRequest is the body of a contacts.members request; pointers tell
// a missing field from a zero one.
type membersRequest struct {
	Group *int64 `json:"group" msgpack:"group"`
	GID   *int64 `json:"gid" msgpack:"gid"`
}

// members serves <prefix>.api.contacts.members: the members of one group
// ([]schema.Contact, in QQ's order). A malformed request is answered 400
// invalid_request, a group the current login does not have 404
// unknown_target, a list that could not be had 503 session_unavailable (or
// 429 rate_limited), each with {"ok":false,"error":…}.
func (a *API) members(ctx context.Context, r micro.Request) {
	target, err := decodeMembers(schema.HeaderValue(r.Headers(), schema.HeaderContentType), r.Data())
	if err != nil {
		a.respondError(r, CodeInvalid, schema.CodeInvalidRequest, "invalid request: "+err.Error()+": "+membersUsage)
		return
	}
	mctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	ms, err := a.cfg.Contacts.Members(mctx, target)
	if err != nil {
		code := schema.CodeSessionUnavailable
		var coded interface{ ErrorCode() schema.ErrorCode }
		if errors.As(err, &coded) && coded.ErrorCode() != "" {
			code = coded.ErrorCode()
		}
		if code != schema.CodeUnknownTarget && code != schema.CodeInvalidRequest {
			a.log.Info().Err(err).Str("code", string(code)).Msg("group members could not be listed")
		}
		a.respondError(r, codeFor(code), code, err.Error())
		return
	}
	a.respond(r, nonNil(ms))
}

// decodeMembers decodes and checks a contacts.members request: one JSON
// object (or msgpack map, by Content-Type) with exactly one of group and
// gid, positive, and no other field.
func decodeMembers(contentType string, data []byte) (schema.Target, error) {
	var req membersRequest
	c, err := schema.CodecFor(contentType)
	switch {
	case err != nil:
		return schema.Target{}, fmt.Errorf("content-type %.64q: want %s or %s", contentType, schema.ContentTypeJSON, schema.ContentTypeMsgpack)
	case len(bytes.TrimSpace(data)) == 0:
		return schema.Target{}, errors.New("empty body")
	case len(data) > maxMembersRequest:
		return schema.Target{}, fmt.Errorf("body of %d bytes, at most %d allowed", len(data), maxMembersRequest)
	case c.ContentType() != schema.ContentTypeJSON:
		if err := c.Unmarshal(data, &req); err != nil {
			return schema.Target{}, errors.New("body: not a msgpack map of group or gid")
		}
	default:
		if err := decodeJSONObject(data, &req); err != nil {
			return schema.Target{}, err
		}
	}
	switch {
	case req.Group != nil && req.GID != nil:
		return schema.Target{}, errors.New("group or gid, not both")
	case req.Group != nil:
		if *req.Group <= 0 {
			return schema.Target{}, fmt.Errorf("group must be positive, got %d", *req.Group)
		}
		return schema.Target{Group: *req.Group}, nil
	case req.GID != nil:
		if *req.GID <= 0 {
			return schema.Target{}, fmt.Errorf("gid must be positive, got %d", *req.GID)
		}
		return schema.Target{GID: *req.GID}, nil
	}
	return schema.Target{}, errors.New("no group given")
}

// decodeJSONObject decodes data, one JSON object with no unknown field,
// into v; its errors describe the problem without quoting the body.
func decodeJSONObject(data []byte, v any) error {
	if !utf8.Valid(data) {
		return errors.New("body: not valid UTF-8")
	}
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return errors.New("body: not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil:
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return errors.New("body: data after the JSON object")
		}
		return nil
	case errors.As(err, &typ):
		return fmt.Errorf("body: %s must be a whole number, got a JSON %s", typ.Field, typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("body: unknown field %.40s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return errors.New("body: malformed JSON")
}
