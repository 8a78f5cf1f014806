package qqsim

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// Profile is the era of the real service the simulator plays: what it answered and
// which of the write-ups' rules it did not enforce. docs/qqsim.md lists, per rule, which
// profile enforces it.
type Profile string

const (
	// Profile2018 is the service as the clients of 2017–2018 saw it (the default): the
	// ptlogin cookies on ptqrlogin's success, https Referers and Origins, no Origin at
	// all, an empty or "null" ptwebqq, both methods of the contacts calls, empty polls
	// as retcode 0 (HTTP 504 on demand), and both forms of send success.
	Profile2018 Profile = "2018"
	// Profile2015 is the service of the seed write-ups: empty polls are retcode 102,
	// sends answer errCode (friend, group) or retcode (discussion, temporary chat), the
	// login cookies come from check_sig only, and ptwebqq must be the cookie's value.
	Profile2015 Profile = "2015"
)

// Profiles lists the profiles the simulator plays.
var Profiles = []Profile{Profile2018, Profile2015}

// ParseProfile reads a profile name ("2018", "2015"; "" = Profile2018).
func ParseProfile(s string) (Profile, error) {
	switch Profile(s) {
	case "", Profile2018:
		return Profile2018, nil
	case Profile2015:
		return Profile2015, nil
	}
	return "", fmt.Errorf("qqsim: unknown profile %q (want 2018 or 2015)", s)
}

// EmptyPoll is how a held poll2 with nothing to deliver ends.
type EmptyPoll string

const (
	EmptyPoll102      EmptyPoll = "102"   // {"retcode":102,"errmsg":""} (2015)
	EmptyPoll504      EmptyPoll = "504"   // HTTP 504 Gateway Timeout (2017–2018)
	EmptyPollNoResult EmptyPoll = "0"     // {"retcode":0} without result (2017–2018)
	EmptyPollError    EmptyPoll = "error" // {"retcode":0,"errmsg":"error","retmsg":"ok"} (2017–2018)
	EmptyPollCycle    EmptyPoll = "cycle" // 504, 0 and error in turn
	// EmptyPollJSON: 0 and error in turn, the 2018 profile's default. Not 504: the
	// last Mojo-Webqq (2019) swallows a 504 of poll2 without ever polling again.
	EmptyPollJSON    EmptyPoll = "json"
	emptyPollDefault EmptyPoll = "" // the profile's
)

// ParseEmptyPoll reads an EmptyPoll name ("" = the profile's default).
func ParseEmptyPoll(s string) (EmptyPoll, error) {
	switch e := EmptyPoll(s); e {
	case emptyPollDefault, EmptyPoll102, EmptyPoll504, EmptyPollNoResult, EmptyPollError, EmptyPollCycle, EmptyPollJSON:
		return e, nil
	}
	return "", fmt.Errorf("qqsim: unknown empty-poll form %q (want 102, 504, 0, error, json or cycle)", s)
}

// era2018 reports whether the 2018 profile is played.
func (s *Server) era2018() bool { return s.cfg.Profile == Profile2018 }

// emptyPollLocked is the answer of a held poll that has nothing to deliver, and the
// counter of its form ("polls_102", "polls_504", "polls_0", "polls_0_error").
func (s *Server) emptyPollLocked() (any, string) {
	form := s.cfg.EmptyPoll
	if form == emptyPollDefault {
		form = EmptyPoll102
		if s.era2018() {
			form = EmptyPollJSON
		}
	}
	switch form {
	case EmptyPollCycle:
		cycle := []EmptyPoll{EmptyPoll504, EmptyPollNoResult, EmptyPollError}
		form = cycle[s.emptyPolls%int64(len(cycle))]
	case EmptyPollJSON:
		cycle := []EmptyPoll{EmptyPollNoResult, EmptyPollError}
		form = cycle[s.emptyPolls%int64(len(cycle))]
	}
	s.emptyPolls++
	switch form {
	case EmptyPoll504:
		return reply(func(w http.ResponseWriter) {
			http.Error(w, "504 Gateway Time-out", http.StatusGatewayTimeout)
		}), "polls_504"
	case EmptyPollNoResult:
		return rc{rcOK}, "polls_0"
	case EmptyPollError:
		return map[string]any{"retcode": 0, "errmsg": "error", "retmsg": "ok"}, "polls_0_error"
	}
	return rcMsg{Retcode: rcPollEmpty}, "polls_102"
}

