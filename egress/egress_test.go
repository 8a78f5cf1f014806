package egress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
)

// wireContent is the content string the client sends for segs.
func wireContent(t *testing.T, segs ...qqclient.Segment) string {
	t.Helper()
	c, err := qqclient.EncodeContent(segs, qqclient.DefaultFont())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSendEachKind sends to every kind of target, by stable and by session
// number, through the stream (qq.out.*) and through Send (the API's path),
// and checks what reached the simulator and the result.
func TestSendEachKind(t *testing.T) {
	e := newEnv(t)
	e.run(e.eg)
	st := e.sim.State()

	hello := []qqclient.Segment{qqclient.TextSegment("hello <b> & 你好")}
	faces := []qqclient.Segment{qqclient.TextSegment("hi "), qqclient.FaceSegment(14), qqclient.FaceSegment(0)}
	cases := []struct {
		name       string
		kind       schema.Kind
		req        schema.Request
		wire       []qqclient.Segment
		wantTarget int64
		wantStable int64
		wantText   string
	}{
		{"friend by qq", schema.KindFriend,
			schema.Request{ID: "f-qq", To: schema.Target{QQ: testenv.Alice}, Text: "hello <b> & 你好"},
			hello, st.Friends[testenv.Alice], testenv.Alice, "hello <b> & 你好"},
		{"friend by uin", schema.KindFriend,
			schema.Request{To: schema.Target{UIN: st.Friends[testenv.Alice]}, Text: "hello <b> & 你好"},
			hello, st.Friends[testenv.Alice], testenv.Alice, "hello <b> & 你好"},
		{"group by number", schema.KindGroup,
			schema.Request{ID: "g-num", To: schema.Target{Group: testenv.DevChat}, Segments: []schema.Segment{
				schema.TextSegment("hi "), schema.FaceSegment(14), schema.FaceSegment(0)}},
			faces, st.Groups[testenv.DevChat], testenv.DevChat, "hi [face 14][face 0]"},
		{"group by gid", schema.KindGroup,
			schema.Request{To: schema.Target{GID: st.Groups[testenv.DevChat]}, Text: "hello <b> & 你好"},
			hello, st.Groups[testenv.DevChat], testenv.DevChat, "hello <b> & 你好"},
		{"discuss by did", schema.KindDiscuss,
			schema.Request{ID: "d-did", To: schema.Target{DID: st.Discussions[testenv.Lunch]}, Text: "hello <b> & 你好"},
			hello, st.Discussions[testenv.Lunch], testenv.Lunch, "hello <b> & 你好"},
		{"sess by qq and group", schema.KindSess,
			schema.Request{ID: "s-qq", To: schema.Target{QQ: testenv.Carol, Group: testenv.DevChat}, Text: "hello <b> & 你好"},
			hello, st.Friends[testenv.Carol], testenv.Carol, "hello <b> & 你好"},
		{"sess by uin and gid", schema.KindSess,
			schema.Request{To: schema.Target{UIN: st.Friends[testenv.Carol], GID: st.Groups[testenv.DevChat]}, Text: "hello <b> & 你好"},
			hello, st.Friends[testenv.Carol], testenv.Carol, "hello <b> & 你好"},
	}
	check := func(t *testing.T, n int, want string, wire []qqclient.Segment, kind schema.Kind, target, stable int64) {
		t.Helper()
		sent := e.sent()
		if len(sent) != n {
			t.Fatalf("simulator received %d messages, want %d", len(sent), n)
		}
		got := sent[n-1]
		if got.Kind != string(kind) || got.Target != target || got.Stable != stable {
			t.Errorf("sent to %s %d (stable %d), want %s %d (stable %d)", got.Kind, got.Target, got.Stable, kind, target, stable)
		}
		if got.Text != want {
			t.Errorf("text %q, want %q", got.Text, want)
		}
		if w := wireContent(t, wire...); got.Content != w {
			t.Errorf("wire content %s, want %s", got.Content, w)
		}
	}
	n := 0
	for _, c := range cases {
		t.Run("out/"+c.name, func(t *testing.T) {
			seq := e.publishJSON(c.kind, c.req)
			subject, res := e.result()
			n++
			if subject != e.subj.Result(c.kind) {
				t.Errorf("result on %s, want %s", subject, e.subj.Result(c.kind))
			}
			wantID := c.req.ID
			if wantID == "" {
				wantID = "seq:" + strconv.FormatUint(seq, 10)
			}
			if !res.OK || res.Parts != 1 || res.ID != wantID || res.Kind != c.kind || res.Error != nil {
				t.Errorf("result %+v (error %+v), want ok, 1 part, id %q", res, res.Error, wantID)
			}
			check(t, n, c.wantText, c.wire, c.kind, c.wantTarget, c.wantStable)
		})
		t.Run("send/"+c.name, func(t *testing.T) {
			req := c.req
			if req.ID != "" {
				req.ID += "-send"
			}
			ctx := testenv.Context(t)
			res := e.eg.Send(ctx, c.kind, &req)
			n++
			if !res.OK || res.Parts != 1 || res.ID != req.ID || res.Kind != c.kind {
				t.Errorf("result %+v (error %+v), want ok, 1 part, id %q", res, res.Error, req.ID)
			}
			check(t, n, c.wantText, c.wire, c.kind, c.wantTarget, c.wantStable)
		})
	}
	e.noMoreResults()
}

// TestInvalidRequests publishes requests that cannot be sent: each is
// answered invalid_request (or unknown_target) with a message that says what
// is wrong, is terminated, and the worker goes on to the next one.
func TestInvalidRequests(t *testing.T) {
	e := newEnv(t)
	e.run(e.eg)
	cases := []struct {
		file        string
		contentType string
		kind        string // subject tokens after out.
		code        schema.ErrorCode
		want        string // in the message
		result      string // the tokens after result. of the result subject; "" = kind
	}{
		{"invalid/truncated.json", "", "friend", schema.CodeInvalidRequest, "body: truncated JSON", ""},
		{"invalid/not_an_object.json", "", "friend", schema.CodeInvalidRequest, "body: not a JSON object", ""},
		{"invalid/missing_to.json", "", "friend", schema.CodeInvalidRequest, "to: missing", ""},
		{"invalid/text_and_segments.json", "", "friend", schema.CodeInvalidRequest, "text and segments are exclusive", ""},
		{"invalid/empty_message.json", "", "friend", schema.CodeInvalidRequest, "empty message", ""},
		{"invalid/unknown_field.json", "", "friend", schema.CodeInvalidRequest, `unknown field "txt"`, ""},
		{"invalid/wrong_target.json", "", "friend", schema.CodeInvalidRequest, "to.group: not used by friend", ""},
		{"invalid/two_targets.json", "", "friend", schema.CodeInvalidRequest, "friend takes qq or uin, not both", ""},
		{"invalid/face_out_of_range.json", "", "friend", schema.CodeInvalidRequest, "segments[0].face: 999 is out of range", ""},
		{"invalid/invalid_utf8.json", "", "friend", schema.CodeInvalidRequest, "body: not valid UTF-8", ""},
		{"invalid/garbage.msgpack", schema.ContentTypeMsgpack, "friend", schema.CodeInvalidRequest, "body: not a msgpack map", ""},
		{"invalid/truncated.msgpack", schema.ContentTypeMsgpack, "friend", schema.CodeInvalidRequest, "body: truncated msgpack", ""},
		{"valid/friend.json", "text/plain", "friend", schema.CodeInvalidRequest, "content-type", ""},
		{"valid/friend.json", "", "fax", schema.CodeInvalidRequest, `kind: subject "qq.out.fax"`, ""},
		{"valid/friend.json", "", "fax.1", schema.CodeInvalidRequest, "the kind must be friend, group, discuss or sess", ""},
		// Target subjects: the key must be the body's target, in its canonical form.
		{"valid/friend.json", "", "friend.extra", schema.CodeInvalidRequest, `subject: target key "extra" is not a friend target`, "friend"},
		{"valid/friend.json", "", "friend.1234", schema.CodeInvalidRequest, `target key "1234" does not match the body's target (key "123456")`, "friend"},
		{"valid/friend.json", "", "friend.uin123456", schema.CodeInvalidRequest, `does not match the body's target (key "123456")`, "friend"},
		{"valid/friend.json", "", "friend.0123456", schema.CodeInvalidRequest, `target key "0123456" is not a friend target`, "friend"},
		{"valid/friend.json", "", "group.123456", schema.CodeInvalidRequest, "to.qq: not used by group", "group"},
		{"valid/friend.json", "", "friend.123456.x", schema.CodeInvalidRequest, "nothing after", "friend"},
	}
	for _, c := range cases {
		t.Run(c.file+"@"+c.kind, func(t *testing.T) {
			seq := e.publish(e.subj.Prefix()+".out."+c.kind, readTestdata(t, c.file), c.contentType, "")
			subject, res := e.result()
			rt := c.result
			if rt == "" {
				rt = c.kind
			}
			if want := e.subj.Prefix() + ".result." + rt; subject != want {
				t.Errorf("result on %s, want %s", subject, want)
			}
			if res.OK || res.Error == nil || res.Error.Code != c.code {
				t.Fatalf("result %+v (error %+v), want %s", res, res.Error, c.code)
			}
			if !strings.Contains(res.Error.Message, c.want) {
				t.Errorf("message %q does not say %q", res.Error.Message, c.want)
			}
			if wantID := "seq:" + strconv.FormatUint(seq, 10); res.ID != wantID && res.ID != "v-1" {
				t.Errorf("result id %q, want %q (or the request's id)", res.ID, wantID)
			}
		})
	}
	t.Run("unknown target", func(t *testing.T) {
		for i, req := range []struct {
			kind schema.Kind
			to   schema.Target
			want string
		}{
			{schema.KindFriend, schema.Target{QQ: nobody}, "to.qq 99999999"},
			{schema.KindFriend, schema.Target{QQ: testenv.Carol}, "no friend with QQ number 2468024"},
			{schema.KindGroup, schema.Target{Group: nobody}, "to.group 99999999"},
			{schema.KindSess, schema.Target{QQ: nobody, Group: testenv.DevChat}, "to.qq 99999999"},
		} {
			id := fmt.Sprintf("who-%d", i)
			e.publishJSON(req.kind, schema.Request{ID: id, To: req.to, Text: "anyone there?"})
			_, res := e.result()
			if res.Error == nil || res.Error.Code != schema.CodeUnknownTarget || res.ID != id {
				t.Fatalf("result %+v (error %+v), want unknown_target", res, res.Error)
			}
			if !strings.Contains(res.Error.Message, req.want) {
				t.Errorf("message %q does not say %q", res.Error.Message, req.want)
			}
		}
	})
	if n := len(e.sent()); n != 0 {
		t.Fatalf("simulator received %d messages from invalid requests", n)
	}
	t.Run("worker goes on", func(t *testing.T) {
		e.publish(e.subj.Out(schema.KindFriend), readTestdata(t, "valid/friend.msgpack"), schema.ContentTypeMsgpack, "")
		if _, res := e.result(); !res.OK {
			t.Fatalf("result %+v (error %+v), want ok", res, res.Error)
		}
		if sent := e.sent(); len(sent) != 1 || sent[0].Text != "hello" || sent[0].Stable != testenv.Alice {
			t.Fatalf("sent %+v, want one hello to %d", sent, testenv.Alice)
		}
	})
	e.noMoreResults() // every request was terminated or acked: none is redelivered
}

// TestMaybeSent: QQ's 1202 is answered maybe_sent and the message is not
// resent — nor are the parts after it.
func TestMaybeSent(t *testing.T) {
	e := newEnv(t)
	e.run(e.eg)
	e.sim.SetChaos(qqsim.Chaos{MaybeSentRate: 1})
	e.publishJSON(schema.KindFriend, schema.Request{ID: "m-1", To: schema.Target{QQ: testenv.Alice}, Text: longText(2000)})
	_, res := e.result()
	if res.OK || res.Error == nil || res.Error.Code != schema.CodeMaybeSent || res.Error.Retcode != 1202 {
		t.Fatalf("result %+v (error %+v), want maybe_sent with retcode 1202", res, res.Error)
	}
	if res.Parts != 0 || !strings.Contains(res.Error.Message, "part 1 of ") {
		t.Errorf("result parts %d, message %q: want 0 parts confirmed, part 1 in doubt", res.Parts, res.Error.Message)
	}
	sent := e.sent()
	if len(sent) != 1 || !sent[0].MaybeSent {
		t.Fatalf("simulator received %d messages (%+v), want exactly the one answered 1202", len(sent), sent)
	}

	// The same request again is not sent again either.
	e.sim.SetChaos(qqsim.Chaos{})
	e.publish(e.subj.Out(schema.KindFriend), mustJSON(t, schema.Request{ID: "m-1", To: schema.Target{QQ: testenv.Alice}, Text: "again"}), "", "another-msg-id")
	if _, again := e.result(); again.Error == nil || again.Error.Code != schema.CodeMaybeSent {
		t.Fatalf("repeat answered %+v, want the recorded maybe_sent", again)
	}
	if n := len(e.sent()); n != 1 {
		t.Fatalf("simulator received %d messages after the repeat, want 1", n)
	}
	e.noMoreResults()
}

// TestSameIDTwice: two stream messages with one request id (different
// Nats-Msg-Id, so the stream keeps both) are sent once; the second is
// answered with the first's result, and so is Send (the API's path).
func TestSameIDTwice(t *testing.T) {
	e := newEnv(t)
	e.run(e.eg)
	body := mustJSON(t, schema.Request{ID: "order-42", To: schema.Target{Group: testenv.DevChat}, Text: "only once"})
	e.publish(e.subj.Out(schema.KindGroup), body, "", "msg-a")
	e.publish(e.subj.Out(schema.KindGroup), body, "", "msg-b")
	_, first := e.result()
	_, second := e.result()
	for _, r := range []schema.Result{first, second} {
		if !r.OK || r.ID != "order-42" || r.Parts != 1 || r.Kind != schema.KindGroup {
			t.Errorf("result %+v, want ok for order-42", r)
		}
	}
	ctx := testenv.Context(t)
	if res := e.eg.Send(ctx, schema.KindGroup, &schema.Request{ID: "order-42", To: schema.Target{Group: testenv.DevChat}, Text: "only once"}); !res.OK || res.ID != "order-42" {
		t.Errorf("Send answered %+v (error %+v), want the recorded ok", res, res.Error)
	}
	if sent := e.sent(); len(sent) != 1 || sent[0].Text != "only once" {
		t.Fatalf("simulator received %+v, want one message", sent)
	}
	e.noMoreResults()
}

// longText returns about n bytes of text made of numbered words, so that
// every part boundary is visible.
func longText(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "word%04d ", i)
	}
	return b.String()
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkParts checks that the simulator received text as parts, in order,
// each within QQ's limit.
func checkParts(t *testing.T, sent []qqsim.SentRecord, text string) {
	t.Helper()
	var b strings.Builder
	for i, s := range sent {
		if len(s.Text) > qqclient.MaxPartBytes {
			t.Errorf("part %d has %d bytes", i+1, len(s.Text))
		}
		b.WriteString(s.Text)
	}
	if b.String() != text {
		t.Fatalf("the parts joined differ from the text:\n got %q\nwant %q", b.String(), text)
	}
}

