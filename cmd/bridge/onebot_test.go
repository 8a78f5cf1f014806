package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/onebot"
	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
)

const obToken = "test-token"

// onebotSetup is a bridge logged in to qqsim, with a gateway on it.
type onebotSetup struct {
	sim    *testenv.Sim
	simURL string
	gw     *onebotGateway
	stop   func() // stops the gateway (also done when the test ends)
	base   string // http://host:port of the gateway
}

// startOnebotSetup starts the simulator, the bridge (logged in by QR) and a
// gateway configured by edit.
func startOnebotSetup(t *testing.T, edit func(*onebotConfig)) *onebotSetup {
	t.Helper()
	sim := testenv.StartSim(t, testenv.SimConfig())
	cfg := testConfig(t, sim.URL)
	rb := wireBridge(t, cfg)
	s := cfg.Subjects
	nc := testenv.Connect(t, rb.b.NATSURL())
	rec := testenv.Record(t, nc, s.Prefix()+".>")
	rb.start(t)
	loginByQR(t, sim, rec, s)

	oc := defaultOnebotConfig()
	oc.Listen = "127.0.0.1:0"
	oc.Gateway.AccessToken = obToken
	oc.Gateway.Heartbeat = -1
	oc.Gateway.ReconnectInterval = 100 * time.Millisecond
	oc.Gateway.Version = "test"
	if edit != nil {
		edit(&oc)
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &testenv.LogBuffer{}
	gw, err := startOnebot(ctx, nc, oc, newLogger(logs, zerolog.DebugLevel, logJSON, false))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	stop := func() { cancel(); gw.Wait() }
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("gateway logs:\n%s", logs.String())
		}
	})
	return &onebotSetup{sim: sim, simURL: sim.URL, gw: gw, base: "http://" + gw.Addr, stop: stop}
}

// wsClient is a bot's WebSocket connection: frames in arrival order, and
// actions answered by echo.
type wsClient struct {
	t    *testing.T
	ws   *websocket.Conn
	mu   sync.Mutex
	evs  []map[string]any
	resp map[string]map[string]any
	more chan struct{}
}

func newWSClient(t *testing.T, ws *websocket.Conn) *wsClient {
	c := &wsClient{t: t, ws: ws, resp: map[string]map[string]any{}, more: make(chan struct{})}
	go func() {
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			var m map[string]any
			if json.Unmarshal(b, &m) != nil {
				continue
			}
			c.mu.Lock()
			if _, isEvent := m["post_type"]; isEvent {
				c.evs = append(c.evs, m)
			} else {
				c.resp[fmt.Sprint(m["echo"])] = m
			}
			close(c.more)
			c.more = make(chan struct{})
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { _ = ws.Close(websocket.StatusNormalClosure, "") })
	return c
}

func dialWS(t *testing.T, url string, h http.Header) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Fatal(err)
	}
	return newWSClient(t, ws)
}

// event waits for the first event that matches.
func (c *wsClient) event(what string, match func(map[string]any) bool) map[string]any {
	c.t.Helper()
	deadline := time.After(testenv.WaitTimeout)
	for {
		c.mu.Lock()
		for _, e := range c.evs {
			if match(e) {
				c.mu.Unlock()
				return e
			}
		}
		more := c.more
		c.mu.Unlock()
		select {
		case <-more:
		case <-deadline:
			c.t.Fatalf("never got %s; got %v", what, c.evs)
		}
	}
}

// call sends an action and waits for its answer.
func (c *wsClient) call(action string, params any, echo any) map[string]any {
	c.t.Helper()
	b, _ := json.Marshal(map[string]any{"action": action, "params": params, "echo": echo})
	if err := c.ws.Write(context.Background(), websocket.MessageText, b); err != nil {
		c.t.Fatal(err)
	}
	key := fmt.Sprint(echo)
	deadline := time.After(testenv.WaitTimeout)
	for {
		c.mu.Lock()
		r, ok := c.resp[key]
		if ok {
			delete(c.resp, key)
		}
		more := c.more
		c.mu.Unlock()
		if ok {
			return r
		}
		select {
		case <-more:
		case <-deadline:
			c.t.Fatalf("no answer to %s (echo %v)", action, echo)
		}
	}
}

func isGroupText(text string) func(map[string]any) bool {
	return func(e map[string]any) bool {
		return e["post_type"] == "message" && e["message_type"] == "group" && strings.HasPrefix(fmt.Sprint(e["raw_message"]), text)
	}
}

func bearer() http.Header { return http.Header{"Authorization": {"Bearer " + obToken}} }

// countSent counts the simulator's received messages of kind to stable with text.
func countSent(sim *testenv.Sim, kind string, stable int64, text string) int {
	return len(sim.Control.SentMatching(testenv.SentText(kind, stable, text)))
}

