package qqsim

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestContacts reads every contact endpoint of a world loaded from a file.
func TestContacts(t *testing.T) {
	w, err := LoadWorld("testdata/world.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.World = w
	sim, c := newSim(t, cfg)
	c.login(sim)
	st := sim.State()
	if st.SelfQQ != 2318067912 {
		t.Fatalf("self %d", st.SelfQQ)
	}
	hashR := map[string]any{"vfwebqq": c.vfwebqq, "hash": Hash(2318067912, c.ptwebqq)}

	t.Run("get_online_buddies2 leaves out offline friends", func(t *testing.T) {
		res := arr(t, c.onlineBuddies()["result"])
		if len(res) != 1 || num(t, obj(t, res[0])["uin"]) != st.Friends[3524125] {
			t.Errorf("%v", res)
		}
	})
	t.Run("get_user_friends2", func(t *testing.T) {
		res := obj(t, c.api(http.MethodPost, "/api/get_user_friends2", nil, hashR)["result"])
		info := arr(t, res["info"])
		if len(arr(t, res["friends"])) != 2 || len(info) != 2 || obj(t, info[0])["nick"] != "ABCD" || num(t, obj(t, info[0])["uin"]) != st.Friends[3524125] {
			t.Errorf("friends %v", res)
		}
		marks := arr(t, res["marknames"])
		if len(marks) != 1 || obj(t, marks[0])["markname"] != "备注" {
			t.Errorf("marknames %v", marks)
		}
		cats := arr(t, res["categories"])
		if len(cats) != 2 || obj(t, cats[1])["name"] != "朋友" || obj(t, cats[0])["name"] != "我的好友" {
			t.Errorf("categories %v", cats)
		}
	})
	t.Run("get_group_name_list_mask2", func(t *testing.T) {
		res := obj(t, c.api(http.MethodPost, "/api/get_group_name_list_mask2", nil, hashR)["result"])
		list := arr(t, res["gnamelist"])
		g := obj(t, list[0])
		if len(list) != 2 || g["name"] != "群名称" || num(t, g["gid"]) != st.Groups[591539174] || num(t, g["code"]) != st.GroupCodes[591539174] {
			t.Errorf("gnamelist %v", list)
		}
		if _, ok := res["gmasklist"]; !ok {
			t.Error("no gmasklist")
		}
	})
	groupInfo := func(t *testing.T, number int64) map[string]any {
		q := url.Values{"gcode": {strconv.FormatInt(st.GroupCodes[number], 10)}, "vfwebqq": {c.vfwebqq}, "t": {"0.1"}}
		m := c.api(http.MethodGet, "/api/get_group_info_ext2", q, nil)
		if retcode(t, m) != 0 {
			t.Fatalf("get_group_info_ext2: %v", m)
		}
		return obj(t, m["result"])
	}
	t.Run("get_group_info_ext2 with cards", func(t *testing.T) {
		res := groupInfo(t, 591539174)
		cards := arr(t, res["cards"])
		if len(cards) != 1 || obj(t, cards[0])["card"] != "群名片" || num(t, obj(t, cards[0])["muin"]) != st.Friends[3524125] {
			t.Errorf("cards %v", cards)
		}
		gi := obj(t, res["ginfo"])
		if num(t, gi["owner"]) != st.Friends[3524125] || gi["memo"] != "群公告！" || num(t, gi["gid"]) != st.Groups[591539174] {
			t.Errorf("ginfo %v", gi)
		}
		if n := len(arr(t, res["minfo"])); n != 3 { // two members and the account
			t.Errorf("%d minfo entries", n)
		}
	})
	t.Run("get_group_info_ext2 without cards", func(t *testing.T) {
		res := groupInfo(t, 12345678)
		if _, ok := res["cards"]; ok {
			t.Errorf("cards present in a group where nobody set one: %v", res["cards"])
		}
		if num(t, obj(t, res["ginfo"])["owner"]) != 2318067912 {
			t.Error("the account as owner is not its own uin")
		}
	})
	t.Run("get_discus_list and get_discu_info", func(t *testing.T) {
		res := obj(t, c.api(http.MethodGet, "/api/get_discus_list", c.sessQuery(), nil)["result"])
		list := arr(t, res["dnamelist"])
		did := st.Discussions[236426547]
		if len(list) != 1 || num(t, obj(t, list[0])["did"]) != did || obj(t, list[0])["name"] != "啊啊啊啊" {
			t.Fatalf("dnamelist %v", list)
		}
		q := c.sessQuery()
		q.Set("did", strconv.FormatInt(did, 10))
		info := obj(t, c.api(http.MethodGet, "/channel/get_discu_info", q, nil)["result"])
		mem := arr(t, obj(t, info["info"])["mem_list"])
		if obj(t, info["info"])["discu_name"] != "啊啊啊啊" || len(mem) != 2 || num(t, obj(t, mem[1])["ruin"]) != 1301948 {
			t.Errorf("get_discu_info %v", info)
		}
	})
	t.Run("get_friend_info2 and get_self_info2", func(t *testing.T) {
		q := c.sessQuery()
		q.Set("tuin", strconv.FormatInt(st.Friends[3524125], 10))
		res := obj(t, c.api(http.MethodGet, "/api/get_friend_info2", q, nil)["result"])
		if res["nick"] != "ABCD" || res["gender"] != "female" {
			t.Errorf("friend info %v", res)
		}
		self := obj(t, c.api(http.MethodGet, "/api/get_self_info2", url.Values{"t": {"0.1"}}, nil)["result"])
		if self["nick"] != "YAT-SEN" || num(t, self["account"]) != 2318067912 {
			t.Errorf("self info %v", self)
		}
	})
	t.Run("get_recent_list2", func(t *testing.T) {
		if _, err := sim.Say(Say{Kind: "discuss", From: 1301948, DID: 236426547, Text: "hi"}); err != nil {
			t.Fatal(err)
		}
		c.send("send_buddy_msg2", "to", st.Friends[3524125], content("yo"), nil)
		r := map[string]any{"vfwebqq": c.vfwebqq, "clientid": 53999199, "psessionid": c.psessionid}
		res := arr(t, c.api(http.MethodPost, "/channel/get_recent_list2", nil, r)["result"])
		if len(res) != 2 || num(t, obj(t, res[0])["type"]) != 0 || num(t, obj(t, res[1])["uin"]) != st.Discussions[236426547] {
			t.Errorf("recent %v", res)
		}
	})
}

// TestSends sends one message of each kind and checks the answer and the record.
func TestSends(t *testing.T) {
	cfg := testConfig()
	cfg.Echo = false
	sim, c := newSim(t, cfg)
	c.login(sim)
	st := sim.State()

	q := c.sessQuery()
	q.Set("id", strconv.FormatInt(st.Groups[987654], 10))
	q.Set("to_uin", strconv.FormatInt(st.Friends[2468024], 10))
	q.Set("service_type", "0")
	sigRes := obj(t, c.api(http.MethodGet, "/channel/get_c2cmsg_sig2", q, nil)["result"])
	sig, _ := sigRes["value"].(string)
	if sig == "" {
		t.Fatalf("get_c2cmsg_sig2: %v", sigRes)
	}
	cont := content("hi ", []any{"face", 14}, "!")
	rows := []struct {
		endpoint, field string
		target, stable  int64
		extra           map[string]any
		kind            string
		wantMsg         bool // {"errCode":0,"msg":"send ok"} rather than {"retcode":0,"result":"ok"}
	}{
		{"send_buddy_msg2", "to", st.Friends[123456], 123456, nil, "friend", true},
		{"send_qun_msg2", "group_uin", st.Groups[987654], 987654, nil, "group", true},
		{"send_discu_msg2", "did", st.Discussions[1008611], 1008611, nil, "discuss", false},
		{"send_sess_msg2", "to", st.Friends[2468024], 2468024, map[string]any{"group_sig": sig, "service_type": 0}, "sess", false},
	}
	for i, row := range rows {
		t.Run(row.kind, func(t *testing.T) {
			m := c.send(row.endpoint, row.field, row.target, cont, row.extra)
			if row.wantMsg && (len(m) != 2 || num(t, m["errCode"]) != 0 || m["msg"] != "send ok") {
				t.Errorf("answer %v, want {errCode:0, msg:send ok}", m)
			}
			if !row.wantMsg && (len(m) != 2 || num(t, m["retcode"]) != 0 || m["result"] != "ok") {
				t.Errorf("answer %v, want {retcode:0, result:ok}", m)
			}
			sent := sim.Sent()
			if len(sent) != i+1 {
				t.Fatalf("%d records", len(sent))
			}
			r := sent[i]
			if r.Kind != row.kind || r.Target != row.target || r.Stable != row.stable || r.Content != cont ||
				r.Text != "hi [face 14]!" || len(r.Faces) != 1 || r.Faces[0] != 14 || r.MsgID != 65890001 || r.MaybeSent {
				t.Errorf("record %+v", r)
			}
		})
	}
	// A sig is for the member it was asked for.
	m := c.send("send_sess_msg2", "to", st.Friends[123456], cont, map[string]any{"group_sig": sig, "service_type": 0})
	if rc := retcode(t, m); rc != 100001 {
		t.Errorf("sess with another member's sig: %d", rc)
	}
}

func TestChaos(t *testing.T) {
	sim, c := newSim(t, testConfig())
	c.login(sim)
	st := sim.State()

	sim.SetChaos(Chaos{HTTP502Rate: 1})
	resp, _ := c.request(http.MethodGet, "/channel/get_online_buddies2", c.sessQuery(), nil)
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("502 chaos: HTTP %d", resp.StatusCode)
	}
	sim.SetChaos(Chaos{MaybeSentRate: 1})
	m := c.send("send_qun_msg2", "group_uin", st.Groups[987654], content("maybe"), nil)
	if rc := retcode(t, m); rc != 1202 {
		t.Errorf("maybe-sent chaos: %v", m)
	}
	sent := sim.Sent()
	if len(sent) != 1 || !sent[0].MaybeSent || sent[0].Text != "maybe" {
		t.Errorf("a 1202 send is recorded as delivered: %+v", sent)
	}
	// The echo shows it was delivered.
	items := c.pollItems()
	if len(items) != 1 || items[0]["poll_type"] != "group_message" {
		t.Errorf("echo of the 1202 send: %v", items)
	}
	sim.SetChaos(Chaos{})
	if rc := retcode(t, c.onlineBuddies()); rc != 0 {
		t.Errorf("after chaos off: %d", rc)
	}
}

