package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/schema"
)

// decodeFailure decodes the {"ok":false,"error":…} body of an error reply.
func decodeFailure(t *testing.T, m *nats.Msg) failure {
	t.Helper()
	var f failure
	if err := json.Unmarshal(m.Data, &f); err != nil || f.OK {
		t.Fatalf("error body %q (%v), want {\"ok\":false,\"error\":…}", m.Data, err)
	}
	return f
}

// TestMembers: qq.api.contacts.members answers a group's members, by group
// number or gid, in QQ's order with cards and the QQ numbers known; JSON or
// msgpack by Content-Type.
func TestMembers(t *testing.T) {
	e := newEnv(t, true, nil)
	subject := e.subj.API("contacts", "members")
	st := e.sim.State()
	want := []schema.Contact{
		{UIN: 931996776, QQ: 931996776, Nick: "qqbridge"}, // the account is a member too
		{UIN: st.Friends[alice], QQ: alice, Nick: "Alice", Card: "Alice@dev"},
		{UIN: st.Friends[testenv.Bob], QQ: testenv.Bob, Nick: "Bob"},
		{UIN: st.Friends[carol], QQ: carol, Nick: "Carol", Card: "Carol (QA)"},
	}
	for _, body := range []string{
		fmt.Sprintf(`{"group":%d}`, devChat),
		fmt.Sprintf(` {"gid": %d} `, st.Groups[devChat]),
	} {
		reply := e.request(subject, []byte(body), nil)
		if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
			t.Fatalf("%s: error %s %s", body, code, reply.Data)
		}
		if ct := reply.Header.Get(schema.HeaderContentType); ct != schema.ContentTypeJSON {
			t.Errorf("%s: reply Content-Type %q", body, ct)
		}
		var got []schema.Contact
		if err := json.Unmarshal(reply.Data, &got); err != nil {
			t.Fatalf("%s: %v: %s", body, err, reply.Data)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %+v, want %+v", body, got, want)
		}
	}
	// The wire form: Contact's field names; no "qq" for a member whose QQ
	// number is not known (Dave in 周末爬山).
	reply := e.request(subject, []byte(fmt.Sprintf(`{"gid":%d}`, st.Groups[testenv.Hiking])), nil)
	if !strings.Contains(string(reply.Data), fmt.Sprintf(`{"uin":%d,"nick":"Dave"}`, st.Friends[testenv.Dave])) {
		t.Errorf("周末爬山: %s, want Dave without a qq", reply.Data)
	}

	t.Run("msgpack", func(t *testing.T) {
		body, err := schema.Msgpack().Marshal(map[string]int64{"group": devChat})
		if err != nil {
			t.Fatal(err)
		}
		reply := e.request(subject, body, nats.Header{schema.HeaderContentType: {schema.ContentTypeMsgpack}})
		var got []schema.Contact
		if ct := reply.Header.Get(schema.HeaderContentType); ct != schema.ContentTypeMsgpack {
			t.Fatalf("reply Content-Type %q: %s", ct, reply.Header.Get(micro.ErrorHeader))
		}
		if err := schema.Msgpack().Unmarshal(reply.Data, &got); err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("msgpack reply %+v (%v), want %+v", got, err, want)
		}
	})
}