// TestOnebotForwardWS: a bot on the forward WebSocket gets lifecycle and a
// group message with every field, sends with message_id in the answer, a
// repeated echo sends once, get_msg resolves ids, and the actions answer
// as the spec's tables say.
func TestOnebotForwardWS(t *testing.T) {
	o := startOnebotSetup(t, nil)
	wsURL := "ws://" + o.gw.Addr + "/"
	c := dialWS(t, wsURL, bearer())
	c.event("lifecycle connect", func(e map[string]any) bool {
		return e["meta_event_type"] == "lifecycle" && e["sub_type"] == "connect" && e["self_id"] == float64(931996776)
	})

	if _, err := o.sim.Say(qqsim.Say{Kind: "group", From: aliceQQ, Group: devGroup, Text: "hi [bot] & co ", Faces: []int{14}}); err != nil {
		t.Fatal(err)
	}
	e := c.event("the group message", isGroupText("hi &#91;bot&#93; &amp; co"))
	for k, v := range map[string]any{"self_id": float64(931996776), "sub_type": "normal", "group_id": float64(devGroup), "user_id": float64(aliceQQ), "font": float64(0),
		"raw_message": "hi &#91;bot&#93; &amp; co [CQ:face,id=14]"} {
		if e[k] != v {
			t.Errorf("event %s = %v, want %v", k, e[k], v)
		}
	}
	if _, ok := e["anonymous"]; !ok || e["anonymous"] != nil {
		t.Errorf("anonymous = %v, want null", e["anonymous"])
	}
	if tm, _ := e["time"].(float64); time.Since(time.Unix(int64(tm), 0)) > time.Hour {
		t.Errorf("time %v is not unix seconds of now", e["time"])
	}
	sender, _ := e["sender"].(map[string]any)
	if sender["nickname"] != "Alice" || sender["card"] != "Alice@dev" || sender["user_id"] != float64(aliceQQ) {
		t.Errorf("sender = %v", sender)
	}
	segs, _ := e["message"].([]any)
	if len(segs) != 2 || fmt.Sprint(segs[1]) != "map[data:map[id:14] type:face]" {
		t.Errorf("message = %v", e["message"])
	}
	mid, _ := e["message_id"].(float64)
	if mid <= 0 || mid > 0x7fffffff {
		t.Fatalf("message_id %v is not a positive int32", e["message_id"])
	}

	t.Run("send_group_msg with a repeated echo", func(t *testing.T) {
		params := map[string]any{"group_id": fmt.Sprint(devGroup), "message": []any{map[string]any{"type": "text", "data": map[string]any{"text": "pong "}}, map[string]any{"type": "face", "data": map[string]any{"id": "14"}}}}
		r := c.call("send_group_msg", params, "e-1")
		if r["status"] != "ok" || r["retcode"] != float64(0) || r["echo"] != "e-1" {
			t.Fatalf("answer %v", r)
		}
		first := r["data"].(map[string]any)["message_id"]
		o.sim.Control.WaitSent("group pong [face 14]", testenv.SentText("group", devGroup, "pong [face 14]"))
		// The bot reconnects and repeats the send with the same echo.
		c2 := dialWS(t, wsURL, bearer())
		r = c2.call("send_group_msg", params, "e-1")
		if r["status"] != "ok" || r["data"].(map[string]any)["message_id"] != first {
			t.Fatalf("repeat answered %v, first message_id %v", r, first)
		}
		if n := countSent(o.sim, "group", devGroup, "pong [face 14]"); n != 1 {
			t.Errorf("the simulator got the message %d times, want once", n)
		}
		got := c.call("get_msg", map[string]any{"message_id": first}, "m-1")
		if d, _ := got["data"].(map[string]any); got["status"] != "ok" || d["message_type"] != "group" || d["group_id"] != float64(devGroup) {
			t.Errorf("get_msg of the sent message = %v", got)
		}
	})

	t.Run("get_msg of the received message", func(t *testing.T) {
		r := c.call("get_msg", map[string]any{"message_id": mid}, 2)
		d, _ := r["data"].(map[string]any)
		if r["status"] != "ok" || d["message_id"] != mid || d["group_id"] != float64(devGroup) || r["echo"] != float64(2) {
			t.Errorf("get_msg = %v", r)
		}
		if s, _ := d["sender"].(map[string]any); s["user_id"] != float64(aliceQQ) {
			t.Errorf("get_msg sender = %v", d["sender"])
		}
		for _, k := range []string{"time", "message_type", "message_id", "real_id", "sender", "message"} {
			if _, ok := d[k]; !ok {
				t.Errorf("get_msg has no %q", k)
			}
		}
	})

	t.Run("CQ string with auto_escape", func(t *testing.T) {
		r := c.call("send_private_msg", map[string]any{"user_id": aliceQQ, "message": "[CQ:face,id=14] a&b", "auto_escape": true}, "p-1")
		if r["status"] != "ok" {
			t.Fatalf("answer %v", r)
		}
		o.sim.Control.WaitSent("friend [CQ:face,id=14] a&b", testenv.SentText("friend", aliceQQ, "[CQ:face,id=14] a&b"))
		r = c.call("send_msg", map[string]any{"message_type": "private", "user_id": aliceQQ, "message": "x[CQ:face,id=1]"}, "p-2")
		if r["status"] != "ok" {
			t.Fatalf("answer %v", r)
		}
		o.sim.Control.WaitSent("friend x[face 1]", testenv.SentText("friend", aliceQQ, "x[face 1]"))
	})

	t.Run("actions", func(t *testing.T) {
		checks := []struct {
			action string
			params map[string]any
			check  func(r map[string]any) bool
		}{
			{"get_login_info", nil, func(r map[string]any) bool { return r["data"].(map[string]any)["user_id"] == float64(931996776) }},
			{"get_status", nil, func(r map[string]any) bool {
				d := r["data"].(map[string]any)
				return d["online"] == true && d["good"] == true
			}},
			{"get_version_info", nil, func(r map[string]any) bool {
				d := r["data"].(map[string]any)
				return d["app_name"] == "qqbridge" && d["protocol_version"] == "v11" && d["app_version"] == "test"
			}},
			{"can_send_image", nil, func(r map[string]any) bool { return r["data"].(map[string]any)["yes"] == false }},
			{"can_send_record", nil, func(r map[string]any) bool { return r["data"].(map[string]any)["yes"] == false }},
			{"get_friend_list", nil, func(r map[string]any) bool {
				for _, f := range r["data"].([]any) {
					f := f.(map[string]any)
					if f["user_id"] == float64(aliceQQ) && f["nickname"] == "Alice" {
						_, hasRemark := f["remark"]
						return hasRemark
					}
				}
				return false
			}},
			{"get_group_list", nil, func(r map[string]any) bool {
				for _, g := range r["data"].([]any) {
					if g := g.(map[string]any); g["group_id"] == float64(devGroup) && g["group_name"] == "Dev chat" {
						return true
					}
				}
				return false
			}},
			{"get_group_info", map[string]any{"group_id": devGroup}, func(r map[string]any) bool {
				return r["data"].(map[string]any)["group_name"] == "Dev chat"
			}},
			{"get_group_member_info", map[string]any{"group_id": devGroup, "user_id": aliceQQ}, func(r map[string]any) bool {
				d := r["data"].(map[string]any)
				return d["card"] == "Alice@dev" && d["nickname"] == "Alice" && d["role"] == "member"
			}},
			{"get_group_member_info", map[string]any{"group_id": devGroup, "user_id": testenv.Bob}, func(r map[string]any) bool {
				d := r["data"].(map[string]any) // Bob never spoke: the bridge's list has him
				return d["nickname"] == "Bob" && d["card"] == "" && d["last_sent_time"] == float64(0)
			}},
			{"get_group_member_list", map[string]any{"group_id": devGroup}, func(r map[string]any) bool {
				// Every member, in QQ's order — the account too — not only Alice who spoke.
				var ids []any
				var alice map[string]any
				for _, m := range r["data"].([]any) {
					m := m.(map[string]any)
					ids = append(ids, m["user_id"])
					if m["user_id"] == float64(aliceQQ) {
						alice = m
					}
				}
				return fmt.Sprint(ids) == fmt.Sprint([]any{float64(931996776), float64(aliceQQ), float64(testenv.Bob), float64(testenv.Carol)}) &&
					alice["card"] == "Alice@dev" && alice["last_sent_time"].(float64) > 0
			}},
		}
		// The keys of each answer, as the spec's tables list them (v11 api/public.md).
		keys := map[string][]string{
			"get_login_info":        {"user_id", "nickname"},
			"get_status":            {"online", "good"},
			"get_version_info":      {"app_name", "app_version", "protocol_version"},
			"can_send_image":        {"yes"},
			"can_send_record":       {"yes"},
			"get_friend_list":       {"user_id", "nickname", "remark"},
			"get_group_list":        {"group_id", "group_name", "member_count", "max_member_count"},
			"get_group_info":        {"group_id", "group_name", "member_count", "max_member_count"},
			"get_group_member_info": {"group_id", "user_id", "nickname", "card", "sex", "age", "area", "join_time", "last_sent_time", "level", "role", "unfriendly", "title", "title_expire_time", "card_changeable"},
			"get_group_member_list": {"group_id", "user_id", "nickname", "card", "sex", "age", "area", "join_time", "last_sent_time", "level", "role", "unfriendly", "title", "title_expire_time", "card_changeable"},
		}
		hasKeys := func(action string, data any) {
			t.Helper()
			obj, _ := data.(map[string]any)
			if l, isList := data.([]any); isList && len(l) > 0 {
				obj, _ = l[0].(map[string]any)
			}
			for _, k := range keys[action] {
				if _, ok := obj[k]; !ok {
					t.Errorf("%s: answer %v has no %q", action, data, k)
				}
			}
		}
		for i, ck := range checks {
			r := c.call(ck.action, ck.params, i+100)
			hasKeys(ck.action, r["data"])
			if r["status"] != "ok" || r["retcode"] != float64(0) || !ck.check(r) {
				t.Errorf("%s = %v", ck.action, r)
			}
		}
		for _, bad := range []struct {
			action  string
			params  map[string]any
			retcode float64
		}{
			{"delete_msg", map[string]any{"message_id": 1}, 1404},
			{"set_group_kick", map[string]any{"group_id": devGroup, "user_id": aliceQQ}, 1404},
			{"no_such_action", nil, 1404},
			{"send_group_msg", map[string]any{"message": "x"}, 1400},
			{"send_group_msg", map[string]any{"group_id": devGroup, "message": []any{map[string]any{"type": "image", "data": map[string]any{"file": "a.png"}}}}, 1400},
			{"send_group_msg", map[string]any{"group_id": 1, "message": "nobody"}, 100},
			{"get_group_member_info", map[string]any{"group_id": devGroup, "user_id": 999}, 100},
			{"get_group_member_list", map[string]any{"group_id": 11111}, 100},
		} {
			r := c.call(bad.action, bad.params, "bad-"+bad.action)
			if r["status"] != "failed" || r["retcode"] != bad.retcode {
				t.Errorf("%s %v = %v, want failed %v", bad.action, bad.params, r, bad.retcode)
			}
		}
		r := c.call("send_group_msg_async", map[string]any{"group_id": devGroup, "message": "later"}, "a-1")
		if r["status"] != "async" || r["retcode"] != float64(1) {
			t.Errorf("async = %v", r)
		}
		o.sim.Control.WaitSent("group later", testenv.SentText("group", devGroup, "later"))
		r = c.call("send_group_msg_rate_limited", map[string]any{"group_id": devGroup, "message": "slowly"}, "rl-1")
		if r["status"] != "async" {
			t.Errorf("rate limited = %v", r)
		}
		o.sim.Control.WaitSent("group slowly", testenv.SentText("group", devGroup, "slowly"))
	})

	t.Run("discuss and sess", func(t *testing.T) {
		if _, err := o.sim.Say(qqsim.Say{Kind: "discuss", From: aliceQQ, DID: 1008611, Text: "lunch?"}); err != nil {
			t.Fatal(err)
		}
		e := c.event("the discussion message", func(e map[string]any) bool { return e["message_type"] == "discuss" && e["raw_message"] == "lunch?" })
		did := e["discuss_id"]
		if did == nil || e["user_id"] != float64(aliceQQ) {
			t.Fatalf("discuss event %v", e)
		}
		r := c.call("send_discuss_msg", map[string]any{"discuss_id": did, "message": "noodles"}, "d-1")
		if r["status"] != "ok" {
			t.Fatalf("send_discuss_msg = %v", r)
		}
		o.sim.Control.WaitSent("discuss noodles", testenv.SentText("discuss", 1008611, "noodles"))

		const carol = 2468024 // not a friend: a temporary chat through Dev chat
		if _, err := o.sim.Say(qqsim.Say{Kind: "sess", From: carol, Group: devGroup, Text: "psst"}); err != nil {
			t.Fatal(err)
		}
		e = c.event("the temporary chat", func(e map[string]any) bool { return e["message_type"] == "private" && e["raw_message"] == "psst" })
		if e["sub_type"] != "group" || e["user_id"] != float64(carol) || e["group_id"] != float64(devGroup) {
			t.Fatalf("sess event %v", e)
		}
		// A plain send_private_msg reaches her through the group she came through.
		r = c.call("send_private_msg", map[string]any{"user_id": carol, "message": "hello carol"}, "s-1")
		if r["status"] != "ok" {
			t.Fatalf("send_private_msg to a sess contact = %v", r)
		}
		o.sim.Control.WaitSent("sess hello carol", testenv.SentText("sess", carol, "hello carol"))
	})

	t.Run("access token", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
		defer cancel()
		for _, h := range []struct {
			h    http.Header
			want int
		}{{nil, 401}, {http.Header{"Authorization": {"Bearer wrong"}}, 403}} {
			_, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: h.h})
			if err == nil || resp == nil || resp.StatusCode != h.want {
				t.Errorf("dial with %v: %v %v, want HTTP %d", h.h, err, resp, h.want)
			}
		}
		_, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + obToken}, "Origin": {"http://evil.example"}}})
		if err == nil || resp == nil || resp.StatusCode != 403 {
			t.Errorf("dial from a page of another site: %v %v, want HTTP 403", err, resp)
		}
		c3 := dialWS(t, "ws://"+o.gw.Addr+"/api?access_token="+obToken, nil)
		if r := c3.call("get_status", nil, "q"); r["status"] != "ok" {
			t.Errorf("token in the query: %v", r)
		}
	})

	t.Run("event-only and api-only connections", func(t *testing.T) {
		ev := dialWS(t, "ws://"+o.gw.Addr+"/event", bearer())
		ev.event("lifecycle connect on /event", func(e map[string]any) bool { return e["meta_event_type"] == "lifecycle" })
		api := dialWS(t, "ws://"+o.gw.Addr+"/api", bearer())
		if _, err := o.sim.Say(qqsim.Say{Kind: "group", From: aliceQQ, Group: devGroup, Text: "to the event socket"}); err != nil {
			t.Fatal(err)
		}
		ev.event("the message on /event", isGroupText("to the event socket"))
		if r := api.call("get_login_info", nil, 1); r["status"] != "ok" {
			t.Errorf("get_login_info on /api = %v", r)
		}
		api.mu.Lock()
		n := len(api.evs)
		api.mu.Unlock()
		if n != 0 {
			t.Errorf("the /api connection got %d events", n)
		}
	})
}

