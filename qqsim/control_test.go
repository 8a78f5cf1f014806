package qqsim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// ctl calls the control API and decodes its JSON answer.
func ctl(t *testing.T, c *tclient, method, path, body string) (int, map[string]any, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	_ = dec.Decode(&m) // lists decode into nothing; callers read b
	return resp.StatusCode, m, b
}

// TestControlAPI drives a whole login and a conversation through /_sim/ over HTTP.
func TestControlAPI(t *testing.T) {
	_, c := newSim(t, testConfig())

	errRows := []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/_sim/qr/scan", "", http.StatusConflict},
		{"POST", "/_sim/qr/confirm", "", http.StatusConflict},
		{"GET", "/_sim/qr/scan", "", http.StatusMethodNotAllowed},
		{"GET", "/_sim/nothing", "", http.StatusNotFound},
		{"POST", "/_sim/messages", `{"kind":"friend","from":123456,"txt":"typo"}`, http.StatusBadRequest},
		{"POST", "/_sim/messages", `{"kind":"friend","from":42,"text":"stranger"}`, http.StatusBadRequest},
		{"POST", "/_sim/events", `{"not":"a list"}`, http.StatusBadRequest},
		{"POST", "/_sim/chaos", `{"http_502_rate":2}`, http.StatusBadRequest},
		{"POST", "/_sim/chaos", `{"send_latency_ms":-1}`, http.StatusBadRequest},
	}
	for _, row := range errRows {
		status, m, _ := ctl(t, c, row.method, row.path, row.body)
		if status != row.status || m["error"] == nil {
			t.Errorf("%s %s: HTTP %d %v, want %d with an error", row.method, row.path, status, m, row.status)
		}
	}

	// The phone's side over HTTP.
	c.qrShow()
	if status, _, b := ctl(t, c, "POST", "/_sim/qr/scan", ""); status != 200 {
		t.Fatalf("scan: %d %s", status, b)
	}
	if code, _ := c.qrLogin(); code != "67" {
		t.Fatalf("after scan: %s", code)
	}
	if status, _, _ := ctl(t, c, "POST", "/_sim/qr/confirm", ""); status != 200 {
		t.Fatal("confirm")
	}
	code, u := c.qrLogin()
	if code != "0" {
		t.Fatalf("after confirm: %s", code)
	}
	c.followCheckSig(u)
	c.cookieLogin()
	c.onlineBuddies()

	_, st, b := ctl(t, c, "GET", "/_sim/state", "")
	if st["login"] != "online" || num(t, st["uin"]) != 931996776 {
		t.Errorf("state %s", b)
	}
	for _, secretValue := range []string{c.ptwebqq, c.vfwebqq, c.psessionid, c.cookie("skey")} {
		if strings.Contains(string(b), secretValue) {
			t.Error("the state shows a secret")
		}
	}
	alice := num(t, obj(t, st["friends"])["123456"])

	_, m, _ := ctl(t, c, "POST", "/_sim/messages", `{"kind":"friend","from":123456,"text":"hi","faces":[1]}`)
	id := num(t, m["msg_id"])
	_, m, _ = ctl(t, c, "POST", "/_sim/events", `[{"poll_type":"input_notify","value":{"msg_id":1,"msg_id2":2,"msg_type":121,"from_uin":5,"to_uin":6,"reply_ip":7}}]`)
	if num(t, m["queued"]) != 1 {
		t.Errorf("events: %v", m)
	}
	items := c.pollItems()
	if len(items) != 2 || num(t, obj(t, items[0]["value"])["msg_id"]) != id || num(t, obj(t, items[0]["value"])["from_uin"]) != alice ||
		items[1]["poll_type"] != "input_notify" {
		t.Errorf("items %v", items)
	}

	c.send("send_buddy_msg2", "to", alice, content("back <at> you"), nil)
	_, _, b = ctl(t, c, "GET", "/_sim/sent", "")
	var sent []SentRecord
	if err := json.Unmarshal(b, &sent); err != nil || len(sent) != 1 || sent[0].Text != "back <at> you" || sent[0].Stable != 123456 {
		t.Errorf("sent %s (%v)", b, err)
	}
	if !strings.Contains(string(b), `"msg_id":65890001`) || !strings.Contains(string(b), `"stable":123456`) {
		t.Errorf("sent is not snake_case JSON: %s", b)
	}

	_, _, b = ctl(t, c, "GET", "/_sim/world", "")
	var w World
	if err := json.Unmarshal(b, &w); err != nil || w.Self.QQ != 931996776 || len(w.Groups) != 2 {
		t.Errorf("world %s", b)
	}

	_, m, _ = ctl(t, c, "POST", "/_sim/chaos", `{"latency_ms":1,"maybe_sent_rate":0.5}`)
	if num(t, m["latency_ms"]) != 1 {
		t.Errorf("chaos %v", m)
	}
	ctl(t, c, "POST", "/_sim/chaos", `{}`)

	c.pollItems() // the echo of the send
	if status, _, _ := ctl(t, c, "POST", "/_sim/session/expire", ""); status != 200 {
		t.Fatal("session/expire")
	}
	if rc := retcode(t, c.poll()); rc != 103 {
		t.Errorf("after /_sim/session/expire: %d", rc)
	}
	c.cookieLogin()
	c.onlineBuddies()
	if status, _, _ := ctl(t, c, "POST", "/_sim/kick", ""); status != 200 {
		t.Fatal("kick")
	}
	items = c.pollItems()
	if len(items) != 1 || items[0]["poll_type"] != "kick_message" {
		t.Errorf("after /_sim/kick: %v", items)
	}
	_, st, _ = ctl(t, c, "GET", "/_sim/state", "")
	if st["login"] != "kicked" {
		t.Errorf("state after kick: %v", st["login"])
	}
}
