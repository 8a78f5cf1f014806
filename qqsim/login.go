package qqsim

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"rsc.io/qr"
)

// qrPhase is where a QR code is in its life.
type qrPhase int

const (
	qrWaiting   qrPhase = iota // shown, not scanned (ptuiCB 66)
	qrScanned                  // scanned, waiting for the phone's confirmation (67)
	qrConfirmed                // confirmed: ptqrlogin answers the check_sig URL (0)
	qrExpired                  // expired (65)
	qrUsed                     // its check_sig URL was followed (65 from then on)
)

// qrCode is the QR code shown last.
type qrCode struct {
	sig    string // the qrsig cookie
	shown  time.Time
	phase  qrPhase
	ptsigx string // the token in the check_sig URL, once confirmed
	// The login cookies drawn on confirmation: ptqrlogin's success sets skey (2018),
	// check_sig sets them all.
	skey, ptwebqq string
}

// creds are the login cookies check_sig issued.
type creds struct {
	ptwebqq, skey, pskey, pt4token string
	issued                         time.Time
	dead                           bool   // expired (SessionTTL), kicked, or replaced by a newer QR login
	vfwebqq                        string // what getvfwebqq answers; drawn anew after a session ends
	renew                          string // a new ptwebqq that the next poll announces (116)
	latest                         *session
}

// sessState is where a session is in its life.
type sessState int

const (
	sessLive     sessState = iota
	sessExpired            // ExpireSession or SessionTTL: 103
	sessReplaced           // a newer login2 or QR login: 103 (121 to the poll held then)
	sessKicked             // Kick: a kick_message item, then 121
)

// session is what login2 made: a psessionid with its session numbers.
type session struct {
	id       string
	creds    *creds
	vfwebqq  string
	state    sessState
	kickSent bool
	online   bool // get_online_buddies2 was called
	num      *numbers
	pollGen  int64              // the newest poll; older held polls answer 102
	sigs     map[string]sessSig // group_sig values of get_c2cmsg_sig2
}

// sessSig is what a group_sig allows: a temporary chat with uin through group gid.
type sessSig struct{ gid, uin int64 }

// numbers are the session numbers of one session, both ways.
type numbers struct {
	uin, uinQQ    map[int64]int64 // QQ number ↔ uin
	gid, gidNum   map[int64]int64 // group number ↔ gid
	code, codeNum map[int64]int64 // group number ↔ group code
	did, didID    map[int64]int64 // discussion id ↔ did
}

// drawNumbersLocked draws the session numbers of a new session: random, distinct,
// never a stable number of the world and never a number of the previous session.
func (s *Server) drawNumbersLocked() *numbers {
	taken := map[int64]bool{s.world.Self.QQ: true}
	for _, qq := range s.world.people() {
		taken[qq] = true
	}
	for _, g := range s.world.Groups {
		taken[g.Number] = true
	}
	for _, d := range s.world.Discussions {
		taken[d.ID] = true
	}
	if p := s.lastNum; p != nil {
		for _, m := range []map[int64]int64{p.uinQQ, p.gidNum, p.codeNum, p.didID} {
			for k := range m {
				taken[k] = true
			}
		}
	}
	draw := func() int64 {
		for {
			n := 1_000_000_000 + s.rng.Int64N(3_294_967_295) // ten digits below 2^32, as the real ones
			if !taken[n] {
				taken[n] = true
				return n
			}
		}
	}
	n := &numbers{
		uin: map[int64]int64{}, uinQQ: map[int64]int64{},
		gid: map[int64]int64{}, gidNum: map[int64]int64{},
		code: map[int64]int64{}, codeNum: map[int64]int64{},
		did: map[int64]int64{}, didID: map[int64]int64{},
	}
	for _, qq := range s.world.people() {
		u := draw()
		n.uin[qq], n.uinQQ[u] = u, qq
	}
	for _, g := range s.world.Groups {
		gid, code := draw(), draw()
		n.gid[g.Number], n.gidNum[gid] = gid, g.Number
		n.code[g.Number], n.codeNum[code] = code, g.Number
	}
	for _, d := range s.world.Discussions {
		did := draw()
		n.did[d.ID], n.didID[did] = did, d.ID
	}
	return n
}

