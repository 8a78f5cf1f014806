package onebot

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/qqbridge/qqbridge/schema"
)

var evTime = time.Date(2015, 12, 21, 8, 47, 5, 0, time.UTC)

func groupEvent() *schema.Event {
	return &schema.Event{V: 1, ID: "931996776:group:50873", Type: schema.TypeMessageGroup, Time: evTime, Account: 931996776, MsgID: 50873,
		From:     &schema.Contact{UIN: 3680220215, QQ: 123456, Nick: "Alice", Card: "Alice@dev"},
		Group:    &schema.GroupRef{GID: 2323421101, Number: 987654, Name: "Dev chat"},
		Text:     "好啊 /微笑",
		Segments: []schema.Segment{schema.TextSegment("好啊 [x]"), schema.FaceSegment(14)}}
}

// decode marshals an event as the gateway does and reads it back as a
// generic object, so that the tests see the JSON a bot sees.
func decode(t *testing.T, ob *Event) map[string]any {
	t.Helper()
	b, err := marshalNoEscape(ob)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestMessageEventFields checks every field of the spec's tables for
// private and group message events (v11 event/message.md).
func TestMessageEventFields(t *testing.T) {
	ob, ok := MessageEvent(groupEvent(), 42, FormatArray)
	if !ok {
		t.Fatal("not a message event")
	}
	m := decode(t, ob)
	want := map[string]any{
		"time": float64(evTime.Unix()), "self_id": float64(931996776), "post_type": "message",
		"message_type": "group", "sub_type": "normal", "message_id": float64(42),
		"group_id": float64(987654), "user_id": float64(123456), "anonymous": nil,
		"raw_message": "好啊 &#91;x&#93;[CQ:face,id=14]", "font": float64(0),
		"message": []any{
			map[string]any{"type": "text", "data": map[string]any{"text": "好啊 [x]"}},
			map[string]any{"type": "face", "data": map[string]any{"id": "14"}},
		},
		"sender": map[string]any{"user_id": float64(123456), "nickname": "Alice", "card": "Alice@dev", "sex": "unknown", "age": float64(0), "role": "member"},
	}
	if !reflect.DeepEqual(m, want) {
		got, _ := json.Marshal(m)
		exp, _ := json.Marshal(want)
		t.Fatalf("group event\n got %s\nwant %s", got, exp)
	}

	ob, _ = MessageEvent(groupEvent(), 42, FormatString)
	if m := decode(t, ob); m["message"] != "好啊 &#91;x&#93;[CQ:face,id=14]" {
		t.Errorf("string format message = %v", m["message"])
	}

	friend := &schema.Event{ID: "1:friend:2", Type: schema.TypeMessageFriend, Time: evTime, Account: 1,
		From: &schema.Contact{UIN: 3785096088, QQ: 10001, Nick: "鲍勃"}, Segments: []schema.Segment{schema.FaceSegment(0)}}
	m = decode(t, mustMessage(t, friend))
	for k, v := range map[string]any{"message_type": "private", "sub_type": "friend", "user_id": float64(10001), "raw_message": "[CQ:face,id=0]"} {
		if m[k] != v {
			t.Errorf("private %s = %v, want %v", k, m[k], v)
		}
	}
	for _, k := range []string{"group_id", "anonymous", "discuss_id"} {
		if _, has := m[k]; has {
			t.Errorf("private message has %s", k)
		}
	}
	if s := m["sender"].(map[string]any); s["nickname"] != "鲍勃" || s["card"] != nil {
		t.Errorf("private sender = %v", s)
	}

	sess := &schema.Event{ID: "1:sess:8", Type: schema.TypeMessageSess, Time: evTime, Account: 1,
		From: &schema.Contact{UIN: 4000000001, QQ: 777, Nick: "Dave"}, Segments: []schema.Segment{schema.TextSegment("请问")},
		Sess: &schema.SessRef{ViaGID: 2323421101, ViaNumber: 987654}}
	m = decode(t, mustMessage(t, sess))
	if m["message_type"] != "private" || m["sub_type"] != "group" || m["group_id"] != float64(987654) {
		t.Errorf("sess = %v", m)
	}

	disc := &schema.Event{ID: "1:discuss:7", Type: schema.TypeMessageDiscuss, Time: evTime, Account: 1,
		From: &schema.Contact{UIN: 1000001, QQ: 555, Nick: "Carol"}, Discuss: &schema.DiscussRef{DID: 2322423201, Name: "周末"},
		Segments: []schema.Segment{schema.TextSegment("x")}}
	m = decode(t, mustMessage(t, disc))
	if m["message_type"] != "discuss" || m["discuss_id"] != float64(2322423201) || m["user_id"] != float64(555) {
		t.Errorf("discuss = %v", m)
	}
	if _, has := m["sub_type"]; has {
		t.Errorf("discuss has a sub_type")
	}

	unresolved := &schema.Event{ID: "1:group:9", Type: schema.TypeMessageGroup, Time: evTime, Account: 1,
		From: &schema.Contact{UIN: 3680220215}, Group: &schema.GroupRef{GID: 2323421101}, Picture: true}
	n := NumbersOf(unresolved)
	if n != (Numbers{User: 3680220215, Group: 2323421101, UserSession: true, GroupSes: true}) {
		t.Errorf("numbers of an unresolved event = %+v", n)
	}
	m = decode(t, mustMessage(t, unresolved))
	if m["raw_message"] != "[CQ:image,file=stripped]" {
		t.Errorf("picture-only message = %v", m["raw_message"])
	}

	if _, ok := MessageEvent(&schema.Event{Type: schema.TypeStatusBuddy}, 1, FormatArray); ok {
		t.Error("a status event mapped to a message event")
	}
}

func mustMessage(t *testing.T, e *schema.Event) *Event {
	t.Helper()
	ob, ok := MessageEvent(e, 7, FormatArray)
	if !ok {
		t.Fatalf("%s is not a message event", e.Type)
	}
	return ob
}

// TestMetaAndNotices checks lifecycle, heartbeat (v11 event/meta.md) and the
// extension notices.
func TestMetaAndNotices(t *testing.T) {
	m := decode(t, Lifecycle("connect", 931996776, evTime))
	want := map[string]any{"time": float64(evTime.Unix()), "self_id": float64(931996776), "post_type": "meta_event", "meta_event_type": "lifecycle", "sub_type": "connect"}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("lifecycle = %v", m)
	}
	m = decode(t, Heartbeat(1, StatusOf(schema.SessionState{State: schema.StateOnline}), 15*time.Second, evTime))
	if m["meta_event_type"] != "heartbeat" || m["interval"] != float64(15000) {
		t.Errorf("heartbeat = %v", m)
	}
	if st := m["status"].(map[string]any); st["online"] != true || st["good"] != true || st["qq_state"] != "online" {
		t.Errorf("heartbeat status = %v", st)
	}
	if st := StatusOf(schema.SessionState{State: schema.StateReconnecting}); st.Online || st.Good {
		t.Errorf("reconnecting = %+v", st)
	}
	ob, ok := BuddyStatusNotice(&schema.Event{Type: schema.TypeStatusBuddy, Time: evTime, Account: 1, Status: &schema.Status{UIN: 5, QQ: 10001, Status: "away", ClientType: 21}})
	if !ok {
		t.Fatal("no notice")
	}
	m = decode(t, ob)
	if m["post_type"] != "notice" || m["notice_type"] != "buddy_status" || m["user_id"] != float64(10001) || m["status_word"] != "away" || m["client_type"] != float64(21) {
		t.Errorf("buddy_status = %v", m)
	}
	m = decode(t, SessionNotice(schema.SessionState{State: schema.StateKicked, Reason: "elsewhere", Time: evTime}, 1))
	if m["notice_type"] != "session_state" || m["state"] != "kicked" || m["reason"] != "elsewhere" {
		t.Errorf("session_state = %v", m)
	}
}

