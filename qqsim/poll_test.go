package qqsim

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPollHold(t *testing.T) {
	sim, c := newSim(t, testConfig())
	c.login(sim)
	m := c.poll()
	if rc := retcode(t, m); rc != 102 || m["errmsg"] != "" {
		t.Errorf("empty poll: %v, want {retcode:102, errmsg:\"\"}", m)
	}
	if n := sim.State().Counters["polls_102"]; n != 1 {
		t.Errorf("polls_102 = %d", n)
	}
}

// TestNewestPollerWins: an older held poll answers 102 as soon as a newer one
// arrives, and only the newer one receives.
func TestNewestPollerWins(t *testing.T) {
	cfg := testConfig()
	cfg.PollHold = 5 * time.Second // long enough that only a newer poll ends the first
	sim, c := newSim(t, cfg)
	c.login(sim)
	older := make(chan map[string]any, 1)
	go func() { older <- c.poll() }()
	eventually(t, "the first poll to be held", func() bool { return sim.State().Counters["polls_held"] == 1 })
	newer := make(chan map[string]any, 1)
	go func() { newer <- c.poll() }()
	first := <-older
	if rc := retcode(t, first); rc != 102 {
		t.Fatalf("older poll: %v, want 102", first)
	}
	if _, err := sim.Say(Say{Kind: "friend", From: 123456, Text: "for the newest"}); err != nil {
		t.Fatal(err)
	}
	got := <-newer
	if rc := retcode(t, got); rc != 0 || len(arr(t, got["result"])) != 1 {
		t.Fatalf("newer poll: %v", got)
	}
}

// TestSayWireForm says one message of each kind and checks its wire form with the
// current session numbers.
func TestSayWireForm(t *testing.T) {
	sim, c := newSim(t, testConfig())
	c.login(sim)
	st := sim.State()
	self := int64(931996776)
	text := `a<b & "c" \ d`
	escaped := `a&lt;b &amp; &quot;c&quot; &#92; d`
	rows := []struct {
		say      Say
		pollType string
		fields   map[string]int64
	}{
		{Say{Kind: "friend", From: 123456, Text: text, Faces: []int{14}}, "message",
			map[string]int64{"from_uin": st.Friends[123456], "to_uin": self, "msg_type": 9}},
		{Say{Kind: "group", From: 2468024, Group: 987654, Text: text, Faces: []int{14}}, "group_message",
			map[string]int64{"from_uin": st.Groups[987654], "group_code": st.Groups[987654], "send_uin": st.Friends[2468024], "to_uin": self}},
		{Say{Kind: "discuss", From: 3524125, DID: 1008611, Text: text, Faces: []int{14}}, "discu_message",
			map[string]int64{"from_uin": st.Discussions[1008611], "did": st.Discussions[1008611], "send_uin": st.Friends[3524125], "to_uin": self}},
		{Say{Kind: "sess", From: 7654321, Group: 55443322, Text: text, Faces: []int{14}}, "sess_message",
			map[string]int64{"from_uin": st.Friends[7654321], "id": st.Groups[55443322], "ruin": 7654321, "service_type": 0, "to_uin": self}},
	}
	var lastID int64
	for _, row := range rows {
		t.Run(row.say.Kind, func(t *testing.T) {
			id, err := sim.Say(row.say)
			if err != nil {
				t.Fatal(err)
			}
			if id <= lastID {
				t.Errorf("msg_id %d does not increase (last %d)", id, lastID)
			}
			lastID = id
			items := c.pollItems()
			if len(items) != 1 || items[0]["poll_type"] != row.pollType {
				t.Fatalf("items %v", items)
			}
			v := obj(t, items[0]["value"])
			if num(t, v["msg_id"]) != id {
				t.Errorf("msg_id %v, want %d", v["msg_id"], id)
			}
			for k, want := range row.fields {
				if got := num(t, v[k]); got != want {
					t.Errorf("%s = %d, want %d", k, got, want)
				}
			}
			cont := arr(t, v["content"])
			if len(cont) != 3 {
				t.Fatalf("content %v", cont)
			}
			font := arr(t, cont[0])
			if font[0] != "font" || obj(t, font[1])["name"] == nil {
				t.Errorf("content[0] %v is not the font segment", cont[0])
			}
			if cont[1] != escaped {
				t.Errorf("text %q, want %q", cont[1], escaped)
			}
			face := arr(t, cont[2])
			if face[0] != "face" || num(t, face[1]) != 14 {
				t.Errorf("face %v", cont[2])
			}
		})
	}
}