// uinOf returns the uin of qq in this session; the account's own uin is its QQ number.
func (s *Server) uinOf(n *numbers, qq int64) int64 {
	if qq == s.world.Self.QQ {
		return qq
	}
	return n.uin[qq]
}

// qqOf returns the QQ number of uin in this session.
func (s *Server) qqOf(n *numbers, uin int64) (int64, bool) {
	if uin == s.world.Self.QQ {
		return uin, true
	}
	qq, ok := n.uinQQ[uin]
	return qq, ok
}

// ptqrshow shows a new QR code: a PNG, and the qrsig cookie whose hash33 later
// ptqrlogin requests must carry.
func (s *Server) ptqrshow(c *call) any {
	if s.qr != nil {
		s.oldQR[s.qr.sig] = true
	}
	s.qr = &qrCode{sig: secret(20), shown: c.now, phase: qrWaiting}
	s.phase = "qr_waiting"
	code, err := qr.Encode("https://w.qq.com/login?k="+secret(12), qr.M)
	if err != nil {
		return reply(func(w http.ResponseWriter) {
			http.Error(w, fmt.Sprintf("qqsim: encode QR: %v", err), http.StatusInternalServerError)
		})
	}
	code.Scale = 4
	png := code.PNG()
	sig := s.qr.sig
	s.logf("ptqrshow: new QR code, valid %v", s.cfg.QRTTL)
	return reply(func(w http.ResponseWriter) {
		setCookie(w, c.r, "qrsig", sig, "ptlogin2.qq.com", time.Time{})
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(png)
	})
}

// ptqrlogin answers the QR code's state as the login page's JavaScript callback.
// Without the qrsig cookie or the right ptqrtoken: HTTP 403.
func (s *Server) ptqrlogin(c *call) any {
	ck, err := c.r.Cookie("qrsig")
	if err != nil || ck.Value == "" {
		s.count("rejected_403")
		return reply(forbidden)
	}
	tok, err := strconv.ParseInt(c.query.Get("ptqrtoken"), 10, 64)
	if err != nil || tok != Hash33(ck.Value) {
		s.count("rejected_403")
		return reply(forbidden)
	}
	q := s.qr
	if q == nil || q.sig != ck.Value {
		if s.oldQR[ck.Value] {
			return ptuiCB("65", "", "二维码已失效。", "", s.rng.Int64N(4e9))
		}
		s.count("rejected_403")
		return reply(forbidden)
	}
	switch q.phase {
	case qrWaiting:
		return ptuiCB("66", "", "二维码未失效。", "", s.rng.Int64N(4e9))
	case qrScanned:
		return ptuiCB("67", "", "二维码认证中。", "", s.rng.Int64N(4e9))
	case qrConfirmed:
		u := s.checkSigURL(c.r, q.ptsigx)
		var ans reply
		if s.cfg.SeedConfirm {
			body := fmt.Sprintf("ptuiCB('66','0','','0','%s','');", jsQuote(u))
			ans = func(w http.ResponseWriter) {
				w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
				_, _ = w.Write([]byte(body))
			}
		} else {
			ans = ptuiCB("0", u, "登录成功！", s.world.Self.Nick, -1)
		}
		if !s.era2018() {
			return ans
		}
		// The 2017–2018 service set the ptlogin cookies with the success answer;
		// clients read superuin, uin and ptwebqq (still empty) from the jar before
		// following check_sig.
		qq := fmt.Sprintf("o0%d", s.world.Self.QQ)
		skey, now := q.skey, c.now
		expires := now.Add(s.cfg.SessionTTL)
		return reply(func(w http.ResponseWriter) {
			setCookie(w, c.r, "pt2gguin", qq, "", expires)
			setCookie(w, c.r, "uin", qq, "", time.Time{})
			setCookie(w, c.r, "skey", skey, "", time.Time{})
			setCookie(w, c.r, "ptisp", "ctc", "", time.Time{})
			setCookie(w, c.r, "ptwebqq", "", "", time.Time{})
			setCookie(w, c.r, "superuin", qq, "ptlogin2.qq.com", time.Time{})
			setCookie(w, c.r, "superkey", "", "ptlogin2.qq.com", time.Time{})
			setCookie(w, c.r, "supertoken", strconv.FormatInt(now.Unix()%1e9, 10), "ptlogin2.qq.com", time.Time{})
			setCookie(w, c.r, "pt_recent_uins", "", "ptlogin2.qq.com", time.Time{})
			ans(w)
		})
	default:
		return ptuiCB("65", "", "二维码已失效。", "", s.rng.Int64N(4e9))
	}
}