// TestLongTextInParts: a 2,000-character text arrives in parts, in order.
func TestLongTextInParts(t *testing.T) {
	e := newEnv(t)
	e.run(e.eg)
	text := longText(2000)
	e.publishJSON(schema.KindFriend, schema.Request{To: schema.Target{QQ: testenv.Alice}, Text: text})
	_, res := e.result()
	sent := e.sent()
	if !res.OK || res.Parts < 3 || res.Parts != len(sent) {
		t.Fatalf("result %+v, %d messages received: want ok with one part per message, at least 3", res, len(sent))
	}
	checkParts(t, sent, text)
}

// TestRateLimitedRetried: QQ's 1000003 is retried with backoff; every
// message arrives once and in order, long ones without a part resent.
func TestRateLimitedRetried(t *testing.T) {
	e := newEnv(t)
	e.run(e.eg)
	e.sim.SetChaos(qqsim.Chaos{RateLimitPerS: 2}) // a burst of 4, then 2 a second: 7 parts must meet the limit
	want := []string{"one", "two", longText(1500), "four", "five"}
	for _, s := range want {
		e.publishJSON(schema.KindFriend, schema.Request{To: schema.Target{QQ: testenv.Alice}, Text: s})
	}
	for range want {
		if _, res := e.result(); !res.OK {
			t.Fatalf("result %+v (error %+v), want ok", res, res.Error)
		}
	}
	sent := e.sent()
	checkParts(t, sent, strings.Join(want, ""))
	if n := e.sim.State().Counters["send_buddy_msg2"]; n <= int64(len(sent)) {
		t.Errorf("%d send requests for %d messages: the rate limit was never hit", n, len(sent))
	}
	e.noMoreResults()
}

