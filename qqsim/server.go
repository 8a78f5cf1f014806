package qqsim

import (
	"bytes"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is the simulator: an http.Handler serving the protocol endpoints and the
// /_sim/ control API, and the same control as methods. It is safe for concurrent use.
type Server struct {
	cfg       Config
	world     *World
	endpoints map[string]endpoint // read-only after New

	mu      sync.Mutex
	rng     *rand.Rand    // under mu
	changed chan struct{} // closed and replaced whenever held polls must look again
	closed  bool

	phase   string          // login state when no session is live (State.Login)
	qr      *qrCode         // the QR code shown last
	oldQR   map[string]bool // qrsig values of replaced QR codes
	creds   *creds          // the login cookies issued last
	credsBy map[string]*creds
	sess    *session // the session made last (maybe no longer live)
	sessBy  map[string]*session
	lastNum *numbers // numbers of the previous session, never drawn again right after
	bucket  bucket

	pending    []pendingItem
	sent       []SentRecord
	recent     []recentEntry
	chaos      Chaos
	counters   map[string]int64
	nextMsgID  int64
	groupSeq   map[string]int64
	emptyPolls int64 // empty polls answered (EmptyPollCycle)
	sends      int64 // sends answered (the 2018 profile alternates the success forms)

	pictures  map[string]*picture  // by offpic file_path
	files     map[int64]*fileOffer // by lcid
	lastLCID  int64
	blobs     map[string]blob // by rkey
	transfers []Transfer

	rec *recorder // nil without Config.Record
}

// New makes a Server from cfg, filling defaults. It fails (wrapping ErrBadWorld) when
// cfg.World is not servable.
func New(cfg Config) (*Server, error) {
	if cfg.World == nil {
		cfg.World = DefaultWorld()
	}
	if err := cfg.World.Validate(); err != nil {
		return nil, err
	}
	if cfg.QRTTL <= 0 {
		cfg.QRTTL = 120 * time.Second
	}
	if cfg.PollHold <= 0 {
		cfg.PollHold = 60 * time.Second
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 48 * time.Hour
	}
	if cfg.FileTTL <= 0 {
		cfg.FileTTL = 60 * time.Second
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = 20
	}
	if cfg.BaseURL != "" {
		cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	}
	p, err := ParseProfile(string(cfg.Profile))
	if err != nil {
		return nil, err
	}
	cfg.Profile = p
	if _, err := ParseEmptyPoll(string(cfg.EmptyPoll)); err != nil {
		return nil, err
	}
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails on supported platforms
	rng := rand.New(rand.NewChaCha8(seed))
	var rec *recorder
	if cfg.Record != nil {
		rec = &recorder{w: cfg.Record}
	}
	return &Server{
		rec:       rec,
		cfg:       cfg,
		world:     cfg.World.clone(),
		endpoints: protocolEndpoints(),
		rng:       rng,
		changed:   make(chan struct{}),
		phase:     "no_qr",
		oldQR:     map[string]bool{},
		credsBy:   map[string]*creds{},
		sessBy:    map[string]*session{},
		counters:  map[string]int64{},
		nextMsgID: 20000 + rng.Int64N(30000),
		groupSeq:  map[string]int64{},
		pictures:  map[string]*picture{},
		files:     map[int64]*fileOffer{},
		blobs:     map[string]blob{},
		lastLCID:  20000 + rng.Int64N(10000),
	}, nil
}

// ServeHTTP serves the protocol endpoints and the /_sim/ control API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.rec != nil {
		s.serveRecorded(w, r)
		return
	}
	s.serve(w, r)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		s.serveControl(w, r)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/blob/") {
		s.serveBlob(w, r)
		return
	}
	ep, ok := s.endpoints[r.URL.Path]
	if !ok {
		if title, ok := pages[r.URL.Path]; ok {
			s.mu.Lock()
			s.count("page")
			s.mu.Unlock()
			page(title)(w)
			return
		}
		http.NotFound(w, r)
		return
	}
	s.serveProtocol(w, r, ep)
}

// Close answers every held poll at once ({"retcode":102}) and makes later polls
// answer without holding, so that an http.Server can shut down quickly. Use it with
// http.Server.RegisterOnShutdown.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.notifyLocked()
}

