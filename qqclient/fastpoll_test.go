package qqclient

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// pollItems returns the items of every poll2 answer under testdata/poll
// that is JSON.
func pollItems(t testing.TB) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "poll", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no poll testdata: %v", err)
	}
	var out [][]byte
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var a struct {
			Result []json.RawMessage `json:"result"`
		}
		if json.Unmarshal(stripTrailingCommas(b), &a) != nil {
			continue
		}
		for _, it := range a.Result {
			out = append(out, it)
		}
	}
	return out
}

// fastItemSeeds are items the fast decoding takes on or must give up on.
var fastItemSeeds = []string{
	`{"poll_type":"group_message","value":{"msg_id":50873,"msg_id2":1,"msg_type":43,"from_uin":2890,"group_code":2890,"send_uin":4711,"seq":51,"to_uin":931996776,"time":1450687625,"content":[["font",{"name":"微软雅黑","size":10,"style":[0,0,0],"color":"000000"}],"好啊 ",["face",14]]}}`,
	`{"poll_type":"message","value":{"msg_id":1,"from_uin":2,"content":["a\"b\\c\/\n\t\u00e9\ud83d\ude00\ud800x\udc00","",["face", 0 ],["face",null],["offpic",{"success":1,"file_path":"/p"}],["cface",{"name":"x.jpg","file_id":7,"key":"k","server":"1.2.3.4:80"}],["cface"],["x"],[1],[],1.5e3,{},null,true]}}`,
	`{"poll_type":"message","value":{"msg_id":1,"content":[["font",{"name":"\u5b8b\u4f53","size":"10","style":[1,2,3,4],"color":null,"x":[{}]}],["font",null],"&lt;b&gt;"]}}`,
	`{"poll_type":"message","value":{"MSG_ID":1,"content":["x"]}}`, `{"poll_type":"message","value":{"msg_id":1,"msg_id":2,"content":["x"]}}`,
	`{"poll_type":"message","value":{"msg_id":1,"content":"[\"hi\"]"}}`, `{"poll_type":"message","value":{"msg_id":1}}`,
	`{"poll_type":"message","value":{"msg_id":1.0,"content":[]}}`, `{"poll_type":"message","value":{"msg_id":12345678901234567890,"content":[]}}`,
	`{"poll_type":"message","value":{"msg_\u0069d":3,"content":[]}}`, `{"poll_type":"message","value":{"ſeq":3,"content":[]}}`,
	`{"poll_type":"message","value":{"time":-1,"did":null,"content":[["face",2147483648]]}}`,
	`{"poll_type":"kick_message","value":{"msg_id":1,"reason":"r","show_reason":1}}`, `{"poll_type":"kick_message"}`,
	`{"poll_type":"kick_message","value":{"reason":7}}`, `{"poll_type":"kick_message","value":[]}`,
	`{"poll_type":"buddies_status_change","value":{"uin":1,"status":"online","client_type":1}}`,
	`{"poll_type":"input_notify","value":{"msg_id":1,"from_uin":2,"to_uin":3,"reply_ip":4}}`,
	`{"poll_type":"tips","value":{"from_uin":10000,"type":2,"txt":"tip"}}`, `{"poll_type":"sys_g_msg","value":{"type":true}}`,
	`{"poll_type":"file_message","value":{"msg_id":1,"from_uin":2,"mode":"recv","session_id":3,"name":"a"}}`,
	`{"poll_type":"shake_message","value":{"msg_id":1205,"from_uin":3785096088}}`, `{"poll_type":"x"}`, `{"poll_type":"x","value":null}`,
	`{"poll_type":7}`, `{"poll_type":null}`, `{"value":{}}`, `null`, `[]`, `1`, `{"poll_type":"x"}x`, ` {"poll_type":"x"} `,
	`{"poll_type":"gr\u006fup_message","value":{"content":[]}}`, `{"poll_type":"x\xff"}`, `{"poll_type":"x","poll_type":"y"}`,
	`{"Poll_Type":"x"}`, `{"poll_type":"message","value":{"content":[[[[[[[[[[[[[]]]]]]]]]]]]]}}`,
}

