package schema

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// validRequests are the files in testdata/requests with the kind each is
// sent as and the request it decodes to.
func validRequests() []struct {
	file string
	kind Kind
	want Request
} {
	return []struct {
		file string
		kind Kind
		want Request
	}{
		{"friend_qq.json", KindFriend, Request{ID: "order-1", To: Target{QQ: 123456}, Text: "hello"}},
		{"friend_uin.json", KindFriend, Request{To: Target{UIN: 3785096088}, Text: "你好 <b>&amp;</b> 😀"}},
		{"friend_pretty.json", KindFriend, Request{ID: "pretty", To: Target{QQ: 123456}, Text: "indented JSON is fine"}},
		{"group_segments.json", KindGroup, Request{ID: "g-7", To: Target{Group: 987654},
			Segments: []Segment{TextSegment("好啊 "), FaceSegment(14), FaceSegment(0)}}},
		{"group_gid.json", KindGroup, Request{To: Target{GID: 2323421101}, Text: "line one\nline two"}},
		{"discuss.json", KindDiscuss, Request{To: Target{DID: 2322423201}, Text: "hi all"}},
		{"sess.json", KindSess, Request{To: Target{QQ: 777, Group: 987654}, Text: "请问"}},
		{"sess_session.json", KindSess, Request{V: 1, ID: "s-2", To: Target{UIN: 4000000001, GID: 2323421101},
			Segments: []Segment{FaceSegment(0)}}},
	}
}

func TestDecodeRequestValid(t *testing.T) {
	for _, tt := range validRequests() {
		t.Run(tt.file, func(t *testing.T) {
			data := readTestdata(t, "requests/"+tt.file)
			for _, ct := range []string{"", ContentTypeJSON, "application/json; charset=utf-8"} {
				r, err := DecodeRequest(ct, data)
				if err != nil {
					t.Fatalf("content type %q: %v", ct, err)
				}
				if !reflect.DeepEqual(*r, tt.want) {
					t.Errorf("got %+v, want %+v", *r, tt.want)
				}
				if err := r.Validate(tt.kind); err != nil {
					t.Errorf("Validate(%s): %v", tt.kind, err)
				}
			}
		})
	}
}

// TestRequestRoundTrip encodes each valid request in both codecs and decodes
// it with DecodeRequest.
func TestRequestRoundTrip(t *testing.T) {
	for _, c := range []Codec{JSON(), Msgpack()} {
		for _, tt := range validRequests() {
			data, err := c.Marshal(&tt.want)
			if err != nil {
				t.Fatal(err)
			}
			r, err := DecodeRequest(c.ContentType(), data)
			if err != nil {
				t.Fatalf("%s %s: %v (%q)", c.ContentType(), tt.file, err, data)
			}
			if !reflect.DeepEqual(*r, tt.want) {
				t.Errorf("%s %s: got %+v, want %+v", c.ContentType(), tt.file, *r, tt.want)
			}
		}
	}
}

