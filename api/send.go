package api

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/qqbridge/qqbridge/schema"
)

// HeaderDeadline is the request header that carries the caller's deadline
// for a send, an RFC 3339 time ("2026-12-02T01:02:03.5Z"): the bridge starts
// no part of the message after it.
const HeaderDeadline = "Qq-Deadline"

// deadlineError is the cause of a send's context ending at its deadline; its
// text is the reason given in the result.
type deadlineError struct {
	at       time.Time
	caller   bool // the caller's Qq-Deadline, not the API's Timeout
	previous bool // it had passed when the request arrived
}

func (e *deadlineError) Error() string {
	at := e.at.UTC().Format(time.RFC3339Nano)
	switch {
	case e.previous:
		return "the deadline " + at + " (" + HeaderDeadline + ") had passed when the request arrived"
	case e.caller:
		return "the deadline " + at + " (" + HeaderDeadline + ") passed"
	}
	return "the API's time limit passed (" + at + ")"
}

// sendHandler serves <prefix>.api.send.<kind>.
func (a *API) sendHandler(kind schema.Kind) func(context.Context, micro.Request) {
	return func(ctx context.Context, r micro.Request) {
		arrived := time.Now()
		req, err := schema.DecodeRequest(schema.HeaderValue(r.Headers(), schema.HeaderContentType), r.Data())
		if err != nil {
			a.respondResult(r, failed("", kind, schema.CodeInvalidRequest, err.Error(), 0), false)
			return
		}
		dl, err := a.deadline(r.Headers(), arrived)
		if err != nil {
			a.respondResult(r, failed(req.ID, kind, schema.CodeInvalidRequest, err.Error(), 0), false)
			return
		}
		if ctx.Err() != nil {
			a.respondResult(r, failed(req.ID, kind, schema.CodeSessionUnavailable, "not sent: the bridge is stopping", 0), false)
			return
		}
		if !dl.at.After(arrived) {
			dl.previous = true
			a.respondResult(r, failed(req.ID, kind, schema.CodeSessionUnavailable, "not sent: "+dl.Error(), 0), true)
			return
		}
		sctx, cancel := context.WithDeadlineCause(ctx, dl.at, dl)
		res := a.cfg.Sender.Send(sctx, kind, req)
		late := dl.caller && sctx.Err() != nil && ctx.Err() == nil && res.Error != nil && res.Error.Code.Retryable()
		cancel()
		if res.Error != nil {
			a.log.Info().Str("kind", string(kind)).Str("id", req.ID).Str("code", string(res.Error.Code)).
				Str("reason", res.Error.Message).Msg("API send failed")
		}
		a.respondResult(r, res, late)
	}
}

// deadline is the time after which the send of a request that arrived at
// arrived must not start: its Qq-Deadline, or arrived+Timeout when that is
// earlier or there is none.
func (a *API) deadline(h micro.Headers, arrived time.Time) (*deadlineError, error) {
	limit := &deadlineError{at: arrived.Add(a.cfg.Timeout)}
	v := schema.HeaderValue(h, HeaderDeadline)
	if v == "" {
		return limit, nil
	}
	at, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return nil, &schema.ValidationError{Field: "header " + HeaderDeadline, Reason: fmt.Sprintf("%.40q is not an RFC 3339 time", v)}
	}
	if at.After(limit.at) {
		return limit, nil
	}
	return &deadlineError{at: at, caller: true}, nil
}

func failed(id string, kind schema.Kind, code schema.ErrorCode, msg string, parts int) schema.Result {
	return schema.Result{V: schema.Version, ID: id, Kind: kind, Parts: parts,
		Error: &schema.ResultError{Code: code, Message: msg}}
}
