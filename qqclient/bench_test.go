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

// benchGroupItem is the group message of the ingress benchmarks.
const benchGroupItem = `{"poll_type":"group_message","value":{"msg_id":50873,"msg_id2":1,"msg_type":43,"from_uin":2890,` +
	`"group_code":2890,"send_uin":4711,"seq":51,"to_uin":931996776,"time":1450687625,"content":[["font",` +
	`{"name":"微软雅黑","size":10,"style":[0,0,0],"color":"000000"}],"好啊 ",["face",14]]}}`

// BenchmarkDecodeGroupItem is DecodeEvent of one group message.
func BenchmarkDecodeGroupItem(b *testing.B) {
	item := []byte(benchGroupItem)
	b.ReportAllocs()
	b.SetBytes(int64(len(item)))
	for b.Loop() {
		if ev := DecodeEvent(item); ev.Err != nil || ev.Message == nil {
			b.Fatal(ev.Err)
		}
	}
}

// BenchmarkDecodePoll5000 is the poll answer of the ingress harness: 5,000
// group messages; ns/op and allocs/op are per answer.
func BenchmarkDecodePoll5000(b *testing.B) {
	body := []byte(`{"retcode":0,"result":[` + strings.TrimSuffix(strings.Repeat(benchGroupItem+",", 5000), ",") + `]}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		a, err := decodePollAnswer(body)
		if err != nil || len(a.events) != 5000 {
			b.Fatal(err)
		}
	}
}
