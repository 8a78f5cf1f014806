package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func sortedNames(m map[string]*Event) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// TestEventGoldenJSON pins the JSON form of every event shape to the files
// in testdata/events, which docs/events.md quotes.
func TestEventGoldenJSON(t *testing.T) {
	events := sampleEvents(t)
	for _, name := range sortedNames(events) {
		t.Run(name, func(t *testing.T) {
			got, err := JSON().Marshal(events[name])
			if err != nil {
				t.Fatal(err)
			}
			want := bytes.TrimSpace(readTestdata(t, "events/"+name+".json"))
			if !bytes.Equal(got, want) {
				t.Errorf("JSON mismatch\n got: %s\nwant: %s", got, want)
			}
			// encoding/json through Event.MarshalJSON gives the same document
			// (it escapes <, > and & but means the same).
			plain, err := json.Marshal(events[name])
			if err != nil {
				t.Fatal(err)
			}
			var a, b any
			if err := json.Unmarshal(plain, &a); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(want, &b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, b) {
				t.Errorf("json.Marshal differs from the codec:\n%s\n%s", plain, want)
			}
		})
	}
}

// TestEventRoundTrip encodes every event shape in both codecs, sends it
// through the headers and DecodeEvent, and expects the same event back.
func TestEventRoundTrip(t *testing.T) {
	events := sampleEvents(t)
	for _, c := range []Codec{JSON(), Msgpack()} {
		for _, name := range sortedNames(events) {
			t.Run(c.ContentType()+"/"+name, func(t *testing.T) {
				in := events[name]
				data, h, err := in.Encode(c)
				if err != nil {
					t.Fatal(err)
				}
				if got := HeaderValue(h, HeaderContentType); got != c.ContentType() {
					t.Errorf("Content-Type %q, want %q", got, c.ContentType())
				}
				out, err := DecodeEvent(h, data)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(out, in) {
					t.Errorf("round trip changed the event\n got: %+v\nwant: %+v", out, in)
				}
			})
		}
	}
}

// TestEventDecodeGolden decodes the golden JSON files and compares them with
// the events they were made from.
func TestEventDecodeGolden(t *testing.T) {
	events := sampleEvents(t)
	for _, name := range sortedNames(events) {
		t.Run(name, func(t *testing.T) {
			e, err := DecodeEvent(nil, readTestdata(t, "events/"+name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(e, events[name]) {
				t.Errorf("got %+v\nwant %+v", e, events[name])
			}
		})
	}
}

// TestSegmentFaceZero checks that face 0 is written in both codecs, as a
// bare Segment and inside events and requests, and that text segments carry
// no face.
func TestSegmentFaceZero(t *testing.T) {
	segs := []Segment{FaceSegment(0), TextSegment("x")}
	want := []map[string]any{{"type": "face", "face": int64(0)}, {"type": "text", "text": "x"}}
	for _, c := range []Codec{JSON(), Msgpack()} {
		for i, s := range segs {
			data, err := c.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			got := genericMap(t, c, data)
			if !reflect.DeepEqual(got, want[i]) {
				t.Errorf("%s segment %d: got %#v, want %#v", c.ContentType(), i, got, want[i])
			}
			var back Segment
			if err := c.Unmarshal(data, &back); err != nil {
				t.Fatal(err)
			}
			if back != s {
				t.Errorf("%s segment %d: round trip gave %+v", c.ContentType(), i, back)
			}
		}
		req := &Request{To: Target{QQ: 1}, Segments: segs}
		data, err := c.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		got := genericMap(t, c, data)["segments"]
		if !reflect.DeepEqual(got, []any{want[0], want[1]}) {
			t.Errorf("%s request segments: %#v", c.ContentType(), got)
		}
	}
}

// genericMap decodes data into a map, with every number as int64.
func genericMap(t *testing.T, c Codec, data []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if c.ContentType() == ContentTypeJSON {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		return normaliseNumbers(m).(map[string]any)
	}
	if err := msgpack.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return normaliseNumbers(m).(map[string]any)
}

func normaliseNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normaliseNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normaliseNumbers(e)
		}
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint64:
		return int64(x)
	}
	return v
}