// TestOrder: five messages to one target arrive in the order published.
func TestOrder(t *testing.T) {
	e := newEnv(t)
	e.run(e.eg)
	var want []string
	for i := 1; i <= 5; i++ {
		want = append(want, fmt.Sprintf("message %d", i))
		e.publishJSON(schema.KindGroup, schema.Request{To: schema.Target{Group: testenv.DevChat}, Text: want[i-1]})
	}
	var lastSeq uint64
	for range want {
		_, res := e.result()
		seq, err := strconv.ParseUint(strings.TrimPrefix(res.ID, "seq:"), 10, 64)
		if !res.OK || err != nil || seq <= lastSeq {
			t.Fatalf("result %+v after seq %d: want ok results in stream order", res, lastSeq)
		}
		lastSeq = seq
	}
	var got []string
	for _, s := range e.sent() {
		got = append(got, s.Text)
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("received %q, want %q", got, want)
	}
}

// TestSessionLostThenRetried: a send that meets an expired session reports
// the loss, waits for the next login and goes out with the new session's
// numbers.
func TestSessionLostThenRetried(t *testing.T) {
	e := newEnv(t)
	e.run(e.eg)
	oldUIN := e.sim.State().Friends[testenv.Alice]
	e.sim.ExpireSession()
	e.publishJSON(schema.KindFriend, schema.Request{ID: "after-expiry", To: schema.Target{QQ: testenv.Alice}, Text: "still here"})
	if _, res := e.result(); !res.OK {
		t.Fatalf("result %+v (error %+v), want ok", res, res.Error)
	}
	if lost := e.sess.lostGens(); len(lost) != 1 || lost[0] != 1 {
		t.Errorf("losses reported for generations %v, want [1]", lost)
	}
	if n := e.sim.State().Counters["send_buddy_msg2"]; n != 2 {
		t.Errorf("%d send requests, want 2 (one answered 103, one after the re-login)", n)
	}
	sent := e.sent()
	newUIN := e.sim.State().Friends[testenv.Alice]
	if len(sent) != 1 || sent[0].Target != newUIN || newUIN == oldUIN || sent[0].Stable != testenv.Alice {
		t.Fatalf("sent %+v; want one message to the new uin %d (old %d)", sent, newUIN, oldUIN)
	}
}