func mpack(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeRequestMalformed(t *testing.T) {
	okMsgpack := mpack(t, map[string]any{"to": map[string]any{"qq": 1}, "text": "x"})
	tests := []struct {
		name        string
		contentType string
		data        []byte
		field       string // ValidationError.Field
		reason      string // a part of ValidationError.Reason
	}{
		{"unknown content type", "text/plain", []byte(`{"to":{"qq":1},"text":"x"}`), "content-type", "text/plain"},
		{"empty", "", nil, "body", "not a JSON object"},
		{"blank", "", []byte(" \n"), "body", "not a JSON object"},
		{"null", "", []byte("null"), "body", "not a JSON object"},
		{"array", "", []byte(`[{"to":{"qq":1}}]`), "body", "not a JSON object"},
		{"string", "", []byte(`"hello"`), "body", "not a JSON object"},
		{"truncated", "", []byte(`{"to":{"qq":1},"text":"x`), "body", "truncated"},
		{"syntax", "", []byte(`{"to":{"qq":1},,"text":"x"}`), "body", "malformed JSON at byte"},
		{"trailing object", "", []byte(`{"to":{"qq":1},"text":"x"}{}`), "body", "data after"},
		{"trailing garbage", "", []byte(`{"to":{"qq":1},"text":"x"} x`), "body", "data after"},
		{"unknown field", "", []byte(`{"to":{"qq":1},"txt":"x"}`), "body", `unknown field "txt"`},
		{"unknown target field", "", []byte(`{"to":{"qq":1,"phone":2},"text":"x"}`), "body", `unknown field "phone"`},
		{"unknown segment field", "", []byte(`{"to":{"qq":1},"segments":[{"type":"face","face":1,"size":2}]}`), "body", `unknown field "size"`},
		{"number as string", "", []byte(`{"to":{"qq":"123"},"text":"x"}`), "body", "field to.qq"},
		{"float number", "", []byte(`{"to":{"qq":1.5},"text":"x"}`), "body", "field to.qq"},
		{"huge number", "", []byte(`{"to":{"qq":99999999999999999999},"text":"x"}`), "body", "field to.qq"},
		{"text not string", "", []byte(`{"to":{"qq":1},"text":5}`), "body", "field text"},
		{"to not object", "", []byte(`{"to":123,"text":"x"}`), "body", "field to"},
		{"segments not array", "", []byte(`{"to":{"qq":1},"segments":{"type":"text"}}`), "body", "field segments"},
		{"missing to", "", []byte(`{"text":"x"}`), "to", "missing"},
		{"null to", "", []byte(`{"to":null,"text":"x"}`), "to", "missing"},
		{"bad v", "", []byte(`{"v":2,"to":{"qq":1},"text":"x"}`), "v", "version 2"},
		{"v zero", "", []byte(`{"v":0,"to":{"qq":1},"text":"x"}`), "v", "version 0"},
		{"face without face", "", []byte(`{"to":{"qq":1},"segments":[{"type":"face"}]}`), "segments[0].face", "missing"},
		{"face with text", "", []byte(`{"to":{"qq":1},"segments":[{"type":"face","face":1,"text":"a"}]}`), "segments[0].text", "no text"},
		{"text without text", "", []byte(`{"to":{"qq":1},"segments":[{"type":"text","text":"a"},{"type":"text"}]}`), "segments[1].text", "missing"},
		{"text with face", "", []byte(`{"to":{"qq":1},"segments":[{"type":"text","text":"a","face":0}]}`), "segments[0].face", "no face"},
		{"segment without type", "", []byte(`{"to":{"qq":1},"segments":[{"text":"a"}]}`), "segments[0].type", "missing"},
		{"segment of unknown type", "", []byte(`{"to":{"qq":1},"segments":[{"type":"image","text":"a"}]}`), "segments[0].type", `"image"`},
		{"too many segments", "", []byte(`{"to":{"qq":1},"segments":[` + strings.Repeat(`{"type":"face","face":1},`, MaxSegments) + `{"type":"face","face":1}]}`), "segments", "at most"},
		{"too large", "", append(append([]byte(`{"to":{"qq":1},"text":"`), bytes.Repeat([]byte("a"), MaxRequestBytes)...), `"}`...), "body", "at most"},
		{"msgpack empty", ContentTypeMsgpack, nil, "body", "empty"},
		{"msgpack array", ContentTypeMsgpack, mpack(t, []any{map[string]any{"qq": 1}, "x"}), "body", "not a msgpack map"},
		{"msgpack string", ContentTypeMsgpack, mpack(t, "hello"), "body", "not a msgpack map"},
		{"msgpack JSON body", ContentTypeMsgpack, []byte(`{"to":{"qq":1},"text":"x"}`), "body", "not a msgpack map"},
		{"msgpack truncated", ContentTypeMsgpack, okMsgpack[:len(okMsgpack)-1], "body", "truncated"},
		{"msgpack trailing", ContentTypeMsgpack, append(bytes.Clone(okMsgpack), 0xc0), "body", "data after"},
		{"msgpack unknown field", ContentTypeMsgpack, mpack(t, map[string]any{"to": map[string]any{"qq": 1}, "txt": "x"}), "body", `unknown field "txt"`},
		{"msgpack wrong type", ContentTypeMsgpack, mpack(t, map[string]any{"to": map[string]any{"qq": "1"}, "text": "x"}), "body", "malformed msgpack"},
		{"msgpack face missing", ContentTypeMsgpack, mpack(t, map[string]any{"to": map[string]any{"qq": 1}, "segments": []any{map[string]any{"type": "face"}}}), "segments[0].face", "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := DecodeRequest(tt.contentType, tt.data)
			if r != nil {
				t.Errorf("got a request with the error: %+v", r)
			}
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("err = %v, want ErrInvalidRequest", err)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err %T is not a *ValidationError", err)
			}
			if ve.Field != tt.field || !strings.Contains(ve.Reason, tt.reason) {
				t.Errorf("got field %q reason %q; want field %q reason containing %q", ve.Field, ve.Reason, tt.field, tt.reason)
			}
		})
	}
	_, err := DecodeRequest("text/plain", []byte(`{}`))
	if !errors.Is(err, ErrUnsupportedContentType) {
		t.Errorf("unknown content type: %v does not match ErrUnsupportedContentType", err)
	}
}

