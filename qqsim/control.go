package qqsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Say makes a contact say something. The message waits in stable form until a poll
// of a live session takes it, and is then rendered in wire form with the session
// numbers current at delivery (font segment first, text entity-escaped, faces after
// the text). It returns the item's msg_id.
func (s *Server) Say(m Say) (int64, error) {
	w := s.world
	switch m.Kind {
	case "friend":
		if _, ok := w.friend(m.From); !ok {
			return 0, fmt.Errorf("%w: %d is not a friend", ErrUnknownContact, m.From)
		}
	case "group", "sess":
		g, ok := w.group(m.Group)
		if !ok {
			return 0, fmt.Errorf("%w: no group %d", ErrUnknownContact, m.Group)
		}
		if _, ok := g.member(m.From); !ok {
			return 0, fmt.Errorf("%w: %d is not a member of group %d", ErrUnknownContact, m.From, m.Group)
		}
	case "discuss":
		d, ok := w.discussion(m.DID)
		if !ok {
			return 0, fmt.Errorf("%w: no discussion %d", ErrUnknownContact, m.DID)
		}
		if _, ok := d.member(m.From); !ok {
			return 0, fmt.Errorf("%w: %d is not a member of discussion %d", ErrUnknownContact, m.From, m.DID)
		}
	default:
		return 0, fmt.Errorf("%w: kind %q is not friend, group, discuss or sess", ErrBadSay, m.Kind)
	}
	var segs []segment
	if m.Text != "" {
		segs = append(segs, segment{text: m.Text})
	}
	for _, f := range m.Faces {
		if f < 0 {
			return 0, fmt.Errorf("%w: face %d", ErrBadSay, f)
		}
		segs = append(segs, segment{face: f, isFace: true})
	}
	for _, p := range m.Pictures {
		if strings.TrimSpace(p) == "" {
			return 0, fmt.Errorf("%w: a picture needs a name", ErrBadSay)
		}
	}
	msg := &stableMsg{kind: m.Kind, from: m.From, group: m.Group, did: m.DID, segs: segs, time: time.Now()}

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range m.Pictures {
		msg.segs = append(msg.segs, segment{pic: s.newPictureLocked(p, m.From)})
	}
	s.stampLocked(msg)
	s.pending = append(s.pending, pendingItem{msg: msg})
	s.count("said")
	switch m.Kind {
	case "friend":
		s.touchRecentLocked(m.Kind, m.From)
	case "group":
		s.touchRecentLocked(m.Kind, m.Group)
	case "discuss":
		s.touchRecentLocked(m.Kind, m.DID)
	}
	s.notifyLocked()
	return msg.msgID, nil
}

// Inject queues poll2 result items verbatim (each a JSON object, such as
// {"poll_type":"tips","value":{…}}). They are delivered as they are, in order, with
// the messages said.
func (s *Server) Inject(items []json.RawMessage) error {
	out := make([]pendingItem, 0, len(items))
	for i, it := range items {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(it, &obj); err != nil {
			return fmt.Errorf("%w: item %d is not a JSON object", ErrBadItem, i)
		}
		c, _ := compactJSON(it)
		out = append(out, pendingItem{raw: c})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = append(s.pending, out...)
	s.counters["injected"] += int64(len(out))
	s.notifyLocked()
	return nil
}

// ExpireSession ends the current session (its psessionid) the way the real service
// dropped sessions: the held poll and every later request with it answer 103, but
// the login cookies stay valid, so getvfwebqq and login2 with them make a new session.
func (s *Server) ExpireSession() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess := s.liveSession(); sess != nil {
		sess.state = sessExpired
		sess.creds.vfwebqq = ""
		s.phase = "expired"
		s.count("sessions_expired")
		s.logf("session expired by control")
		s.notifyLocked()
	}
}

// Kick ends the session and the login cookies, as another device taking over did:
// the held (or next) poll gets a kick_message item, later polls 121, other requests
// 103; only a new QR login helps.
func (s *Server) Kick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess := s.liveSession(); sess != nil {
		sess.state = sessKicked
	}
	if s.creds != nil && !s.creds.dead {
		s.creds.dead = true
		s.phase = "kicked"
		s.count("kicks")
		s.logf("session kicked by control")
	}
	s.notifyLocked()
}

// RenewPtWebQQ makes the next poll answer {"retcode":116,"p":"<new ptwebqq>"}; from
// then on only the new value is accepted (in requests and in the ptwebqq cookie).
func (s *Server) RenewPtWebQQ() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.liveSession() == nil {
		return fmt.Errorf("%w: no live session", ErrQRState)
	}
	s.creds.renew = secret(32)
	s.notifyLocked()
	return nil
}