// TestWaitKeptInProgress: a request that waits for a session longer than the
// consumer's ack wait is kept in progress — not redelivered to the other
// replica, not overtaken — and sent once when the session comes.
func TestWaitKeptInProgress(t *testing.T) {
	e := newEnv(t, offline(), withConfig(func(c *Config) { c.AckWait = time.Second }))
	e.run(e.eg)
	e.run(e.newEgress(e.cfg)) // a second replica on the same durable consumer
	e.publishJSON(schema.KindFriend, schema.Request{To: schema.Target{QQ: testenv.Alice}, Text: "first"})
	e.publishJSON(schema.KindFriend, schema.Request{To: schema.Target{QQ: testenv.Alice}, Text: "second"})
	time.Sleep(2500 * time.Millisecond) // more than twice the ack wait, offline
	ctx := testenv.Context(t)
	cons, err := e.js.Consumer(ctx, e.subj.StreamOut(), DefaultConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumRedelivered != 0 || info.NumAckPending != 1 {
		t.Errorf("%d redelivered, %d pending ack while waiting: want the first request kept in progress, alone",
			info.NumRedelivered, info.NumAckPending)
	}
	e.login()
	for _, want := range []string{"seq:1", "seq:2"} {
		if _, res := e.result(); !res.OK || res.ID != want {
			t.Fatalf("result %+v (error %+v), want ok for %s", res, res.Error, want)
		}
	}
	var got []string
	for _, s := range e.sent() {
		got = append(got, s.Text)
	}
	if strings.Join(got, "|") != "first|second" {
		t.Fatalf("received %q, want first and second once each", got)
	}
	e.noMoreResults()
}

// TestSlowSendKeptInProgress: a send that QQ answers only after twice the
// ack wait is not taken for a dead sender's: the message is kept in progress
// and the claim fresh, so the other replica neither gets it nor answers
// maybe_sent; it is sent once and answered ok.
func TestSlowSendKeptInProgress(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Config) { c.AckWait = time.Second }))
	e.run(e.eg)
	e.run(e.newEgress(e.cfg)) // a second replica on the same durable consumer
	e.sim.SetChaos(qqsim.Chaos{SendLatencyMS: 2500})
	e.publishJSON(schema.KindFriend, schema.Request{ID: "slow", To: schema.Target{QQ: testenv.Alice}, Text: "slow"})
	if _, res := e.result(); !res.OK || res.ID != "slow" {
		t.Fatalf("result %+v (error %+v), want ok", res, res.Error)
	}
	ctx := testenv.Context(t)
	cons, err := e.js.Consumer(ctx, e.subj.StreamOut(), DefaultConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumRedelivered != 0 {
		t.Errorf("%d redelivered while the send was slow: want it kept in progress", info.NumRedelivered)
	}
	if n := len(e.sent()); n != 1 {
		t.Errorf("simulator received %d messages, want 1", n)
	}
	e.noMoreResults()
}

