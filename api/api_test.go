package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
)

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readTestdata returns a file of egress's testdata (the same requests).
func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "egress", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeResult decodes a send's reply (a Result, JSON in error replies).
func decodeResult(t *testing.T, m *nats.Msg) schema.Result {
	t.Helper()
	var r schema.Result
	if err := schema.Decode(m.Header.Get(schema.HeaderContentType), m.Data, &r); err != nil {
		t.Fatalf("reply %q: %v", m.Data, err)
	}
	return r
}

// TestSend sends to each kind of target through qq.api.send.* and checks the
// reply and what reached the simulator.
func TestSend(t *testing.T) {
	e := newEnv(t, true, nil)
	st := e.sim.State()
	for i, c := range []struct {
		kind   schema.Kind
		req    schema.Request
		target int64
	}{
		{schema.KindFriend, schema.Request{ID: "f-qq", To: schema.Target{QQ: alice}, Text: "hello"}, st.Friends[alice]},
		{schema.KindGroup, schema.Request{To: schema.Target{Group: devChat}, Text: "hello"}, st.Groups[devChat]},
		{schema.KindDiscuss, schema.Request{ID: "d", To: schema.Target{DID: st.Discussions[1008611]}, Text: "hello"}, st.Discussions[1008611]},
		{schema.KindSess, schema.Request{ID: "s", To: schema.Target{QQ: carol, Group: devChat}, Text: "hello"}, st.Friends[carol]},
	} {
		reply := e.request(e.subj.API("send", string(c.kind)), mustJSON(t, c.req), nil)
		if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
			t.Fatalf("%s: error reply %s: %s", c.kind, code, reply.Data)
		}
		if ct := reply.Header.Get(schema.HeaderContentType); ct != schema.ContentTypeJSON {
			t.Errorf("%s: reply Content-Type %q", c.kind, ct)
		}
		res := decodeResult(t, reply)
		if !res.OK || res.Parts != 1 || res.ID != c.req.ID || res.Kind != c.kind {
			t.Errorf("%s: reply %+v, want ok, 1 part, id %q", c.kind, res, c.req.ID)
		}
		sent := e.sim.Sent()
		if len(sent) != i+1 || sent[i].Kind != string(c.kind) || sent[i].Target != c.target || sent[i].Text != "hello" {
			t.Fatalf("%s: simulator received %+v, want hello to %d", c.kind, sent, c.target)
		}
	}
}

// TestAPI covers the service's other endpoints, its errors and its codecs.
func TestAPI(t *testing.T) {
	e := newEnv(t, true, nil)
	t.Run("invalid request", func(t *testing.T) {
		reply := e.request(e.subj.API("send", "friend"), readTestdata(t, "invalid/text_and_segments.json"), nil)
		if code := reply.Header.Get(micro.ErrorCodeHeader); code != CodeInvalid {
			t.Errorf("error code %q, want 400", code)
		}
		if desc := reply.Header.Get(micro.ErrorHeader); !strings.Contains(desc, "exclusive") {
			t.Errorf("error header %q", desc)
		}
		if res := decodeResult(t, reply); res.Error == nil || res.Error.Code != schema.CodeInvalidRequest {
			t.Errorf("body %s, want an invalid_request result", reply.Data)
		}
	})
	t.Run("unknown target", func(t *testing.T) {
		reply := e.request(e.subj.API("send", "friend"), mustJSON(t, schema.Request{ID: "x", To: schema.Target{QQ: nobody}, Text: "hi"}), nil)
		if res := decodeResult(t, reply); res.Error == nil || res.Error.Code != schema.CodeUnknownTarget || res.ID != "x" {
			t.Errorf("body %s, want an unknown_target result", reply.Data)
		}
		if code := reply.Header.Get(micro.ErrorCodeHeader); code != CodeUnknown {
			t.Errorf("error code %q, want 404", code)
		}
	})
	t.Run("msgpack", func(t *testing.T) {
		reply := e.request(e.subj.API("send", "friend"), readTestdata(t, "valid/friend.msgpack"),
			nats.Header{schema.HeaderContentType: {schema.ContentTypeMsgpack}})
		if ct := reply.Header.Get(schema.HeaderContentType); ct != schema.ContentTypeMsgpack {
			t.Fatalf("reply Content-Type %q: %s", ct, reply.Header.Get(micro.ErrorHeader))
		}
		var res schema.Result
		if err := schema.Msgpack().Unmarshal(reply.Data, &res); err != nil || !res.OK || res.Kind != schema.KindFriend {
			t.Fatalf("reply %x (%v), want ok", reply.Data, err)
		}
	})
	t.Run("contacts", func(t *testing.T) {
		for _, c := range []struct {
			endpoint string
			want     func() any
			got      any
		}{
			{"friends", func() any { return e.dir.Friends() }, &[]schema.Contact{}},
			{"groups", func() any { return e.dir.Groups() }, &[]schema.GroupRef{}},
			{"discussions", func() any { return e.dir.Discussions() }, &[]schema.DiscussRef{}},
		} {
			reply := e.request(e.subj.API("contacts", c.endpoint), nil, nil)
			if err := json.Unmarshal(reply.Data, c.got); err != nil {
				t.Fatalf("%s: %v: %s", c.endpoint, err, reply.Data)
			}
			if got := strings.TrimPrefix(fmt.Sprint(c.got), "&"); fmt.Sprint(c.want()) != got || got == "[]" {
				t.Errorf("%s: %v, want %v", c.endpoint, got, c.want())
			}
		}
		// The friend list carries every friend's QQ number.
		var friends []schema.Contact
		_ = json.Unmarshal(e.request(e.subj.API("contacts", "friends"), nil, nil).Data, &friends)
		for _, f := range friends {
			if f.QQ == 0 {
				t.Errorf("friend %+v without a QQ number", f)
			}
		}
	})
	t.Run("session", func(t *testing.T) {
		var st schema.SessionState
		reply := e.request(e.subj.API("session", "state"), nil, nil)
		if err := json.Unmarshal(reply.Data, &st); err != nil || st.State != schema.StateOnline || st.Account != 931996776 {
			t.Errorf("state %s (%v)", reply.Data, err)
		}
	})
}

