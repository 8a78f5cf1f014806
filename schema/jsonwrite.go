package schema

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// The JSON form of an event, written without reflection: the bytes
// encoding/json writes for eventWire with HTML escaping off (the JSON
// codec's form), in one allocation. Fuzz tests compare the two.

// appendEventJSON appends the JSON form of e to b. ok is false for an event
// it leaves to encoding/json: a raw value that is not valid JSON, a time
// that RFC 3339 cannot write (encoding/json reports those).
func appendEventJSON(b []byte, e *Event) (_ []byte, ok bool) {
	raw, v, b, ok := eventPrelude(b, e)
	if !ok {
		return b, false
	}
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(v), 10)
	b = append(b, `,"id":`...)
	b = appendJSONString(b, e.ID)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, e.Type)
	b = append(b, `,"time":`...)
	if b, ok = appendJSONTime(b, e.Time.UTC()); !ok {
		return b, false
	}
	b = append(b, `,"account":`...)
	b = strconv.AppendInt(b, e.Account, 10)
	if e.MsgID != 0 {
		b = append(b, `,"msg_id":`...)
		b = strconv.AppendInt(b, e.MsgID, 10)
	}
	if c := e.From; c != nil {
		b = append(b, `,"from":{"uin":`...)
		b = strconv.AppendInt(b, c.UIN, 10)
		b = appendInt(b, `,"qq":`, c.QQ)
		b = appendString(b, `,"nick":`, c.Nick)
		b = appendString(b, `,"card":`, c.Card)
		b = append(b, '}')
	}
	if g := e.Group; g != nil {
		b = append(b, `,"group":{"gid":`...)
		b = strconv.AppendInt(b, g.GID, 10)
		b = appendInt(b, `,"number":`, g.Number)
		b = appendString(b, `,"name":`, g.Name)
		b = append(b, '}')
	}
	if d := e.Discuss; d != nil {
		b = append(b, `,"discuss":{"did":`...)
		b = strconv.AppendInt(b, d.DID, 10)
		b = appendString(b, `,"name":`, d.Name)
		b = append(b, '}')
	}
	b = appendString(b, `,"text":`, e.Text)
	if len(e.Segments) > 0 {
		b = append(b, `,"segments":[`...)
		for i := range e.Segments {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendSegmentJSON(b, &e.Segments[i])
		}
		b = append(b, ']')
	}
	if e.Picture {
		b = append(b, `,"picture":true`...)
	}
	if s := e.Status; s != nil {
		b = append(b, `,"status":{"uin":`...)
		b = strconv.AppendInt(b, s.UIN, 10)
		b = appendInt(b, `,"qq":`, s.QQ)
		b = append(b, `,"status":`...)
		b = appendJSONString(b, s.Status)
		b = append(b, `,"client_type":`...)
		b = strconv.AppendInt(b, int64(s.ClientType), 10)
		b = append(b, '}')
	}
	if k := e.Kick; k != nil {
		b = append(b, `,"kick":{"reason":`...)
		b = appendJSONString(b, k.Reason)
		b = append(b, '}')
	}
	if s := e.Sess; s != nil {
		b = append(b, `,"sess":{"via_gid":`...)
		b = strconv.AppendInt(b, s.ViaGID, 10)
		b = appendInt(b, `,"via_number":`, s.ViaNumber)
		b = append(b, '}')
	}
	b = appendString(b, `,"system_kind":`, e.SystemKind)
	if len(raw) > 0 {
		b = append(b, `,"raw":`...)
		b = append(b, raw...)
	}
	b = appendInt(b, `,"part":`, int64(e.Part))
	b = appendInt(b, `,"parts":`, int64(e.Parts))
	if e.Truncated {
		b = append(b, `,"truncated":true`...)
	}
	if e.Image != nil {
		b = append(b, `,"image":`...)
		b = appendImageJSON(b, e.Image)
	}
	if f := e.File; f != nil {
		b = append(b, `,"file":{"offer":`...)
		b = appendJSONString(b, f.Offer)
		b = append(b, `,"name":`...)
		b = appendJSONString(b, f.Name)
		if !f.Expires.IsZero() {
			b = append(b, `,"expires":`...)
			if b, ok = appendJSONTime(b, f.Expires); !ok {
				return b, false
			}
		}
		b = appendString(b, `,"ref":`, f.Ref)
		b = appendString(b, `,"bucket":`, f.Bucket)
		b = appendInt(b, `,"size":`, f.Size)
		b = appendString(b, `,"content_type":`, f.ContentType)
		b = appendString(b, `,"sha256":`, f.SHA256)
		b = append(b, '}')
	}
	return append(b, '}'), true
}

