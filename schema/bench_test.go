package schema

import "testing"

// benchGroupEvent is the group event of DESIGN.md, the hot path of ingress.
func benchGroupEvent(b *testing.B) *Event {
	b.Helper()
	return sampleEvents(b)["group"]
}

func benchmarkEncode(b *testing.B, c Codec) {
	e := benchGroupEvent(b)
	b.ReportAllocs()
	var n int
	for b.Loop() {
		data, h, err := e.Encode(c)
		if err != nil || len(h) == 0 {
			b.Fatal(err)
		}
		n = len(data)
	}
	b.SetBytes(int64(n))
}

// BenchmarkEncodeGroupEventJSON measures encoding one group event with its
// headers in JSON.
func BenchmarkEncodeGroupEventJSON(b *testing.B) { benchmarkEncode(b, JSON()) }

// BenchmarkEncodeGroupEventMsgpack measures the same in msgpack.
func BenchmarkEncodeGroupEventMsgpack(b *testing.B) { benchmarkEncode(b, Msgpack()) }

func benchmarkDecode(b *testing.B, c Codec) {
	data, h, err := benchGroupEvent(b).Encode(c)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEvent(h, data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeGroupEventJSON measures a consumer decoding one group
// event in JSON.
func BenchmarkDecodeGroupEventJSON(b *testing.B) { benchmarkDecode(b, JSON()) }

// BenchmarkDecodeGroupEventMsgpack measures the same in msgpack.
func BenchmarkDecodeGroupEventMsgpack(b *testing.B) { benchmarkDecode(b, Msgpack()) }

// BenchmarkDecodeRequestJSON measures decoding and validating one request.
func BenchmarkDecodeRequestJSON(b *testing.B) {
	data := readTestdata(b, "requests/group_segments.json")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r, err := DecodeRequest(ContentTypeJSON, data)
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Validate(KindGroup); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEventIDAndSubject measures the per-event id and subject work.
func BenchmarkEventIDAndSubject(b *testing.B) {
	s := Subjects{}
	b.ReportAllocs()
	for b.Loop() {
		if EventID(931996776, "group", 50873) == "" {
			b.Fatal("empty id")
		}
		if _, err := s.In(KindGroup, StableID(987654)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncoderGroupEvent measures an Encoder (the one ingress keeps)
// encoding one group event with its headers, in each codec.
func BenchmarkEncoderGroupEvent(b *testing.B) {
	e := benchGroupEvent(b)
	for _, c := range []Codec{JSON(), Msgpack()} {
		b.Run(c.ContentType()[len("application/"):], func(b *testing.B) {
			x := NewEncoder(c)
			b.ReportAllocs()
			var n int
			for b.Loop() {
				data, h, err := x.Encode(e)
				if err != nil || len(h) == 0 {
					b.Fatal(err)
				}
				n = len(data)
			}
			b.SetBytes(int64(n))
		})
	}
}