// TestLoginForce: a login request while a session is online is refused
// (409, session_online) unless it says force; without a session it starts
// one either way.
func TestLoginForce(t *testing.T) {
	e := newEnv(t, false, nil)
	login := e.subj.API("session", "login")
	if reply := e.request(login, nil, nil); reply.Header.Get(micro.ErrorCodeHeader) != "" {
		t.Fatalf("login while offline: error %s: %s", reply.Header.Get(micro.ErrorCodeHeader), reply.Data)
	}
	e.login()
	reply := e.request(login, nil, nil)
	var f failure
	if err := json.Unmarshal(reply.Data, &f); err != nil || reply.Header.Get(micro.ErrorCodeHeader) != CodeOnline ||
		f.Error.Code != ErrorSessionOnline || !strings.Contains(f.Error.Message, "a session is online") {
		t.Fatalf("login while online without force: %s %s (%v), want 409 session_online", reply.Header.Get(micro.ErrorCodeHeader), reply.Data, err)
	}
	reply = e.request(login, []byte(`{"force":true}`), nil)
	var st schema.SessionState
	if err := json.Unmarshal(reply.Data, &st); err != nil || reply.Header.Get(micro.ErrorCodeHeader) != "" || st.State == "" {
		t.Fatalf("forced login: %s (%v)", reply.Data, err)
	}
	if reply := e.request(login, []byte(`{"forse":true}`), nil); reply.Header.Get(micro.ErrorCodeHeader) != CodeInvalid {
		t.Errorf("login with a misspelt field: %s %s", reply.Header.Get(micro.ErrorCodeHeader), reply.Data)
	}
	if got := e.sess.loginRequests(); fmt.Sprint(got) != "[false true]" {
		t.Errorf("login requests that reached the session manager (force of each): %v, want [false true]", got)
	}
}

// TestTimeoutWithoutSession: a send that cannot start within the API's time
// limit (no session) is answered session_unavailable (503); nothing is sent.
func TestTimeoutWithoutSession(t *testing.T) {
	e := newEnv(t, false, func(c *Config) { c.Timeout = 200 * time.Millisecond })
	reply := e.request(e.subj.API("send", "group"), mustJSON(t, schema.Request{To: schema.Target{Group: devChat}, Text: "anyone?"}), nil)
	if res := decodeResult(t, reply); res.Error == nil || res.Error.Code != schema.CodeSessionUnavailable {
		t.Fatalf("API reply %s, want session_unavailable", reply.Data)
	}
	if code := reply.Header.Get(micro.ErrorCodeHeader); code != CodeUnavailable {
		t.Errorf("API error code %q, want 503", code)
	}
	if n := len(e.sim.Sent()); n != 0 {
		t.Fatalf("simulator received %d messages while offline", n)
	}
}

