package qqsim

import (
	"bytes"
	"encoding/json"
	"testing"
)

// encodeResult is what writeJSON wrote for a result before appendResultItems:
// encoding/json with HTML not escaped, without the trailing newline.
func encodeResult(t testing.TB, retcode int, items []any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(result{Retcode: retcode, Result: items}); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimRight(b.Bytes(), "\n")
}

// TestResultItemsAsEncodingJSON: a poll answer of queued (raw) and rendered
// items is written byte for byte as encoding/json writes it.
func TestResultItemsAsEncodingJSON(t *testing.T) {
	raw := func(s string) json.RawMessage {
		c, err := compactJSON([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cases := [][]any{
		{},
		{raw(`{"poll_type":"message","value":{"msg_id":1,"content":["好啊 <b>&amp;</b>\u2028",["face",14]]}}`)},
		{raw(` { "poll_type" : "group_message", "value" : { "msg_id" : 2 } } `), map[string]any{"poll_type": "kick_message", "value": map[string]any{"reason": "<another> & device", "msg_id": 3}}},
		{map[string]any{"a": 1.5, "b": []any{"x", nil, true}}, json.RawMessage(nil), raw(`[1,2,{"k":"\u00e9"}]`)},
	}
	for k, items := range cases {
		got, err := appendResultItems(nil, 0, items)
		if err != nil {
			t.Fatal(err)
		}
		if want := encodeResult(t, 0, items); !bytes.Equal(got, want) {
			t.Errorf("case %d:\n got %s\nwant %s", k, got, want)
		}
	}
}

// FuzzResultItems: any valid JSON item, compacted as Inject does, is written
// as encoding/json writes it.
func FuzzResultItems(f *testing.F) {
	for _, s := range []string{`{"poll_type":"message","value":{}}`, `"<&>"`, `[1,"\u2029",{"a":null}]`, `{"a" : [ 1 , 2 ] }`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := compactJSON([]byte(s))
		if err != nil {
			return
		}
		items := []any{json.RawMessage(c), map[string]any{"s": s}}
		got, err := appendResultItems(nil, 0, items)
		if err != nil {
			t.Fatal(err)
		}
		if want := encodeResult(t, 0, items); !bytes.Equal(got, want) {
			t.Errorf("got %s\nwant %s", got, want)
		}
	})
}