func TestToSchema(t *testing.T) {
	segs, err := DecodeMessage(json.RawMessage(`[{"type":"reply","data":{"id":"5"}},{"type":"at","data":{"qq":"123"}},{"type":"text","data":{"text":"hi "}},{"type":"face","data":{"id":14}}]`), false)
	if err != nil {
		t.Fatal(err)
	}
	out, err := ToSchema(segs)
	if err != nil {
		t.Fatal(err)
	}
	if want := []schema.Segment{schema.TextSegment("@123 hi "), schema.FaceSegment(14)}; !reflect.DeepEqual(out, want) {
		t.Errorf("got %#v", out)
	}
	for raw, want := range map[string]error{
		`[{"type":"image","data":{"file":"a.png"}}]`: ErrUnsupportedSegment,
		`[{"type":"reply","data":{"id":"1"}}]`:       ErrEmptyMessage,
		`""`:                                         ErrEmptyMessage,
	} {
		segs, err := DecodeMessage(json.RawMessage(raw), false)
		if err == nil {
			_, err = ToSchema(segs)
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", raw, err, want)
		}
	}
	if _, err := ToSchema([]Segment{FaceSeg(256)}); err == nil {
		t.Error("face 256 accepted")
	}
	segs, _ = DecodeMessage(json.RawMessage(`"[CQ:face,id=14] &amp;"`), true)
	if want := []Segment{TextSeg("[CQ:face,id=14] &amp;")}; !reflect.DeepEqual(segs, want) {
		t.Errorf("auto_escape: %#v", segs)
	}
	segs, _ = DecodeMessage(json.RawMessage(`"[CQ:face,id=14] &amp;"`), false)
	if want := []Segment{FaceSeg(14), TextSeg(" &")}; !reflect.DeepEqual(segs, want) {
		t.Errorf("CQ string: %#v", segs)
	}
}