func TestSayRefusesUnknownContacts(t *testing.T) {
	sim, _ := newSim(t, testConfig())
	rows := []Say{
		{Kind: "friend", From: 2468024, Text: "not a friend"},
		{Kind: "group", From: 123456, Group: 1, Text: "no such group"},
		{Kind: "group", From: 7654321, Group: 987654, Text: "not a member"},
		{Kind: "discuss", From: 7654321, DID: 1008611, Text: "not a member"},
		{Kind: "sess", From: 123456, Group: 55443322, Text: "not a member"},
		{Kind: "shout", From: 123456, Text: "no such kind"},
	}
	for _, m := range rows {
		if _, err := sim.Say(m); err == nil {
			t.Errorf("Say(%+v) accepted", m)
		}
	}
	if st := sim.State(); st.Pending != 0 {
		t.Errorf("%d refused messages queued", st.Pending)
	}
}

// TestSessionNumbers: session numbers are re-drawn at every login, distinct and never
// a stable number; stable numbers stay; get_friend_uin2 maps them back.
func TestSessionNumbers(t *testing.T) {
	sim, c := newSim(t, testConfig())
	c.login(sim)
	first := sim.State()
	check := func(st State) {
		t.Helper()
		stable := map[int64]bool{931996776: true, 987654: true, 55443322: true, 1008611: true}
		for qq := range st.Friends {
			stable[qq] = true
		}
		seen := map[int64]bool{}
		for _, m := range []map[int64]int64{st.Friends, st.Groups, st.GroupCodes, st.Discussions} {
			for _, n := range m {
				if seen[n] || stable[n] {
					t.Errorf("session number %d repeated or stable", n)
				}
				seen[n] = true
			}
		}
		if len(st.Friends) != 5 || len(st.Groups) != 2 || len(st.Discussions) != 1 {
			t.Errorf("state lists %d people, %d groups, %d discussions", len(st.Friends), len(st.Groups), len(st.Discussions))
		}
	}
	check(first)

	sim.ExpireSession()
	c.cookieLogin()
	c.onlineBuddies()
	second := sim.State()
	check(second)
	for qq, uin := range first.Friends {
		if second.Friends[qq] == uin {
			t.Errorf("uin of %d unchanged across logins", qq)
		}
		m := c.api(http.MethodGet, "/api/get_friend_uin2", url.Values{
			"tuin": {strconv.FormatInt(second.Friends[qq], 10)}, "type": {"1"}, "vfwebqq": {c.vfwebqq}, "t": {"0.1"},
		}, nil)
		if got := num(t, obj(t, m["result"])["account"]); got != qq {
			t.Errorf("get_friend_uin2(uin of %d) = %d", qq, got)
		}
	}
	for g, gid := range first.Groups {
		if second.Groups[g] == gid || second.GroupCodes[g] == first.GroupCodes[g] {
			t.Errorf("gid or code of group %d unchanged across logins", g)
		}
		m := c.api(http.MethodGet, "/api/get_friend_uin2", url.Values{
			"tuin": {strconv.FormatInt(second.GroupCodes[g], 10)}, "type": {"4"}, "vfwebqq": {c.vfwebqq}, "t": {"0.1"},
		}, nil)
		if got := num(t, obj(t, m["result"])["account"]); got != g {
			t.Errorf("get_friend_uin2(type 4, code of %d) = %d", g, got)
		}
	}
	if first.Discussions[1008611] == second.Discussions[1008611] {
		t.Error("did unchanged across logins")
	}
	// tuid works like tuin; an old uin is no longer known.
	m := c.api(http.MethodGet, "/api/get_friend_uin2", url.Values{
		"tuid": {strconv.FormatInt(second.Friends[123456], 10)}, "type": {"1"}, "vfwebqq": {c.vfwebqq},
	}, nil)
	if got := num(t, obj(t, m["result"])["account"]); got != 123456 {
		t.Errorf("get_friend_uin2 with tuid = %d", got)
	}
	m = c.api(http.MethodGet, "/api/get_friend_uin2", url.Values{
		"tuin": {strconv.FormatInt(first.Friends[123456], 10)}, "type": {"1"}, "vfwebqq": {c.vfwebqq},
	}, nil)
	if rc := retcode(t, m); rc != 100001 {
		t.Errorf("get_friend_uin2 with last session's uin: retcode %d", rc)
	}
}