// ptuiCB renders the login page's callback; num >= 0 is appended to msg in
// parentheses as the real service did.
func ptuiCB(code, u, msg, nick string, num int64) reply {
	if num >= 0 {
		msg = fmt.Sprintf("%s(%d)", msg, num)
	}
	body := fmt.Sprintf("ptuiCB('%s','0','%s','0','%s', '%s');", code, jsQuote(u), jsQuote(msg), jsQuote(nick))
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		_, _ = w.Write([]byte(body))
	}
}

// jsQuote escapes s for a single-quoted JavaScript string.
func jsQuote(s string) string {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if r == '\'' || r == '\\' {
			out = append(out, '\\')
		}
		out = append(out, r)
	}
	return string(out)
}

// checkSigURL is where the confirmed login continues: this simulator's check_sig.
func (s *Server) checkSigURL(r *http.Request, ptsigx string) string {
	base := s.cfg.BaseURL
	if base == "" && cookieDomain(r, "") != "" {
		// Addressed by the real names: the real check_sig host of the era.
		base = "http://ptlogin4.web2.qq.com"
		if s.era2018() {
			base = "https://ptlogin2.web2.qq.com"
		}
	}
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	// The parameters in the order the real URL had them.
	params := [][2]string{
		{"pttype", "1"}, {"uin", strconv.FormatInt(s.world.Self.QQ, 10)}, {"service", "ptqrlogin"},
		{"nodirect", "0"}, {"ptsigx", ptsigx}, {"s_url", "http://w.qq.com/proxy.html?login2qq=1"},
		{"f_url", ""}, {"ptlang", "2052"}, {"ptredirect", "100"}, {"aid", "501004106"}, {"daid", "164"},
		{"j_later", "0"}, {"low_login_hour", "0"}, {"regmaster", "0"}, {"pt_login_type", "3"},
		{"pt_aid", "0"}, {"pt_aaid", "16"}, {"pt_light", "0"}, {"pt_3rd_aid", "0"},
	}
	var b strings.Builder
	b.WriteString(base + "/check_sig?")
	for i, p := range params {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p[0] + "=" + url.QueryEscape(p[1]))
	}
	return b.String()
}

// checkSig follows the confirmed login: 302 and the login cookies. The ptsigx token
// works once; a wrong or used one answers HTTP 403. A QR login replaces the cookies
// and the session of any earlier login.
func (s *Server) checkSig(c *call) any {
	q := s.qr
	sig := c.query.Get("ptsigx")
	if q == nil || q.phase != qrConfirmed || sig == "" || sig != q.ptsigx ||
		c.query.Get("uin") != strconv.FormatInt(s.world.Self.QQ, 10) {
		s.count("rejected_403")
		return reply(forbidden)
	}
	q.phase = qrUsed
	if old := s.creds; old != nil && !old.dead {
		old.dead = true
		if s.sess != nil && s.sess.state == sessLive {
			s.sess.state = sessReplaced
		}
		s.notifyLocked()
	}
	cr := &creds{
		ptwebqq:  q.ptwebqq,
		skey:     q.skey,
		pskey:    secret(22),
		pt4token: secret(24),
		issued:   c.now,
	}
	s.creds = cr
	s.credsBy[cr.skey] = cr
	uin := fmt.Sprintf("o0%d", s.world.Self.QQ)
	s.logf("check_sig: login cookies issued for %d", s.world.Self.QQ)
	r := c.r
	return reply(func(w http.ResponseWriter) {
		setCookie(w, r, "ptwebqq", cr.ptwebqq, "", time.Time{})
		setCookie(w, r, "skey", cr.skey, "", time.Time{})
		setCookie(w, r, "p_skey", cr.pskey, "web2.qq.com", time.Time{})
		setCookie(w, r, "uin", uin, "", time.Time{})
		setCookie(w, r, "pt4_token", cr.pt4token, "web2.qq.com", time.Time{})
		w.Header().Set("Location", "http://w.qq.com/proxy.html?login2qq=1&webqq_type=10")
		w.WriteHeader(http.StatusFound)
	})
}

