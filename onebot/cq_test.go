package onebot

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestCQRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		cq   string
		segs []Segment
	}{
		{"text", "hello", []Segment{TextSeg("hello")}},
		{"face", "[CQ:face,id=14]", []Segment{FaceSeg(14)}},
		{"mixed", "好啊 [CQ:face,id=14][CQ:face,id=0]!", []Segment{TextSeg("好啊 "), FaceSeg(14), FaceSeg(0), TextSeg("!")}},
		{"escaped text", "a &amp; b &#91;x&#93; c,d", []Segment{TextSeg("a & b [x] c,d")}},
		{"escaped param", "[CQ:at,name=a&#44;b&#91;&#93;&amp;,qq=1]", []Segment{{Type: "at", Data: map[string]string{"qq": "1", "name": "a,b[]&"}}}},
		{"no params", "[CQ:shake]", []Segment{{Type: "shake", Data: map[string]string{}}}},
		{"empty value", "[CQ:image,file=]", []Segment{{Type: "image", Data: map[string]string{"file": ""}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseCQ(c.cq)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.segs) {
				t.Fatalf("ParseCQ(%q) = %#v, want %#v", c.cq, got, c.segs)
			}
			if back := FormatCQ(c.segs); back != c.cq {
				t.Errorf("FormatCQ = %q, want %q", back, c.cq)
			}
		})
	}
}

func TestCQLenient(t *testing.T) {
	// Brackets that start no code stay text, as the common implementations
	// have it; & that starts no entity stays as it is.
	got, err := ParseCQ("[not a code] & ] [")
	if err != nil {
		t.Fatal(err)
	}
	if want := []Segment{TextSeg("[not a code] & ] [")}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v", got)
	}
}

func TestCQErrors(t *testing.T) {
	for _, s := range []string{"[CQ:face,id=1", "[CQ:]", "[CQ:face,id]", "[CQ:face,=1]", "[CQ:a[CQ:b]]", "[CQ:fa ce]"} {
		if _, err := ParseCQ(s); !errors.Is(err, ErrCQ) {
			t.Errorf("ParseCQ(%q) = %v, want ErrCQ", s, err)
		}
	}
}

func TestEscape(t *testing.T) {
	if got := EscapeCQ("&[],"); got != "&amp;&#91;&#93;," {
		t.Errorf("EscapeCQ = %q", got)
	}
	if got := EscapeCQParam("&[],"); got != "&amp;&#91;&#93;&#44;" {
		t.Errorf("EscapeCQParam = %q", got)
	}
	if got := UnescapeCQ("&amp;&#91;&#93;&#44;&lt;"); got != "&[],&lt;" {
		t.Errorf("UnescapeCQ = %q", got)
	}
	// Escaping is not applied twice: &amp; stays distinguishable from &.
	if got := UnescapeCQ(EscapeCQ("&amp;")); got != "&amp;" {
		t.Errorf("round trip of a literal &amp; = %q", got)
	}
}

func TestSegmentJSON(t *testing.T) {
	var s Segment
	if err := json.Unmarshal([]byte(`{"type":"face","data":{"id":14,"big":true,"x":null}}`), &s); err != nil {
		t.Fatal(err)
	}
	if want := (Segment{Type: "face", Data: map[string]string{"id": "14", "big": "true"}}); !reflect.DeepEqual(s, want) {
		t.Fatalf("got %#v", s)
	}
	b, _ := json.Marshal(Segment{Type: "shake"})
	if string(b) != `{"type":"shake","data":{}}` {
		t.Errorf("marshal = %s", b)
	}
	b, _ = marshalNoEscape([]Segment{TextSeg("<a&b>")})
	if string(b) != `[{"type":"text","data":{"text":"<a&b>"}}]` {
		t.Errorf("marshal = %s (HTML must not be escaped)", b)
	}
	if err := json.Unmarshal([]byte(`{"data":{}}`), &s); err == nil {
		t.Error("a segment without type decoded")
	}
}

// FuzzCQ: whatever parses formats back to a string that parses to the same
// segments; text alone always survives escaping.
func FuzzCQ(f *testing.F) {
	for _, s := range []string{"", "hi", "[CQ:face,id=14]", "a&amp;b&#91;&#93;&#44;", "[CQ:at,qq=all]x", "[", "]", "[CQ:", "[CQ:a,b=c,d=e]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, err := ParseCQ(EscapeCQ(s)); err != nil {
			t.Fatalf("escaped text %q does not parse: %v", s, err)
		} else if PlainText(got) != s {
			t.Fatalf("escaped text %q parses to %q", s, PlainText(got))
		}
		segs, err := ParseCQ(s)
		if err != nil {
			if !errors.Is(err, ErrCQ) {
				t.Fatalf("error %v does not match ErrCQ", err)
			}
			return
		}
		again, err := ParseCQ(FormatCQ(segs))
		if err != nil {
			t.Fatalf("FormatCQ(ParseCQ(%q)) = %q does not parse: %v", s, FormatCQ(segs), err)
		}
		if !reflect.DeepEqual(merge(again), merge(segs)) {
			t.Fatalf("round trip of %q: %#v != %#v", s, again, segs)
		}
	})
}

// merge joins adjacent text segments and drops empty ones.
func merge(segs []Segment) []Segment {
	var out []Segment
	for _, s := range segs {
		if s.Type == "text" {
			if s.Data["text"] == "" {
				continue
			}
			if n := len(out); n > 0 && out[n-1].Type == "text" {
				out[n-1] = TextSeg(out[n-1].Data["text"] + s.Data["text"])
				continue
			}
		}
		out = append(out, s)
	}
	return out
}

// FuzzDecodeMessage: a message parameter never panics, and what decodes
// either maps to schema segments that validate or is refused with an error.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{`"hi"`, `"[CQ:face,id=14]"`, `[{"type":"text","data":{"text":"a"}}]`, `{"type":"face","data":{"id":"300"}}`, `[{"type":"image","data":{}}]`, `null`, `42`} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, raw []byte, esc bool) {
		segs, err := DecodeMessage(raw, esc)
		if err != nil {
			return
		}
		out, err := ToSchema(segs)
		if err != nil {
			return
		}
		for _, s := range out {
			if s.Type == "face" && (s.Face < 0 || s.Face > 255) {
				t.Fatalf("face %d out of range", s.Face)
			}
		}
	})
}