func TestValidate(t *testing.T) {
	text := func(to Target) Request { return Request{To: to, Text: "hi"} }
	tests := []struct {
		name   string
		kind   Kind
		req    Request
		field  string // "" with reason "" means valid
		reason string
	}{
		{"friend by qq", KindFriend, text(Target{QQ: 1}), "", ""},
		{"friend by uin", KindFriend, text(Target{UIN: 1}), "", ""},
		{"group by number", KindGroup, text(Target{Group: 1}), "", ""},
		{"group by gid", KindGroup, text(Target{GID: 1}), "", ""},
		{"discuss", KindDiscuss, text(Target{DID: 1}), "", ""},
		{"sess qq+group", KindSess, text(Target{QQ: 1, Group: 2}), "", ""},
		{"sess uin+gid", KindSess, text(Target{UIN: 1, GID: 2}), "", ""},
		{"sess qq+gid", KindSess, text(Target{QQ: 1, GID: 2}), "", ""},
		{"v 1", KindFriend, Request{V: 1, To: Target{QQ: 1}, Text: "x"}, "", ""},
		{"longest text", KindFriend, Request{To: Target{QQ: 1}, Text: strings.Repeat("好", MaxTextBytes/3)}, "", ""},
		{"faces only", KindGroup, Request{To: Target{Group: 1}, Segments: []Segment{FaceSegment(0), FaceSegment(MaxFace)}}, "", ""},
		{"id", KindFriend, Request{ID: "订单-42", To: Target{QQ: 1}, Text: "x"}, "", ""},

		{"kind status", KindStatus, text(Target{QQ: 1}), "kind", "cannot be sent"},
		{"kind system", KindSystem, text(Target{QQ: 1}), "kind", "cannot be sent"},
		{"kind empty", "", text(Target{QQ: 1}), "kind", "cannot be sent"},
		{"v 2", KindFriend, Request{V: 2, To: Target{QQ: 1}, Text: "x"}, "v", "version 2"},
		{"id too long", KindFriend, Request{ID: strings.Repeat("a", MaxIDBytes+1), To: Target{QQ: 1}, Text: "x"}, "id", "longer than"},
		{"id control", KindFriend, Request{ID: "a\nb", To: Target{QQ: 1}, Text: "x"}, "id", "printable"},
		{"id invalid UTF-8", KindFriend, Request{ID: "a\xffb", To: Target{QQ: 1}, Text: "x"}, "id", "printable"},
		{"friend no target", KindFriend, text(Target{}), "to", "friend needs qq or uin"},
		{"friend both", KindFriend, text(Target{QQ: 1, UIN: 2}), "to", "not both"},
		{"friend with group", KindFriend, text(Target{QQ: 1, Group: 2}), "to.group", "not used by friend"},
		{"friend with did", KindFriend, text(Target{QQ: 1, DID: 2}), "to.did", "not used by friend"},
		{"friend negative qq", KindFriend, text(Target{QQ: -1}), "to.qq", "positive"},
		{"group no target", KindGroup, text(Target{}), "to", "group needs group or gid"},
		{"group both", KindGroup, text(Target{Group: 1, GID: 2}), "to", "not both"},
		{"group with qq", KindGroup, text(Target{Group: 1, QQ: 2}), "to.qq", "not used by group"},
		{"group negative gid", KindGroup, text(Target{GID: -5}), "to.gid", "positive"},
		{"discuss no target", KindDiscuss, text(Target{}), "to", "discuss needs did"},
		{"discuss with uin", KindDiscuss, text(Target{DID: 1, UIN: 2}), "to.uin", "not used by discuss"},
		{"discuss negative", KindDiscuss, text(Target{DID: -1}), "to.did", "positive"},
		{"sess no person", KindSess, text(Target{Group: 1}), "to", "sess needs qq or uin"},
		{"sess no group", KindSess, text(Target{QQ: 1}), "to", "sess needs group or gid"},
		{"sess two persons", KindSess, text(Target{QQ: 1, UIN: 1, Group: 1}), "to", "not both"},
		{"sess two groups", KindSess, text(Target{QQ: 1, Group: 1, GID: 1}), "to", "not both"},
		{"sess with did", KindSess, text(Target{QQ: 1, Group: 1, DID: 1}), "to.did", "not used by sess"},
		{"empty", KindFriend, Request{To: Target{QQ: 1}}, "", "empty message"},
		{"empty segments", KindFriend, Request{To: Target{QQ: 1}, Segments: []Segment{}}, "", "empty message"},
		{"text and segments", KindFriend, Request{To: Target{QQ: 1}, Text: "a", Segments: []Segment{TextSegment("b")}}, "", "exclusive"},
		{"text too long", KindFriend, Request{To: Target{QQ: 1}, Text: strings.Repeat("a", MaxTextBytes+1)}, "text", "longer than"},
		{"text invalid UTF-8", KindFriend, Request{To: Target{QQ: 1}, Text: "a\xc3"}, "text", "UTF-8"},
		{"text NUL", KindFriend, Request{To: Target{QQ: 1}, Text: "a\x00b"}, "text", "NUL"},
		{"segments text too long", KindFriend, Request{To: Target{QQ: 1}, Segments: []Segment{
			TextSegment(strings.Repeat("a", MaxTextBytes)), FaceSegment(1), TextSegment("b")}}, "segments[2].text", "longer than"},
		{"too many segments", KindFriend, Request{To: Target{QQ: 1}, Segments: make([]Segment, MaxSegments+1)}, "segments", "at most"},
		{"segment no type", KindFriend, Request{To: Target{QQ: 1}, Segments: []Segment{{Text: "a"}}}, "segments[0].type", "missing"},
		{"segment bad type", KindFriend, Request{To: Target{QQ: 1}, Segments: []Segment{{Type: "image"}}}, "segments[0].type", `"image"`},
		{"segment empty text", KindFriend, Request{To: Target{QQ: 1}, Segments: []Segment{FaceSegment(1), TextSegment("")}}, "segments[1].text", "empty"},
		{"text segment with face", KindFriend, Request{To: Target{QQ: 1}, Segments: []Segment{{Type: "text", Text: "a", Face: 3}}}, "segments[0].face", "no face"},
		{"face segment with text", KindFriend, Request{To: Target{QQ: 1}, Segments: []Segment{{Type: "face", Text: "a"}}}, "segments[0].text", "no text"},
		{"face negative", KindFriend, Request{To: Target{QQ: 1}, Segments: []Segment{FaceSegment(-1)}}, "segments[0].face", "out of range"},
		{"face too big", KindFriend, Request{To: Target{QQ: 1}, Segments: []Segment{FaceSegment(MaxFace + 1)}}, "segments[0].face", "out of range"},
		{"segment text NUL", KindFriend, Request{To: Target{QQ: 1}, Segments: []Segment{TextSegment("\x00")}}, "segments[0].text", "NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.req.Validate(tt.kind)
			if tt.field == "" && tt.reason == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("err = %v, want ErrInvalidRequest", err)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err %T is not a *ValidationError", err)
			}
			if ve.Field != tt.field || !strings.Contains(ve.Reason, tt.reason) {
				t.Errorf("got field %q reason %q; want field %q reason containing %q", ve.Field, ve.Reason, tt.field, tt.reason)
			}
			if !strings.HasPrefix(err.Error(), "invalid request: ") {
				t.Errorf("Error() = %q", err.Error())
			}
		})
	}
	var nilReq *Request
	if err := nilReq.Validate(KindFriend); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("nil request: %v", err)
	}
}

