package qqsim

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// TestStrictness sends one request per rule with exactly one thing wrong and checks
// the retcode the real service answered for it.
func TestStrictness(t *testing.T) {
	sim, c := newSim(t, testConfig())
	c.login(sim)
	st := sim.State()
	gid := st.Groups[987654]
	ds := func(s string) string { return s }
	friendsR := func(hash string) map[string]any { return map[string]any{"vfwebqq": c.vfwebqq, "hash": hash} }
	goodHash := Hash(931996776, c.ptwebqq)
	sendR := func(cont any) map[string]any {
		return map[string]any{"group_uin": gid, "content": cont, "face": 522, "clientid": 53999199, "msg_id": 1, "psessionid": c.psessionid}
	}
	withQ := func(key, v string) url.Values {
		q := c.sessQuery()
		q.Set(key, v)
		return q
	}
	long := strings.Repeat("长", 241) // 723 bytes

	rows := []struct {
		name   string
		method string
		path   string
		q      url.Values
		r      any
		mods   []mod
		want   int64
	}{
		{name: "missing Referer", method: "GET", path: "/channel/get_online_buddies2", q: c.sessQuery(), mods: []mod{dropHeader("Referer")}, want: 100001},
		{name: "wrong Referer (s.web2's on d1)", method: "GET", path: "/channel/get_online_buddies2", q: c.sessQuery(), mods: []mod{setHeader("Referer", RefererS)}, want: 100001},
		{name: "missing Origin on POST", method: "POST", path: "/api/get_user_friends2", r: friendsR(goodHash), mods: []mod{dropHeader("Origin")}, want: 100001},
		{name: "wrong Origin on POST", method: "POST", path: "/channel/send_qun_msg2", r: sendR(content("hi")), mods: []mod{setHeader("Origin", "http://evil.example")}, want: 100001},
		{name: "missing User-Agent", method: "GET", path: "/channel/get_online_buddies2", q: c.sessQuery(), mods: []mod{setHeader("User-Agent", "")}, want: 100001},
		{name: "non-browser User-Agent", method: "GET", path: "/channel/get_online_buddies2", q: c.sessQuery(), mods: []mod{setHeader("User-Agent", "Go-http-client/1.1")}, want: 100001},
		{name: "missing skey cookie", method: "GET", path: "/channel/get_online_buddies2", q: c.sessQuery(), mods: []mod{c.dropCookie("skey")}, want: 100001},
		{name: "missing ptwebqq cookie", method: "GET", path: "/api/get_group_info_ext2", q: url.Values{"gcode": {strconv.FormatInt(st.GroupCodes[987654], 10)}, "vfwebqq": {c.vfwebqq}}, mods: []mod{c.dropCookie("ptwebqq")}, want: 100001},
		{name: "missing uin cookie", method: "POST", path: "/api/get_user_friends2", r: friendsR(goodHash), mods: []mod{c.dropCookie("uin")}, want: 100001},
		{name: "wrong vfwebqq", method: "GET", path: "/channel/get_online_buddies2", q: withQ("vfwebqq", "0123"), want: 100001},
		{name: "wrong psessionid", method: "GET", path: "/channel/get_online_buddies2", q: withQ("psessionid", "8368046764001d636f6e6e"), want: 100001},
		{name: "missing psessionid", method: "GET", path: "/api/get_discus_list", q: url.Values{"vfwebqq": {c.vfwebqq}, "clientid": {"53999199"}}, want: 100001},
		{name: "wrong clientid", method: "GET", path: "/channel/get_online_buddies2", q: withQ("clientid", "11558985"), want: 100001},
		{name: "wrong hash", method: "POST", path: "/api/get_user_friends2", r: friendsR("0000000000000000"), want: 100001},
		{name: "wrong hash on group list", method: "POST", path: "/api/get_group_name_list_mask2", r: friendsR(ds(strings.ToLower(goodHash))), want: 100001},
		{name: "wrong ptwebqq in poll2", method: "POST", path: "/channel/poll2", r: map[string]any{"ptwebqq": "x", "clientid": 53999199, "psessionid": c.psessionid, "key": ""}, want: 100001},
		{name: "r not JSON", method: "POST", path: "/channel/send_qun_msg2", r: "{not json", want: 1000000},
		{name: "content as an array", method: "POST", path: "/channel/send_qun_msg2", r: sendR([]any{"hi", []any{"font", map[string]any{"name": "宋体"}}}), want: 1000001},
		{name: "content not JSON", method: "POST", path: "/channel/send_qun_msg2", r: sendR("hi"), want: 1000001},
		{name: "content with the font first", method: "POST", path: "/channel/send_qun_msg2", r: sendR(`[["font",{"name":"宋体"}],"hi"]`), want: 1000001},
		{name: "content without font", method: "POST", path: "/channel/send_qun_msg2", r: sendR(`["hi"]`), want: 1000001},
		{name: "content over 720 bytes", method: "POST", path: "/channel/send_qun_msg2", r: sendR(content(long)), want: 1000001},
		{name: "unknown group_uin", method: "POST", path: "/channel/send_qun_msg2", r: map[string]any{"group_uin": 987654, "content": content("hi"), "face": 522, "clientid": 53999199, "msg_id": 1, "psessionid": c.psessionid}, want: 100001},
		{name: "sess without group_sig", method: "POST", path: "/channel/send_sess_msg2", r: map[string]any{"to": st.Friends[2468024], "content": content("hi"), "face": 522, "clientid": 53999199, "msg_id": 1, "psessionid": c.psessionid, "service_type": 0}, want: 100001},
		{name: "unknown gcode", method: "GET", path: "/api/get_group_info_ext2", q: url.Values{"gcode": {"987654"}, "vfwebqq": {c.vfwebqq}}, want: 100001},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			m := c.api(row.method, row.path, row.q, row.r, row.mods...)
			if got := retcode(t, m); got != row.want {
				t.Errorf("retcode %d, want %d (%v)", got, row.want, m)
			}
		})
	}
	if n := len(sim.Sent()); n != 0 {
		t.Errorf("refused sends were recorded: %d", n)
	}
	// The same requests without the fault are accepted.
	if rc := retcode(t, c.api("POST", "/api/get_user_friends2", nil, friendsR(goodHash))); rc != 0 {
		t.Errorf("get_user_friends2 with the right hash: %d", rc)
	}
	if rc := retcode(t, c.api("POST", "/channel/send_qun_msg2", nil, sendR(content(long[:720])))); rc != 0 {
		t.Errorf("send of exactly 720 bytes: %d", rc)
	}
}