// TestSendLatency: Chaos.SendLatencyMS holds the answer of a send after the
// message is delivered, so a client that goes away meanwhile has sent it
// without hearing so; other requests are not held, and the record names the
// client's address.
func TestSendLatency(t *testing.T) {
	sim, c := newSim(t, testConfig())
	c.login(sim)
	gid := sim.State().Groups[987654]
	sim.SetChaos(Chaos{SendLatencyMS: int(time.Hour / time.Millisecond)})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	local := make(chan string, 1) // the client's side of the send's connection
	answered := make(chan error, 1)
	go func() {
		r, _ := json.Marshal(map[string]any{"group_uin": gid, "content": content("held"), "face": 522,
			"clientid": 53999199, "msg_id": 65890001, "psessionid": c.psessionid})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/channel/send_qun_msg2",
			strings.NewReader(url.Values{"r": {string(r)}}.Encode()))
		if err != nil {
			answered <- err
			return
		}
		req.Header.Set("User-Agent", testUA)
		req.Header.Set("Referer", RefererD1)
		req.Header.Set("Origin", OriginD1)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		hc := &http.Client{Jar: c.hc.Jar, Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				local <- conn.LocalAddr().String()
			}
			return conn, err
		}}}
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		answered <- err
	}()

	eventually(t, "the held send in Sent", func() bool { return len(sim.Sent()) == 1 })
	if rec := sim.Sent()[0]; rec.Text != "held" || rec.Remote != <-local {
		t.Errorf("sent %+v: want the text held from the client's address", rec)
	}
	if rc := retcode(t, c.onlineBuddies()); rc != 0 { // not held
		t.Errorf("get_online_buddies2 while a send is held: retcode %d", rc)
	}
	select {
	case err := <-answered:
		t.Fatalf("the send was answered (error %v) while held", err)
	default:
	}
	cancel()
	if err := <-answered; !errors.Is(err, context.Canceled) {
		t.Errorf("the held send ended with %v, want the client's cancellation", err)
	}
	// It was delivered all the same: the echo comes.
	items := c.pollItems()
	if len(items) != 1 || items[0]["poll_type"] != "group_message" {
		t.Errorf("echo of the held send: %v", items)
	}
	sim.SetChaos(Chaos{})
	if rc := retcode(t, c.send("send_qun_msg2", "group_uin", gid, content("after"), nil)); rc != 0 {
		t.Errorf("a send after the latency is off: retcode %d", rc)
	}
}