// sendOKLocked is the success answer of a send of kind.
func (s *Server) sendOKLocked(kind string) any {
	if s.era2018() {
		// By 2018 both forms were seen, for every kind; the simulator alternates.
		s.sends++
		if s.sends%2 == 1 {
			return map[string]any{"retcode": 0, "result": "ok"}
		}
		return map[string]any{"errCode": 0, "msg": "send ok"}
	}
	if kind == "friend" || kind == "group" {
		return map[string]any{"errCode": 0, "msg": "send ok"}
	}
	return result{Result: "ok"}
}

// ptwebqqOK reports whether a ptwebqq parameter (getvfwebqq, login2, poll2) is accepted:
// the cookie's value, and in the 2018 profile also "" and "null", as clients that read
// it from the jar right after ptqrlogin sent it.
func (s *Server) ptwebqqOK(v string, ok bool, cr *creds) bool {
	if ok && v == cr.ptwebqq {
		return true
	}
	return s.era2018() && (!ok || v == "" || v == "null")
}

// hashOK reports whether h is the hash of the account and its ptwebqq (2018: or of an
// empty or "null" ptwebqq).
func (s *Server) hashOK(h string, cr *creds) bool {
	qq := s.world.Self.QQ
	if h == Hash(qq, cr.ptwebqq) {
		return true
	}
	return s.era2018() && (h == Hash(qq, "") || h == Hash(qq, "null"))
}

// cookieDomain is the Domain attribute of a cookie set in answer to r: the real one
// (qq.com, or sub) when the client addressed the service by its real names, none when it
// addressed the simulator by an address or another name.
func cookieDomain(r *http.Request, sub string) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(host)
	if host == "qq.com" || strings.HasSuffix(host, ".qq.com") {
		if sub != "" && (host == sub || strings.HasSuffix(host, "."+sub)) {
			return sub
		}
		return "qq.com"
	}
	return ""
}

// setCookie writes a Set-Cookie line as the real service did:
// name=value;Expires=…;Path=/;Domain=qq.com; (no spaces, a final ';'). A zero expires
// makes a session cookie.
func setCookie(w http.ResponseWriter, r *http.Request, name, value, sub string, expires time.Time) {
	var b strings.Builder
	b.WriteString(name + "=" + value + ";")
	if !expires.IsZero() {
		b.WriteString("Expires=" + expires.UTC().Format(http.TimeFormat) + ";")
	}
	b.WriteString("Path=/;")
	if d := cookieDomain(r, sub); d != "" {
		b.WriteString("Domain=" + d + ";")
	}
	w.Header().Add("Set-Cookie", b.String())
}

// refererOK is the strict Referer check of the login hosts (--strict).
func strictLoginReferer(ep, ref string) bool {
	if ep == "check_sig" {
		return ref == RefererS || ref == RefererD1
	}
	return strings.HasPrefix(ref, "https://ui.ptlogin2.qq.com/cgi-bin/login?") && strings.Contains(ref, "appid=501004106")
}

// page is a web page of the service that the clients of the era fetched before or
// between the protocol calls: the login pages and the proxy pages. They answer 200.
func page(title string) reply {
	body := "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>" + title + "</title></head><body></body></html>"
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(body))
	}
}

// pages are the paths of the web pages, by the page's title.
var pages = map[string]string{
	"/":               "SmartQQ",
	"/cgi-bin/login":  "QQ帐号登录",
	"/cgi-bin/xlogin": "QQ帐号登录",
	"/proxy.html":     "proxy",
	"/cfproxy.html":   "proxy",
}