// TestOnebotHTTP: the HTTP API by GET and POST (JSON and form), its status
// codes, and the HTTP POST push with X-Signature and a quick reply.
func TestOnebotHTTP(t *testing.T) {
	const secret = "s3cret"
	var (
		mu     sync.Mutex
		posts  []map[string]any
		badSig int
	)
	bot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		mu.Lock()
		if r.Header.Get("X-Signature") != onebot.Sign(secret, body) || r.Header.Get("X-Self-ID") != "931996776" {
			badSig++
		}
		posts = append(posts, m)
		mu.Unlock()
		if m["post_type"] == "message" && m["raw_message"] == "ping" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"reply":"pong","at_sender":false}`))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(bot.Close)
	o := startOnebotSetup(t, func(oc *onebotConfig) {
		oc.Gateway.Secret = secret
		oc.Gateway.PostURLs = []string{bot.URL + "/onebot"}
	})

	do := func(method, path, ctype, body string, h http.Header) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, o.base+path, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		b, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, m
	}
	tok := http.Header{"Authorization": {"Token " + obToken}}
	if code, m := do("GET", "/get_status", "", "", tok); code != 200 || m["status"] != "ok" {
		t.Errorf("GET get_status = %d %v", code, m)
	}
	if code, _ := do("GET", "/get_status", "", "", nil); code != 401 {
		t.Errorf("no token: %d, want 401", code)
	}
	if code, _ := do("GET", "/get_status?access_token=nope", "", "", nil); code != 403 {
		t.Errorf("wrong token: %d, want 403", code)
	}
	if code, m := do("GET", "/get_group_info?group_id=987654&access_token="+obToken, "", "", nil); code != 200 || m["data"].(map[string]any)["group_name"] != "Dev chat" {
		t.Errorf("GET with query = %d %v", code, m)
	}
	if code, m := do("POST", "/send_private_msg", "application/x-www-form-urlencoded", "user_id=123456&message=form+%5BCQ%3Aface%2Cid%3D14%5D", tok); code != 200 || m["status"] != "ok" {
		t.Errorf("POST form = %d %v", code, m)
	}
	o.sim.Control.WaitSent("friend form [face 14]", testenv.SentText("friend", aliceQQ, "form [face 14]"))
	if code, m := do("POST", "/send_group_msg", "application/json", `{"group_id":987654,"message":"json body"}`, tok); code != 200 || m["data"].(map[string]any)["message_id"] == nil {
		t.Errorf("POST JSON = %d %v", code, m)
	}
	o.sim.Control.WaitSent("group json body", testenv.SentText("group", devGroup, "json body"))
	if code, _ := do("POST", "/send_group_msg", "application/json", `{"group_id":`, tok); code != 400 {
		t.Errorf("bad JSON: %d, want 400", code)
	}
	if code, _ := do("POST", "/send_group_msg", "text/plain", `x`, tok); code != 406 {
		t.Errorf("text/plain: %d, want 406", code)
	}
	if code, _ := do("GET", "/send_private_msg?user_id=123456&message=csrf", "", "", http.Header{"Authorization": {"Token " + obToken}, "Sec-Fetch-Site": {"cross-site"}}); code != 403 {
		t.Errorf("a cross-site browser request: %d, want 403", code)
	}
	if code, _ := do("POST", "/send_private_msg", "application/x-www-form-urlencoded", "user_id=123456&message=csrf", http.Header{"Origin": {"http://evil.example"}}); code != 403 {
		t.Errorf("a request from another origin: %d, want 403", code)
	}
	if code, m := do("POST", "/no_such_action", "application/json", `{}`, tok); code != 404 || m["retcode"] != float64(1404) {
		t.Errorf("unknown action: %d %v, want 404 / 1404", code, m)
	}

	// Push: a friend says ping; the bot's reply body is a quick operation.
	if _, err := o.sim.Say(qqsim.Say{Kind: "friend", From: aliceQQ, Text: "ping"}); err != nil {
		t.Fatal(err)
	}
	o.sim.Control.WaitSent("friend pong", testenv.SentText("friend", aliceQQ, "pong"))
	if n := countSent(o.sim, "friend", aliceQQ, "csrf"); n != 0 {
		t.Errorf("a refused cross-site request sent %d messages", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if badSig != 0 {
		t.Errorf("%d pushes had a wrong X-Signature or X-Self-ID", badSig)
	}
	mu.Unlock()
	o.stop()
	mu.Lock()
	var sawEnable, sawPing, sawDisable bool
	for _, p := range posts {
		sawEnable = sawEnable || p["meta_event_type"] == "lifecycle" && p["sub_type"] == "enable"
		sawDisable = sawDisable || p["meta_event_type"] == "lifecycle" && p["sub_type"] == "disable"
		sawPing = sawPing || p["raw_message"] == "ping" && p["sub_type"] == "friend"
	}
	if !sawEnable || !sawPing || !sawDisable {
		t.Errorf("pushes %v: want lifecycle enable, the ping, and lifecycle disable at the stop", posts)
	}
}

// TestOnebotReverseWS: the gateway dials a bot's universal reverse
// WebSocket with X-Self-ID, X-Client-Role and the token, redials after the
// bot drops it, pushes events and takes actions on it.
func TestOnebotReverseWS(t *testing.T) {
	conns := make(chan *wsClient, 4)
	var hmu sync.Mutex
	var headers []http.Header
	bot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hmu.Lock()
		headers = append(headers, r.Header.Clone())
		hmu.Unlock()
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		c := newWSClient(t, ws)
		conns <- c
		<-r.Context().Done()
	}))
	t.Cleanup(bot.Close)
	u, _ := url.Parse(bot.URL)
	o := startOnebotSetup(t, func(oc *onebotConfig) {
		oc.Listen = ""
		oc.Gateway.Reverse = []onebot.Reverse{{URL: "ws://" + u.Host + "/onebot"}}
	})
	_ = o
	var c *wsClient
	select {
	case c = <-conns:
	case <-time.After(testenv.WaitTimeout):
		t.Fatal("the gateway never dialled the reverse WebSocket")
	}
	c.event("lifecycle connect", func(e map[string]any) bool { return e["sub_type"] == "connect" })
	hmu.Lock()
	h := headers[0]
	hmu.Unlock()
	if h.Get("X-Self-ID") != "931996776" || h.Get("X-Client-Role") != "Universal" || h.Get("Authorization") != "Bearer "+obToken {
		t.Errorf("reverse headers %v", h)
	}
	// The bot drops the connection; the gateway comes back.
	_ = c.ws.Close(websocket.StatusGoingAway, "bot restarts")
	select {
	case c = <-conns:
	case <-time.After(testenv.WaitTimeout):
		t.Fatal("the gateway did not reconnect")
	}
	if _, err := o.sim.Say(qqsim.Say{Kind: "group", From: aliceQQ, Group: devGroup, Text: "over reverse"}); err != nil {
		t.Fatal(err)
	}
	e := c.event("the group message", isGroupText("over reverse"))
	if r := c.call("send_group_msg", map[string]any{"group_id": e["group_id"], "message": "reverse reply"}, 9); r["status"] != "ok" {
		t.Fatalf("send over reverse = %v", r)
	}
	o.sim.Control.WaitSent("group reverse reply", testenv.SentText("group", devGroup, "reverse reply"))
}

// startDemoWithOnebot runs `bridge demo --onebot` until the test ends and
// returns its output, the gateway's host:port and the simulator's URL, once
// the bridge is online.
func startDemoWithOnebot(t *testing.T) (*testenv.LogBuffer, string, string) {
	t.Helper()
	obAddr := testenv.FreeAddr(t)
	simAddr := testenv.FreeAddr(t)
	out := &testenv.LogBuffer{}
	dc, err := (&cli{stderr: io.Discard, lookupEnv: func(string) (string, bool) { return "", false }}).parseDemoFlags(
		[]string{"--onebot", obAddr, "--sim-listen", simAddr, "--nats-listen", "127.0.0.1:0", "--scan-after", "10ms", "--every", "1h"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- demo(ctx, dc, out, zerolog.Nop()) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(testenv.WaitTimeout):
			t.Error("the demo did not stop")
		}
	})
	out.WaitFor(t, "OneBot v11 gateway at ws://"+obAddr+"/")
	out.WaitFor(t, "state online")
	return out, obAddr, "http://" + simAddr
}

// TestDemoOnebot: `bridge demo --onebot` starts the gateway too; a bot on
// its forward WebSocket sees the demo's traffic and can send.
func TestDemoOnebot(t *testing.T) {
	_, obAddr, simURL := startDemoWithOnebot(t)
	c := dialWS(t, "ws://"+obAddr+"/", nil)
	c.event("lifecycle connect", func(e map[string]any) bool { return e["sub_type"] == "connect" })
	resp, err := http.Post(simURL+"/_sim/messages", "application/json", strings.NewReader(`{"kind":"group","from":123456,"group":987654,"text":"hello gateway"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	e := c.event("the group message", isGroupText("hello gateway"))
	if r := c.call("send_group_msg", map[string]any{"group_id": e["group_id"], "message": "from the demo's gateway"}, 1); r["status"] != "ok" {
		t.Fatalf("send = %v", r)
	}
	testenv.NewSimControl(t, simURL).WaitSent("the send through the demo's gateway", testenv.SentText("group", devGroup, "from the demo's gateway"))
}

// TestOnebotNotices: heartbeats carry the session's status; a buddy's status
// change is a buddy_status notice, a kick a session_state notice, after which
// get_status says offline.
func TestOnebotNotices(t *testing.T) {
	o := startOnebotSetup(t, func(oc *onebotConfig) { oc.Gateway.Heartbeat = 150 * time.Millisecond })
	c := dialWS(t, "ws://"+o.gw.Addr+"/event", bearer())
	hb := c.event("a heartbeat", func(e map[string]any) bool { return e["meta_event_type"] == "heartbeat" })
	st, _ := hb["status"].(map[string]any)
	if hb["interval"] != float64(150) || st["online"] != true || st["good"] != true || hb["self_id"] != float64(931996776) {
		t.Errorf("heartbeat = %v", hb)
	}
	uin := o.sim.State().Friends[aliceQQ]
	item := fmt.Sprintf(`{"poll_type":"buddies_status_change","value":{"uin":%d,"status":"away","client_type":21}}`, uin)
	if err := o.sim.Inject([]json.RawMessage{json.RawMessage(item)}); err != nil {
		t.Fatal(err)
	}
	n := c.event("the buddy_status notice", func(e map[string]any) bool { return e["notice_type"] == "buddy_status" })
	if n["post_type"] != "notice" || n["status_word"] != "away" || n["client_type"] != float64(21) || (n["user_id"] != float64(aliceQQ) && n["user_id"] != float64(uin)) {
		t.Errorf("buddy_status = %v", n)
	}
	o.sim.Kick()
	c.event("the session_state notice", func(e map[string]any) bool { return e["notice_type"] == "session_state" && e["state"] == "kicked" })
	api := dialWS(t, "ws://"+o.gw.Addr+"/api", bearer())
	r := api.call("get_status", nil, 1)
	if d, _ := r["data"].(map[string]any); r["status"] != "ok" || d["online"] != false || d["good"] != false || d["qq_state"] != "kicked" {
		t.Errorf("get_status after a kick = %v", r)
	}
}

// TestOnebotReplicas: two gateways on one bridge. Both give the same
// message_id to the same message; a bot connected to both by reverse
// WebSocket (one durable consumer shared) gets each event once, and either
// replica takes actions.
func TestOnebotReplicas(t *testing.T) {
	sim := testenv.StartSim(t, testenv.SimConfig())
	cfg := testConfig(t, sim.URL)
	rb := wireBridge(t, cfg)
	nc := testenv.Connect(t, rb.b.NATSURL())
	rec := testenv.Record(t, nc, cfg.Subjects.Prefix()+".>")
	rb.start(t)
	loginByQR(t, sim, rec, cfg.Subjects)

	conns := make(chan *wsClient, 4)
	bot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		conns <- newWSClient(t, ws)
		<-r.Context().Done()
	}))
	t.Cleanup(bot.Close)
	var addrs []string
	for range 2 {
		oc := defaultOnebotConfig()
		oc.Listen = "127.0.0.1:0"
		oc.Gateway.Heartbeat = -1
		oc.Gateway.ReconnectInterval = 100 * time.Millisecond
		oc.Gateway.Reverse = []onebot.Reverse{{URL: strings.Replace(bot.URL, "http://", "ws://", 1) + "/onebot"}}
		ctx, cancel := context.WithCancel(context.Background())
		gw, err := startOnebot(ctx, testenv.Connect(t, rb.b.NATSURL()), oc, zerolog.Nop())
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		t.Cleanup(func() { cancel(); gw.Wait() })
		addrs = append(addrs, gw.Addr)
	}
	var rev []*wsClient
	for range 2 {
		select {
		case c := <-conns:
			rev = append(rev, c)
		case <-time.After(testenv.WaitTimeout):
			t.Fatal("both replicas did not dial the bot")
		}
	}
	for _, c := range rev {
		c.event("lifecycle connect", func(e map[string]any) bool { return e["sub_type"] == "connect" })
	}
	fwd := []*wsClient{dialWS(t, "ws://"+addrs[0]+"/", nil), dialWS(t, "ws://"+addrs[1]+"/", nil)}
	for _, c := range fwd {
		c.event("lifecycle connect", func(e map[string]any) bool { return e["sub_type"] == "connect" })
	}
	const n = 5
	for i := range n {
		if _, err := sim.Say(qqsim.Say{Kind: "group", From: aliceQQ, Group: devGroup, Text: fmt.Sprintf("replica test %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	isTest := func(e map[string]any) bool {
		return e["post_type"] == "message" && strings.HasPrefix(fmt.Sprint(e["raw_message"]), "replica test")
	}
	for i := range n {
		text := fmt.Sprintf("replica test %d", i)
		a := fwd[0].event(text+" on replica 0", isGroupText(text))
		b := fwd[1].event(text+" on replica 1", isGroupText(text))
		if a["message_id"] != b["message_id"] {
			t.Errorf("%s: message_id %v on one replica, %v on the other", text, a["message_id"], b["message_id"])
		}
	}
	deadline := time.Now().Add(testenv.WaitTimeout)
	for {
		got := 0
		for _, c := range rev {
			c.mu.Lock()
			for _, e := range c.evs {
				if isTest(e) {
					got++
				}
			}
			c.mu.Unlock()
		}
		if got == n {
			break
		}
		if got > n {
			t.Fatalf("the bot got %d pushed events for %d messages", got, n)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the bot got %d of %d pushed events", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i, c := range rev {
		if r := c.call("send_group_msg", map[string]any{"group_id": devGroup, "message": fmt.Sprintf("from replica conn %d", i)}, i); r["status"] != "ok" {
			t.Errorf("send on reverse connection %d = %v", i, r)
		}
		sim.Control.WaitSent(fmt.Sprintf("from replica conn %d", i), testenv.SentText("group", devGroup, fmt.Sprintf("from replica conn %d", i)))
	}
}

func TestParseOnebotFlags(t *testing.T) {
	c, _, _ := testCLI(map[string]string{"QQBRIDGE_ACCESS_TOKEN": "from-env", "QQBRIDGE_DURABLE": "bots-a"})
	cf, oc, _, err := c.parseOnebotFlags([]string{"--reverse-url", "ws://a/1, ws://b/2", "--post-url", "http://p/", "--message-format", "string", "--heartbeat", "0", "--prefix", "acct1"})
	if err != nil {
		t.Fatal(err)
	}
	g := oc.Gateway
	if g.AccessToken != "from-env" || oc.Durable != "bots-a" || len(g.Reverse) != 2 || g.Reverse[1].URL != "ws://b/2" || len(g.PostURLs) != 1 ||
		g.MessageFormat != onebot.FormatString || g.Heartbeat >= 0 || oc.Listen != "127.0.0.1:6700" || cf.subjects.Prefix() != "acct1" || onebotBucket(oc.Subjects) != "acct1_onebot" {
		t.Errorf("parsed %+v", oc)
	}
	for _, bad := range [][]string{
		{"--message-format", "xml"},
		{"--listen", "nope"},
		{"--reverse-api-url", "ws://a/"},
		{"--durable", "a.b"},
		{"--listen", ""},
		{"--echo-window", "0s"},
		{"extra"},
	} {
		c, _, _ := testCLI(nil)
		if _, _, _, err := c.parseOnebotFlags(bad); err == nil {
			t.Errorf("%q accepted", bad)
		} else if _, ok := err.(*usageError); !ok {
			t.Errorf("%q: %v is not a usage error", bad, err)
		}
	}
}

// TestOnebotReverseSplit: reverse API and Event clients, two connections
// with X-Client-Role API and Event: events only on the event one, actions
// on the API one.
func TestOnebotReverseSplit(t *testing.T) {
	type accepted struct {
		role string
		c    *wsClient
	}
	conns := make(chan accepted, 4)
	bot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		conns <- accepted{r.Header.Get("X-Client-Role") + " " + r.URL.Path, newWSClient(t, ws)}
		<-r.Context().Done()
	}))
	t.Cleanup(bot.Close)
	base := strings.Replace(bot.URL, "http://", "ws://", 1)
	o := startOnebotSetup(t, func(oc *onebotConfig) {
		oc.Listen = ""
		oc.Gateway.Reverse = []onebot.Reverse{{APIURL: base + "/api", EventURL: base + "/event"}}
	})
	got := map[string]*wsClient{}
	for range 2 {
		select {
		case a := <-conns:
			got[a.role] = a.c
		case <-time.After(testenv.WaitTimeout):
			t.Fatalf("the gateway dialled only %v", got)
		}
	}
	api, ev := got["API /api"], got["Event /event"]
	if api == nil || ev == nil {
		t.Fatalf("connections %v: want API /api and Event /event", got)
	}
	ev.event("lifecycle connect", func(e map[string]any) bool { return e["sub_type"] == "connect" })
	if _, err := o.sim.Say(qqsim.Say{Kind: "group", From: aliceQQ, Group: devGroup, Text: "split"}); err != nil {
		t.Fatal(err)
	}
	ev.event("the message on the event connection", isGroupText("split"))
	if r := api.call("send_group_msg", map[string]any{"group_id": devGroup, "message": "split reply"}, "x"); r["status"] != "ok" {
		t.Fatalf("send on the API connection = %v", r)
	}
	o.sim.Control.WaitSent("group split reply", testenv.SentText("group", devGroup, "split reply"))
	api.mu.Lock()
	n := len(api.evs)
	api.mu.Unlock()
	if n != 0 {
		t.Errorf("the API connection got %d events", n)
	}
}