func TestEcho(t *testing.T) {
	for _, echo := range []bool{true, false} {
		t.Run("echo="+strconv.FormatBool(echo), func(t *testing.T) {
			cfg := testConfig()
			cfg.Echo = echo
			sim, c := newSim(t, cfg)
			c.login(sim)
			st := sim.State()
			if rc := retcode(t, c.send("send_qun_msg2", "group_uin", st.Groups[987654], content("hi <all>", []any{"face", 14}), nil)); rc != 0 {
				t.Fatalf("send_qun_msg2: %d", rc)
			}
			if rc := retcode(t, c.send("send_buddy_msg2", "to", st.Friends[123456], content("hello"), nil)); rc != 0 {
				t.Fatalf("send_buddy_msg2: %d", rc)
			}
			if !echo {
				if rc := retcode(t, c.poll()); rc != 102 {
					t.Errorf("poll with echo off: %d, want 102", rc)
				}
				return
			}
			items := c.pollItems()
			if len(items) != 2 {
				t.Fatalf("items %v", items)
			}
			g := obj(t, items[0]["value"])
			if items[0]["poll_type"] != "group_message" || num(t, g["send_uin"]) != 931996776 || num(t, g["from_uin"]) != st.Groups[987654] {
				t.Errorf("group echo %v", items[0])
			}
			cont := arr(t, g["content"])
			if arr(t, cont[0])[0] != "font" || cont[1] != "hi &lt;all&gt;" || num(t, arr(t, cont[2])[1]) != 14 {
				t.Errorf("group echo content %v", cont)
			}
			f := obj(t, items[1]["value"])
			if items[1]["poll_type"] != "message" || num(t, f["from_uin"]) != 931996776 || num(t, f["to_uin"]) != st.Friends[123456] {
				t.Errorf("friend echo %v", items[1])
			}
		})
	}
}

// TestExpireSessionAndCookieRelogin: ExpireSession answers the held poll 103; the
// cookies still make a new session, and what was said meanwhile arrives once.
func TestExpireSessionAndCookieRelogin(t *testing.T) {
	cfg := testConfig()
	cfg.PollHold = 5 * time.Second
	sim, c := newSim(t, cfg)
	c.login(sim)
	held := make(chan map[string]any, 1)
	go func() { held <- c.poll() }()
	eventually(t, "the poll to be held", func() bool { return sim.State().Counters["polls_held"] == 1 })
	sim.ExpireSession()
	if m := <-held; retcode(t, m) != 103 {
		t.Fatalf("held poll after ExpireSession: %v", m)
	}
	if st := sim.State(); st.Login != "expired" || st.UIN != 0 {
		t.Errorf("state %s", st.Login)
	}
	if rc := retcode(t, c.poll()); rc != 103 {
		t.Errorf("next poll: %d", rc)
	}
	if rc := retcode(t, c.onlineBuddies()); rc != 103 {
		t.Errorf("get_online_buddies2 with the ended session: %d", rc)
	}
	id, err := sim.Say(Say{Kind: "group", From: 123456, Group: 987654, Text: "said during the outage"})
	if err != nil {
		t.Fatal(err)
	}
	old := c.psessionid
	c.cookieLogin()
	if c.psessionid == old {
		t.Fatal("the new session has the old psessionid")
	}
	c.onlineBuddies()
	items := c.pollItems()
	if len(items) != 1 || num(t, obj(t, items[0]["value"])["msg_id"]) != id {
		t.Fatalf("after re-login: %v", items)
	}
	if num(t, obj(t, items[0]["value"])["from_uin"]) != sim.State().Groups[987654] {
		t.Error("the message was not rendered with the new session's gid")
	}
	if st := sim.State(); st.Pending != 0 || st.Counters["items_delivered"] != 1 {
		t.Errorf("after delivery: %d pending, %d delivered; want 0 and 1", st.Pending, st.Counters["items_delivered"])
	}
}

