package ingress

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/qqbridge/qqbridge/schema"
)

// FuzzSplitSegments: however the segments are shared out, the pieces are
// valid text cut between characters, no piece is empty, and in order they
// are the segments (adjacent text joined) and render the same text.
func FuzzSplitSegments(f *testing.F) {
	f.Add("hello world", 3, 2, uint8(14))
	f.Add("长消息😀", 7, 0, uint8(0))
	f.Add("", 1, 3, uint8(200))
	f.Add(strings.Repeat("x", 1000), 50, 1, uint8(1))
	f.Fuzz(func(t *testing.T, text string, n, faces int, face uint8) {
		if !utf8.ValidString(text) || n < 1 || n > 1000 || faces < 0 || faces > 20 {
			t.Skip()
		}
		segs := []schema.Segment{schema.TextSegment(text)}
		for k := range faces {
			segs = append(segs, schema.FaceSegment(int(face)))
			if k%2 == 0 {
				segs = append(segs, schema.TextSegment(text))
			}
		}
		pieces := splitSegments(segs, n)
		if len(pieces) == 0 {
			t.Fatal("no pieces")
		}
		var got []schema.Segment
		var rendered strings.Builder
		for _, p := range pieces {
			if len(p) == 0 {
				t.Fatal("an empty piece")
			}
			rendered.WriteString(plainText(p))
			for _, s := range p {
				if !utf8.ValidString(s.Text) {
					t.Fatalf("a text cut inside a character: %q", s.Text)
				}
				if k := len(got); k > 0 && s.Type == schema.SegmentText && got[k-1].Type == schema.SegmentText {
					got[k-1].Text += s.Text
					continue
				}
				got = append(got, s)
			}
		}
		var want []schema.Segment // segs with adjacent text joined
		for _, s := range segs {
			if k := len(want); k > 0 && s.Type == schema.SegmentText && want[k-1].Type == schema.SegmentText {
				want[k-1].Text += s.Text
				continue
			}
			want = append(want, s)
		}
		if len(got) != len(want) {
			t.Fatalf("%d segments back, want %d", len(got), len(want))
		}
		for k := range want {
			if got[k] != want[k] {
				t.Fatalf("segment %d: %+v, want %+v", k, got[k], want[k])
			}
		}
		if rendered.String() != plainText(segs) {
			t.Error("the pieces render another text")
		}
	})
}