// TestLoginHostsForbid checks the login hosts' HTTP 403.
func TestLoginHostsForbid(t *testing.T) {
	_, c := newSim(t, testConfig())
	c.qrShow()
	good := strconv.FormatInt(Hash33(c.qrsig()), 10)
	rows := []struct {
		name string
		path string
		q    url.Values
		mods []mod
	}{
		{"ptqrlogin without ptqrtoken", "/ptqrlogin", url.Values{"aid": {"501004106"}}, nil},
		{"ptqrlogin with a wrong ptqrtoken", "/ptqrlogin", url.Values{"ptqrtoken": {"12345"}}, nil},
		{"ptqrlogin without the qrsig cookie", "/ptqrlogin", url.Values{"ptqrtoken": {good}}, []mod{c.dropCookie("qrsig")}},
		{"ptqrlogin with an unknown qrsig", "/ptqrlogin", url.Values{"ptqrtoken": {strconv.FormatInt(Hash33("forged"), 10)}}, []mod{setHeader("Cookie", "qrsig=forged")}},
		{"ptqrlogin without Referer", "/ptqrlogin", url.Values{"ptqrtoken": {good}}, []mod{dropHeader("Referer")}},
		{"ptqrshow without User-Agent", "/ptqrshow", url.Values{"appid": {"501004106"}}, []mod{setHeader("User-Agent", "")}},
		{"check_sig with a forged ptsigx", "/check_sig", url.Values{"uin": {"931996776"}, "ptsigx": {"00ff"}}, []mod{setHeader("Referer", RefererS)}},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			resp, _ := c.request(http.MethodGet, row.path, row.q, nil, row.mods...)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("HTTP %d, want 403", resp.StatusCode)
			}
		})
	}
	if code, _ := c.qrLogin(); code != "66" {
		t.Errorf("the right token: %s", code)
	}
}

func TestPollBeforeOnlineBuddies(t *testing.T) {
	sim, c := newSim(t, testConfig())
	c.qrShow()
	if err := sim.ConfirmQR(); err != nil {
		t.Fatal(err)
	}
	_, u := c.qrLogin()
	c.followCheckSig(u)
	c.cookieLogin()
	if _, err := sim.Say(Say{Kind: "friend", From: 123456, Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	if rc := retcode(t, c.poll()); rc != 103 {
		t.Fatalf("poll before get_online_buddies2: retcode %d, want 103", rc)
	}
	c.onlineBuddies()
	items := c.pollItems()
	if len(items) != 1 || items[0]["poll_type"] != "message" {
		t.Errorf("after get_online_buddies2: %v", items)
	}
}

func TestRateLimit(t *testing.T) {
	cfg := testConfig()
	cfg.RateLimit = 0.5 // burst 1: the second request in a row is too fast
	sim, c := newSim(t, cfg)
	c.login(sim) // login2 starts a fresh bucket; get_online_buddies2 takes its token
	q := url.Values{"clientid": {"53999199"}, "psessionid": {c.psessionid}, "vfwebqq": {c.vfwebqq}}
	if rc := retcode(t, c.api(http.MethodGet, "/api/get_discus_list", q, nil)); rc != 1000003 {
		t.Errorf("request above the rate: retcode %d, want 1000003", rc)
	}
	// poll2 is not rate limited.
	if rc := retcode(t, c.poll()); rc != 102 {
		t.Errorf("poll2 above the rate: retcode %d, want 102", rc)
	}
	// Chaos replaces the configured rate.
	sim.SetChaos(Chaos{RateLimitPerS: 1000})
	if rc := retcode(t, c.api(http.MethodGet, "/api/get_discus_list", q, nil)); rc != 0 {
		t.Errorf("with a high chaos rate: retcode %d", rc)
	}
	sim.SetChaos(Chaos{RateLimitPerS: 0.5})
	c.api(http.MethodGet, "/api/get_discus_list", q, nil)
	if rc := retcode(t, c.api(http.MethodGet, "/api/get_discus_list", q, nil)); rc != 1000003 {
		t.Errorf("with a low chaos rate: retcode %d, want 1000003", rc)
	}
}