// TestMembersErrors: a malformed request is 400 invalid_request saying what
// is wrong; a group the login does not have — an unknown number, the gid of
// an older login — is 404 unknown_target; without a session, 503
// session_unavailable.
func TestMembersErrors(t *testing.T) {
	e := newEnv(t, true, nil)
	subject := e.subj.API("contacts", "members")
	old := e.sim.State()
	for _, tc := range []struct {
		body, header string
		code         string
		ecode        schema.ErrorCode
		mention      string
	}{
		{"", "", CodeInvalid, schema.CodeInvalidRequest, "empty body"},
		{`{}`, "", CodeInvalid, schema.CodeInvalidRequest, "no group"},
		{`[987654]`, "", CodeInvalid, schema.CodeInvalidRequest, "not a JSON object"},
		{`{"group":987654,"gid":1}`, "", CodeInvalid, schema.CodeInvalidRequest, "not both"},
		{`{"group":"987654"}`, "", CodeInvalid, schema.CodeInvalidRequest, "group must be a whole number, got a JSON string"},
		{`{"group":1.5}`, "", CodeInvalid, schema.CodeInvalidRequest, "whole number"},
		{`{"group":0}`, "", CodeInvalid, schema.CodeInvalidRequest, "group must be positive"},
		{`{"gid":-4}`, "", CodeInvalid, schema.CodeInvalidRequest, "gid must be positive"},
		{`{"qq":123456}`, "", CodeInvalid, schema.CodeInvalidRequest, `unknown field "qq"`},
		{`{"group":987654} {}`, "", CodeInvalid, schema.CodeInvalidRequest, "data after"},
		{`{"group":987654`, "", CodeInvalid, schema.CodeInvalidRequest, "malformed JSON"},
		{`{"group":987654}`, "text/plain", CodeInvalid, schema.CodeInvalidRequest, "content-type"},
		{`{"group":11111}`, "", CodeUnknown, schema.CodeUnknownTarget, "no group with number 11111"},
	} {
		var h nats.Header
		if tc.header != "" {
			h = nats.Header{schema.HeaderContentType: {tc.header}}
		}
		reply := e.request(subject, []byte(tc.body), h)
		f := decodeFailure(t, reply)
		if code := reply.Header.Get(micro.ErrorCodeHeader); code != tc.code || f.Error.Code != tc.ecode ||
			!strings.Contains(f.Error.Message, tc.mention) || !strings.Contains(reply.Header.Get(micro.ErrorHeader), tc.mention) {
			t.Errorf("%q: %s %q %s, want %s %s mentioning %q", tc.body, code, reply.Header.Get(micro.ErrorHeader), reply.Data, tc.code, tc.ecode, tc.mention)
		}
		if tc.code == CodeInvalid && !strings.Contains(f.Error.Message, membersUsage) {
			t.Errorf("%q: %q does not say what a request must be", tc.body, f.Error.Message)
		}
	}

	// A re-login draws new session numbers: the old gid names no group.
	e.sim.ExpireSession()
	ctx := testenv.Context(t)
	if _, err := e.client.Relogin(ctx); err != nil {
		t.Fatal(err)
	}
	reply := e.request(subject, []byte(fmt.Sprintf(`{"gid":%d}`, old.Groups[devChat])), nil)
	if f := decodeFailure(t, reply); reply.Header.Get(micro.ErrorCodeHeader) != CodeUnknown || f.Error.Code != schema.CodeUnknownTarget {
		t.Errorf("the gid of an older login: %s %s, want 404 unknown_target", reply.Header.Get(micro.ErrorCodeHeader), reply.Data)
	}
	reply = e.request(subject, []byte(fmt.Sprintf(`{"gid":%d}`, e.sim.State().Groups[devChat])), nil)
	var got []schema.Contact
	if err := json.Unmarshal(reply.Data, &got); err != nil || len(got) != 4 {
		t.Errorf("the gid of the new login: %s (%v), want the 4 members", reply.Data, err)
	}

	t.Run("offline", func(t *testing.T) {
		e := newEnv(t, false, nil)
		reply := e.request(subject, []byte(fmt.Sprintf(`{"group":%d}`, devChat)), nil)
		if f := decodeFailure(t, reply); reply.Header.Get(micro.ErrorCodeHeader) != CodeUnavailable || f.Error.Code != schema.CodeSessionUnavailable {
			t.Errorf("offline: %s %s, want 503 session_unavailable", reply.Header.Get(micro.ErrorCodeHeader), reply.Data)
		}
	})
}

// TestMembersStats: micro's statistics of contacts.members count its error
// replies (400 and 404) as errors, the answered list not.
func TestMembersStats(t *testing.T) {
	e := newEnv(t, true, nil)
	subject := e.subj.API("contacts", "members")
	e.request(subject, []byte(`{"grp":987654}`), nil)  // 400
	e.request(subject, []byte(`{"group":11111}`), nil) // 404
	if reply := e.request(subject, []byte(fmt.Sprintf(`{"group":%d}`, devChat)), nil); reply.Header.Get(micro.ErrorCodeHeader) != "" {
		t.Fatalf("members: %s", reply.Data)
	}
	ep := e.endpointStats(t, subject, 3)
	if ep.NumRequests != 3 || ep.NumErrors != 2 {
		t.Errorf("%d requests, %d errors; want 3 and 2", ep.NumRequests, ep.NumErrors)
	}
	if !strings.Contains(ep.LastError, CodeUnknown) {
		t.Errorf("last error %q, want the 404", ep.LastError)
	}
}
