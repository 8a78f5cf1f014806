package qqsim

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// profileConfigs are the configurations of the rules table (docs/qqsim.md).
var profileConfigs = []struct {
	name string
	cfg  func() Config
}{
	{"2018", func() Config { c := testConfig(); c.Profile, c.Strict = Profile2018, false; return c }},
	{"2015", func() Config { c := testConfig(); c.Profile, c.Strict = Profile2015, false; return c }},
	{"2018 strict", func() Config { c := testConfig(); c.Profile, c.Strict = Profile2018, true; return c }},
	{"2015 strict", func() Config { c := testConfig(); c.Profile, c.Strict = Profile2015, true; return c }},
}

// answerOf names an answer: "HTTP n" for a non-200 status, else "rc n" (retcode or
// errCode), or "ptuiCB n".
func answerOf(t *testing.T, resp *http.Response, body []byte) string {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		return "HTTP " + strconv.Itoa(resp.StatusCode)
	}
	if code := answerCode("", body); code != nil {
		if strings.HasPrefix(string(body), "ptuiCB") {
			return fmt.Sprintf("ptuiCB %d", *code)
		}
		return fmt.Sprintf("rc %d", *code)
	}
	return "200"
}

// TestProfileRules checks every rule that differs between the profiles, and the ones
// that hold in all of them, once per configuration: one request with exactly the
// variation the rule is about, on a fresh login.
func TestProfileRules(t *testing.T) {
	type want map[string]string // configuration name → answer; "" key: all of them
	https := func(r *http.Request) {
		if ref := r.Header.Get("Referer"); ref != "" {
			r.Header.Set("Referer", strings.Replace(ref, "http://", "https://", 1))
		}
		if o := r.Header.Get("Origin"); o != "" {
			r.Header.Set("Origin", strings.Replace(o, "http://", "https://", 1))
		}
	}
	cfproxy := setHeader("Referer", "https://d1.web2.qq.com/cfproxy.html?v=20151105001&callback=1")
	xlogin := setHeader("Referer", "https://xui.ptlogin2.qq.com/cgi-bin/xlogin?daid=164&target=self&style=40&appid=501004106")
	rows := []struct {
		rule string
		do   func(t *testing.T, sim *Server, c *tclient) string
		want want
	}{
		{"ptqrshow without Referer", func(t *testing.T, sim *Server, c *tclient) string {
			resp, b := c.request(http.MethodGet, "/ptqrshow", url.Values{"appid": {"501004106"}}, nil, dropHeader("Referer"))
			return answerOf(t, resp, b)
		}, want{"2018": "200", "2015": "200", "2018 strict": "HTTP 403", "2015 strict": "HTTP 403"}},
		{"ptqrshow with the 2018 xlogin page as Referer", func(t *testing.T, sim *Server, c *tclient) string {
			resp, b := c.request(http.MethodGet, "/ptqrshow", url.Values{"appid": {"501004106"}}, nil, xlogin)
			return answerOf(t, resp, b)
		}, want{"2018": "200", "2015": "200", "2018 strict": "HTTP 403", "2015 strict": "HTTP 403"}},
		{"ptqrlogin's success sets superuin, uin, pt2gguin and ptwebqq", func(t *testing.T, sim *Server, c *tclient) string {
			c.qrShow()
			if err := sim.ConfirmQR(); err != nil {
				t.Fatal(err)
			}
			resp, b := c.request(http.MethodGet, "/ptqrlogin", url.Values{"ptqrtoken": {strconv.FormatInt(Hash33(c.qrsig()), 10)}}, nil)
			names := map[string]bool{}
			for _, ck := range resp.Cookies() {
				names[ck.Name] = true
			}
			if names["superuin"] && names["uin"] && names["pt2gguin"] && names["ptwebqq"] && names["skey"] {
				return answerOf(t, resp, b) + " with cookies"
			}
			return answerOf(t, resp, b)
		}, want{"2018": "ptuiCB 0 with cookies", "2018 strict": "ptuiCB 0 with cookies", "2015": "ptuiCB 0", "2015 strict": "ptuiCB 0"}},
		{"check_sig with the login page as Referer", func(t *testing.T, sim *Server, c *tclient) string {
			c.qrShow()
			if err := sim.ConfirmQR(); err != nil {
				t.Fatal(err)
			}
			_, u := c.qrLogin()
			pu, _ := url.Parse(u)
			resp, b := c.request(http.MethodGet, pu.Path, pu.Query(), nil, setHeader("Referer", RefererPTLogin))
			return answerOf(t, resp, b)
		}, want{"2018": "HTTP 302", "2015": "HTTP 302", "2018 strict": "HTTP 403", "2015 strict": "HTTP 403"}},
		{"check_sig without Referer", func(t *testing.T, sim *Server, c *tclient) string {
			c.qrShow()
			if err := sim.ConfirmQR(); err != nil {
				t.Fatal(err)
			}
			_, u := c.qrLogin()
			pu, _ := url.Parse(u)
			resp, b := c.request(http.MethodGet, pu.Path, pu.Query(), nil, dropHeader("Referer"))
			return answerOf(t, resp, b)
		}, want{"2018": "HTTP 302", "2015": "HTTP 302", "2018 strict": "HTTP 403", "2015 strict": "HTTP 403"}},
		{"https Referer and Origin on a send", func(t *testing.T, sim *Server, c *tclient) string {
			c.login(sim)
			resp, b := c.request(http.MethodPost, "/channel/send_buddy_msg2", nil, c.buddySend(sim), https)
			return answerOf(t, resp, b)
		}, want{"2018": "rc 0", "2015": "rc 0", "2018 strict": "rc 100001", "2015 strict": "rc 100001"}},
		{"the cfproxy page as Referer on a send", func(t *testing.T, sim *Server, c *tclient) string {
			c.login(sim)
			resp, b := c.request(http.MethodPost, "/channel/send_buddy_msg2", nil, c.buddySend(sim), cfproxy)
			return answerOf(t, resp, b)
		}, want{"2018": "rc 0", "2015": "rc 0", "2018 strict": "rc 100001", "2015 strict": "rc 100001"}},
		{"POST without Origin (poll2)", func(t *testing.T, sim *Server, c *tclient) string {
			c.login(sim)
			resp, b := c.request(http.MethodPost, "/channel/get_recent_list2", nil,
				map[string]any{"vfwebqq": c.vfwebqq, "clientid": 53999199, "psessionid": c.psessionid}, dropHeader("Origin"))
			return answerOf(t, resp, b)
		}, want{"2018": "rc 0", "2015": "rc 0", "2018 strict": "rc 100001", "2015 strict": "rc 100001"}},
		{"ptwebqq empty in getvfwebqq and login2", func(t *testing.T, sim *Server, c *tclient) string {
			c.qrShow()
			if err := sim.ConfirmQR(); err != nil {
				t.Fatal(err)
			}
			_, u := c.qrLogin()
			c.followCheckSig(u)
			m := c.api(http.MethodGet, "/api/getvfwebqq", url.Values{"ptwebqq": {""}, "clientid": {"53999199"}, "psessionid": {""}}, nil)
			if rc := retcode(t, m); rc != 0 {
				return fmt.Sprintf("rc %d", rc)
			}
			resp, b := c.request(http.MethodPost, "/channel/login2", nil, map[string]any{"ptwebqq": "", "clientid": 53999199, "psessionid": "", "status": "online"})
			return answerOf(t, resp, b)
		}, want{"2018": "rc 0", "2018 strict": "rc 0", "2015": "rc 100001", "2015 strict": "rc 100001"}},
		{"ptwebqq null in poll2", func(t *testing.T, sim *Server, c *tclient) string {
			c.login(sim)
			if _, err := sim.Say(Say{Kind: "friend", From: 123456, Text: "x"}); err != nil {
				t.Fatal(err)
			}
			resp, b := c.request(http.MethodPost, "/channel/poll2", nil, map[string]any{"ptwebqq": "null", "clientid": 53999199, "psessionid": c.psessionid, "key": ""})
			return answerOf(t, resp, b)
		}, want{"2018": "rc 0", "2018 strict": "rc 0", "2015": "rc 100001", "2015 strict": "rc 100001"}},
		{"the hash of an empty ptwebqq", func(t *testing.T, sim *Server, c *tclient) string {
			c.login(sim)
			resp, b := c.request(http.MethodPost, "/api/get_user_friends2", nil, map[string]any{"vfwebqq": c.vfwebqq, "hash": Hash(931996776, "")})
			return answerOf(t, resp, b)
		}, want{"2018": "rc 0", "2018 strict": "rc 0", "2015": "rc 100001", "2015 strict": "rc 100001"}},
		{"get_group_name_list_mask2 as a GET with r in the query", func(t *testing.T, sim *Server, c *tclient) string {
			c.login(sim)
			r := fmt.Sprintf(`{"vfwebqq":%q,"hash":%q}`, c.vfwebqq, Hash(931996776, c.ptwebqq))
			resp, b := c.request(http.MethodGet, "/api/get_group_name_list_mask2", url.Values{"r": {r}}, nil)
			return answerOf(t, resp, b)
		}, want{"2018": "rc 0", "2015": "rc 0", "2018 strict": "HTTP 405", "2015 strict": "HTTP 405"}},
		{"get_discus_list as a POST", func(t *testing.T, sim *Server, c *tclient) string {
			c.login(sim)
			q := url.Values{"clientid": {"53999199"}, "psessionid": {c.psessionid}, "vfwebqq": {c.vfwebqq}}
			resp, b := c.request(http.MethodPost, "/api/get_discus_list?"+q.Encode(), nil, "")
			return answerOf(t, resp, b)
		}, want{"2018": "rc 0", "2015": "rc 0", "2018 strict": "HTTP 405", "2015 strict": "HTTP 405"}},
		{"Set-Cookie lines end in ';'", func(t *testing.T, sim *Server, c *tclient) string {
			resp, _ := c.request(http.MethodGet, "/ptqrshow", url.Values{"appid": {"501004106"}}, nil)
			line := resp.Header.Get("Set-Cookie")
			if strings.HasPrefix(line, "qrsig=") && strings.HasSuffix(line, "Path=/;") && !strings.Contains(line, " ") {
				return "name=value;Path=/;"
			}
			return line
		}, want{"": "name=value;Path=/;"}},
		{"empty polls", func(t *testing.T, sim *Server, c *tclient) string {
			c.login(sim)
			var forms []string
			for i := 0; i < 4; i++ {
				resp, b := c.request(http.MethodPost, "/channel/poll2", nil, map[string]any{"ptwebqq": c.ptwebqq, "clientid": 53999199, "psessionid": c.psessionid, "key": ""})
				a := answerOf(t, resp, b)
				if strings.Contains(string(b), `"errmsg":"error"`) {
					a += " error"
				}
				forms = append(forms, a)
			}
			return strings.Join(forms, ", ")
		}, want{"2018": "rc 0, rc 0 error, rc 0, rc 0 error", "2018 strict": "rc 0, rc 0 error, rc 0, rc 0 error",
			"2015": "rc 102, rc 102, rc 102, rc 102", "2015 strict": "rc 102, rc 102, rc 102, rc 102"}},
		{"send success forms (friend, twice)", func(t *testing.T, sim *Server, c *tclient) string {
			c.login(sim)
			var forms []string
			for i := 0; i < 2; i++ {
				_, b := c.request(http.MethodPost, "/channel/send_buddy_msg2", nil, c.buddySend(sim))
				switch {
				case strings.Contains(string(b), `"errCode":0`):
					forms = append(forms, "errCode")
				case strings.Contains(string(b), `"retcode":0`):
					forms = append(forms, "retcode")
				default:
					forms = append(forms, string(b))
				}
			}
			return strings.Join(forms, ", ")
		}, want{"2018": "retcode, errCode", "2018 strict": "retcode, errCode", "2015": "errCode, errCode", "2015 strict": "errCode, errCode"}},
		{"the login pages", func(t *testing.T, sim *Server, c *tclient) string {
			var out []string
			for _, p := range []string{"/", "/cgi-bin/login", "/cgi-bin/xlogin", "/proxy.html", "/cfproxy.html"} {
				resp, b := c.request(http.MethodGet, p, url.Values{"appid": {"501004106"}}, nil)
				out = append(out, answerOf(t, resp, b))
			}
			return strings.Join(out, ", ")
		}, want{"": "200, 200, 200, 200, 200"}},
		{"empty polls on demand: cycle", func(t *testing.T, sim *Server, c *tclient) string {
			c.login(sim)
			sim.mu.Lock()
			sim.cfg.EmptyPoll = EmptyPollCycle
			sim.mu.Unlock()
			var forms []string
			for i := 0; i < 3; i++ {
				resp, b := c.request(http.MethodPost, "/channel/poll2", nil, map[string]any{"ptwebqq": c.ptwebqq, "clientid": 53999199, "psessionid": c.psessionid, "key": ""})
				forms = append(forms, answerOf(t, resp, b))
			}
			return strings.Join(forms, ", ")
		}, want{"": "HTTP 504, rc 0, rc 0"}},

		// What the real service provably enforced, in every profile.
		{"ptqrlogin with a wrong ptqrtoken", func(t *testing.T, sim *Server, c *tclient) string {
			c.qrShow()
			resp, b := c.request(http.MethodGet, "/ptqrlogin", url.Values{"ptqrtoken": {"12345"}}, nil)
			return answerOf(t, resp, b)
		}, want{"": "HTTP 403"}},
		{"content as an array", func(t *testing.T, sim *Server, c *tclient) string {
			c.login(sim)
			r := c.buddySend(sim)
			r["content"] = []any{"hi", []any{"font", map[string]any{"name": "宋体"}}}
			resp, b := c.request(http.MethodPost, "/channel/send_buddy_msg2", nil, r)
			return answerOf(t, resp, b)
		}, want{"": "rc 1000001"}},
		{"poll2 before get_online_buddies2", func(t *testing.T, sim *Server, c *tclient) string {
			c.qrShow()
			if err := sim.ConfirmQR(); err != nil {
				t.Fatal(err)
			}
			_, u := c.qrLogin()
			c.followCheckSig(u)
			c.cookieLogin()
			resp, b := c.request(http.MethodPost, "/channel/poll2", nil, map[string]any{"ptwebqq": c.ptwebqq, "clientid": 53999199, "psessionid": c.psessionid, "key": ""})
			return answerOf(t, resp, b)
		}, want{"": "rc 103"}},
		{"wrong psessionid, vfwebqq, hash, clientid", func(t *testing.T, sim *Server, c *tclient) string {
			c.login(sim)
			var out []string
			for _, q := range []url.Values{
				{"vfwebqq": {c.vfwebqq}, "clientid": {"53999199"}, "psessionid": {"x" + c.psessionid}},
				{"vfwebqq": {"x"}, "clientid": {"53999199"}, "psessionid": {c.psessionid}},
				{"vfwebqq": {c.vfwebqq}, "clientid": {"1"}, "psessionid": {c.psessionid}},
			} {
				out = append(out, fmt.Sprint(retcode(t, c.api(http.MethodGet, "/channel/get_online_buddies2", q, nil))))
			}
			out = append(out, fmt.Sprint(retcode(t, c.api(http.MethodPost, "/api/get_user_friends2", nil, map[string]any{"vfwebqq": c.vfwebqq, "hash": "0000"}))))
			return strings.Join(out, " ")
		}, want{"": "100001 100001 100001 100001"}},
		{"the request rate", func(t *testing.T, sim *Server, c *tclient) string {
			c.login(sim)
			sim.SetChaos(Chaos{RateLimitPerS: 0.5})
			q := url.Values{"clientid": {"53999199"}, "psessionid": {c.psessionid}, "vfwebqq": {c.vfwebqq}}
			c.api(http.MethodGet, "/api/get_discus_list", q, nil)
			return fmt.Sprint(retcode(t, c.api(http.MethodGet, "/api/get_discus_list", q, nil)))
		}, want{"": "1000003"}},
		{"QR expiry", func(t *testing.T, sim *Server, c *tclient) string {
			c.qrShow()
			if err := sim.ExpireQR(); err != nil {
				t.Fatal(err)
			}
			code, _ := c.qrLogin()
			return code
		}, want{"": "65"}},
		{"session numbers of an earlier login", func(t *testing.T, sim *Server, c *tclient) string {
			c.login(sim)
			old := sim.State().Friends[123456]
			c.cookieLogin()
			c.onlineBuddies()
			r := c.buddySend(sim)
			r["to"] = old
			resp, b := c.request(http.MethodPost, "/channel/send_buddy_msg2", nil, r)
			return answerOf(t, resp, b)
		}, want{"": "rc 100001"}},
	}
	for _, pc := range profileConfigs {
		t.Run(pc.name, func(t *testing.T) {
			for _, row := range rows {
				t.Run(row.rule, func(t *testing.T) {
					sim, c := newSim(t, pc.cfg())
					w, ok := row.want[pc.name]
					if !ok {
						w = row.want[""]
					}
					if got := row.do(t, sim, c); got != w {
						t.Errorf("%s: got %q, want %q", row.rule, got, w)
					}
				})
			}
		})
	}
}

// buddySend is the r of a send of "hi" to Alice.
func (c *tclient) buddySend(sim *Server) map[string]any {
	return map[string]any{"to": sim.State().Friends[123456], "content": content("hi"), "face": 522,
		"clientid": 53999199, "msg_id": 1, "psessionid": c.psessionid}
}