// eventPrelude is what both writers start with: e's raw value compacted
// (ok false when it is not valid JSON), its version (Version when unset),
// and b, made about the size of the event when nil.
func eventPrelude(b []byte, e *Event) (raw []byte, v int, _ []byte, ok bool) {
	raw = e.Raw
	if len(raw) > 0 {
		var err error
		if raw, err = compactJSON(raw); err != nil {
			return nil, 0, b, false
		}
	}
	v = e.V
	if v == 0 {
		v = Version
	}
	if b == nil {
		b = make([]byte, 0, eventJSONSize(e, len(raw)))
	}
	return raw, v, b, true
}

// eventJSONSize is about the size of e's JSON form (rawLen its raw value's
// size), rather more than less, so that one allocation holds it.
func eventJSONSize(e *Event, rawLen int) int {
	n := 160 + 2*(len(e.ID)+len(e.Type)+len(e.Text)+len(e.SystemKind)) + rawLen
	if c := e.From; c != nil {
		n += 64 + 2*(len(c.Nick)+len(c.Card))
	}
	if g := e.Group; g != nil {
		n += 64 + 2*len(g.Name)
	}
	if d := e.Discuss; d != nil {
		n += 40 + 2*len(d.Name)
	}
	for i := range e.Segments {
		s := &e.Segments[i]
		n += 40 + 2*len(s.Text)
		if s.Image != nil {
			n += 160 + 2*len(s.Image.Ref)
		}
	}
	if e.Status != nil {
		n += 96
	}
	if e.Kick != nil {
		n += 24 + 2*len(e.Kick.Reason)
	}
	if e.Sess != nil {
		n += 56
	}
	if e.Image != nil {
		n += 200 + 2*(len(e.Image.Ref)+len(e.Image.Event))
	}
	if f := e.File; f != nil {
		n += 240 + 2*(len(f.Offer)+len(f.Name)+len(f.Ref))
	}
	return n
}

// appendSegmentJSON appends a segment's JSON form (segmentWire): text and
// face when its type uses them or they are set, and the image when set.
func appendSegmentJSON(b []byte, s *Segment) []byte {
	b = append(b, `{"type":`...)
	b = appendJSONString(b, s.Type)
	if s.Type == SegmentText || s.Text != "" {
		b = append(b, `,"text":`...)
		b = appendJSONString(b, s.Text)
	}
	if s.Type == SegmentFace || s.Face != 0 {
		b = append(b, `,"face":`...)
		b = strconv.AppendInt(b, int64(s.Face), 10)
	}
	if s.Image != nil {
		b = append(b, `,"image":`...)
		b = appendImageJSON(b, s.Image)
	}
	return append(b, '}')
}

// appendImageJSON appends an Image's JSON form.
func appendImageJSON(b []byte, m *Image) []byte {
	b = append(b, `{"state":`...)
	b = appendJSONString(b, m.State)
	b = append(b, `,"ref":`...)
	b = appendJSONString(b, m.Ref)
	b = appendString(b, `,"bucket":`, m.Bucket)
	b = appendInt(b, `,"size":`, m.Size)
	b = appendString(b, `,"content_type":`, m.ContentType)
	b = appendString(b, `,"sha256":`, m.SHA256)
	b = appendString(b, `,"reason":`, m.Reason)
	b = appendString(b, `,"event":`, m.Event)
	return append(b, '}')
}

// appendInt appends key and n unless n is 0 (omitempty).
func appendInt(b []byte, key string, n int64) []byte {
	if n == 0 {
		return b
	}
	return strconv.AppendInt(append(b, key...), n, 10)
}

// appendString appends key and s unless s is empty (omitempty).
func appendString(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendJSONString(append(b, key...), s)
}

// appendJSONTime appends t as time.Time's MarshalJSON writes it (RFC 3339
// with nanoseconds, quoted); false for a time it refuses (a year outside
// 0–9999, a zone offset of 24 hours or more).
func appendJSONTime(b []byte, t time.Time) ([]byte, bool) {
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	if _, off := t.Zone(); off <= -24*3600 || off >= 24*3600 {
		return b, false
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), true
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string as encoding/json writes it
// with HTML escaping off: '"', '\\' and control characters escaped (\b,
// \f, \n, \r, \t, else \u00XX), invalid UTF-8 as \ufffd, U+2028 and U+2029
// as \u2028 and \u2029, everything else as it is.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += n
			continue
		}
		i += n
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