// TestEventEncodingDefaults: a zero V is written as Version, a local time
// as UTC, Raw compacted and identical in both codecs; invalid Raw fails.
func TestEventEncodingDefaults(t *testing.T) {
	e := &Event{
		ID: "1:system_message:h00", Type: SystemType("system_message"), Account: 1,
		Time:       time.Date(2020, 1, 2, 11, 4, 5, 0, time.FixedZone("CST", 8*3600)),
		SystemKind: "system_message",
		Raw:        json.RawMessage("{ \"type\" : \"verify_required\",\n \"from_uin\": 5 }"),
	}
	const wantRaw = `{"type":"verify_required","from_uin":5}`
	for _, c := range []Codec{JSON(), Msgpack()} {
		data, h, err := e.Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		out, err := DecodeEvent(h, data)
		if err != nil {
			t.Fatal(err)
		}
		if out.V != Version {
			t.Errorf("%s: v = %d, want %d", c.ContentType(), out.V, Version)
		}
		if want := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC); out.Time != want {
			t.Errorf("%s: time = %v, want %v", c.ContentType(), out.Time, want)
		}
		if string(out.Raw) != wantRaw {
			t.Errorf("%s: raw = %s, want %s", c.ContentType(), out.Raw, wantRaw)
		}
		if got := HeaderValue(h, HeaderCETime); got != "2020-01-02T03:04:05Z" {
			t.Errorf("ce-time %q", got)
		}
	}
	if e.V != 0 || e.Time.Location().String() != "CST" {
		t.Error("encoding modified the event")
	}

	bad := &Event{ID: "1:x:1", Type: SystemType("x"), Raw: json.RawMessage(`{"a":`)}
	for _, c := range []Codec{JSON(), Msgpack()} {
		if _, err := c.Marshal(bad); err == nil {
			t.Errorf("%s: invalid raw encoded without error", c.ContentType())
		}
		if _, _, err := bad.Encode(c); err == nil || !strings.Contains(err.Error(), "raw") {
			t.Errorf("%s: Encode error %v, want one about raw", c.ContentType(), err)
		}
	}
}

func TestEventHeaders(t *testing.T) {
	e := sampleEvents(t)["group"]
	want := map[string]string{
		"ce-specversion": "1.0",
		"ce-id":          "931996776:group:50873",
		"ce-type":        "qq.message.group",
		"ce-source":      "qqbridge/931996776",
		"ce-time":        "2015-12-21T08:47:05Z",
		"Nats-Msg-Id":    "931996776:group:50873",
	}
	if got := e.Headers(); !reflect.DeepEqual(got, want) {
		t.Errorf("Headers() = %v, want %v", got, want)
	}
	h := map[string][]string{"Content-Type": {"text/plain"}, "X-Other": {"kept"}}
	e.SetHeaders(h, ContentTypeMsgpack)
	if len(h["Content-Type"]) != 1 || h["Content-Type"][0] != ContentTypeMsgpack {
		t.Errorf("Content-Type = %v", h["Content-Type"])
	}
	if h["X-Other"][0] != "kept" || h["ce-id"][0] != want["ce-id"] || len(h) != 8 {
		t.Errorf("SetHeaders gave %v", h)
	}
}

func TestEventID(t *testing.T) {
	tests := []struct {
		account int64
		kind    string
		msgID   int64
		want    string
	}{
		{931996776, "group", 50873, "931996776:group:50873"},
		{1, "friend", 0, "1:friend:0"},
		{931996776, "kick", 53125, "931996776:kick:53125"},
		{9223372036854775807, "sess", 9223372036854775807, "9223372036854775807:sess:9223372036854775807"},
	}
	for _, tt := range tests {
		if got := EventID(tt.account, tt.kind, tt.msgID); got != tt.want {
			t.Errorf("EventID(%d, %q, %d) = %q, want %q", tt.account, tt.kind, tt.msgID, got, tt.want)
		}
	}
}