// TestKVStore: the gateway's Store on a real JetStream KV bucket keeps the
// contract of onebot.Store (the errors the message ids and echo records
// rely on).
func TestKVStore(t *testing.T) {
	_, js := testenv.StartNATS(t).Connect()
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "qq_onebot", History: 1})
	if err != nil {
		t.Fatal(err)
	}
	st := kvStore{kv}
	if _, _, err := st.Get(ctx, "msg.1"); !errors.Is(err, onebot.ErrNotFound) {
		t.Errorf("Get of a missing key: %v", err)
	}
	rev, err := st.Create(ctx, "msg.1", []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(ctx, "msg.1", []byte("b")); !errors.Is(err, onebot.ErrExists) {
		t.Errorf("second Create: %v", err)
	}
	if _, err := st.Update(ctx, "msg.1", []byte("c"), rev+100); !errors.Is(err, onebot.ErrExists) {
		t.Errorf("Update at a wrong revision: %v", err)
	}
	if _, err := st.Update(ctx, "msg.1", []byte("d"), rev); err != nil {
		t.Errorf("Update at the revision: %v", err)
	}
	if v, _, _ := st.Get(ctx, "msg.1"); string(v) != "d" {
		t.Errorf("value %q", v)
	}
	if keys, err := st.Keys(ctx, "member.5.*"); err != nil || len(keys) != 0 {
		t.Errorf("Keys of none: %v %v", keys, err)
	}
	_ = st.Put(ctx, "member.5.1", []byte("{}"))
	_ = st.Put(ctx, "member.5.2", []byte("{}"))
	_ = st.Put(ctx, "member.6.1", []byte("{}"))
	if keys, err := st.Keys(ctx, "member.5.*"); err != nil || len(keys) != 2 {
		t.Errorf("Keys = %v %v, want the two of group 5", keys, err)
	}
	id, err := onebot.MessageIDOf(ctx, st, onebot.MsgRef{Ref: "931996776:group:1"})
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := onebot.MessageIDOf(ctx, st, onebot.MsgRef{Ref: "931996776:group:1"}); again != id {
		t.Errorf("message_id %d then %d", id, again)
	}
	a, _ := onebot.RequestID(ctx, st, []byte(`1`), "send_msg", []byte(`{}`), time.Minute, time.Now())
	b, _ := onebot.RequestID(ctx, st, []byte(`1`), "send_msg", []byte(`{}`), time.Minute, time.Now())
	if a != b {
		t.Errorf("request ids %q then %q for a repeated echo", a, b)
	}
}