func TestParams(t *testing.T) {
	p := Params{"a": json.RawMessage(`123`), "b": json.RawMessage(`"456"`), "c": json.RawMessage(`"x"`), "t": json.RawMessage(`"true"`), "n": json.RawMessage(`null`), "f": json.RawMessage(`1.0`)}
	if n, ok, err := p.Int64("a"); n != 123 || !ok || err != nil {
		t.Errorf("a = %d %v %v", n, ok, err)
	}
	if n, _, _ := p.Int64("b"); n != 456 {
		t.Errorf("b = %d", n)
	}
	if n, _, _ := p.Int64("f"); n != 1 {
		t.Errorf("f = %d", n)
	}
	if _, _, err := p.Int64("c"); err == nil {
		t.Error("c parsed as a number")
	}
	if _, err := p.NeedInt64("n"); err == nil {
		t.Error("null is a number")
	}
	if b, err := p.Bool("t"); !b || err != nil {
		t.Errorf("t = %v %v", b, err)
	}
	if p.Has("n") || !p.Has("a") {
		t.Error("Has")
	}
}

func TestMessageIDs(t *testing.T) {
	ctx := context.Background()
	st := NewMemStore()
	a := MsgRef{Ref: "931996776:group:50873", MessageType: "group"}
	id, err := MessageIDOf(ctx, st, a)
	if err != nil || id <= 0 {
		t.Fatalf("id %d, %v", id, err)
	}
	again, _ := MessageIDOf(ctx, st, a)
	if again != id {
		t.Errorf("the same message got %d then %d", id, again)
	}
	if r, err := Resolve(ctx, st, id); err != nil || r.Ref != a.Ref {
		t.Errorf("resolve = %+v, %v", r, err)
	}
	// A collision: another message already holds the hash of a.
	st2 := NewMemStore()
	_, _ = st2.Create(ctx, "msg."+itoa(int64(id)), []byte(`{"ref":"someone else"}`))
	other, err := MessageIDOf(ctx, st2, a)
	if err != nil || other == id {
		t.Fatalf("collision: got %d (%v), first was %d", other, err, id)
	}
	if again, _ := MessageIDOf(ctx, st2, a); again != other {
		t.Errorf("after a collision the same message got %d then %d", other, again)
	}
	if _, err := Resolve(ctx, st, 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestRequestID(t *testing.T) {
	ctx := context.Background()
	st := NewMemStore()
	now := evTime
	id1, _ := RequestID(ctx, st, []byte(`7`), "send_group_msg", []byte(`{"x":1}`), time.Minute, now)
	id2, _ := RequestID(ctx, st, []byte(`7`), "send_group_msg", []byte(`{"x":1}`), time.Minute, now.Add(30*time.Second))
	if id1 != id2 || !strings.HasPrefix(id1, "onebot-") {
		t.Errorf("a repeat within the window got %q then %q", id1, id2)
	}
	if id3, _ := RequestID(ctx, st, []byte(`7`), "send_group_msg", []byte(`{"x":2}`), time.Minute, now); id3 == id1 {
		t.Error("another content with the same echo got the same id")
	}
	if id4, _ := RequestID(ctx, st, []byte(`7`), "send_group_msg", []byte(`{"x":1}`), time.Minute, now.Add(2*time.Minute)); id4 == id1 {
		t.Error("a repeat after the window got the same id")
	}
	a, _ := RequestID(ctx, st, nil, "send_group_msg", nil, time.Minute, now)
	b, _ := RequestID(ctx, st, nil, "send_group_msg", nil, time.Minute, now)
	if a == b {
		t.Error("two sends without echo got the same id")
	}
}

func TestSign(t *testing.T) {
	// HMAC-SHA1("secret", "{}"), computed independently (openssl dgst -sha1 -hmac secret).
	if got := Sign("secret", []byte("{}")); got != "sha1=5d61605c3feea9799210ddcb71307d4ba264225f" {
		t.Errorf("Sign = %q", got)
	}
}