func TestHashEventID(t *testing.T) {
	content := []byte(`{"uin":1,"status":"online","client_type":1}`)
	id := HashEventID(5, "status", content)
	if id != HashEventID(5, "status", bytes.Clone(content)) {
		t.Error("HashEventID is not deterministic")
	}
	if !strings.HasPrefix(id, "5:status:h") || len(id) != len("5:status:h")+16 {
		t.Errorf("HashEventID = %q, want 5:status:h + 16 hex digits", id)
	}
	others := []string{
		HashEventID(6, "status", content),
		HashEventID(5, "input", content),
		HashEventID(5, "status", []byte(`{"uin":1,"status":"offline","client_type":1}`)),
	}
	for _, o := range others {
		if o == id {
			t.Errorf("different input gave the same id %q", id)
		}
	}
}

func TestEventKind(t *testing.T) {
	tests := map[string]Kind{
		TypeMessageFriend: KindFriend, TypeMessageGroup: KindGroup, TypeMessageDiscuss: KindDiscuss,
		TypeMessageSess: KindSess, TypeStatusBuddy: KindStatus, TypeInputNotify: KindInput,
		TypeSystemKick: KindSystem, SystemType("tips"): KindSystem, "message.other": "", "": "",
	}
	for typ, want := range tests {
		if got := (&Event{Type: typ}).Kind(); got != want {
			t.Errorf("Kind of %q = %q, want %q", typ, got, want)
		}
	}
}

func TestDecodeEventErrors(t *testing.T) {
	group := readTestdata(t, "events/group.json")
	mp, err := Msgpack().Marshal(sampleEvents(t)["group"])
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		header map[string][]string
		data   []byte
		want   error
	}{
		{"unknown content type", map[string][]string{"Content-Type": {"text/plain"}}, group, ErrUnsupportedContentType},
		{"malformed content type", map[string][]string{"Content-Type": {"application/"}}, group, ErrUnsupportedContentType},
		{"empty body", nil, nil, ErrInvalidEvent},
		{"truncated JSON", nil, group[:40], ErrInvalidEvent},
		{"JSON array", nil, []byte(`[1,2]`), ErrInvalidEvent},
		{"wrong field type", nil, []byte(`{"v":1,"account":"x"}`), ErrInvalidEvent},
		{"msgpack body labelled JSON", nil, mp, ErrInvalidEvent},
		{"JSON body labelled msgpack", map[string][]string{"Content-Type": {ContentTypeMsgpack}}, group, ErrInvalidEvent},
		{"truncated msgpack", map[string][]string{"Content-Type": {ContentTypeMsgpack}}, mp[:20], ErrInvalidEvent},
		{"missing v", nil, []byte(`{"id":"1:friend:1","type":"message.friend"}`), ErrUnsupportedVersion},
		{"future v", nil, []byte(`{"v":2,"id":"1:friend:1","type":"message.friend"}`), ErrUnsupportedVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := DecodeEvent(tt.header, tt.data)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if e != nil {
				t.Errorf("got an event with the error: %+v", e)
			}
		})
	}
}

// TestDecodeEventLenient: header names in any case, media-type parameters,
// and fields this version does not know are accepted.
func TestDecodeEventLenient(t *testing.T) {
	mp, err := Msgpack().Marshal(sampleEvents(t)["group"])
	if err != nil {
		t.Fatal(err)
	}
	e, err := DecodeEvent(map[string][]string{"content-type": {"application/msgpack"}}, mp)
	if err != nil || e.MsgID != 50873 {
		t.Fatalf("lower-case header: %v, %+v", err, e)
	}
	e, err = DecodeEvent(map[string][]string{"Content-Type": {"application/json; charset=utf-8"}},
		[]byte(`{"v":1,"id":"1:friend:1","type":"message.friend","future_field":{"a":1},"msg_id":1}`))
	if err != nil || e.ID != "1:friend:1" || e.MsgID != 1 {
		t.Fatalf("unknown field: %v, %+v", err, e)
	}
}
