package schema

import (
	"errors"
	"reflect"
	"testing"
)

// TestEncodeRequestGolden encodes a reply built from each golden message
// event and compares the body with testdata/requests_encoded/<name>.json; the
// headers are Content-Type and Nats-Msg-Id; the body decodes (DecodeRequest,
// both codecs) to the request.
func TestEncodeRequestGolden(t *testing.T) {
	for _, name := range []string{"friend", "friend_unresolved", "group", "discuss", "sess"} {
		t.Run(name, func(t *testing.T) {
			e, err := DecodeEvent(nil, readTestdata(t, "events/"+name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			kind, to, err := ReplyTarget(e)
			if err != nil {
				t.Fatal(err)
			}
			req := &Request{ID: e.ID + ":reply", To: to, Segments: []Segment{TextSegment("收到 "), FaceSegment(14)}}
			for _, c := range []Codec{JSON(), Msgpack()} {
				body, h, err := EncodeRequest(c, kind, req)
				if err != nil {
					t.Fatal(err)
				}
				want := map[string][]string{HeaderContentType: {c.ContentType()}, HeaderMsgID: {e.ID + ":reply"}}
				if !reflect.DeepEqual(h, want) {
					t.Errorf("%s headers %v, want %v", c.ContentType(), h, want)
				}
				if c.ContentType() == ContentTypeJSON {
					if golden := readTestdata(t, "requests_encoded/"+name+".json"); string(body)+"\n" != string(golden) {
						t.Errorf("body\n%s\nwant\n%s", body, golden)
					}
				}
				back, err := DecodeRequest(h[HeaderContentType][0], body)
				if err != nil {
					t.Fatalf("%s: %v", c.ContentType(), err)
				}
				if !reflect.DeepEqual(back, req) {
					t.Errorf("%s: decoded %+v, want %+v", c.ContentType(), back, req)
				}
			}
		})
	}
}

// TestEncodeRequestRefuses: an invalid request or one without an id is
// refused with a ValidationError naming the field, and nothing is encoded.
func TestEncodeRequestRefuses(t *testing.T) {
	tests := []struct {
		name  string
		kind  Kind
		r     *Request
		field string
	}{
		{"no id", KindGroup, &Request{To: Target{Group: 1}, Text: "x"}, "id"},
		{"no target", KindGroup, &Request{ID: "a", Text: "x"}, "to"},
		{"wrong kind", KindStatus, &Request{ID: "a", To: Target{QQ: 1}, Text: "x"}, "kind"},
		{"no content", KindFriend, &Request{ID: "a", To: Target{QQ: 1}}, ""},
		{"nil", KindFriend, nil, "body"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body, h, err := EncodeRequest(JSON(), tc.kind, tc.r)
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("err %v, want a ValidationError", err)
			}
			if ve.Field != tc.field && !(tc.field == "to" && len(ve.Field) > 2 && ve.Field[:2] == "to") {
				t.Errorf("field %q, want %q (%v)", ve.Field, tc.field, err)
			}
			if body != nil || h != nil {
				t.Errorf("encoded %q %v despite the error", body, h)
			}
		})
	}
}