// FuzzDecodeEventSameAsGeneral: the fast decoding of an item decodes every
// input as encoding/json does (decodeEventGeneral), or leaves it to it.
func FuzzDecodeEventSameAsGeneral(f *testing.F) {
	for _, it := range pollItems(f) {
		f.Add(it)
	}
	for _, s := range fastItemSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, want := DecodeEvent(b), decodeEventGeneral(b)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\n got %#v\nwant %#v", b, got, want)
		}
		if got.Message != nil && want.Message != nil && !reflect.DeepEqual(*got.Message, *want.Message) {
			t.Fatalf("%q: message\n got %#v\nwant %#v", b, *got.Message, *want.Message)
		}
	})
}

// TestFastDecodingTakesTheSeeds: the items of the seeds (but file messages
// and malformed items) are decoded the fast way, as the general way decodes
// them.
func TestFastDecodingTakesTheSeeds(t *testing.T) {
	items := pollItems(t)
	if len(items) < 8 {
		t.Fatalf("%d items", len(items))
	}
	for _, it := range items {
		sl := slabs{msgs: 1, segs: 1}
		ev, ok := sl.fastEvent(it)
		if !ok {
			if bytes.Contains(it, []byte(`"file_message"`)) || decodeEventGeneral(it).Err != nil {
				continue
			}
			t.Errorf("%s: not decoded the fast way", it)
			continue
		}
		if want := decodeEventGeneral(it); !reflect.DeepEqual(ev, want) {
			t.Errorf("%s:\n got %#v\nwant %#v", it, ev, want)
		}
	}
}

// pollAnswerReference decodes a poll2 answer that is JSON with encoding/json
// only: the envelope and every item (decodeEventGeneral).
func pollAnswerReference(body []byte) (pollAnswer, bool) {
	var e struct {
		Retcode *flexInt          `json:"retcode"`
		Result  []json.RawMessage `json:"result"`
		P       flexString        `json:"p"`
	}
	if json.Unmarshal(body, &e) != nil || e.Retcode == nil {
		return pollAnswer{}, false
	}
	a := pollAnswer{retcode: int(*e.Retcode), p: string(e.P)}
	if a.retcode == 0 && e.Result != nil {
		a.events = make([]Event, 0, len(e.Result))
		for _, it := range e.Result {
			a.events = append(a.events, decodeEventGeneral(it))
		}
	}
	return a, true
}