// TestSessionTTL: at the end of the cookies' life only a new QR login helps.
func TestSessionTTL(t *testing.T) {
	cfg := testConfig()
	cfg.SessionTTL = 400 * time.Millisecond
	sim, c := newSim(t, cfg)
	c.login(sim)
	eventually(t, "the session to expire", func() bool { return retcode(t, c.poll()) == 103 })
	if st := sim.State(); st.Login != "expired" {
		t.Errorf("state %s", st.Login)
	}
	m := c.api(http.MethodGet, "/api/getvfwebqq", url.Values{"ptwebqq": {c.ptwebqq}, "clientid": {"53999199"}, "psessionid": {""}}, nil)
	if rc := retcode(t, m); rc != 103 {
		t.Errorf("getvfwebqq with expired cookies: %d, want 103", rc)
	}
	m = c.api(http.MethodPost, "/channel/login2", nil, map[string]any{"ptwebqq": c.ptwebqq, "clientid": 53999199, "psessionid": "", "status": "online"})
	if rc := retcode(t, m); rc != 103 {
		t.Errorf("login2 with expired cookies: %d, want 103", rc)
	}
	c.login(sim)
	if rc := retcode(t, c.poll()); rc != 102 {
		t.Errorf("after a new QR login: %d", rc)
	}
}

func TestKick(t *testing.T) {
	cfg := testConfig()
	cfg.PollHold = 5 * time.Second
	sim, c := newSim(t, cfg)
	c.login(sim)
	held := make(chan map[string]any, 1)
	go func() { held <- c.poll() }()
	eventually(t, "the poll to be held", func() bool { return sim.State().Counters["polls_held"] == 1 })
	sim.Kick()
	m := <-held
	if retcode(t, m) != 0 {
		t.Fatalf("held poll: %v", m)
	}
	items := arr(t, m["result"])
	it := obj(t, items[0])
	v := obj(t, it["value"])
	if len(items) != 1 || it["poll_type"] != "kick_message" || num(t, v["msg_type"]) != 48 || num(t, v["from_uin"]) != 10000 || v["reason"] != kickReason {
		t.Errorf("kick item %v", it)
	}
	for range 2 {
		if rc := retcode(t, c.poll()); rc != 121 {
			t.Errorf("poll after the kick: %d, want 121", rc)
		}
	}
	if st := sim.State(); st.Login != "kicked" {
		t.Errorf("state %s", st.Login)
	}
	m = c.api(http.MethodGet, "/api/getvfwebqq", url.Values{"ptwebqq": {c.ptwebqq}, "clientid": {"53999199"}, "psessionid": {""}}, nil)
	if rc := retcode(t, m); rc != 103 {
		t.Errorf("getvfwebqq after the kick: %d, want 103", rc)
	}
}

// TestReplacedSession: login2 replaces the session; a poll held by the old one
// answers 121, later requests with it 103. A client that kept the new session's
// values resumes it without a login.
func TestReplacedSession(t *testing.T) {
	cfg := testConfig()
	cfg.PollHold = 5 * time.Second
	sim, c := newSim(t, cfg)
	c.login(sim)
	oldSess, oldVF := c.psessionid, c.vfwebqq
	held := make(chan map[string]any, 1)
	go func() { held <- c.poll() }()
	eventually(t, "the poll to be held", func() bool { return sim.State().Counters["polls_held"] == 1 })

	other := newClient(t, c.base)
	u, _ := url.Parse(c.base)
	other.hc.Jar.SetCookies(u, c.hc.Jar.Cookies(u))
	other.ptwebqq = c.ptwebqq
	other.cookieLogin()
	if m := <-held; retcode(t, m) != 121 {
		t.Fatalf("poll held by the replaced session: %v", m)
	}
	q := url.Values{"vfwebqq": {oldVF}, "clientid": {"53999199"}, "psessionid": {oldSess}}
	if rc := retcode(t, c.api(http.MethodGet, "/channel/get_online_buddies2", q, nil)); rc != 103 {
		t.Errorf("replaced session: %d, want 103", rc)
	}

	// Resume: the first client takes over the values the other one got.
	c.psessionid, c.vfwebqq = other.psessionid, other.vfwebqq
	if rc := retcode(t, c.onlineBuddies()); rc != 0 {
		t.Fatalf("resumed get_online_buddies2: %d", rc)
	}
	if _, err := sim.Say(Say{Kind: "friend", From: 3524125, Text: "resumed"}); err != nil {
		t.Fatal(err)
	}
	if items := c.pollItems(); len(items) != 1 {
		t.Errorf("resumed poll: %v", items)
	}
}

