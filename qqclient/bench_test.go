package qqclient

import (
	"strings"
	"testing"
)

func BenchmarkDecodePoll(b *testing.B) {
	body := readTestdata(b, "poll/other_kinds.json")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := decodePollAnswer(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeContent(b *testing.B) {
	segs := []Segment{TextSegment("hello <world> & 你好"), FaceSegment(14), TextSegment("tail")}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeContent(segs, DefaultFont()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSplit2000(b *testing.B) {
	segs := []Segment{TextSegment(strings.Repeat("lorem ipsum 中文 ", 125))}
	b.ReportAllocs()
	for b.Loop() {
		_ = Split(segs)
	}
}
