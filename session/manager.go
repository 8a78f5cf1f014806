// Package session keeps one QQ account logged in for qqbridge: the login
// state machine, its state and QR events on NATS, the saved session in the
// session KV bucket (encrypted when a key is set), re-login after a session
// loss, and the leadership of one replica among several.
//
// # States
//
// Every change of state or of its reason is published on
// <prefix>.session.state (a schema.SessionState in the configured codec) and
// kept under key "state" of the session bucket; the same state with the same
// reason twice in a row is published once. A reconnecting state that follows
// online is held for Config.StateDebounce (default 2s): when the session is
// back online before that, neither the reconnecting nor the return to online
// is published, so that a flapping connection does not flood the subject; a
// longer reconnect is published when the debounce ends.
//
//	start (leader) ── saved session in KV? ── Resume ok ─────────────────────► online
//	                        │ no / undecryptable      │ session gone
//	                        │                         ▼
//	                        │                   reconnecting ── Relogin (cookies) ok ─► online
//	                        ▼                         │ cookies gone
//	                  awaiting_scan ◄── session_lost ◄┘
//	                        │ phone scans
//	                        ▼
//	                     scanned ── phone confirms ─► online
//	      QR expired:  qr_expired ─► awaiting_scan (a new QR) … after MaxQRExpired
//	                   expiries in a row: stopped, until a login request.
//	online ── live.Session.Lost ─► reconnecting ─► (as above)
//	online ── live.Session.Kicked ─► kicked, until a login request (no automatic re-login)
//	not online ── RequestLogin ─► awaiting_scan (a new QR login)
//	online ── RequestLogin with force ─► awaiting_scan; without force the
//	          request fails with live.ErrAlreadyOnline and nothing changes
//	leader shuts down ─► stopped
//
// A kicked state survives restarts and leader changes: a new leader that
// finds "kicked" in the bucket waits for a login request too, so that two
// logins never take the account from each other.
//
// # QR codes
//
// Each QR code is published on <prefix>.session.qr. With QRFormatPNG (the
// default) the message body is the PNG itself, with headers
// "Content-Type: image/png" and "expires_at" (RFC 3339, UTC); with
// QRFormatCodec it is a schema.QR (PNG in base64 for JSON, expires_at) in the
// configured codec. The latest QR is kept under key "qr" of the session
// bucket, always as a schema.QR in the configured codec.
//
// # Replicas
//
// Replicas share a lease: key "leader" of bucket bus.LeaderBucket, whose TTL
// is LeaderTTL. A replica takes it with Create and keeps it with Update at
// the revision it holds, every LeaderTTL/3. Only the leader logs in, polls
// (see LeaderTerms) and publishes state events. The others follow: they
// Resume the session the leader saved (key "session"), so that they can
// send, and they never log in themselves. When the leader stops it releases
// the lease; when it dies the lease expires; either way a follower takes over
// within about LeaderTTL and resumes the saved session. A login request made
// on a follower is forwarded to the leader through key "login" of the
// session bucket.
//
// # Live sessions
//
// The Manager hands its session to the code that uses it as a live.Session
// (see package live): Sessions for sending (any replica), LeaderTerms for
// polling (the leader only). Their users report a lost session or a kick
// through the live.Session itself.
//
// # Files
//
// manager.go holds the Config and the Manager's methods; terms.go the live
// sessions and the reports about them; run.go the Run loop and the bucket
// watches; follow.go a follower's resume of the leader's session; lead.go the
// leader's login state machine; publish.go the state and QR events and the
// saved session; lease.go the leadership lease; saved.go the saved session's
// encoding.
package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/qqbridge/qqbridge/internal/retry"
	"github.com/qqbridge/qqbridge/live"
	"github.com/qqbridge/qqbridge/metrics"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
	"github.com/rs/zerolog"
)

// Keys of the session bucket this package uses besides schema.SessionKeyState
// and schema.SessionKeyQR.
const (
	// KeySession holds the saved session (see EncodeSaved).
	KeySession = "session"
	// KeyLogin receives login requests forwarded by followers.
	KeyLogin = "login"
)

// Defaults of Config.
const (
	DefaultLeaderTTL    = 15 * time.Second
	DefaultQRTTL        = 120 * time.Second
	DefaultMaxQRExpired = 3
	DefaultRetryInitial = time.Second
	DefaultRetryMax     = time.Minute
	// DefaultStateDebounce is how long a reconnecting state after online is
	// held before it is published.
	DefaultStateDebounce = 2 * time.Second
)

// Errors of New, Run and RequestLogin (which also refuses, with an error
// wrapping live.ErrAlreadyOnline, to replace an online session without force).
var (
	// ErrConfig: a Config field is missing or invalid.
	ErrConfig = errors.New("session: invalid config")
	// ErrRunning: Run was called while it was already running.
	ErrRunning = errors.New("session: already running")
	// ErrNotRunning: RequestLogin on a Manager whose Run is not running.
	ErrNotRunning = errors.New("session: not running")
)