func TestRenewPtWebQQ(t *testing.T) {
	sim, c := newSim(t, testConfig())
	c.login(sim)
	if err := sim.RenewPtWebQQ(); err != nil {
		t.Fatal(err)
	}
	m := c.poll()
	p, _ := m["p"].(string)
	if retcode(t, m) != 116 || p == "" || p == c.ptwebqq {
		t.Fatalf("poll: %v", m)
	}
	if rc := retcode(t, c.poll()); rc != 100001 {
		t.Errorf("poll with the old ptwebqq: %d, want 100001", rc)
	}
	c.ptwebqq = p
	u, _ := url.Parse(c.base)
	c.hc.Jar.SetCookies(u, []*http.Cookie{{Name: "ptwebqq", Value: p, Path: "/"}})
	if rc := retcode(t, c.poll()); rc != 102 {
		t.Errorf("poll with the new ptwebqq: %d", rc)
	}
	if rc := retcode(t, c.api(http.MethodPost, "/api/get_user_friends2", nil, map[string]any{"vfwebqq": c.vfwebqq, "hash": Hash(931996776, p)})); rc != 0 {
		t.Errorf("hash with the new ptwebqq: %d", rc)
	}
}

func TestInjectVerbatim(t *testing.T) {
	sim, c := newSim(t, testConfig())
	c.login(sim)
	raw := `{"poll_type":"tips","value":{"from_uin":10000,"type":"x","txt":"a<b"}}`
	if err := sim.Inject([]json.RawMessage{json.RawMessage(raw)}); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Say(Say{Kind: "friend", From: 123456, Text: "after"}); err != nil {
		t.Fatal(err)
	}
	_, b := c.request(http.MethodPost, "/channel/poll2", nil, map[string]any{"ptwebqq": c.ptwebqq, "clientid": 53999199, "psessionid": c.psessionid, "key": ""})
	var m struct {
		Retcode int               `json:"retcode"`
		Result  []json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Retcode != 0 || len(m.Result) != 2 || string(m.Result[0]) != raw {
		t.Errorf("poll %s", b)
	}
	if err := sim.Inject([]json.RawMessage{json.RawMessage(`[1]`)}); err == nil {
		t.Error("a non-object item was accepted")
	}
}

// TestRestartedPollerLosesNothing: a poller that gives up (its connection closes)
// and a new one that starts right away: what is said in between reaches the new one.
func TestRestartedPollerLosesNothing(t *testing.T) {
	sim, c := newSim(t, testConfig())
	c.login(sim)
	r, _ := json.Marshal(map[string]any{"ptwebqq": c.ptwebqq, "clientid": 53999199, "psessionid": c.psessionid, "key": ""})
	base, _ := url.Parse(c.base)
	for round := range 10 {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/channel/poll2",
				strings.NewReader(url.Values{"r": {string(r)}}.Encode()))
			req.Header.Set("User-Agent", testUA)
			req.Header.Set("Referer", RefererD1)
			req.Header.Set("Origin", OriginD1)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for _, ck := range c.hc.Jar.Cookies(base) {
				req.AddCookie(ck)
			}
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		held := int64(2 * round)
		eventually(t, "the poll to be held", func() bool { return sim.State().Counters["polls_held"] > held })
		cancel()
		<-done
		id, err := sim.Say(Say{Kind: "friend", From: 123456, Text: "in between"})
		if err != nil {
			t.Fatal(err)
		}
		items := c.pollItems()
		if len(items) != 1 || num(t, obj(t, items[0]["value"])["msg_id"]) != id {
			t.Fatalf("round %d: %v", round, items)
		}
	}
}