// SetChaos sets the faults on demand; rates are clamped to [0, 1] and a negative
// latency counts as none.
func (s *Server) SetChaos(c Chaos) {
	c.LatencyMS = max(c.LatencyMS, 0)
	c.SendLatencyMS = max(c.SendLatencyMS, 0)
	c.HTTP502Rate = min(max(c.HTTP502Rate, 0), 1)
	c.MaybeSentRate = min(max(c.MaybeSentRate, 0), 1)
	c.RateLimitPerS = max(c.RateLimitPerS, 0)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chaos = c
}

// chaosNow returns the faults in force.
func (s *Server) chaosNow() Chaos {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.chaos
}

// serveControl serves the /_sim/ control API.
func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	ok := map[string]bool{"ok": true}
	routes := map[string]func() (any, error){
		"POST /_sim/qr/scan":        func() (any, error) { return ok, s.ScanQR() },
		"POST /_sim/qr/confirm":     func() (any, error) { return ok, s.ConfirmQR() },
		"POST /_sim/qr/expire":      func() (any, error) { return ok, s.ExpireQR() },
		"POST /_sim/session/expire": func() (any, error) { s.ExpireSession(); return ok, nil },
		"POST /_sim/kick":           func() (any, error) { s.Kick(); return ok, nil },
		"POST /_sim/ptwebqq/renew":  func() (any, error) { return ok, s.RenewPtWebQQ() },
		"POST /_sim/messages":       func() (any, error) { return s.controlSay(r) },
		"POST /_sim/events":         func() (any, error) { return s.controlInject(r) },
		"POST /_sim/chaos":          func() (any, error) { return s.controlChaos(r) },
		"GET /_sim/chaos":           func() (any, error) { return s.chaosNow(), nil },
		"GET /_sim/sent":            func() (any, error) { return s.Sent(), nil },
		"POST /_sim/files":          func() (any, error) { return s.controlOffer(r) },
		"GET /_sim/transfers":       func() (any, error) { return s.Transfers(), nil },
		"GET /_sim/state":           func() (any, error) { return s.State(), nil },
		"GET /_sim/world":           func() (any, error) { return s.WorldView(), nil },
	}
	do, found := routes[r.Method+" "+r.URL.Path]
	if !found {
		for key := range routes {
			if strings.HasSuffix(key, " "+r.URL.Path) {
				controlError(w, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed on %s", r.Method, r.URL.Path))
				return
			}
		}
		controlError(w, http.StatusNotFound, fmt.Errorf("no control endpoint %s", r.URL.Path))
		return
	}
	v, err := do()
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, ErrNoQR) || errors.Is(err, ErrQRExpired) || errors.Is(err, ErrQRState) {
			status = http.StatusConflict
		}
		controlError(w, status, err)
		return
	}
	writeJSON(w, v)
}

// controlError answers {"error":"…"} with status.
func controlError(w http.ResponseWriter, status int, err error) {
	body, _ := json.Marshal(map[string]string{"error": err.Error()})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// decodeBody decodes a control request's JSON body into v, refusing unknown fields.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("qqsim: request body: %w", err)
	}
	return nil
}

func (s *Server) controlSay(r *http.Request) (any, error) {
	var m Say
	if err := decodeBody(r, &m); err != nil {
		return nil, err
	}
	id, err := s.Say(m)
	if err != nil {
		return nil, err
	}
	return map[string]int64{"msg_id": id}, nil
}

func (s *Server) controlOffer(r *http.Request) (any, error) {
	var o FileOffer
	if err := decodeBody(r, &o); err != nil {
		return nil, err
	}
	lcid, err := s.OfferFile(o)
	if err != nil {
		return nil, err
	}
	return map[string]int64{"lcid": lcid}, nil
}

func (s *Server) controlInject(r *http.Request) (any, error) {
	var items []json.RawMessage
	if err := decodeBody(r, &items); err != nil {
		return nil, err
	}
	if err := s.Inject(items); err != nil {
		return nil, err
	}
	return map[string]any{"ok": true, "queued": len(items)}, nil
}

func (s *Server) controlChaos(r *http.Request) (any, error) {
	var c Chaos
	if err := decodeBody(r, &c); err != nil {
		return nil, err
	}
	if c.HTTP502Rate < 0 || c.HTTP502Rate > 1 || c.MaybeSentRate < 0 || c.MaybeSentRate > 1 ||
		c.LatencyMS < 0 || c.SendLatencyMS < 0 || c.RateLimitPerS < 0 {
		return nil, errors.New("qqsim: chaos: rates must be within 0..1, latency and rate limit not negative")
	}
	s.SetChaos(c)
	return s.chaosNow(), nil
}