// getvfwebqq answers the vfwebqq that the session of the next login2 will take.
func (s *Server) getvfwebqq(c *call) any {
	if c.creds.vfwebqq == "" {
		c.creds.vfwebqq = secret(40)
	}
	return result{Result: map[string]string{"vfwebqq": c.creds.vfwebqq}}
}

// login2 makes a new session: a psessionid and newly drawn session numbers. It
// replaces any earlier session; a poll held by that one answers 121.
func (s *Server) login2(c *call) any {
	if st, _ := c.str("status"); st == "" {
		return rc{rcMissingData}
	}
	cr := c.creds
	if cr.vfwebqq == "" {
		cr.vfwebqq = secret(40)
	}
	if old := s.sess; old != nil {
		if old.state == sessLive {
			old.state = sessReplaced
		}
		s.lastNum = old.num
	}
	sess := &session{
		id:      secret(56),
		creds:   cr,
		vfwebqq: cr.vfwebqq,
		num:     s.drawNumbersLocked(),
		sigs:    map[string]sessSig{},
	}
	s.sess = sess
	s.sessBy[sess.id] = sess
	cr.latest = sess
	s.phase = "online"
	s.bucket = bucket{}
	s.count("logins")
	s.notifyLocked()
	s.logf("login2: session started for %d (%d contacts, %d groups, %d discussions)",
		s.world.Self.QQ, len(sess.num.uin), len(sess.num.gid), len(sess.num.did))
	return result{Result: map[string]any{
		"uin":        s.world.Self.QQ,
		"cip":        1167863772,
		"index":      1075,
		"port":       40023,
		"status":     "online",
		"vfwebqq":    secret(40), // not the one to use: requests carrying it are refused
		"psessionid": sess.id,
		"user_state": 0,
		"f":          0,
	}}
}

// ScanQR plays the phone scanning the QR code shown last.
func (s *Server) ScanQR() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.qrStepLocked(); err != nil {
		return err
	}
	if s.qr.phase != qrWaiting {
		return fmt.Errorf("%w: already scanned", ErrQRState)
	}
	s.qr.phase = qrScanned
	s.phase = "qr_scanned"
	s.logf("QR code scanned")
	return nil
}

// ConfirmQR plays the phone confirming the login, scanning first if needed.
func (s *Server) ConfirmQR() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.qrStepLocked(); err != nil {
		return err
	}
	if s.qr.phase != qrWaiting && s.qr.phase != qrScanned {
		return fmt.Errorf("%w: already confirmed", ErrQRState)
	}
	s.qr.phase = qrConfirmed
	s.qr.ptsigx = secret(64)
	s.qr.skey = "@" + secret(5)
	s.qr.ptwebqq = secret(32)
	s.phase = "qr_confirmed"
	s.logf("QR code confirmed")
	return nil
}

// ExpireQR makes the QR code shown last expire now.
func (s *Server) ExpireQR() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.qrStepLocked(); err != nil {
		return err
	}
	if s.qr.phase != qrWaiting && s.qr.phase != qrScanned {
		return fmt.Errorf("%w: already confirmed", ErrQRState)
	}
	s.qr.phase = qrExpired
	s.phase = "qr_expired"
	return nil
}

// qrStepLocked checks that there is a QR code the phone can act on.
func (s *Server) qrStepLocked() error {
	s.tickLocked(time.Now())
	switch {
	case s.qr == nil:
		return ErrNoQR
	case s.qr.phase == qrExpired:
		return ErrQRExpired
	case s.qr.phase == qrUsed:
		return fmt.Errorf("%w: already used for a login", ErrQRState)
	}
	return nil
}
