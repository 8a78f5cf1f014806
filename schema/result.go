package schema

import "time"

// ErrorCode classifies a failed send (ResultError.Code).
type ErrorCode string

// The error codes of a Result.
const (
	// CodeInvalidRequest: the request could not be decoded or failed
	// Validate. Resending it unchanged fails again.
	CodeInvalidRequest ErrorCode = "invalid_request"
	// CodeUnknownTarget: the target is not a friend, group, discussion or
	// member the account knows (or a session number from an older login).
	CodeUnknownTarget ErrorCode = "unknown_target"
	// CodeRateLimited: QQ refused the message as too frequent; nothing was
	// sent. Retry later.
	CodeRateLimited ErrorCode = "rate_limited"
	// CodeSessionUnavailable: the bridge is not logged in (awaiting a scan,
	// re-logging in, kicked); nothing was sent. Retry later.
	CodeSessionUnavailable ErrorCode = "session_unavailable"
	// CodeQQError: QQ answered with another error; Retcode has its number.
	CodeQQError ErrorCode = "qq_error"
	// CodeMaybeSent: the outcome is unknown (QQ's known ambiguous answer, or
	// a timeout after the message left); the message may have been
	// delivered. The bridge does not retry it, so it is never sent twice.
	CodeMaybeSent ErrorCode = "maybe_sent"
)

// Retryable reports whether a request that failed with c can be sent again
// as it is without risk of a duplicate: rate_limited and
// session_unavailable.
func (c ErrorCode) Retryable() bool {
	return c == CodeRateLimited || c == CodeSessionUnavailable
}

// Result is the outcome of one send request, published on
// <prefix>.result.<kind> and returned by <prefix>.api.send.<kind>. ID echoes
// the request's id (for a request without one, the bridge fills in an id of
// its own). Parts is the number of QQ messages that went out: all of them on
// success (a long text is split), those sent before the failure otherwise.
// V is the schema version; zero is encoded as Version.
type Result struct {
	V     int          `json:"v" msgpack:"v"`
	ID    string       `json:"id" msgpack:"id"`
	Kind  Kind         `json:"kind" msgpack:"kind"`
	OK    bool         `json:"ok" msgpack:"ok"`
	Parts int          `json:"parts,omitempty" msgpack:"parts,omitempty"`
	Error *ResultError `json:"error,omitempty" msgpack:"error,omitempty"`
}

// ResultError says why a send failed. Message is for people and never holds
// a secret; Retcode is QQ's retcode when QQ gave one.
type ResultError struct {
	Code    ErrorCode `json:"code" msgpack:"code"`
	Message string    `json:"message" msgpack:"message"`
	Retcode int       `json:"retcode,omitempty" msgpack:"retcode,omitempty"`
}

// Error returns "<code>: <message>", so a ResultError can be returned as an
// error.
func (e *ResultError) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return string(e.Code) + ": " + e.Message
}

// State is a session state (SessionState.State), one of the constants below.
type State string

// Session states.
const (
	StateAwaitingScan State = "awaiting_scan" // a QR is published; waiting for the phone to scan it
	StateScanned      State = "scanned"       // scanned; waiting for the phone to confirm
	StateQRExpired    State = "qr_expired"    // the QR expired before it was confirmed
	StateOnline       State = "online"        // logged in and polling
	StateReconnecting State = "reconnecting"  // the session dropped; re-logging in with the saved session
	StateSessionLost  State = "session_lost"  // the saved session no longer works; a new QR login is needed
	StateKicked       State = "kicked"        // another login replaced this one
	StateStopped      State = "stopped"       // the bridge shut down
)

// SessionState is published on <prefix>.session.state at every change and
// kept under SessionKeyState in the session bucket. Account is the QQ number
// once known (zero before the first login). Reason is a human-readable
// detail and never holds a secret.
type SessionState struct {
	State   State     `json:"state" msgpack:"state"`
	Reason  string    `json:"reason,omitempty" msgpack:"reason,omitempty"`
	Time    time.Time `json:"time" msgpack:"time"`
	Account int64     `json:"account,omitempty" msgpack:"account,omitempty"`
}

// QR is a login QR code, published on <prefix>.session.qr and kept under
// SessionKeyQR in the session bucket. PNG is the image (base64 in JSON, bin
// in msgpack); ExpiresAt is when QQ stops accepting it.
type QR struct {
	PNG       []byte    `json:"png" msgpack:"png"`
	ExpiresAt time.Time `json:"expires_at" msgpack:"expires_at"`
}
