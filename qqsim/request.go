package qqsim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ClientID is the only clientid the simulator accepts, as the real web client sent.
const ClientID = 53999199

// The Referer values the real web pages sent, per host.
const (
	RefererPTLogin = "https://ui.ptlogin2.qq.com/cgi-bin/login?daid=164&target=self&style=16&mibao_css=m_webqq&appid=501004106&enable_qlogin=0&no_verifyimg=1&s_url=http%3A%2F%2Fw.qq.com%2Fproxy.html&f_url=loginerroralert&strong_login=1&login_state=10&t=20131024001"
	RefererS       = "http://s.web2.qq.com/proxy.html?v=20130916001&callback=1&id=1"
	RefererD1      = "http://d1.web2.qq.com/proxy.html?v=20151105001&callback=1&id=2"
	OriginS        = "http://s.web2.qq.com"
	OriginD1       = "http://d1.web2.qq.com"
)

// Retcodes the simulator answers.
const (
	rcOK          = 0
	rcPollEmpty   = 102
	rcSessionLost = 103
	rcNewPtWebQQ  = 116
	rcKicked      = 121
	rcMissingData = 100001
	rcBadJSON     = 1000000
	rcBadContent  = 1000001
	rcTooFast     = 1000003
	rcMaybeSent   = 1202
)

// host is the real host an endpoint lived on; it decides the Referer and Origin.
type host int

const (
	hostPT host = iota // ssl.ptlogin2.qq.com and ptlogin4.web2.qq.com (login)
	hostS              // s.web2.qq.com (/api/*)
	hostD1             // d1.web2.qq.com (/channel/*)
)

// need says which credentials an endpoint takes; each one taken is checked.
type need uint

const (
	needClientID need = 1 << iota // clientid == 53999199
	needPtWebQQ                   // ptwebqq == the cookie's value
	needPSession                  // psessionid names a session of these cookies
	needSession                   // the cookies' latest session (when no psessionid is taken)
	needVF                        // vfwebqq == the session's
)

// endpoint is one protocol path.
type endpoint struct {
	name   string
	method string
	host   host
	need   need
	// handle computes the answer under s.mu: a JSON value, or a reply func for
	// answers that are not JSON.
	handle func(s *Server, c *call) any
}

// reply writes a non-JSON answer.
type reply func(w http.ResponseWriter)

// protocolEndpoints maps each path to its endpoint.
func protocolEndpoints() map[string]endpoint {
	list := []endpoint{
		{"ptqrshow", http.MethodGet, hostPT, 0, (*Server).ptqrshow},
		{"ptqrlogin", http.MethodGet, hostPT, 0, (*Server).ptqrlogin},
		{"check_sig", http.MethodGet, hostPT, 0, (*Server).checkSig},
		{"getvfwebqq", http.MethodGet, hostS, needClientID | needPtWebQQ, (*Server).getvfwebqq},
		{"login2", http.MethodPost, hostD1, needClientID | needPtWebQQ, (*Server).login2},
		{"get_online_buddies2", http.MethodGet, hostD1, needClientID | needPSession | needVF, (*Server).onlineBuddies},
		{"poll2", http.MethodPost, hostD1, needClientID | needPtWebQQ | needPSession, nil},
		{"send_buddy_msg2", http.MethodPost, hostD1, needClientID | needPSession, (*Server).sendBuddy},
		{"send_qun_msg2", http.MethodPost, hostD1, needClientID | needPSession, (*Server).sendQun},
		{"send_discu_msg2", http.MethodPost, hostD1, needClientID | needPSession, (*Server).sendDiscu},
		{"send_sess_msg2", http.MethodPost, hostD1, needClientID | needPSession, (*Server).sendSess},
		{"get_c2cmsg_sig2", http.MethodGet, hostD1, needClientID | needPSession, (*Server).c2cmsgSig},
		{"get_discu_info", http.MethodGet, hostD1, needClientID | needPSession | needVF, (*Server).discuInfo},
		{"get_recent_list2", http.MethodPost, hostD1, needClientID | needPSession | needVF, (*Server).recentList},
		{"get_user_friends2", http.MethodPost, hostS, needSession | needVF, (*Server).userFriends},
		{"get_group_name_list_mask2", http.MethodPost, hostS, needSession | needVF, (*Server).groupList},
		{"get_group_info_ext2", http.MethodGet, hostS, needSession | needVF, (*Server).groupInfo},
		{"get_friend_uin2", http.MethodGet, hostS, needSession | needVF, (*Server).friendUIN},
		{"get_friend_info2", http.MethodGet, hostS, needClientID | needPSession | needVF, (*Server).friendInfo},
		{"get_self_info2", http.MethodGet, hostS, 0, (*Server).selfInfo},
		{"get_discus_list", http.MethodGet, hostS, needClientID | needPSession | needVF, (*Server).discusList},
		{"get_offpic2", http.MethodGet, hostD1, needClientID | needPSession, (*Server).getOffpic2},
		{"get_file2", http.MethodGet, hostD1, needClientID | needPSession, (*Server).getFile2},
		{"refuse_file2", http.MethodGet, hostD1, needClientID | needPSession, (*Server).refuseFile2},
	}
	m := map[string]endpoint{}
	for _, e := range list {
		var path string
		switch {
		case e.host == hostPT:
			path = "/" + e.name
		case e.host == hostS:
			path = "/api/" + e.name
		default:
			path = "/channel/" + e.name
		}
		m[path] = e
	}
	// Seed 002 fetches pictures from w.qq.com/d/channel/get_offpic2.
	m["/d/channel/get_offpic2"] = m["/channel/get_offpic2"]
	return m
}