// TestDeadReplicaTakenOver: a replica whose connection dies while QQ holds
// the answer to its send (as in a kill -9: no heartbeat, no claim touched,
// no answer) leaves its requests to the other replica after the ack wait
// (with several in flight, also the pin's TTL): the one it was sending is
// answered maybe_sent, never sent again, and the one behind it is sent.
func TestDeadReplicaTakenOver(t *testing.T) {
	for _, inFlight := range []int{1, 2} {
		t.Run(fmt.Sprintf("in flight %d", inFlight), func(t *testing.T) {
			e := newEnv(t, withConfig(func(c *Config) { c.AckWait = time.Second; c.InFlight = inFlight }))
			killDying := e.startDyingReplica(t)
			e.sim.SetChaos(qqsim.Chaos{SendLatencyMS: int(time.Hour / time.Millisecond)})
			e.publishJSON(schema.KindFriend, schema.Request{ID: "held", To: schema.Target{QQ: testenv.Alice}, Text: "held"})
			e.publishJSON(schema.KindFriend, schema.Request{ID: "behind", To: schema.Target{QQ: testenv.Alice}, Text: "behind"})
			testenv.Eventually(t, "the first send at the simulator", func() bool { return len(e.sent()) == 1 })
			e.sim.SetChaos(qqsim.Chaos{})
			e.run(e.eg) // the replica that takes over
			// The death: its NATS connection goes; so that the test need
			// not wait for its leftovers, its send is cut short and it
			// is stopped (it can no longer say or record anything).
			killDying()

			// (The serial subject: one request out at a time whatever
			// InFlight, so behind waits for held's redelivery.)
			got := map[string]schema.Result{}
			for range 2 {
				_, res := e.result()
				got[res.ID] = res
			}
			if r := got["held"]; r.OK || r.Error == nil || r.Error.Code != schema.CodeMaybeSent {
				t.Errorf("held: result %+v (error %+v), want maybe_sent", r, r.Error)
			}
			if r := got["behind"]; !r.OK {
				t.Errorf("behind: result %+v (error %+v), want ok", r, r.Error)
			}
			var texts []string
			for _, s := range e.sent() {
				texts = append(texts, s.Text)
			}
			sort.Strings(texts)
			if strings.Join(texts, "|") != "behind|held" {
				t.Errorf("received %q, want held and behind once each", texts)
			}
			e.noMoreResults()
		})
	}
}

