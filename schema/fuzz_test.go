package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// contentTypeOf maps the fuzzer's codec selector to a Content-Type: even is
// JSON, odd is msgpack.
func contentTypeOf(sel uint8) string {
	if sel%2 == 1 {
		return ContentTypeMsgpack
	}
	return ContentTypeJSON
}

// testdataFiles returns the contents of every file in testdata/<dir>.
func testdataFiles(f *testing.F, dir string) [][]byte {
	f.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
	if err != nil || len(names) == 0 {
		f.Fatalf("no seed files in testdata/%s: %v", dir, err)
	}
	var out [][]byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzDecodeRequest feeds DecodeRequest arbitrary bodies. It must never
// panic; every error must be a *ValidationError matching ErrInvalidRequest
// and short enough not to echo the body; every request it accepts must
// survive Validate and re-encode to a body that decodes to the same request.
func FuzzDecodeRequest(f *testing.F) {
	for _, b := range testdataFiles(f, "requests") {
		f.Add(uint8(0), b)
		r, err := DecodeRequest("", b)
		if err != nil {
			f.Fatal(err)
		}
		mp, err := Msgpack().Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(1), mp)
	}
	for _, s := range []string{
		``, `null`, `{}`, `{"to":{}}`, `{"to":{"qq":1},"text":""}`, `{"to":{"qq":-1},"segments":[]}`,
		`{"to":{"qq":1},"segments":[{"type":"face"}]}`, `{"to":{"qq":1},"segments":[{"type":"text","text":""}]}`,
		`{"v":1,"id":"\u0000","to":{"qq":1,"group":2,"uin":3,"gid":4,"did":5},"text":"\ud800"}`,
		`{"to":{"qq":1},"text":"x"} {}`, `{"TO":{"QQ":1},"Text":"x"}`,
		"{\"to\":{\"qq\":1},\"text\":\"ok\xff\xfe\"}",
	} {
		f.Add(uint8(0), []byte(s))
	}
	f.Add(uint8(1), []byte{0x81, 0xa8, 's', 'e', 'g', 'm', 'e', 'n', 't', 's', 0xdd, 0x7f, 0xff, 0xff, 0xff})
	f.Add(uint8(1), []byte{0x80})
	f.Add(uint8(1), []byte("\x82\xa2to\x81\xa2qq\x01\xa4text\xa4ok\xff\xfe")) // invalid UTF-8 in msgpack
	f.Fuzz(func(t *testing.T, sel uint8, data []byte) {
		ct := contentTypeOf(sel)
		c, _ := CodecFor(ct)
		r, err := DecodeRequest(ct, data)
		if err != nil {
			var ve *ValidationError
			if !errors.Is(err, ErrInvalidRequest) || !errors.As(err, &ve) || r != nil {
				t.Fatalf("error %T %v (request %v)", err, err, r)
			}
			if len(err.Error()) > 300 {
				t.Fatalf("error of %d bytes: %.100s…", len(err.Error()), err)
			}
			return
		}
		if _, isJSON := c.(jsonCodec); isJSON && !utf8.Valid(data) {
			t.Fatalf("JSON body with invalid UTF-8 accepted as %+v", r)
		}
		for _, k := range []Kind{KindFriend, KindGroup, KindDiscuss, KindSess, KindStatus} {
			if err := r.Validate(k); err != nil && !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("Validate(%s) = %v", k, err)
			}
		}
		again, err := c.Marshal(r)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", r, err)
		}
		if len(again) > MaxRequestBytes {
			return // escaping can grow a body past the limit
		}
		r2, err := DecodeRequest(ct, again)
		if err != nil {
			t.Fatalf("re-encoded request %q does not decode: %v", again, err)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("re-encoding changed the request:\n%+v\n%+v", r, r2)
		}
	})
}

// FuzzDecodeEvent feeds DecodeEvent arbitrary bodies in both codecs. It must
// never panic; errors must match one of the documented sentinels; every
// event it accepts must re-encode (unless its raw is not JSON) and decode to
// the same event.
func FuzzDecodeEvent(f *testing.F) {
	for _, b := range testdataFiles(f, "events") {
		f.Add(uint8(0), b)
		e, err := DecodeEvent(nil, b)
		if err != nil {
			f.Fatal(err)
		}
		mp, err := Msgpack().Marshal(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(1), mp)
	}
	for _, s := range []string{
		``, `{}`, `{"v":1}`, `{"v":2}`, `{"v":1,"raw":[1, 2 ,3 ]}`, `{"v":1,"time":"2015-12-21T08:47:05+08:00"}`,
		`{"v":1,"segments":[{"type":"face"},{"type":"text"},{"type":"x","text":"a","face":3}]}`,
		`{"v":1,"from":null,"group":{},"status":{"client_type":-1}}`,
	} {
		f.Add(uint8(0), []byte(s))
	}
	f.Add(uint8(1), []byte{0x81, 0xa3, 'r', 'a', 'w', 0xc4, 0x01, '{'})
	f.Fuzz(func(t *testing.T, sel uint8, data []byte) {
		ct := contentTypeOf(sel)
		h := map[string][]string{HeaderContentType: {ct}}
		e, err := DecodeEvent(h, data)
		if err != nil {
			if !errors.Is(err, ErrInvalidEvent) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("error %v matches no sentinel", err)
			}
			return
		}
		c, _ := CodecFor(ct)
		again, h2, err := e.Encode(c)
		if err != nil {
			if len(e.Raw) > 0 && !json.Valid(e.Raw) {
				return // msgpack can carry a raw that is not JSON; encoding refuses it
			}
			t.Fatalf("re-encoding %+v: %v", e, err)
		}
		e2, err := DecodeEvent(h2, again)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v\n%q", err, again)
		}
		if !e2.Time.Equal(e.Time) {
			t.Fatalf("time %v became %v", e.Time, e2.Time)
		}
		e2.Time = e.Time
		if len(e.Raw) > 0 {
			var buf bytes.Buffer
			if err := json.Compact(&buf, e.Raw); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), e2.Raw) {
				t.Fatalf("raw %s became %s", e.Raw, e2.Raw)
			}
			e2.Raw = e.Raw
		}
		if !reflect.DeepEqual(e, e2) {
			t.Fatalf("re-encoding changed the event:\n%+v\n%+v", e, e2)
		}
		if got := HeaderValue(h2, HeaderCEID); got != e.ID || !strings.HasPrefix(HeaderValue(h2, HeaderCEType), CETypePrefix) {
			t.Fatalf("headers %v", h2)
		}
	})
}