// notifyLocked wakes every held poll so it looks at the state again.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// tickLocked applies what time did since the last look: QR expiry and the end of
// the login cookies' life.
func (s *Server) tickLocked(now time.Time) {
	if q := s.qr; q != nil && (q.phase == qrWaiting || q.phase == qrScanned) && now.Sub(q.shown) >= s.cfg.QRTTL {
		q.phase = qrExpired
		if s.phase == "qr_waiting" || s.phase == "qr_scanned" {
			s.phase = "qr_expired"
		}
	}
	if c := s.creds; c != nil && !c.dead && now.Sub(c.issued) >= s.cfg.SessionTTL {
		c.dead = true
		if s.sess != nil && s.sess.creds == c && s.sess.state == sessLive {
			s.sess.state = sessExpired
			s.phase = "expired"
			s.logf("session ended: the login cookies reached their TTL")
		}
		s.notifyLocked()
	}
}

// liveSession returns the current session when it is live.
func (s *Server) liveSession() *session {
	if s.sess != nil && s.sess.state == sessLive && !s.sess.creds.dead {
		return s.sess
	}
	return nil
}

func (s *Server) count(name string) { s.counters[name]++ }

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf("qqsim: "+format, args...)
	}
}

// secret returns n random bytes as lower-case hex, for tokens and cookies.
func secret(n int) string {
	b := make([]byte, n)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}

// msgIDLocked returns the next msg_id of an item the simulator delivers. The ids
// increase for the whole life of the Server, so they increase within each session and
// never repeat across sessions.
func (s *Server) msgIDLocked() int64 {
	s.nextMsgID++
	return s.nextMsgID
}

// State returns the observable state. It holds no secret.
func (s *Server) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tickLocked(time.Now())
	st := State{
		Login:       s.phase,
		SelfQQ:      s.world.Self.QQ,
		Friends:     map[int64]int64{},
		Groups:      map[int64]int64{},
		GroupCodes:  map[int64]int64{},
		Discussions: map[int64]int64{},
		Pending:     len(s.pending),
		Counters:    map[string]int64{},
	}
	for k, v := range s.counters {
		st.Counters[k] = v
	}
	if sess := s.liveSession(); sess != nil {
		st.Login = "online"
		st.UIN = s.world.Self.QQ
		n := sess.num
		for qq, uin := range n.uin {
			st.Friends[qq] = uin
		}
		for g, gid := range n.gid {
			st.Groups[g] = gid
		}
		for g, code := range n.code {
			st.GroupCodes[g] = code
		}
		for id, did := range n.did {
			st.Discussions[id] = did
		}
	}
	return st
}

// WorldView returns a copy of the world.
func (s *Server) WorldView() World { return *s.world.clone() }

// bucket is a token bucket: rate per second, burst twice the rate.
type bucket struct {
	tokens float64
	last   time.Time
	rate   float64
}

// allow takes a token when one is there.
func (b *bucket) allow(now time.Time, rate float64) bool {
	if rate < 0 {
		return true
	}
	burst := 2 * rate
	if burst < 1 {
		burst = 1
	}
	if b.last.IsZero() || b.rate != rate {
		b.tokens = burst // a new limit starts with a full bucket
		b.rate = rate
	} else {
		b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	return false
}

// writeJSON answers v as JSON with status 200.
func writeJSON(w http.ResponseWriter, v any) {
	if r, ok := v.(result); ok {
		if items, ok := r.Result.([]any); ok {
			body, err := appendResultItems(nil, r.Retcode, items)
			if err != nil {
				http.Error(w, fmt.Sprintf("qqsim: encode answer: %v", err), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			_, _ = w.Write(body)
			return
		}
	}
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, fmt.Sprintf("qqsim: encode answer: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(bytes.TrimRight(body.Bytes(), "\n"))
}

// appendResultItems appends the answer {"retcode":…,"result":[items…]} to b:
// the bytes encoding/json writes for a result of those items (HTML not
// escaped), with each json.RawMessage item — a queued item, compacted when
// it was queued (Inject) — written as it is instead of compacted once more.
// A poll answer of thousands of queued items is then written in a copy
// rather than a second parse of every item.
func appendResultItems(b []byte, retcode int, items []any) ([]byte, error) {
	b = append(b, `{"retcode":`...)
	b = strconv.AppendInt(b, int64(retcode), 10)
	b = append(b, `,"result":[`...)
	var enc *json.Encoder
	var buf bytes.Buffer
	for k, it := range items {
		if k > 0 {
			b = append(b, ',')
		}
		if raw, ok := it.(json.RawMessage); ok && raw != nil {
			b = append(b, raw...)
			continue
		}
		if enc == nil {
			enc = json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
		}
		buf.Reset()
		if err := enc.Encode(it); err != nil {
			return nil, err
		}
		b = append(b, bytes.TrimRight(buf.Bytes(), "\n")...)
	}
	return append(b, "]}"...), nil
}