// TestGiveUp: transient failures that last longer than RetryFor end as
// rate_limited or session_unavailable; nothing more is sent, and the same
// id sent again later goes out.
func TestGiveUp(t *testing.T) {
	t.Run("rate limited", func(t *testing.T) {
		e := newEnv(t, withConfig(func(c *Config) { c.RetryFor = 300 * time.Millisecond }))
		e.run(e.eg)
		e.sim.SetChaos(qqsim.Chaos{RateLimitPerS: 0.001}) // one request, then one every 1000 s
		e.publishJSON(schema.KindFriend, schema.Request{To: schema.Target{QQ: testenv.Alice}, Text: "first"})
		if _, res := e.result(); !res.OK {
			t.Fatalf("first: %+v (error %+v), want ok", res, res.Error)
		}
		e.publishJSON(schema.KindFriend, schema.Request{ID: "later", To: schema.Target{QQ: testenv.Alice}, Text: "second"})
		_, res := e.result()
		if res.Error == nil || res.Error.Code != schema.CodeRateLimited || !res.Error.Code.Retryable() {
			t.Fatalf("second: %+v (error %+v), want rate_limited", res, res.Error)
		}
		e.sim.SetChaos(qqsim.Chaos{})
		e.publishJSON(schema.KindFriend, schema.Request{ID: "later", To: schema.Target{QQ: testenv.Alice}, Text: "second"})
		if _, res := e.result(); !res.OK {
			t.Fatalf("second again: %+v (error %+v), want ok", res, res.Error)
		}
		var got []string
		for _, s := range e.sent() {
			got = append(got, s.Text)
		}
		if strings.Join(got, "|") != "first|second" {
			t.Fatalf("received %q, want first and second once each", got)
		}
	})
	t.Run("no session", func(t *testing.T) {
		e := newEnv(t, offline(), withConfig(func(c *Config) { c.RetryFor = 200 * time.Millisecond }))
		e.run(e.eg)
		e.publishJSON(schema.KindGroup, schema.Request{To: schema.Target{Group: testenv.DevChat}, Text: "anyone?"})
		if _, res := e.result(); res.Error == nil || res.Error.Code != schema.CodeSessionUnavailable {
			t.Fatalf("result %+v (error %+v), want session_unavailable", res, res.Error)
		}
		// Send, bounded by its ctx (as the API's deadline bounds it).
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		res := e.eg.Send(ctx, schema.KindGroup, &schema.Request{To: schema.Target{Group: testenv.DevChat}, Text: "anyone?"})
		if res.Error == nil || res.Error.Code != schema.CodeSessionUnavailable || !strings.HasPrefix(res.Error.Message, "not sent: ") {
			t.Fatalf("Send answered %+v (error %+v), want session_unavailable, not sent", res, res.Error)
		}
		if n := len(e.sent()); n != 0 {
			t.Fatalf("simulator received %d messages while offline", n)
		}
	})
}