// QRFormat says how QR codes are published on <prefix>.session.qr.
type QRFormat string

// The QR formats.
const (
	// QRFormatPNG publishes the PNG bytes themselves, with headers
	// Content-Type "image/png" and "expires_at" (RFC 3339). The default.
	QRFormatPNG QRFormat = "png"
	// QRFormatCodec publishes a schema.QR in Config.Format.
	QRFormatCodec QRFormat = "codec"
)

// HeaderExpiresAt is the header of a PNG QR message that says when the code
// expires (RFC 3339, UTC).
const HeaderExpiresAt = "expires_at"

// ContentTypePNG is the Content-Type of a PNG QR message.
const ContentTypePNG = "image/png"

// Config configures a Manager.
type Config struct {
	// Client is the account's QQ client (required). The Manager logs it in,
	// resumes and re-logs it; others poll and send with it.
	Client *qqclient.Client
	// NC is the NATS connection state and QR events are published on
	// (required).
	NC *nats.Conn
	// JS is the JetStream context (required; used to set up LeaderKV).
	JS jetstream.JetStream
	// KV is the session bucket, bus.SessionKV (required).
	KV jetstream.KeyValue
	// LeaderKV is the lease bucket; nil: Run sets it up with bus.LeaderKV
	// and LeaderTTL (with the replicas of KV).
	LeaderKV jetstream.KeyValue
	// Subjects names the subjects.
	Subjects schema.Subjects
	// Key encrypts the saved session (AES-256-GCM): nil for none (a warning
	// is logged at each save), else KeySize bytes — DeriveKey of the
	// operator's secret.
	Key []byte
	// Log receives the Manager's logs; the account is a field, secrets never
	// appear.
	Log zerolog.Logger
	// Format encodes state events, QR events (QRFormatCodec) and the "state"
	// and "qr" values of the bucket; default JSON.
	Format schema.Codec
	// QRFormat is how QR events are published; default QRFormatPNG.
	QRFormat QRFormat
	// LeaderTTL is the lifetime of the leadership lease (default 15s, at
	// least 1s). All replicas must use the same value.
	LeaderTTL time.Duration
	// QRTTL is how long QQ accepts a QR code, for its expires_at; default
	// 120s.
	QRTTL time.Duration
	// MaxQRExpired is how many QR codes in a row may expire before the
	// Manager stops showing new ones (state stopped) until a login request;
	// default 3.
	MaxQRExpired int
	// RetryInitial and RetryMax bound the exponential back-off between
	// attempts that failed for a passing reason (QQ or NATS unreachable,
	// rate limits); defaults 1s and 1min.
	RetryInitial time.Duration
	RetryMax     time.Duration
	// StateDebounce is how long a reconnecting state that follows online is
	// held before it is published (see States); default 2s, negative for no
	// debounce.
	StateDebounce time.Duration
	// ReplicaID names this replica in the lease; default host name and a
	// random suffix.
	ReplicaID string
	// Metrics, when set, receives the state, leadership and QR metrics.
	Metrics *metrics.Metrics
}

// pending are the reports waiting for the Manager's loop.
type pending struct {
	lost       bool
	lostReason string
	kicked     bool
	kickReason string
	login      bool // a login request (forced, or made while not online)
}

// Manager keeps the account logged in. Its methods are safe for concurrent
// use; Run drives it.
type Manager struct {
	cfg Config
	id  string

	running atomic.Bool

	pubMu sync.Mutex // orders the state publications (setState, a debounce's end)

	mu       sync.Mutex
	state    schema.SessionState // the latest published state: own when leading, the leader's otherwise
	held     *heldState          // a reconnecting state waiting for its debounce
	account  int64
	gen      uint64
	online   bool
	onlineCh chan struct{}      // closed while online
	genCtx   context.Context    // the generation's term: ends with it (on the leader, with the leadership too)
	genStop  context.CancelFunc // ends genCtx
	handled  uint64             // the generation whose loss was reported already
	leading  bool
	pend     pending
	hooks    []func(live.Session)
	term     context.Context // the leadership term the lease holds, nil when none

	wake     chan struct{} // a report is pending
	termWake chan struct{} // the lease was taken
}