// simSent reports whether qqsim's GET /_sim/sent has text for kind and stable.
func simSent(t *testing.T, simURL, kind string, stable int64, text string) bool {
	t.Helper()
	return len(testenv.NewSimControl(t, simURL).SentMatching(testenv.SentText(kind, stable, text))) > 0
}

// TestOnebotMembersWithoutBridge: with no bridge answering
// qq.api.contacts.members (none running, or one older than the endpoint),
// the member actions answer from the members seen speaking, and the
// backend's error is not taken for an unknown group. When something
// subscribes to the subject without answering, the gateway gives the
// bridge half of the action's time and still answers.
func TestOnebotMembersWithoutBridge(t *testing.T) {
	nc, js := testenv.StartNATS(t).Connect()
	ctx := testenv.Context(t)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "qq_onebot", History: 1})
	if err != nil {
		t.Fatal(err)
	}
	be := &natsBackend{nc: nc, timeout: 30 * time.Second}
	if _, err := be.Members(ctx, schema.Target{Group: devGroup}); err == nil || errors.Is(err, onebot.ErrUnknownGroup) {
		t.Fatalf("Members with no bridge = %v, want a transport error that is not ErrUnknownGroup", err)
	}
	gw, err := onebot.New(onebot.Config{ActionTimeout: time.Second}, be, kvStore{kv})
	if err != nil {
		t.Fatal(err)
	}
	ev := &schema.Event{ID: "931996776:group:1", Type: schema.TypeMessageGroup, Time: time.Unix(1700000000, 0), Account: 931996776, MsgID: 1,
		From: &schema.Contact{UIN: 1, QQ: aliceQQ, Nick: "Alice", Card: "Alice@dev"}, Group: &schema.GroupRef{GID: 2, Number: devGroup},
		Segments: []schema.Segment{schema.TextSegment("hi")}}
	if _, err := gw.Convert(ctx, ev); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		group := onebot.Params{"group_id": json.RawMessage(fmt.Sprint(devGroup))}
		r := gw.Call(ctx, "get_group_member_list", group, nil)
		b, _ := json.Marshal(r.Data)
		var ms []map[string]any
		if err := json.Unmarshal(b, &ms); err != nil || r.Status != "ok" || len(ms) != 1 ||
			ms[0]["user_id"] != float64(aliceQQ) || ms[0]["card"] != "Alice@dev" || ms[0]["last_sent_time"] != float64(1700000000) {
			t.Errorf("get_group_member_list %s = %+v, want Alice as seen speaking", when, r)
		}
		group["user_id"] = json.RawMessage(fmt.Sprint(aliceQQ))
		if r := gw.Call(ctx, "get_group_member_info", group, nil); r.Status != "ok" {
			t.Errorf("get_group_member_info of Alice %s = %+v, want her as seen speaking", when, r)
		}
		group["user_id"] = json.RawMessage(fmt.Sprint(testenv.Bob))
		if r := gw.Call(ctx, "get_group_member_info", group, nil); r.Retcode != onebot.RetUnknownTarget {
			t.Errorf("get_group_member_info of one never seen %s = %+v, want retcode 100", when, r)
		}
	}
	check("without a bridge")

	sub, err := nc.Subscribe("qq.api.>", func(*nats.Msg) {}) // hears requests, answers none
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	check("with a silent subscriber")
}