// TestCrashedSendIsMaybeSent: a "sending" record nobody touches any more (its
// worker died mid-send) makes the request maybe_sent; nothing is resent.
func TestCrashedSendIsMaybeSent(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Config) { c.StaleAfter = 300 * time.Millisecond }))
	ctx := context.Background()
	rec := mustJSON(t, record{State: stateSending, PartsSent: 1, Parts: 3})
	if _, err := e.kv.Create(ctx, idKey("crash-1"), rec); err != nil {
		t.Fatal(err)
	}
	e.run(e.eg)
	e.publishJSON(schema.KindFriend, schema.Request{ID: "crash-1", To: schema.Target{QQ: testenv.Alice}, Text: longText(2000)})
	_, res := e.result()
	if res.Error == nil || res.Error.Code != schema.CodeMaybeSent || res.Parts != 1 || res.ID != "crash-1" {
		t.Fatalf("result %+v (error %+v), want maybe_sent after 1 part", res, res.Error)
	}
	if n := len(e.sent()); n != 0 {
		t.Fatalf("simulator received %d messages, want none", n)
	}
	entry, err := e.kv.Get(ctx, idKey("crash-1"))
	if err != nil {
		t.Fatal(err)
	}
	var got record
	if err := json.Unmarshal(entry.Value(), &got); err != nil || got.State != stateDone || got.Result == nil || got.Result.Error.Code != schema.CodeMaybeSent {
		t.Fatalf("record %s (%v), want done with maybe_sent", entry.Value(), err)
	}
}

