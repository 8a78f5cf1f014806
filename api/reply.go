package api

import (
	"encoding/json"
	"strings"

	"github.com/nats-io/nats.go/micro"

	"github.com/qqbridge/qqbridge/schema"
)

// Error codes of the micro error replies (header Nats-Service-Error-Code).
// The body of an error reply is JSON in every case: the Result for a send,
// {"ok":false,"error":{"code","message"}} otherwise.
const (
	CodeInvalid     = "400" // invalid_request
	CodeUnknown     = "404" // unknown_target
	CodeLate        = "408" // the caller's deadline (Qq-Deadline) passed before the send (or its next part) could start: nothing (more) was sent
	CodeOnline      = "409" // session.login without force while a session is online
	CodeRateLimited = "429" // rate_limited
	CodeMaybeSent   = "500" // maybe_sent: do not resend
	CodeQQError     = "502" // qq_error
	CodeUnavailable = "503" // session_unavailable; a login that could not start
)

// ErrorSessionOnline is the error.code of the answer to a login request
// without force while a session is online.
const ErrorSessionOnline schema.ErrorCode = "session_online"

// failure is the JSON body of an error reply of the endpoints that do not
// send.
type failure struct {
	OK    bool               `json:"ok"`
	Error schema.ResultError `json:"error"`
}

// replyCodec is the codec of a reply to r: its Content-Type's, else the
// configured one.
func (a *API) replyCodec(r micro.Request) schema.Codec {
	if ct := schema.HeaderValue(r.Headers(), schema.HeaderContentType); ct != "" {
		if c, err := schema.CodecFor(ct); err == nil {
			return c
		}
	}
	return a.cfg.Codec
}

// respond answers r with v in the reply codec.
func (a *API) respond(r micro.Request, v any) {
	c := a.replyCodec(r)
	data, err := c.Marshal(v)
	if err != nil {
		a.respondError(r, CodeUnavailable, schema.CodeQQError, "cannot encode the reply: "+err.Error())
		return
	}
	if err := r.Respond(data, micro.WithHeaders(micro.Headers{schema.HeaderContentType: {c.ContentType()}})); err != nil {
		a.log.Debug().Err(err).Msg("API reply failed")
	}
}

// respondResult answers a send: the Result in the reply codec when it
// succeeded, else a micro error with the Result as JSON — code 408 when late
// (the caller's deadline passed before the send could go on).
func (a *API) respondResult(r micro.Request, res schema.Result, late bool) {
	if res.Error == nil {
		a.respond(r, res)
		return
	}
	data, err := json.Marshal(res)
	if err != nil {
		data = nil
	}
	code := codeFor(res.Error.Code)
	if late {
		code = CodeLate
	}
	a.replyError(r, code, res.Error.Message, data)
}

// respondError answers r with a micro error and {"ok":false,"error":…}.
func (a *API) respondError(r micro.Request, apiCode string, code schema.ErrorCode, msg string) {
	data, _ := json.Marshal(failure{Error: schema.ResultError{Code: code, Message: msg}})
	a.replyError(r, apiCode, msg, data)
}

func (a *API) replyError(r micro.Request, apiCode, msg string, data []byte) {
	desc := strings.NewReplacer("\r", " ", "\n", " ").Replace(msg)
	if err := r.Error(apiCode, desc, data, micro.WithHeaders(micro.Headers{schema.HeaderContentType: {schema.ContentTypeJSON}})); err != nil {
		a.log.Debug().Err(err).Msg("API error reply failed")
	}
}

// codeFor maps a result code to the micro error code.
func codeFor(c schema.ErrorCode) string {
	switch c {
	case schema.CodeInvalidRequest:
		return CodeInvalid
	case schema.CodeUnknownTarget:
		return CodeUnknown
	case schema.CodeRateLimited:
		return CodeRateLimited
	case schema.CodeMaybeSent:
		return CodeMaybeSent
	case schema.CodeQQError:
		return CodeQQError
	}
	return CodeUnavailable
}
