// Package qqsim is a faithful SmartQQ (WebQQ) server for tests, demos, consumer
// development and the real clients of the era. It serves the whole protocol of
// docs/protocol.md on one http.Handler — QR login, poll2, the four sends and the
// contact endpoints — as the service of a chosen era played it (Profile: 2018 by
// default, or the 2015 write-ups; Strict adds their pedantic header checks), with the
// checks the real service made (cookies, tokens, rates), and a control API under
// /_sim/ through which a test plays the phone and the contacts.
//
// The simulator is a second, independent implementation of the protocol: it never
// imports the client package.
package qqsim

import (
	"errors"
	"io"
	"time"
)

// Errors of the control methods; the HTTP control API answers them with 4xx.
var (
	ErrNoQR           = errors.New("qqsim: no QR code shown")
	ErrQRExpired      = errors.New("qqsim: QR code expired")
	ErrQRState        = errors.New("qqsim: QR code not in a state for this step")
	ErrUnknownContact = errors.New("qqsim: unknown contact")
	ErrBadSay         = errors.New("qqsim: bad message")
	ErrBadItem        = errors.New("qqsim: bad poll item")
)

// Config configures a Server. The zero value is usable: every zero field takes its
// default.
type Config struct {
	World      *World        // nil = DefaultWorld()
	QRTTL      time.Duration // how long a QR code stays valid; default 120s
	PollHold   time.Duration // how long an empty poll2 is held before {"retcode":102}; default 60s
	SessionTTL time.Duration // how long login cookies (and so sessions) live; default 48h
	// RateLimit is the number of requests per second per session allowed on every
	// endpoint but poll2 and the QR login (burst: twice as many); default 20; below
	// zero: no limit.
	RateLimit float64
	// Echo makes the account's own sends come back through poll2 in wire form, from
	// the account itself, as the real service did. The command's default is true.
	Echo bool
	// BaseURL is how the simulator names itself in the check_sig URL
	// ("http://127.0.0.1:8080"); "" = derived from each request's Host.
	BaseURL string
	// Logf, when set, receives one line per notable event. It never receives a
	// secret (cookie, token or session value).
	Logf func(format string, args ...any)
	// Profile is the era of the service played: Profile2018 (the default, also for
	// "") or Profile2015. See docs/qqsim.md for the rules of each.
	Profile Profile
	// Strict adds the pedantic header checks of the write-ups to the profile: the
	// exact http Referer of each host, the Origin of every POST, a browser
	// User-Agent, and each endpoint's one method. For testing this project's own
	// client; real clients of the era did not pass them all.
	Strict bool
	// EmptyPoll is how a held poll with nothing to deliver ends; "" = the profile's
	// (2015: 102; 2018: EmptyPollJSON).
	EmptyPoll EmptyPoll
	// SeedConfirm answers a confirmed QR code in seed 004's form,
	// ptuiCB('66','0','','0','<check_sig URL>',''), instead of ptuiCB('0',…).
	SeedConfirm bool
	// FileTTL is how long a file offer can be taken or refused; then get_file2 and
	// refuse_file2 answer {"retcode":102}; default 60s.
	FileTTL time.Duration
	// TransferLatency delays the answers of get_offpic2 and get_file2, as the slow
	// picture and file servers did (seed 002: 10–45 s); default none.
	TransferLatency time.Duration
	// Record, when set, receives one JSON line per request (protocol, page and
	// control API alike): method, host, path, query, headers, cookies and form, with
	// every value the simulator issued (tokens, cookies, session numbers) replaced by
	// a placeholder, and the answer's status and code. See RecordedRequest.
	Record io.Writer
}

// Say is a message a contact sends to the account (control API POST /_sim/messages).
type Say struct {
	// Kind is "friend", "group", "discuss" or "sess".
	Kind string `json:"kind"`
	// From is the speaker's QQ number.
	From int64 `json:"from"`
	// Group is the group number: the group spoken in (group) or the group the
	// temporary chat comes through (sess).
	Group int64 `json:"group,omitempty"`
	// DID is the discussion's stable id (discuss).
	DID int64 `json:"did,omitempty"`
	// Text is plain text; the simulator entity-escapes it on the wire.
	Text string `json:"text"`
	// Faces are face numbers sent after the text.
	Faces []int `json:"faces,omitempty"`
	// Pictures are pictures sent after the faces, by name: offpic items in friend
	// and temporary chats, cface items in groups and discussions.
	Pictures []string `json:"pictures,omitempty"`
}

// SentRecord is one message a client sent, decoded.
type SentRecord struct {
	Kind    string    `json:"kind"`    // friend, group, discuss, sess
	Target  int64     `json:"target"`  // the session number sent to (to, group_uin, did)
	Stable  int64     `json:"stable"`  // the QQ number, group number or discussion id
	Content string    `json:"content"` // the raw content string as received
	Text    string    `json:"text"`    // the text segments joined, faces as "[face N]"
	Faces   []int     `json:"faces"`   // the face numbers in order
	MsgID   int64     `json:"msg_id"`  // the client's msg_id
	Time    time.Time `json:"time"`
	Remote  string    `json:"remote"` // the client's address (host:port) the send came from
	// MaybeSent is true when the answer was retcode 1202 (chaos): the message counts
	// as delivered all the same, as the real service may have delivered it.
	MaybeSent bool `json:"maybe_sent,omitempty"`
}

// Chaos are faults on demand (control API POST /_sim/chaos). The zero value turns
// every fault off.
type Chaos struct {
	LatencyMS     int     `json:"latency_ms"`       // delay before each protocol answer
	HTTP502Rate   float64 `json:"http_502_rate"`    // share of protocol requests answered HTTP 502
	RateLimitPerS float64 `json:"rate_limit_per_s"` // when > 0, replaces Config.RateLimit
	MaybeSentRate float64 `json:"maybe_sent_rate"`  // share of sends answered 1202 (but delivered)
	// SendLatencyMS delays the answers of the four sends after the message is
	// delivered (in Sent, echoed): a client that dies meanwhile sent it without
	// hearing so.
	SendLatencyMS int `json:"send_latency_ms"`
}

// State is the simulator's observable state (control API GET /_sim/state). It never
// holds a secret.
type State struct {
	// Login is one of no_qr, qr_waiting, qr_scanned, qr_confirmed, qr_expired,
	// online, expired, kicked.
	Login       string           `json:"login"`
	SelfQQ      int64            `json:"self_qq"`
	UIN         int64            `json:"uin"`         // the account's uin in the session (its QQ number); 0 when offline
	Friends     map[int64]int64  `json:"friends"`     // QQ number → uin (every person of the world)
	Groups      map[int64]int64  `json:"groups"`      // group number → gid
	GroupCodes  map[int64]int64  `json:"group_codes"` // group number → group code
	Discussions map[int64]int64  `json:"discussions"` // discussion id → did
	Pending     int              `json:"pending"`     // poll items waiting for a poller
	Counters    map[string]int64 `json:"counters"`    // requests per endpoint and events
}