// TestRedeliveryAfterCrash: a request without an id is known by its stream
// sequence, so a "sending" record left for it by a crashed worker makes its
// redelivery maybe_sent; nothing is resent.
func TestRedeliveryAfterCrash(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Config) { c.StaleAfter = 300 * time.Millisecond }))
	ctx := context.Background()
	seq := e.publishJSON(schema.KindGroup, schema.Request{To: schema.Target{Group: testenv.DevChat}, Text: "sent just before the crash"})
	stream, err := e.js.Stream(ctx, e.subj.StreamOut())
	if err != nil {
		t.Fatal(err)
	}
	key := seqKey(e.subj.StreamOut(), stream.CachedInfo().Created, seq)
	if _, err := e.kv.Create(ctx, key, mustJSON(t, record{State: stateSending, Parts: 1})); err != nil {
		t.Fatal(err)
	}
	e.run(e.eg)
	_, res := e.result()
	if res.Error == nil || res.Error.Code != schema.CodeMaybeSent || res.ID != "seq:"+strconv.FormatUint(seq, 10) {
		t.Fatalf("result %+v (error %+v), want maybe_sent for seq %d", res, res.Error, seq)
	}
	if n := len(e.sent()); n != 0 {
		t.Fatalf("simulator received %d messages, want none", n)
	}
	e.noMoreResults()
}

// TestStopAndResume: a bridge stopped in the middle of a long text hands the
// request back with its progress; the next one sends the remaining parts,
// none twice.
func TestStopAndResume(t *testing.T) {
	e := newEnv(t)
	e.sim.SetChaos(qqsim.Chaos{LatencyMS: 100})
	stop := e.run(e.eg)
	text := longText(2000)
	e.publishJSON(schema.KindFriend, schema.Request{To: schema.Target{QQ: testenv.Alice}, Text: text})
	testenv.Eventually(t, "the first part at the simulator", func() bool { return len(e.sent()) > 0 })
	stop() // returns once the part in flight is finished
	firstRun := len(e.sent())

	e.run(e.newEgress(e.cfg))
	_, res := e.result()
	sent := e.sent()
	if !res.OK || res.Parts != len(sent) || len(sent) < 3 {
		t.Fatalf("result %+v, %d messages received (%d before the stop): want ok, each part once", res, len(sent), firstRun)
	}
	checkParts(t, sent, text)
	e.noMoreResults()
}

// TestNewRejects checks New's validation.
func TestNewRejects(t *testing.T) {
	e := newEnv(t, offline())
	for name, mutate := range map[string]func(*Config){
		"no client":         func(c *Config) { c.Client = nil },
		"no sessions":       func(c *Config) { c.Sessions = nil },
		"no directory":      func(c *Config) { c.Dir = nil },
		"no JetStream":      func(c *Config) { c.JS = nil },
		"no KV":             func(c *Config) { c.SentKV = nil },
		"negative rate":     func(c *Config) { c.Rate = -1 },
		"bad consumer name": func(c *Config) { c.Consumer = "a.b" },
	} {
		cfg := e.cfg
		mutate(&cfg)
		if _, err := New(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: New returned %v, want ErrConfig", name, err)
		}
	}
}