// TestDeadline: a send carries the caller's deadline (Qq-Deadline). Past it,
// the bridge starts nothing and says so at once (408), even when the session
// comes back later — a retry by the caller cannot send the message twice.
// (Sends used to go on for the API's whole time limit and be delivered after
// the caller had given up.)
func TestDeadline(t *testing.T) {
	e := newEnv(t, false, nil)
	subject := e.subj.API("send", "friend")
	deadline := time.Now().Add(300 * time.Millisecond)
	done := make(chan *nats.Msg, 1)
	go func() {
		done <- e.request(subject, mustJSON(t, schema.Request{ID: "late", To: schema.Target{QQ: alice}, Text: "too late"}),
			nats.Header{HeaderDeadline: {deadline.UTC().Format(time.RFC3339Nano)}})
	}()
	time.Sleep(time.Until(deadline) + 300*time.Millisecond) // past the deadline, still offline
	e.login()
	reply := <-done
	res := decodeResult(t, reply)
	if code := reply.Header.Get(micro.ErrorCodeHeader); code != CodeLate {
		t.Errorf("error code %q (%s), want 408", code, reply.Data)
	}
	if res.OK || res.Error == nil || !res.Error.Code.Retryable() || res.Parts != 0 ||
		!strings.Contains(res.Error.Message, "not sent") || !strings.Contains(res.Error.Message, HeaderDeadline) {
		t.Errorf("result %+v (error %+v), want not sent, saying the deadline passed", res, res.Error)
	}
	if sent := e.sim.Sent(); len(sent) != 0 {
		t.Fatalf("simulator received %+v after the deadline", sent)
	}

	t.Run("passed on arrival", func(t *testing.T) {
		reply := e.request(subject, mustJSON(t, schema.Request{To: schema.Target{QQ: alice}, Text: "old"}),
			nats.Header{HeaderDeadline: {time.Now().Add(-time.Second).UTC().Format(time.RFC3339)}})
		if code := reply.Header.Get(micro.ErrorCodeHeader); code != CodeLate || !strings.Contains(reply.Header.Get(micro.ErrorHeader), "had passed") {
			t.Errorf("error %q %q, want 408 saying the deadline had passed", code, reply.Header.Get(micro.ErrorHeader))
		}
	})
	t.Run("bad header", func(t *testing.T) {
		reply := e.request(subject, mustJSON(t, schema.Request{To: schema.Target{QQ: alice}, Text: "x"}),
			nats.Header{HeaderDeadline: {"in a minute"}})
		if code := reply.Header.Get(micro.ErrorCodeHeader); code != CodeInvalid || !strings.Contains(reply.Header.Get(micro.ErrorHeader), HeaderDeadline) {
			t.Errorf("error %q %q, want 400 naming the header", code, reply.Header.Get(micro.ErrorHeader))
		}
	})
	t.Run("in time", func(t *testing.T) {
		reply := e.request(subject, mustJSON(t, schema.Request{To: schema.Target{QQ: alice}, Text: "in time"}),
			nats.Header{HeaderDeadline: {time.Now().Add(testenv.WaitTimeout).UTC().Format(time.RFC3339Nano)}})
		if res := decodeResult(t, reply); !res.OK {
			t.Fatalf("result %+v (error %+v), want ok", res, res.Error)
		}
		if sent := e.sim.Sent(); len(sent) != 1 || sent[0].Text != "in time" {
			t.Fatalf("simulator received %+v, want only the message in time", sent)
		}
	})
}