// call is one protocol request being answered.
type call struct {
	ep    endpoint
	r     *http.Request
	now   time.Time
	query url.Values
	body  map[string]json.RawMessage // the JSON object in form field r (POST)
	creds *creds
	sess  *session
}

// str returns a parameter as a string: from r (POST) or the query (GET).
func (c *call) str(name string) (string, bool) {
	if c.body == nil {
		if !c.query.Has(name) {
			return "", false
		}
		return c.query.Get(name), true
	}
	raw, ok := c.body[name]
	if !ok {
		return "", false
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", false
	}
	return v, true
}

// num returns a parameter as an integer; in r a JSON number or a numeric string.
func (c *call) num(name string) (int64, bool) {
	if c.body == nil {
		v, err := strconv.ParseInt(c.query.Get(name), 10, 64)
		return v, err == nil
	}
	raw, ok := c.body[name]
	if !ok {
		return 0, false
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		n = json.Number(s)
	}
	v, err := strconv.ParseInt(n.String(), 10, 64)
	return v, err == nil
}

// rc is a bare retcode answer.
type rc struct {
	Retcode int `json:"retcode"`
}

// rcMsg is a retcode answer with an empty errmsg, as poll2 and login answered.
type rcMsg struct {
	Retcode int    `json:"retcode"`
	ErrMsg  string `json:"errmsg"`
}

// result is a successful answer.
type result struct {
	Retcode int `json:"retcode"`
	Result  any `json:"result"`
}