// FuzzFastPollAnswerSameAsEncodingJSON: an answer the fast decoding takes
// is one encoding/json decodes alike, envelope and items.
func FuzzFastPollAnswerSameAsEncodingJSON(f *testing.F) {
	addPollSeeds(f)
	for _, s := range fastItemSeeds {
		f.Add([]byte(`{"retcode":0,"result":[` + s + `]}`))
	}
	for _, s := range []string{
		`{"retcode":0,"result":[]}`, `{"retcode":0,"result":null}`, `{"retcode":0}`, `{"retcode":null}`,
		`{"retcode":116,"p":"a\u0062c"}`, `{"retcode":116,"p":12.5}`, `{"retcode":116,"p":null}`, `{"retcode":"0"}`,
		`{"retcode":0,"retcode":0}`, `{"RETCODE":0}`, `{"retcode":0,"result":[],"errmsg":"x"} `, `{"retcode":0,"result":{}}`,
		`{"retcode":1,"result":[{"poll_type":"x"}]}`, ` {"retcode":0,"result":[null,1,"s",{"poll_type":"x"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := fastPollAnswer(b)
		if !ok {
			return
		}
		want, ok := pollAnswerReference(b)
		if !ok {
			t.Fatalf("%q: decoded the fast way, encoding/json does not decode it", b)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\n got %#v\nwant %#v", b, got, want)
		}
	})
}

// TestFastPollAnswerTakesTheSeeds: the seeds' answers that are JSON are
// decoded the fast way.
func TestFastPollAnswerTakesTheSeeds(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "poll", "*.json"))
	n := 0
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(b) {
			continue
		}
		n++
		got, ok := fastPollAnswer(b)
		want, _ := pollAnswerReference(b)
		if !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: fast %v\n got %#v\nwant %#v", p, ok, got, want)
		}
	}
	if n < 4 {
		t.Fatalf("only %d seeds are JSON", n)
	}
}

// FuzzReaderSameAsEncodingJSON: the reader takes exactly the JSON values
// encoding/json takes (within its nesting limit), and decodes strings and
// the integers of flexInt as encoding/json does.
func FuzzReaderSameAsEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`"a\"b\\c\/\b\f\n\r\t\u00e9\uD83D\uDE00\ud800\udc00x\udc00\ud800\ud800\u0041"`, "\"\xff\xfe\"", "\"\x01\"", `"\x"`, `"\u12"`,
		`-0`, `-`, `01`, `1.`, `1.5e+3`, `1e`, `.5`, `123456789012345678`, `1234567890123456789`, `-12`,
		`{"a":[1,{"b":null}],"c":true,"d":false}`, `{"a":1,}`, `[1,]`, `[1 2]`, `{"a" 1}`, `{1:2}`, ` [ ] `, `nul`, `truex`,
		strings.Repeat("[", 300) + strings.Repeat("]", 300),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := reader{b: b}
		ok := r.skip() && r.end()
		deep := bytes.Count(b, []byte("["))+bytes.Count(b, []byte("{")) >= maxReadDepth
		if valid := json.Valid(b); ok != valid && !(valid && deep) {
			t.Fatalf("%q: reader %v, encoding/json valid %v", b, ok, valid)
		}
		if !ok {
			return
		}
		r = reader{b: b}
		if r.peek() == '"' {
			text, plain, _ := r.str()
			var want string
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			if got := unquote(text, plain); got != want {
				t.Fatalf("%q: unquote %q, want %q", b, got, want)
			}
			if plain && string(text) != want {
				t.Fatalf("%q: plain but %q", b, want)
			}
			return
		}
		if n, ok := r.flexInt(); ok && r.end() {
			var want flexInt
			if err := json.Unmarshal(b, &want); err != nil || int64(want) != n {
				t.Fatalf("%q: flexInt %d, encoding/json %d (%v)", b, n, want, err)
			}
		}
		r = reader{b: b}
		if s, ok := r.flexString(); ok && r.end() {
			var want flexString
			if err := json.Unmarshal(b, &want); err != nil || string(want) != s {
				t.Fatalf("%q: flexString %q, encoding/json %q (%v)", b, s, want, err)
			}
		}
	})
}

// TestRawOfAnAnswerIsItsOwn: appending to an event's Raw (a slice of the
// answer) leaves the other events' Raw as they were.
func TestRawOfAnAnswerIsItsOwn(t *testing.T) {
	body := []byte(`{"retcode":0,"result":[{"poll_type":"x","value":{"a":1}},{"poll_type":"y","value":{"b":2}},{"poll_type":"z"}]}`)
	a, ok := fastPollAnswer(body)
	if !ok || len(a.events) != 3 {
		t.Fatalf("%v %+v", ok, a)
	}
	want := []string{`{"b":2}`, `{"poll_type":"z"}`}
	more := strings.Repeat("X", 40)
	grown := [][]byte{append(a.events[0].Raw, more...), append(a.events[1].Raw, more...)}
	if string(grown[0]) != `{"a":1}`+more {
		t.Fatalf("append gave %s", grown[0])
	}
	for k, w := range want {
		if got := string(a.events[k+1].Raw); got != w {
			t.Errorf("event %d: Raw %s after an append to the one before, want %s", k+1, got, w)
		}
	}
}
