package qqclient

import (
	"errors"
	"fmt"
	"strings"
)

// Errors by meaning, usable with errors.Is. Errors that carry a retcode (*RetcodeError) or an
// HTTP status (*HTTPError) wrap one of these.
var (
	// ErrSessionLost: the session is gone (retcode 103, 121, 100, 109, 110, 100000).
	ErrSessionLost = errors.New("qqclient: session lost")
	// ErrRateLimited: requests came too often (retcode 1000003).
	ErrRateLimited = errors.New("qqclient: rate limited")
	// ErrBadRequest: the request was rejected as malformed or missing credentials
	// (retcode 100001, 1000000, 1000001), or refused locally before sending.
	ErrBadRequest = errors.New("qqclient: request rejected")
	// ErrMaybeSent: the server answered 1202; the message may or may not have been delivered.
	// Resending blindly risks duplicates.
	ErrMaybeSent = errors.New("qqclient: message maybe sent")
	// ErrQRExpired: the QR code expired before it was confirmed (ptuiCB 65).
	ErrQRExpired = errors.New("qqclient: QR code expired")
	// ErrHTTP: a non-2xx status where none was expected, or a transport failure.
	ErrHTTP = errors.New("qqclient: HTTP failure")
	// ErrProtocol: an answer that could not be parsed or had an unknown shape or retcode.
	ErrProtocol = errors.New("qqclient: unexpected answer")
	// ErrNotLoggedIn: the call needs a session (or the login cookies) and the client has none.
	ErrNotLoggedIn = errors.New("qqclient: not logged in")
	// ErrTooLong: SendPart was given more than MaxPartBytes; nothing was sent.
	ErrTooLong = errors.New("qqclient: message part too long")
)

// RetcodeError is a non-success retcode (or errCode) answered by the server. Op is the
// endpoint name ("poll2", "send_qun_msg2"); Err is one of the package's sentinel errors.
type RetcodeError struct {
	Op      string
	Retcode int
	Err     error
}

// Error implements error. It never contains credentials.
func (e *RetcodeError) Error() string {
	return fmt.Sprintf("qqclient: %s: retcode %d: %s", e.Op, e.Retcode, reason(e.Err))
}

// Unwrap returns the sentinel error the retcode means.
func (e *RetcodeError) Unwrap() error { return e.Err }

// HTTPError is an HTTP-level failure of one request: a status that was not expected
// (StatusCode set) or a transport failure (StatusCode 0, Cause set). Unwrap yields ErrHTTP
// and, for a transport failure, its cause (for example context.DeadlineExceeded).
type HTTPError struct {
	Op         string
	StatusCode int
	// Cause is the transport error with any URL stripped (nil for a status error).
	Cause error
}

// Error implements error. It never contains the request URL or credentials.
func (e *HTTPError) Error() string {
	if e.StatusCode != 0 {
		return fmt.Sprintf("qqclient: %s: HTTP status %d", e.Op, e.StatusCode)
	}
	if e.Cause != nil {
		return fmt.Sprintf("qqclient: %s: HTTP failure: %s", e.Op, e.Cause.Error())
	}
	return fmt.Sprintf("qqclient: %s: HTTP failure", e.Op)
}

// Unwrap returns ErrHTTP and the cause, if any.
func (e *HTTPError) Unwrap() []error {
	if e.Cause != nil {
		return []error{ErrHTTP, e.Cause}
	}
	return []error{ErrHTTP}
}

// reason is a sentinel's message without the package prefix.
func reason(err error) string {
	if err == nil {
		return "error"
	}
	return strings.TrimPrefix(err.Error(), "qqclient: ")
}

// classify maps a non-success retcode to the sentinel error it means.
func classify(retcode int) error {
	switch retcode {
	case 103, 121, 100, 109, 110, 100000:
		return ErrSessionLost
	case 1000003:
		return ErrRateLimited
	case 100001, 1000000, 1000001:
		return ErrBadRequest
	case 1202:
		return ErrMaybeSent
	default:
		return ErrProtocol
	}
}

// retcodeError builds the typed error of a retcode answered by op.
func retcodeError(op string, retcode int) error {
	return &RetcodeError{Op: op, Retcode: retcode, Err: classify(retcode)}
}

// protocolError is an answer of op that could not be understood. The detail must not
// contain credentials.
func protocolError(op, detail string) error {
	return fmt.Errorf("%w: %s: %s", ErrProtocol, op, detail)
}
