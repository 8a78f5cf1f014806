package onebot

import (
	"context"
	"strconv"
	"testing"
)

func BenchmarkParseCQ(b *testing.B) {
	s := "好啊 &#91;x&#93; [CQ:face,id=14] and [CQ:at,qq=123456,name=Alice&#44;dev] again [CQ:face,id=0]"
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		if _, err := ParseCQ(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFormatCQ(b *testing.B) {
	segs := []Segment{TextSeg("好啊 [x] "), FaceSeg(14), TextSeg(" and & "), FaceSeg(0)}
	for b.Loop() {
		_ = FormatCQ(segs)
	}
}

// BenchmarkConvert is one group message made into its OneBot event, with
// the store writes (message id, member) on an in-memory store.
func BenchmarkConvert(b *testing.B) {
	g, err := New(Config{}, &recordingBackend{}, NewMemStore())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	e := groupEvent()
	i := 0
	for b.Loop() {
		i++
		e.ID = "931996776:group:" + strconv.Itoa(i)
		if _, err := g.Convert(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
}