func TestLoadWorldErrors(t *testing.T) {
	rows := []struct {
		name, json, want string
	}{
		{"not JSON", `{"self":`, "unexpected EOF"},
		{"unknown field", `{"self":{"qq":1,"nick":"a"},"frends":[]}`, `unknown field "frends"`},
		{"no self", `{"friends":[]}`, "self.qq"},
		{"duplicate friend", `{"self":{"qq":1},"friends":[{"qq":2},{"qq":2}]}`, "friends[1]: qq 2 listed twice"},
		{"self as friend", `{"self":{"qq":1},"friends":[{"qq":1}]}`, "is the account itself"},
		{"owner outside", `{"self":{"qq":1},"groups":[{"number":5,"name":"g","owner":9,"members":[{"qq":2}]}]}`, "owner 9"},
		{"duplicate group", `{"self":{"qq":1},"groups":[{"number":5,"name":"g","owner":1},{"number":5,"name":"h","owner":1}]}`, "groups[1]: number 5 listed twice"},
		{"discussion without id", `{"self":{"qq":1},"discussions":[{"name":"d"}]}`, "discussions[0]: id"},
		{"bad status", `{"self":{"qq":1},"friends":[{"qq":2,"status":"gone"}]}`, `status "gone"`},
		{"two objects", `{"self":{"qq":1}} {}`, "after the JSON object"},
	}
	dir := t.TempDir()
	for i, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			path := filepath.Join(dir, strconv.Itoa(i)+".json")
			if err := os.WriteFile(path, []byte(row.json), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadWorld(path)
			if !errors.Is(err, ErrBadWorld) || !strings.Contains(err.Error(), row.want) {
				t.Errorf("error %v, want ErrBadWorld mentioning %q", err, row.want)
			}
		})
	}
	if _, err := LoadWorld(filepath.Join(dir, "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := New(Config{World: &World{}}); !errors.Is(err, ErrBadWorld) {
		t.Errorf("New with an empty world: %v", err)
	}
}

func TestDefaultWorld(t *testing.T) {
	w := DefaultWorld()
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	noCards := 0
	for _, g := range w.Groups {
		cards := 0
		for _, m := range g.Members {
			if m.Card != "" {
				cards++
			}
		}
		if cards == 0 {
			noCards++
		}
	}
	if noCards == 0 || len(w.Discussions) == 0 || len(w.Friends) == 0 {
		t.Errorf("the default world lacks a group without cards, a discussion or friends")
	}
	// WorldView is a copy.
	sim, _ := newSim(t, testConfig())
	v := sim.WorldView()
	v.Groups[0].Members[0].Nick = "changed"
	if sim.WorldView().Groups[0].Members[0].Nick == "changed" {
		t.Error("WorldView shares memory with the server")
	}
}