func TestValidationErrorText(t *testing.T) {
	err := (&Request{To: Target{QQ: -3}, Text: "x"}).Validate(KindFriend)
	if got, want := err.Error(), "invalid request: to.qq: must be positive, got -3"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// TestInvalidUTF8Refused: a request whose text holds bytes that are not
// UTF-8 is refused in both codecs. encoding/json would replace the bad bytes
// with U+FFFD before Validate could see them, so the JSON decoder checks the
// raw body first.
func TestInvalidUTF8Refused(t *testing.T) {
	jsonBody := []byte("{\"to\":{\"qq\":1},\"text\":\"ok\xff\xfe\"}")
	mpBody, err := msgpack.Marshal(map[string]any{"to": map[string]any{"qq": 1}, "text": "ok\xff\xfe"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, ct string
		body     []byte
	}{{"json", "", jsonBody}, {"msgpack", ContentTypeMsgpack, mpBody}} {
		t.Run(c.name, func(t *testing.T) {
			r, err := DecodeRequest(c.ct, c.body)
			if err == nil {
				err = r.Validate(KindFriend)
			}
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("decoded %+v, Validate: %v; want invalid_request", r, err)
			}
			if !strings.Contains(err.Error(), "UTF-8") {
				t.Errorf("error %q does not say UTF-8", err)
			}
		})
	}
}
