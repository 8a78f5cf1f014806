package qqclient

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// addPollSeeds adds every poll2 answer under testdata/poll to f's corpus.
func addPollSeeds(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "poll", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no poll testdata: %v", err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{`{"retcode":102,"errmsg":""}`, `{"retcode":116,"p":"x"}`, `{"retcode":0,"result":[1,{},[],null]}`, `null`, `[]`, `{"retcode":"0","result":[{"poll_type":7}]}`} {
		f.Add([]byte(s))
	}
}

// FuzzDecodePoll: the poll2 answer decoder never panics, a retcode-0 answer with an array
// result yields one event per item, and every event keeps raw bytes.
func FuzzDecodePoll(f *testing.F) {
	addPollSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := decodePollAnswer(body)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v is not ErrProtocol", err)
			}
			return
		}
		if a.retcode != 0 {
			if len(a.events) != 0 {
				t.Fatalf("events with retcode %d", a.retcode)
			}
			return
		}
		var e struct {
			Result []json.RawMessage `json:"result"`
		}
		if json.Unmarshal(body, &e) == nil && len(a.events) != len(e.Result) {
			t.Fatalf("%d events for %d items", len(a.events), len(e.Result))
		}
		for i, ev := range a.events {
			if len(ev.Raw) == 0 {
				t.Fatalf("event %d without raw", i)
			}
			typed := 0
			for _, p := range []bool{ev.Message != nil, ev.Status != nil, ev.Input != nil, ev.Kick != nil, ev.Notice != nil} {
				if p {
					typed++
				}
			}
			if typed > 1 || (typed == 1 && ev.Err != nil) {
				t.Fatalf("event %d: %d typed values, err %v", i, typed, ev.Err)
			}
		}
	})
}

// FuzzDecodeContent: the content decoder never panics, errors are ErrProtocol, and decoded
// segments re-encode and decode to the same segments.
func FuzzDecodeContent(f *testing.F) {
	for _, s := range []string{
		`[["font",{"color":"000000","name":"微软雅黑","size":10,"style":[0,0,0]}],"好啊"]`,
		`[["font",{"name":"宋体","size":10,"style":[0,0,0],"color":"000000"}],"a &lt;b&gt; &amp; &#92; &#x4E2D;",["face",14],"x"]`,
		`"[\"hi\",[\"face\",14],[\"font\",{\"name\":\"宋体\",\"size\":10,\"style\":[0,0,0],\"color\":\"000000\"}]]"`,
		`[["font"]]`, `[["face",-1]]`, `[[]]`, `{}`, `[1,null,{}]`, `[["cface","x"]]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		font, segs, err := DecodeContent(raw)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v is not ErrProtocol", err)
			}
			return
		}
		for _, s := range segs {
			if s.Type == SegmentText && s.Text == "" {
				t.Fatal("empty text segment")
			}
			if s.Type == SegmentFace && s.Face < 0 {
				t.Fatal("negative face")
			}
		}
		enc, err := EncodeContent(segs, font)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		_, back, err := DecodeContent(json.RawMessage(mustJSONString(t, enc)))
		if err != nil {
			t.Fatalf("decode of re-encoded: %v", err)
		}
		// Text passes through unescaping a second time; compare faces and text without '&'.
		if len(back) != len(segs) {
			if !strings.Contains(joinText(segs), "&") {
				t.Fatalf("round trip changed segment count %d → %d", len(segs), len(back))
			}
			return
		}
		for i := range segs {
			if segs[i].Type != back[i].Type || segs[i].Face != back[i].Face {
				t.Fatalf("segment %d: %+v → %+v", i, segs[i], back[i])
			}
			if !strings.Contains(segs[i].Text, "&") && utf8.ValidString(segs[i].Text) && segs[i].Text != back[i].Text {
				t.Fatalf("segment %d text %q → %q", i, segs[i].Text, back[i].Text)
			}
		}
	})
}

// FuzzSplit: parts are within the limit, non-empty, never cut a character, and rejoin to the
// input.
func FuzzSplit(f *testing.F) {
	f.Add("hello world", 14, 3)
	f.Add(strings.Repeat("lorem ipsum ", 200), 0, 50)
	f.Add(strings.Repeat("中文字符", 400), 14, 100)
	f.Add(strings.Repeat("x", 2000), 1, 715)
	f.Fuzz(func(t *testing.T, text string, face, at int) {
		if face < 0 {
			face = -face
		}
		if face < 0 || face > 1000 {
			face %= 1000
		}
		segs := []Segment{TextSegment(text)}
		if at >= 0 && at <= len(text) && utf8.ValidString(text) {
			// Put a face inside the text, at a character boundary.
			for at > 0 && at < len(text) && !utf8.RuneStart(text[at]) {
				at--
			}
			segs = []Segment{TextSegment(text[:at]), FaceSegment(face), TextSegment(text[at:]), FaceSegment(face)}
		}
		parts := checkSplit(t, segs)
		if ContentSize(segs) > 0 && len(parts) == 0 {
			t.Fatal("no parts for a non-empty message")
		}
	})
}

// FuzzDecodePollLenient: the lenient poll2 decoder never panics; on valid JSON it agrees
// with the strict one (one event per item); every event keeps valid JSON in Raw; skipped
// items are counted; and stripping trailing commas leaves valid JSON alone.
func FuzzDecodePollLenient(f *testing.F) {
	addPollSeeds(f)
	if b, err := os.ReadFile(filepath.Join("testdata", "poll", "discu_message_verbatim.txt")); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		`{"retcode":0,"result":[{"poll_type":"message","value":{"content":[["font",{}],"a",],},},]}`,
		`{"retcode":0,"result":[{"poll_type":"x"},{bad},{"poll_type":"y"}]}`,
		`{"retcode":0,"result":[{"poll_type":"x"},{"poll_type":`,
		`{"retcode":"0",x,"result":[]}`, `{"retcode":0,"result":["\"",]}`, `[,]`, `{,}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if json.Valid(body) {
			if s := stripTrailingCommas(body); string(s) != string(body) {
				t.Fatalf("valid JSON changed: %q → %q", body, s)
			}
		}
		a, err := decodePollAnswer(body)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v is not ErrProtocol", err)
			}
			return
		}
		var e struct {
			Retcode json.RawMessage   `json:"retcode"`
			Result  []json.RawMessage `json:"result"`
		}
		if json.Unmarshal(body, &e) == nil && a.retcode == 0 && len(a.events) != len(e.Result) {
			t.Fatalf("valid JSON: %d events for %d items", len(a.events), len(e.Result))
		}
		skipped := 0
		for i, ev := range a.events {
			if !json.Valid(ev.Raw) {
				t.Fatalf("event %d: raw %q is not JSON", i, ev.Raw)
			}
			if ev.Err != nil {
				skipped++
				if !errors.Is(ev.Err, ErrProtocol) {
					t.Fatalf("event %d: %v is not ErrProtocol", i, ev.Err)
				}
			}
		}
		if SkippedItems(a.events) != skipped {
			t.Fatal("SkippedItems miscounts")
		}
	})
}
