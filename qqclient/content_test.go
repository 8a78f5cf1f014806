package qqclient

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestUnescapeEntities(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"&lt;b&gt;", "<b>"},
		{"a &amp; b", "a & b"},
		{"&quot;q&quot;", `"q"`},
		{`back&#92;slash`, `back\slash`},
		{"x&nbsp;y", "x y"},
		{"&apos;", "'"},
		{"&#65;&#x42;&#X43;", "ABC"},
		{"&#20013;&#x6587;", "中文"},
		{"&amp;lt;", "&lt;"}, // one level only
		{"&unknown; &", "&unknown; &"},
		{"&#0; &#xD800; &#1114112; &#x; &#;", "&#0; &#xD800; &#1114112; &#x; &#;"},
		{"tail &", "tail &"},
		{"&lt", "&lt"},
	}
	for _, tt := range tests {
		if got := UnescapeEntities(tt.in); got != tt.want {
			t.Errorf("UnescapeEntities(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDecodeContent(t *testing.T) {
	yahei := Font{Name: "微软雅黑", Size: 10, Style: [3]int{0, 0, 0}, Color: "000000"}
	tests := []struct {
		name     string
		raw      string
		wantFont Font
		want     []Segment
		wantErr  bool
	}{
		{
			name:     "seed text",
			raw:      `[["font",{"color":"000000","name":"微软雅黑","size":10,"style":[0,0,0]}],"好啊"]`,
			wantFont: yahei,
			want:     []Segment{TextSegment("好啊")},
		},
		{
			name:     "text and faces in order",
			raw:      `[["font",{"color":"000000","name":"微软雅黑","size":10,"style":[0,0,0]}],"a",["face",14],"b",["face",0]]`,
			wantFont: yahei,
			want:     []Segment{TextSegment("a"), FaceSegment(14), TextSegment("b"), FaceSegment(0)},
		},
		{
			name:     "entities unescaped",
			raw:      `[["font",{"color":"000000","name":"微软雅黑","size":10,"style":[0,0,0]}],"1 &lt; 2 &amp;&amp; 3 &gt; 2 &quot;ok&quot; &#92;n"]`,
			wantFont: yahei,
			want:     []Segment{TextSegment(`1 < 2 && 3 > 2 "ok" \n`)},
		},
		{
			name:     "font only = picture stripped",
			raw:      `[["font",{"color":"000000","name":"微软雅黑","size":10,"style":[0,0,0]}]]`,
			wantFont: yahei,
			want:     nil,
		},
		{
			name:     "send form: a JSON string, font last",
			raw:      `"[\"hi\",[\"face\",14],[\"font\",{\"name\":\"宋体\",\"size\":10,\"style\":[0,0,0],\"color\":\"000000\"}]]"`,
			wantFont: DefaultFont(),
			want:     []Segment{TextSegment("hi"), FaceSegment(14)},
		},
		{
			name:     "unknown segments and empty strings skipped",
			raw:      `[["font",{"name":"x","size":"12","style":[1],"color":"ff0000"}],"",["cface","a.jpg",""],"t"]`,
			wantFont: Font{Name: "x", Size: 12, Style: [3]int{1, 0, 0}, Color: "ff0000"},
			want:     []Segment{TextSegment("t")},
		},
		{name: "not an array", raw: `{"a":1}`, wantErr: true},
		{name: "bad face", raw: `[["face","x"]]`, wantErr: true},
		{name: "negative face", raw: `[["face",-1]]`, wantErr: true},
		{name: "empty segment", raw: `[[]]`, wantErr: true},
		{name: "font without value", raw: `[["font"]]`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			font, segs, err := DecodeContent(json.RawMessage(tt.raw))
			if tt.wantErr {
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("err = %v, want ErrProtocol", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if font != tt.wantFont {
				t.Errorf("font = %+v, want %+v", font, tt.wantFont)
			}
			if !reflect.DeepEqual(segs, tt.want) {
				t.Errorf("segments = %#v, want %#v", segs, tt.want)
			}
		})
	}
}

func TestEncodeContent(t *testing.T) {
	tests := []struct {
		name string
		segs []Segment
		want string
	}{
		{
			name: "seed form",
			segs: []Segment{TextSegment("hi"), FaceSegment(14)},
			want: `["hi",["face",14],["font",{"name":"宋体","size":10,"style":[0,0,0],"color":"000000"}]]`,
		},
		{
			name: "no HTML escaping, quotes escaped",
			segs: []Segment{TextSegment(`<a href="x">&</a>` + "\n")},
			want: `["<a href=\"x\">&</a>\n",["font",{"name":"宋体","size":10,"style":[0,0,0],"color":"000000"}]]`,
		},
		{
			name: "font only",
			segs: nil,
			want: `[["font",{"name":"宋体","size":10,"style":[0,0,0],"color":"000000"}]]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EncodeContent(tt.segs, DefaultFont())
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("EncodeContent = %s\nwant %s", got, tt.want)
			}
			// Round trip through the decoder (which accepts font last).
			font, segs, err := DecodeContent(json.RawMessage(mustJSONString(t, got)))
			if err != nil {
				t.Fatal(err)
			}
			if font != DefaultFont() || !reflect.DeepEqual(segs, tt.segs) {
				t.Errorf("round trip = %+v %#v", font, segs)
			}
		})
	}
	if _, err := EncodeContent([]Segment{{Type: "picture"}}, DefaultFont()); !errors.Is(err, ErrBadRequest) {
		t.Errorf("unknown segment type: err = %v, want ErrBadRequest", err)
	}
	if _, err := EncodeContent([]Segment{FaceSegment(-3)}, DefaultFont()); !errors.Is(err, ErrBadRequest) {
		t.Errorf("negative face: err = %v, want ErrBadRequest", err)
	}
}

func mustJSONString(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMessageText(t *testing.T) {
	m := Message{Segments: []Segment{TextSegment("a"), FaceSegment(14), TextSegment("b")}}
	if got := m.Text(); got != "ab" {
		t.Errorf("Text() = %q, want %q", got, "ab")
	}
}

// joinText flattens segments into one string with faces as "\x00face N\x00" markers, so that
// two segment lists compare equal when they carry the same content however it is divided.
func joinText(segs []Segment) string {
	var b strings.Builder
	for _, s := range segs {
		if s.Type == SegmentFace {
			b.WriteString("\x00face ")
			b.WriteString(string(rune('0' + s.Face%10)))
			b.WriteString("\x00")
			continue
		}
		b.WriteString(s.Text)
	}
	return b.String()
}

// checkSplit verifies Split's invariants on segs and returns the parts.
func checkSplit(t testing.TB, segs []Segment) [][]Segment {
	t.Helper()
	parts := Split(segs)
	var all []Segment
	for i, p := range parts {
		if n := ContentSize(p); n > MaxPartBytes {
			t.Fatalf("part %d has %d bytes > %d", i, n, MaxPartBytes)
		}
		if len(p) == 0 {
			t.Fatalf("part %d is empty", i)
		}
		for _, s := range p {
			if s.Type == SegmentText && !utf8.ValidString(s.Text) && utf8.ValidString(joinText(segs)) {
				t.Fatalf("part %d cut a UTF-8 character", i)
			}
		}
		all = append(all, p...)
	}
	if got, want := joinText(all), joinText(segs); got != want {
		t.Fatalf("parts rejoined differ from the input:\n got %q\nwant %q", got, want)
	}
	return parts
}

func TestSplit(t *testing.T) {
	// A 2,000-character message of words: every cut must be at whitespace in 620..720.
	var words strings.Builder
	for words.Len() < 2000 {
		words.WriteString("lorem ipsum dolor sit amet, consectetur ")
	}
	text2000 := words.String()[:2000]

	cjk := strings.Repeat("中文字符", 500) // 2,000 characters, 6,000 bytes, no whitespace

	tests := []struct {
		name       string
		segs       []Segment
		wantParts  int
		atSpace    bool // every part but the last ends with whitespace and is ≥ 620 bytes
		exactSizes []int
	}{
		{name: "empty", segs: nil, wantParts: 0},
		{name: "short", segs: []Segment{TextSegment("hello"), FaceSegment(14)}, wantParts: 1},
		{name: "exactly 720", segs: []Segment{TextSegment(strings.Repeat("a", 720))}, wantParts: 1},
		{name: "2000 chars of words", segs: []Segment{TextSegment(text2000)}, wantParts: 3, atSpace: true},
		{name: "2000 CJK chars, no whitespace", segs: []Segment{TextSegment(cjk)}, wantParts: 9, exactSizes: []int{720, 720, 720, 720, 720, 720, 720, 720, 240}},
		{name: "no whitespace in window", segs: []Segment{TextSegment("a " + strings.Repeat("b", 1000))}, wantParts: 2, exactSizes: []int{720, 282}},
		{
			name:      "faces are atoms",
			segs:      []Segment{TextSegment(strings.Repeat("x", 715)), FaceSegment(14), TextSegment("tail")},
			wantParts: 2, exactSizes: []int{715, 15},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parts := checkSplit(t, tt.segs)
			if len(parts) != tt.wantParts {
				t.Fatalf("got %d parts, want %d", len(parts), tt.wantParts)
			}
			if tt.atSpace {
				for i, p := range parts[:len(parts)-1] {
					txt := joinText(p)
					r, _ := utf8.DecodeLastRuneInString(txt)
					if n := ContentSize(p); n < splitMin || !unicode.IsSpace(r) {
						t.Errorf("part %d: %d bytes, ends with %q; want a whitespace cut in %d..%d", i, n, r, splitMin, MaxPartBytes)
					}
				}
			}
			if tt.exactSizes != nil {
				for i, p := range parts {
					if n := ContentSize(p); n != tt.exactSizes[i] {
						t.Errorf("part %d: %d bytes, want %d", i, n, tt.exactSizes[i])
					}
				}
			}
		})
	}
}

func TestSplitPrefersLastWhitespace(t *testing.T) {
	// Spaces at 630 and 700 (cut after): the later one wins.
	b := []byte(strings.Repeat("a", 800))
	b[629], b[699] = ' ', ' '
	parts := checkSplit(t, []Segment{TextSegment(string(b))})
	if n := ContentSize(parts[0]); n != 700 {
		t.Errorf("first part %d bytes, want 700", n)
	}
	// A space before 620 is not used.
	b = []byte(strings.Repeat("a", 800))
	b[600] = ' '
	parts = checkSplit(t, []Segment{TextSegment(string(b))})
	if n := ContentSize(parts[0]); n != 720 {
		t.Errorf("first part %d bytes, want 720", n)
	}
}
