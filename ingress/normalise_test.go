package ingress

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

// testdataEvents decodes testdata/items.json, a poll2 result array with one
// item of every kind, some malformed ones and two echoes.
func testdataEvents(t testing.TB) ([]qqclient.Event, []json.RawMessage) {
	t.Helper()
	data := readTestdata(t, "items.json")
	evs, err := qqclient.DecodeEvents(data)
	if err != nil {
		t.Fatalf("DecodeEvents: %v", err)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(data, &items); err != nil {
		t.Fatal(err)
	}
	return evs, items
}

// valueOf is the wire value of a poll item: its "value", or the whole item
// when it is not a well-formed item (no poll_type or no value).
func valueOf(t *testing.T, item json.RawMessage) json.RawMessage {
	t.Helper()
	var w struct {
		PollType *string         `json:"poll_type"`
		Value    json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(item, &w); err != nil || w.PollType == nil || len(w.Value) == 0 {
		return item
	}
	return w.Value
}

func TestNormaliseWithoutDirectory(t *testing.T) {
	evs, items := testdataEvents(t)
	const acct = testenv.Self
	type want struct {
		skip     bool // an echo: not published
		kind     schema.Kind
		id       string
		typ      string
		eventID  string // "" = the hash id of the wire value
		msgID    int64
		from     *schema.Contact
		group    *schema.GroupRef
		discuss  *schema.DiscussRef
		sess     *schema.SessRef
		status   *schema.Status
		kick     *schema.Kick
		text     string
		segs     []schema.Segment
		picture  bool
		sysKind  string
		raw      bool // Raw holds the item's value
		wireTime int64
	}
	tests := []want{
		0: {kind: schema.KindFriend, id: "uin3785096088", typ: schema.TypeMessageFriend, eventID: "931996776:friend:5001", msgID: 5001,
			from: &schema.Contact{UIN: 3785096088}, wireTime: 1450686775,
			text: "你好 <b> & \"x\" \\ y z /微笑/惊讶",
			segs: []schema.Segment{schema.TextSegment("你好 <b> & \"x\" \\ y z "), schema.FaceSegment(14), schema.FaceSegment(0)}},
		1: {kind: schema.KindGroup, id: "gid2323421101", typ: schema.TypeMessageGroup, eventID: "931996776:group:5002", msgID: 5002,
			from: &schema.Contact{UIN: 3680220215}, group: &schema.GroupRef{GID: 2323421101}, wireTime: 1450687625,
			text: "好啊 /微笑", segs: []schema.Segment{schema.TextSegment("好啊 "), schema.FaceSegment(14)}},
		2: {kind: schema.KindDiscuss, id: "did2322423201", typ: schema.TypeMessageDiscuss, eventID: "931996776:discuss:5003", msgID: 5003,
			from: &schema.Contact{UIN: 3785096088}, discuss: &schema.DiscussRef{DID: 2322423201}, wireTime: 1450687626,
			text: "lunch?", segs: []schema.Segment{schema.TextSegment("lunch?")}},
		3: {kind: schema.KindSess, id: "654321", typ: schema.TypeMessageSess, eventID: "931996776:sess:5004", msgID: 5004,
			from: &schema.Contact{UIN: 3785096089, QQ: 654321}, sess: &schema.SessRef{ViaGID: 2323421101}, wireTime: 1450686780,
			text: "temp chat", segs: []schema.Segment{schema.TextSegment("temp chat")}},
		4: {kind: schema.KindFriend, id: "uin3785096088", typ: schema.TypeMessageFriend, eventID: "931996776:friend:5005", msgID: 5005,
			from: &schema.Contact{UIN: 3785096088}, picture: true, wireTime: 1450686790},
		5: {kind: schema.KindStatus, id: "uin3017767504", typ: schema.TypeStatusBuddy,
			status: &schema.Status{UIN: 3017767504, Status: "away", ClientType: 1}},
		6: {kind: schema.KindInput, id: "uin3785096088", typ: schema.TypeInputNotify, eventID: "931996776:input:5006", msgID: 5006,
			from: &schema.Contact{UIN: 3785096088}},
		7: {kind: schema.KindSystem, id: "kick", typ: schema.TypeSystemKick, eventID: "931996776:kick:5007", msgID: 5007,
			kick: &schema.Kick{Reason: "您的帐号在另一地点登录，您已被迫下线。"}, sysKind: "kick", raw: true},
		8:  {kind: schema.KindSystem, id: "file_message", typ: "system.file_message", eventID: "931996776:file_message:5009", msgID: 5009, sysKind: "file_message", raw: true},
		9:  {kind: schema.KindSystem, id: "tips", typ: "system.tips", sysKind: "tips", raw: true},
		10: {kind: schema.KindSystem, id: "system_message", typ: "system.system_message", sysKind: "system_message", raw: true},
		11: {kind: schema.KindSystem, id: "sys_g_msg", typ: "system.sys_g_msg", eventID: "931996776:sys_g_msg:5010", msgID: 5010, sysKind: "sys_g_msg", raw: true},
		12: {kind: schema.KindSystem, id: "shake_message", typ: "system.shake_message", eventID: "931996776:shake_message:5011", msgID: 5011, sysKind: "shake_message", raw: true},
		13: {kind: schema.KindSystem, id: "weird_kind_v2", typ: "system.weird_kind_v2", eventID: "931996776:weird_kind_v2:5012", msgID: 5012, sysKind: "weird_kind_v2", raw: true},
		14: {kind: schema.KindSystem, id: "message", typ: "system.message", sysKind: "message", raw: true},
		15: {skip: true},
		16: {skip: true},
		17: {kind: schema.KindSystem, id: "unknown", typ: "system.unknown", sysKind: "unknown", raw: true},
		18: {kind: schema.KindSystem, id: "unknown", typ: "system.unknown", sysKind: "unknown", raw: true},
	}
	if len(tests) != len(evs) {
		t.Fatalf("testdata has %d items, the table %d", len(evs), len(tests))
	}
	subjects, _ := schema.NewSubjects("")
	for i, w := range tests {
		ev := evs[i]
		e, kind, id, ok := normalise(context.Background(), acct, ev, nil)
		if w.skip {
			if ok {
				t.Errorf("item %d (%s): published %+v, want it suppressed as an echo", i, ev.Type, e)
			}
			continue
		}
		if !ok {
			t.Errorf("item %d (%s): suppressed, want it published", i, ev.Type)
			continue
		}
		if kind != w.kind || id != w.id {
			t.Errorf("item %d (%s): subject kind/id %s/%s, want %s/%s", i, ev.Type, kind, id, w.kind, w.id)
		}
		if _, err := subjects.In(kind, id); err != nil {
			t.Errorf("item %d: subject: %v", i, err)
		}
		value := valueOf(t, items[i])
		wantID := w.eventID
		if wantID == "" {
			wantID = schema.HashEventID(acct, string(w.kind), value)
			if w.kind == schema.KindSystem {
				wantID = schema.HashEventID(acct, w.sysKind, value)
			}
		}
		if e.ID != wantID {
			t.Errorf("item %d: event id %q, want %q", i, e.ID, wantID)
		}
		if w.status != nil {
			w.status.QQ = 0
		}
		got := []any{e.Type, e.Account, e.MsgID, e.From, e.Group, e.Discuss, e.Sess, e.Status, e.Kick, e.Text, e.Segments, e.Picture, e.SystemKind}
		exp := []any{w.typ, int64(acct), w.msgID, w.from, w.group, w.discuss, w.sess, w.status, w.kick, w.text, w.segs, w.picture, w.sysKind}
		names := []string{"type", "account", "msg_id", "from", "group", "discuss", "sess", "status", "kick", "text", "segments", "picture", "system_kind"}
		for j := range got {
			if !reflect.DeepEqual(got[j], exp[j]) {
				t.Errorf("item %d (%s): %s = %#v, want %#v", i, ev.Type, names[j], got[j], exp[j])
			}
		}
		if w.raw != (len(e.Raw) > 0) {
			t.Errorf("item %d: raw %q, want present=%v", i, e.Raw, w.raw)
		}
		if w.raw && !bytes.Equal(e.Raw, value) {
			t.Errorf("item %d: raw %s, want the wire value %s", i, e.Raw, value)
		}
		if w.wireTime != 0 && !e.Time.Equal(time.Unix(w.wireTime, 0)) {
			t.Errorf("item %d: time %v, want the wire time %v", i, e.Time, time.Unix(w.wireTime, 0).UTC())
		}
		if e.Time.IsZero() {
			t.Errorf("item %d: no time", i)
		}
	}
}

// TestNormaliseRoundTrip encodes every event of the testdata in both codecs
// and decodes it as a consumer would.
func TestNormaliseRoundTrip(t *testing.T) {
	evs, _ := testdataEvents(t)
	for _, codec := range []schema.Codec{schema.JSON(), schema.Msgpack()} {
		t.Run(codec.ContentType(), func(t *testing.T) {
			for i, ev := range evs {
				e, _, _, ok := normalise(context.Background(), testenv.Self, ev, nil)
				if !ok {
					continue
				}
				data, hdr, err := e.Encode(codec)
				if err != nil {
					t.Fatalf("item %d: Encode: %v", i, err)
				}
				if got := hdr[schema.HeaderMsgID]; len(got) != 1 || got[0] != e.ID {
					t.Errorf("item %d: Nats-Msg-Id %v, want %q", i, got, e.ID)
				}
				back, err := schema.DecodeEvent(hdr, data)
				if err != nil {
					t.Fatalf("item %d: DecodeEvent: %v", i, err)
				}
				if back.ID != e.ID || back.Type != e.Type || back.Text != e.Text || back.Picture != e.Picture ||
					!reflect.DeepEqual(back.Segments, e.Segments) || !reflect.DeepEqual(back.From, e.From) {
					t.Errorf("item %d: decoded %+v, want %+v", i, back, e)
				}
				if len(e.Raw) > 0 && !jsonEqual(back.Raw, e.Raw) {
					t.Errorf("item %d: raw %s after the round trip, want %s", i, back.Raw, e.Raw)
				}
			}
		})
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

func TestText(t *testing.T) {
	for _, tc := range []struct {
		segs []schema.Segment
		want string
	}{
		{nil, ""},
		{[]schema.Segment{schema.TextSegment("plain")}, "plain"},
		{[]schema.Segment{schema.TextSegment("好啊 "), schema.FaceSegment(14)}, "好啊 /微笑"},
		{[]schema.Segment{schema.FaceSegment(0), schema.TextSegment("!"), schema.FaceSegment(39)}, "/惊讶!/再见"},
		{[]schema.Segment{schema.FaceSegment(17), schema.FaceSegment(222)}, "/face17/face222"},
	} {
		if got := plainText(tc.segs); got != tc.want {
			t.Errorf("plainText(%v) = %q, want %q", tc.segs, got, tc.want)
		}
	}
}

func TestRawMsgID(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want int64
	}{
		{`{"msg_id":5}`, 5},
		{` {"msg_id":"77"}`, 77},
		{`{"msg_id":" 8 "}`, 8},
		{`{"msg_id":0}`, 0},
		{`{"msg_id":-3}`, 0},
		{`{"msg_id":1.5}`, 0},
		{`{"msg_id":"x"}`, 0},
		{`{"msg_id":null}`, 0},
		{`{"msg_id":99999999999999999999}`, 0},
		{`{"other":1}`, 0},
		{`[1,2]`, 0},
		{`"str"`, 0},
		{``, 0},
		{`{"msg_id":4`, 0},
	} {
		if got := rawMsgID(json.RawMessage(tc.raw)); got != tc.want {
			t.Errorf("rawMsgID(%s) = %d, want %d", tc.raw, got, tc.want)
		}
	}
}

// FuzzRawMsgID: any bytes give a non-negative id without panicking.
func FuzzRawMsgID(f *testing.F) {
	for _, s := range []string{`{"msg_id":5}`, `{"msg_id":"77"}`, `[]`, `{`, `{"msg_id":-1}`, ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if n := rawMsgID(b); n < 0 {
			t.Fatalf("rawMsgID = %d", n)
		}
	})
}

// FuzzNormalise: whatever poll item comes from outside, normalise never
// panics and a published event always has a valid subject, an id, a type
// and a body both codecs can encode.
func FuzzNormalise(f *testing.F) {
	_, items := testdataEvents(f)
	for _, it := range items {
		f.Add([]byte(it))
	}
	subjects, _ := schema.NewSubjects("")
	f.Fuzz(func(t *testing.T, item []byte) {
		ev := qqclient.DecodeEvent(item)
		e, kind, id, ok := normalise(context.Background(), testenv.Self, ev, nil)
		if !ok {
			return
		}
		if _, err := subjects.In(kind, id); err != nil {
			t.Fatalf("subject of %q: %v", item, err)
		}
		if e.ID == "" || e.Type == "" || e.Account != testenv.Self {
			t.Fatalf("incomplete event %+v", e)
		}
		for _, c := range []schema.Codec{schema.JSON(), schema.Msgpack()} {
			if _, _, err := e.Encode(c); err != nil {
				t.Fatalf("%s: %v", c.ContentType(), err)
			}
		}
	})
}
