package schema

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
)

// marshalEventReflect is the JSON codec's encoding of an event by
// reflection (encoding/json over eventWire, HTML escaping off): what
// appendEventJSON must write byte for byte.
func marshalEventReflect(e *Event) ([]byte, error) {
	w, err := e.wire()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(w); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

// checkEventJSON fails t unless appendEventJSON writes what the reflection
// encoder writes, or leaves e to it exactly when it fails.
func checkEventJSON(t *testing.T, e *Event) []byte {
	t.Helper()
	got, ok := appendEventJSON(nil, e)
	want, err := marshalEventReflect(e)
	if ok != (err == nil) {
		t.Fatalf("%+v: written %v, encoding/json error %v", e, ok, err)
	}
	if ok && !bytes.Equal(got, want) {
		t.Fatalf("%+v:\n got %s\nwant %s", e, got, want)
	}
	return want
}

// marshalEventMsgpackReflect is the msgpack codec's encoding of an event by
// the library's reflection (eventWire, compact integers): what
// appendEventMsgpack must write byte for byte.
func marshalEventMsgpackReflect(e *Event) ([]byte, error) {
	w, err := e.wire()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(w); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// checkEventMsgpack fails t unless appendEventMsgpack writes what the
// library writes, or leaves e to it exactly when it fails.
func checkEventMsgpack(t *testing.T, e *Event) []byte {
	t.Helper()
	got, ok := appendEventMsgpack(nil, e)
	want, err := marshalEventMsgpackReflect(e)
	if ok != (err == nil) {
		t.Fatalf("%+v: written %v, library error %v", e, ok, err)
	}
	if ok && !bytes.Equal(got, want) {
		t.Fatalf("%+v:\n got %x\nwant %x", e, got, want)
	}
	return want
}

// TestEventJSONSameAsReflection: every golden event is written as the
// reflection encoders write it, in JSON and in msgpack.
func TestEventJSONSameAsReflection(t *testing.T) {
	events := sampleEvents(t)
	for _, name := range sortedNames(events) {
		checkEventJSON(t, events[name])
		checkEventMsgpack(t, events[name])
	}
	at := time.Date(2015, 12, 21, 8, 47, 5, 123, time.FixedZone("x", 8*3600))
	for _, e := range []*Event{
		{Time: at, File: &File{Offer: "o", Name: "n", Expires: at, Size: 3}, Image: &Image{State: "s", Reason: "r"}},
		{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Time: at, File: &File{Expires: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{Raw: []byte(`{"a": 1}`)},
		{Raw: []byte(`{"a": `)},
	} {
		checkEventJSON(t, e)
		checkEventMsgpack(t, e)
	}
}

// fuzzEvent is an event of the shapes sel selects (a bit per part), of the
// fuzzer's strings, raw value, time and numbers.
func fuzzEvent(id, typ, text, nick string, raw []byte, sec, nsec int64, off int, n int64, sel uint8) *Event {
	zone := time.UTC
	if off != 0 {
		zone = time.FixedZone("z", off%(48*3600))
	}
	at := time.Unix(sec, nsec).In(zone)
	e := &Event{V: int(n % 3), ID: id, Type: typ, Time: at, Account: n, MsgID: n / 2, Text: text, SystemKind: nick, Raw: raw}
	bit := func(k uint) bool { return sel&(1<<k) != 0 }
	if bit(0) {
		e.From = &Contact{UIN: n, QQ: n * 3, Nick: nick, Card: text}
	}
	if bit(1) {
		e.Group, e.Discuss = &GroupRef{GID: n, Number: -n, Name: nick}, &DiscussRef{DID: n, Name: text}
	}
	if bit(2) {
		e.Segments = []Segment{TextSegment(text), FaceSegment(int(n % 100)), {Type: nick, Text: id, Face: int(n)},
			ImageSegment(Image{State: ImagePending, Ref: id, Size: n})}
	}
	if bit(3) {
		e.Status, e.Kick, e.Sess = &Status{UIN: n, QQ: n, Status: text, ClientType: int(n)}, &Kick{Reason: nick}, &SessRef{ViaGID: n, ViaNumber: n}
	}
	if bit(4) {
		e.Picture, e.Truncated, e.Part, e.Parts = true, true, int(n%5), int(n%7)
	}
	if bit(5) {
		e.Image = &Image{State: text, Ref: id, Bucket: nick, Size: n, ContentType: typ, SHA256: text, Reason: nick, Event: id}
	}
	if bit(6) {
		e.File = &File{Offer: id, Name: nick, Expires: at, Ref: text, Bucket: typ, Size: n, ContentType: text, SHA256: id}
	}
	return e
}

// addEventSeeds adds the seeds of the event writer fuzz tests.
func addEventSeeds(f *testing.F) {
	f.Add("931996776:group:50873", "message.group", "好啊 /微笑", "Alice", []byte(`{"from_uin":1, "x":[1,"二"]}`), int64(1450687625), int64(0), 0, int64(987654), uint8(0xff))
	f.Add("a\"b\\c\x00\x1f\x7f", "x\u2028y\u2029", "<b>&</b>\n\t\r\b\f", "\xff\xfe", []byte(`"s"`), int64(-62135596800), int64(999999999), -3600*13, int64(-1), uint8(0x55))
	f.Add("", "", "", "", []byte(nil), int64(253402300800), int64(1), 86400, int64(0), uint8(0))
	f.Add("id", "t", "text", "nick", []byte(`{"a":`), int64(0), int64(0), 0, int64(1), uint8(0xaa))
	f.Add(strings.Repeat("i", 40), strings.Repeat("t", 300), strings.Repeat("x", 70000), "n", []byte(`[`+strings.Repeat("1,", 200)+`1]`),
		int64(1<<34), int64(5), 60, int64(-1<<40), uint8(0x7f))
	f.Add("i", "t", "x", "n", []byte(`1`), int64(1<<33), int64(0), 0, int64(-129), uint8(0x41))
	f.Add("i", "t", "x", "n", []byte(`1`), int64(-5), int64(7), 0, int64(70000), uint8(0x41))
	f.Add("i", "t", "x", "n", []byte(`1`), int64(5), int64(7), 0, int64(-40000), uint8(0x41))
	f.Add("i", "t", "x", "n", []byte(`1`), int64(5), int64(7), 0, int64(5_000_000_000), uint8(0x41))
	f.Add("i", "t", "x", "n", []byte(`1`), int64(5), int64(7), 0, int64(-5_000_000_000), uint8(0x41))
}

// FuzzEventJSONSameAsEncodingJSON: for events of every shape and content
// (strings with quotes, control characters, invalid UTF-8, U+2028; raw
// values; times in other zones), appendEventJSON writes what encoding/json
// writes, and what it writes decodes with encoding/json to the same event.
func FuzzEventJSONSameAsEncodingJSON(f *testing.F) {
	addEventSeeds(f)
	f.Fuzz(func(t *testing.T, id, typ, text, nick string, raw []byte, sec, nsec int64, off int, n int64, sel uint8) {
		e := fuzzEvent(id, typ, text, nick, raw, sec, nsec, off, n, sel)
		at := e.Time
		want := checkEventJSON(t, e)
		if want == nil {
			return
		}
		// Round trip: what was written decodes to the same event (strings
		// that are UTF-8; the time in UTC; raw compacted; V 0 as Version).
		for _, s := range []string{id, typ, text, nick} {
			if !utf8.ValidString(s) {
				return
			}
		}
		if _, o := at.Zone(); o%60 != 0 {
			return // RFC 3339 has no seconds in a zone offset
		}
		var back Event
		if err := json.Unmarshal(want, &back); err != nil {
			t.Fatalf("%s does not decode: %v", want, err)
		}
		checkRoundTrip(t, e, &back)
	})
}

// checkRoundTrip fails t unless back, decoded from e's encoding, is e (the
// time in UTC; raw compacted; V 0 as Version).
func checkRoundTrip(t *testing.T, e, back *Event) {
	t.Helper()
	exp := *e
	if exp.V == 0 {
		exp.V = Version
	}
	exp.Time = e.Time.UTC()
	if !back.Time.Equal(exp.Time) {
		t.Fatalf("time %v became %v", exp.Time, back.Time)
	}
	back.Time = exp.Time
	if len(e.Raw) > 0 {
		exp.Raw, _ = compactJSON(e.Raw)
	} else {
		exp.Raw = nil
	}
	if len(back.Raw) == 0 {
		back.Raw = nil
	}
	if exp.File != nil && !back.File.Expires.Equal(exp.File.Expires) {
		t.Fatalf("expires %v became %v", exp.File.Expires, back.File.Expires)
	} else if exp.File != nil {
		f := *exp.File
		f.Expires = back.File.Expires
		exp.File = &f
	}
	if len(back.Segments) == 0 {
		back.Segments = nil
	}
	if len(exp.Segments) == 0 {
		exp.Segments = nil
	}
	if !reflect.DeepEqual(back, &exp) {
		t.Fatalf("decodes to\n%+v\nwant\n%+v", back, &exp)
	}
}

// FuzzEventMsgpackSameAsLibrary: for the same events, appendEventMsgpack
// writes what the msgpack library writes for eventWire, and it decodes with
// the library to the same event.
func FuzzEventMsgpackSameAsLibrary(f *testing.F) {
	addEventSeeds(f)
	f.Fuzz(func(t *testing.T, id, typ, text, nick string, raw []byte, sec, nsec int64, off int, n int64, sel uint8) {
		e := fuzzEvent(id, typ, text, nick, raw, sec, nsec, off, n, sel)
		want := checkEventMsgpack(t, e)
		if want == nil {
			return
		}
		var back Event
		if err := Msgpack().Unmarshal(want, &back); err != nil {
			t.Fatalf("%x does not decode: %v", want, err)
		}
		checkRoundTrip(t, e, &back)
	})
}