// serveProtocol answers one protocol request: chaos, the checks of the real service,
// then the endpoint's own work.
func (s *Server) serveProtocol(w http.ResponseWriter, r *http.Request, ep endpoint) {
	s.mu.Lock()
	s.count(ep.name)
	chaos := s.chaos
	fail502 := chaos.HTTP502Rate > 0 && s.rng.Float64() < chaos.HTTP502Rate
	s.mu.Unlock()

	// The service took GET and POST alike on most calls (get_group_name_list_mask2
	// as a GET with r in the query, get_discus_list as a POST); --strict keeps each
	// endpoint's one method.
	if r.Method != ep.method && (s.cfg.Strict || (r.Method != http.MethodGet && r.Method != http.MethodPost)) {
		w.Header().Set("Allow", ep.method)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if chaos.LatencyMS > 0 {
		t := time.NewTimer(time.Duration(chaos.LatencyMS) * time.Millisecond)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if slowEndpoints[ep.name] && !wait(r.Context(), s.cfg.TransferLatency) {
		return
	}
	if fail502 {
		s.mu.Lock()
		s.count("chaos_502")
		s.mu.Unlock()
		http.Error(w, "502 Bad Gateway", http.StatusBadGateway)
		return
	}

	c := &call{ep: ep, r: r, now: time.Now(), query: r.URL.Query()}
	// The parameters: an r-taking endpoint (POST in the write-ups) reads the JSON in
	// field r of the form or the query; the others read the query and the form.
	var rawR string
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err == nil {
			rawR = r.PostForm.Get("r")
			if ep.method == http.MethodGet {
				for k, vs := range r.PostForm {
					if !c.query.Has(k) {
						c.query[k] = vs
					}
				}
			}
		}
	}
	if rawR == "" && ep.method == http.MethodPost {
		rawR = c.query.Get("r")
	}

	s.mu.Lock()
	s.tickLocked(c.now)
	var ans any
	if ep.host == hostPT {
		ans = s.checkLoginLocked(c)
	} else {
		ans = s.checkLocked(c, rawR)
	}
	if ans == nil {
		if ep.name == "poll2" {
			s.mu.Unlock()
			s.poll(w, c)
			return
		}
		ans = ep.handle(s, c)
	}
	switch a := ans.(type) {
	case rc:
		s.count("retcode_" + strconv.Itoa(a.Retcode))
	case rcMsg:
		s.count("retcode_" + strconv.Itoa(a.Retcode))
	}
	s.mu.Unlock()

	if sendEndpoints[ep.name] && !wait(r.Context(), time.Duration(chaos.SendLatencyMS)*time.Millisecond) {
		return // the client went away while the answer was held
	}
	writeAnswer(w, ans)
}

// writeAnswer writes an endpoint's answer: a reply as it is, anything else as JSON.
func writeAnswer(w http.ResponseWriter, ans any) {
	if f, ok := ans.(reply); ok {
		f(w)
		return
	}
	writeJSON(w, ans)
}

// forbidden is the login hosts' answer to a request without the right headers or
// token.
func forbidden(w http.ResponseWriter) {
	http.Error(w, "403 Forbidden", http.StatusForbidden)
}

// browserUA reports whether ua looks like the desktop browser the web client ran in.
func browserUA(ua string) bool { return strings.HasPrefix(ua, "Mozilla/") }

// checkLoginLocked checks a request to the login hosts. Only --strict checks headers
// there: a browser User-Agent and the login page's Referer (check_sig: a proxy
// page's), else HTTP 403. The service itself took no Referer, the 2018 xlogin page,
// or any page.
func (s *Server) checkLoginLocked(c *call) any {
	if !s.cfg.Strict {
		return nil
	}
	if !browserUA(c.r.UserAgent()) || !strictLoginReferer(c.ep.name, c.r.Referer()) {
		s.count("rejected_403")
		return reply(forbidden)
	}
	return nil
}

// checkLocked makes the checks of the real web hosts, in order: headers (100001),
// rate (1000003), the r field (1000000), login cookies (100001; 103 when they are no
// longer valid), clientid, ptwebqq, psessionid and vfwebqq (100001 when wrong; 103
// when the session is over). It returns nil when the request may go on, with c.creds
// and c.sess set.
func (s *Server) checkLocked(c *call, rawR string) any {
	r := c.r
	ep := c.ep
	if s.cfg.Strict && !strictHeaders(r, ep) {
		return rc{rcMissingData}
	}
	// The rate is per session: the login steps before it and poll2 are not counted.
	switch ep.name {
	case "poll2", "getvfwebqq", "login2":
	default:
		if !s.bucket.allow(c.now, s.rateLocked()) {
			return rc{rcTooFast}
		}
	}
	if ep.method == http.MethodPost {
		dec := json.NewDecoder(strings.NewReader(rawR))
		dec.UseNumber()
		if err := dec.Decode(&c.body); err != nil || c.body == nil || dec.More() {
			return rc{rcBadJSON}
		}
	}

	// Login cookies.
	ckPt, err1 := r.Cookie("ptwebqq")
	ckSkey, err2 := r.Cookie("skey")
	ckUIN, err3 := r.Cookie("uin")
	if err1 != nil || err2 != nil || err3 != nil {
		return rc{rcMissingData}
	}
	cr := s.credsBy[ckSkey.Value]
	if cr == nil || ckPt.Value != cr.ptwebqq || cookieQQ(ckUIN.Value) != s.world.Self.QQ {
		return rc{rcMissingData}
	}
	c.creds = cr

	if ep.need&needClientID != 0 {
		if id, ok := c.num("clientid"); !ok || id != ClientID {
			return rc{rcMissingData}
		}
	}
	if ep.need&needPtWebQQ != 0 {
		if v, ok := c.str("ptwebqq"); !s.ptwebqqOK(v, ok, cr) {
			return rc{rcMissingData}
		}
	}
	switch {
	case ep.need&needPSession != 0:
		id, _ := c.str("psessionid")
		c.sess = s.sessBy[id]
		if c.sess == nil || c.sess.creds != cr {
			return rc{rcMissingData}
		}
		if ep.name == "poll2" {
			return nil // poll2 answers the end of a session itself (kick, 121)
		}
	case ep.need&needSession != 0:
		c.sess = cr.latest
		if c.sess == nil {
			return rcMsg{Retcode: rcSessionLost}
		}
	}
	if cr.dead || (c.sess != nil && c.sess.state != sessLive) {
		return rcMsg{Retcode: rcSessionLost}
	}
	if ep.need&needVF != 0 {
		if v, ok := c.str("vfwebqq"); !ok || v != c.sess.vfwebqq {
			return rc{rcMissingData}
		}
	}
	return nil
}

// strictHeaders is --strict's check of the web hosts' headers: a browser User-Agent,
// the exact http Referer of the host (either proxy page on /api/*), and on a POST the
// host's Origin.
func strictHeaders(r *http.Request, ep endpoint) bool {
	if !browserUA(r.UserAgent()) {
		return false
	}
	ref := r.Referer()
	origin := r.Header.Get("Origin")
	if ep.host == hostD1 {
		return ref == RefererD1 && (r.Method != http.MethodPost || origin == OriginD1)
	}
	if ref != RefererS && ref != RefererD1 {
		return false
	}
	return r.Method != http.MethodPost || origin == OriginS || origin == OriginD1
}

// rateLocked is the request rate in force: chaos's when set, else the configured one.
func (s *Server) rateLocked() float64 {
	if s.chaos.RateLimitPerS > 0 {
		return s.chaos.RateLimitPerS
	}
	return s.cfg.RateLimit
}

// cookieQQ reads the uin cookie ("o0123456", "o0000123456") as a QQ number; 0 when
// it is not one.
func cookieQQ(v string) int64 {
	if !strings.HasPrefix(v, "o") {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimLeft(v[1:], "0"), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// compactJSON returns raw without insignificant space.
func compactJSON(raw []byte) ([]byte, error) {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