// TestStats: micro's statistics count the error replies and measure the
// handling up to the answer (the simulator takes 50 ms per answer, so a send
// takes at least that). They used to show no errors and microseconds, the
// answer being made after the handler returned.
func TestStats(t *testing.T) {
	e := newEnv(t, true, nil)
	e.sim.SetChaos(qqsim.Chaos{LatencyMS: 50})
	subject := e.subj.API("send", "friend")
	e.request(subject, []byte(`{"to":{}}`), nil)                                                            // 400
	e.request(subject, mustJSON(t, schema.Request{To: schema.Target{QQ: nobody}, Text: "who?"}), nil)       // 404
	ok := e.request(subject, mustJSON(t, schema.Request{To: schema.Target{QQ: alice}, Text: "hello"}), nil) // sent
	if res := decodeResult(t, ok); !res.OK {
		t.Fatalf("send: %+v (error %+v)", res, res.Error)
	}
	ep := e.endpointStats(t, subject, 3)
	if ep.NumRequests != 3 || ep.NumErrors != 2 {
		t.Errorf("%d requests, %d errors; want 3 and 2", ep.NumRequests, ep.NumErrors)
	}
	if !strings.Contains(ep.LastError, CodeUnknown) {
		t.Errorf("last error %q, want the 404", ep.LastError)
	}
	if ep.ProcessingTime < 50*time.Millisecond {
		t.Errorf("processing time %v for a send the simulator answered after 50 ms", ep.ProcessingTime)
	}
}

// endpointStats returns the statistics of the endpoint on subject once they
// count requests requests: micro counts a request when its handler returns,
// which is after the answer was sent, so a caller can have the answer first.
func (e *env) endpointStats(t *testing.T, subject string, requests int) *micro.EndpointStats {
	t.Helper()
	var ep *micro.EndpointStats
	testenv.Eventually(t, fmt.Sprintf("%d requests counted on %s", requests, subject), func() bool {
		for _, s := range e.svc.Stats().Endpoints {
			if s.Subject == subject {
				ep = s
			}
		}
		return ep != nil && ep.NumRequests >= requests
	})
	return ep
}

// TestServiceInfo: the service is "qqbridge", its endpoints are on the
// documented subjects in the shared queue group.
func TestServiceInfo(t *testing.T) {
	e := newEnv(t, false, nil)
	info := e.svc.Info()
	if info.Name != schema.ServiceName || info.Version != ServiceVersion {
		t.Errorf("service %q %q", info.Name, info.Version)
	}
	want := map[string]bool{}
	for _, s := range []string{"send.friend", "send.group", "send.discuss", "send.sess", "contacts.friends",
		"contacts.groups", "contacts.discussions", "contacts.members", "session.state", "session.login"} {
		want["qq.api."+s] = true
	}
	for _, ep := range info.Endpoints {
		if !want[ep.Subject] {
			t.Errorf("unexpected endpoint %s on %s", ep.Name, ep.Subject)
		}
		delete(want, ep.Subject)
		if ep.QueueGroup != QueueGroup {
			t.Errorf("endpoint %s in queue group %q, want %q", ep.Subject, ep.QueueGroup, QueueGroup)
		}
	}
	for s := range want {
		t.Errorf("no endpoint on %s", s)
	}
}

// TestNewRejects checks New's validation.
func TestNewRejects(t *testing.T) {
	e := newEnv(t, false, nil)
	for name, mutate := range map[string]func(*Config){
		"no NATS":     func(c *Config) { c.NC = nil },
		"no sender":   func(c *Config) { c.Sender = nil },
		"no contacts": func(c *Config) { c.Contacts = nil },
		"no session":  func(c *Config) { c.Session = nil },
	} {
		cfg := e.api.cfg
		mutate(&cfg)
		if _, err := New(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: New returned %v, want ErrConfig", name, err)
		}
	}
}

// TestServiceVersionAndMetadata: a semantic Version (with or without v) is
// announced, anything else falls back to ServiceVersion; the metadata carries
// what the caller gave and the API contract version.
func TestServiceVersionAndMetadata(t *testing.T) {
	for _, tc := range []struct{ version, want string }{
		{"v1.4.2", "1.4.2"},
		{"0.0.0-20260101120000-abcdef123456", "0.0.0-20260101120000-abcdef123456"},
		{"(devel)", ServiceVersion},
		{"", ServiceVersion},
	} {
		e := newEnv(t, false, func(c *Config) {
			c.Version = tc.version
			c.Metadata = map[string]string{"prefix": "qq", "replica": "r1", "api": "overridden"}
		})
		info := e.svc.Info()
		if info.Version != tc.want {
			t.Errorf("Version %q announced %q, want %q", tc.version, info.Version, tc.want)
		}
		if info.Metadata["prefix"] != "qq" || info.Metadata["replica"] != "r1" || info.Metadata["api"] != ServiceVersion {
			t.Errorf("metadata %v", info.Metadata)
		}
	}
}