// New checks cfg, fills its defaults and returns a Manager; Run starts it.
func New(cfg Config) (*Manager, error) {
	switch {
	case cfg.Client == nil:
		return nil, fmt.Errorf("%w: Client is nil", ErrConfig)
	case cfg.NC == nil:
		return nil, fmt.Errorf("%w: NC is nil", ErrConfig)
	case cfg.JS == nil:
		return nil, fmt.Errorf("%w: JS is nil", ErrConfig)
	case cfg.KV == nil:
		return nil, fmt.Errorf("%w: KV is nil", ErrConfig)
	case len(cfg.Key) != 0 && len(cfg.Key) != KeySize:
		return nil, fmt.Errorf("%w: %w", ErrConfig, ErrKeySize)
	case cfg.LeaderTTL != 0 && cfg.LeaderTTL < time.Second:
		return nil, fmt.Errorf("%w: LeaderTTL %v is below one second", ErrConfig, cfg.LeaderTTL)
	case cfg.QRFormat != "" && cfg.QRFormat != QRFormatPNG && cfg.QRFormat != QRFormatCodec:
		return nil, fmt.Errorf("%w: QRFormat %q is neither png nor codec", ErrConfig, cfg.QRFormat)
	case cfg.MaxQRExpired < 0 || cfg.QRTTL < 0 || cfg.RetryInitial < 0 || cfg.RetryMax < 0:
		return nil, fmt.Errorf("%w: negative limit", ErrConfig)
	}
	if cfg.Format == nil {
		cfg.Format = schema.JSON()
	}
	if cfg.QRFormat == "" {
		cfg.QRFormat = QRFormatPNG
	}
	if cfg.LeaderTTL == 0 {
		cfg.LeaderTTL = DefaultLeaderTTL
	}
	if cfg.QRTTL == 0 {
		cfg.QRTTL = DefaultQRTTL
	}
	if cfg.MaxQRExpired == 0 {
		cfg.MaxQRExpired = DefaultMaxQRExpired
	}
	if cfg.RetryInitial == 0 {
		cfg.RetryInitial = DefaultRetryInitial
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	if cfg.StateDebounce == 0 {
		cfg.StateDebounce = DefaultStateDebounce
	}
	cfg.RetryMax = max(cfg.RetryMax, cfg.RetryInitial)
	if cfg.Key != nil {
		cfg.Key = append([]byte(nil), cfg.Key...)
	}
	id := cfg.ReplicaID
	if id == "" {
		id = defaultReplicaID()
	}
	return &Manager{
		cfg:      cfg,
		id:       id,
		onlineCh: make(chan struct{}),
		wake:     make(chan struct{}, 1),
		termWake: make(chan struct{}, 1),
	}, nil
}

func defaultReplicaID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "replica"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}

// OnOnline adds a hook run at each login (and resume) of this replica, with
// the new live session, before Sessions and LeaderTerms hand it out — the
// place for a contact directory refresh. Hooks run one after another on the
// Manager's goroutine; a hook that blocks delays going online. A hook's work
// should run under s.Context(), which ends with the session generation.
func (m *Manager) OnOnline(fn func(s live.Session)) {
	if fn == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hooks = append(m.hooks, fn)
}

// RequestLogin asks for a new QR login (the qq.api.session.login request): on
// the leader at once, from a follower by forwarding it to the leader through
// the session bucket. While a session is online, only a request with force
// replaces it; without force it returns an error wrapping
// live.ErrAlreadyOnline and nothing changes. It returns once the request is
// handed over.
func (m *Manager) RequestLogin(ctx context.Context, force bool) error {
	if !m.running.Load() {
		return ErrNotRunning
	}
	m.mu.Lock()
	leading := m.leading
	online := m.online
	if !leading {
		online = m.state.State == schema.StateOnline // the leader's
	}
	if leading && (force || !online) {
		m.pend.login = true
	}
	m.mu.Unlock()
	if online && !force {
		return fmt.Errorf("session: login request refused: %w", live.ErrAlreadyOnline)
	}
	if leading {
		m.signal()
		return nil
	}
	body, err := encodeLoginRequest(m.id, force)
	if err != nil {
		return err
	}
	if _, err := m.cfg.KV.Put(ctx, KeyLogin, body); err != nil {
		return fmt.Errorf("session: forward login request: %w", err)
	}
	return nil
}

// State returns the latest session state: this replica's own when it leads,
// else the leader's as kept in the session bucket.
func (m *Manager) State() schema.SessionState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

// IsLeader reports whether this replica leads: only the leader logs in and
// polls; followers resume the leader's saved session for sending.
func (m *Manager) IsLeader() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.leading
}

// signal wakes the loop.
func (m *Manager) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// takePending returns the pending reports and clears them.
func (m *Manager) takePending() pending {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pend
	m.pend = pending{}
	return p
}

// peekPending returns the pending reports and leaves them.
func (m *Manager) peekPending() pending {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pend
}

// updatePending changes the pending reports under the lock.
func (m *Manager) updatePending(fn func(*pending)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fn(&m.pend)
}

// logger returns the log with the account as a field.
func (m *Manager) logger() *zerolog.Logger {
	m.mu.Lock()
	acct := m.account
	m.mu.Unlock()
	l := m.cfg.Log.With().Int64("account", acct).Str("replica", m.id).Logger()
	return &l
}

// backoff returns the retry back-off of the config.
func (m *Manager) backoff() *backoff.ExponentialBackOff {
	return retry.Backoff(m.cfg.RetryInitial, m.cfg.RetryMax)
}

// reasonOf is a state reason from an error (errors of qqclient never hold
// secrets).
func reasonOf(err error, fallback string) string {
	if err == nil {
		return fallback
	}
	return err.Error()
}

func nonEmpty(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}
