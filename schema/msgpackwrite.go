package schema

import (
	"encoding/binary"
	"math"
	"time"
)

// The msgpack form of an event, written without reflection: the bytes the
// msgpack library writes for eventWire with compact integers (the msgpack
// codec's form). Fuzz tests compare the two.

// appendEventMsgpack appends the msgpack form of e to b; ok is false when
// the raw value is not valid JSON (the library's path reports it).
func appendEventMsgpack(b []byte, e *Event) (_ []byte, ok bool) {
	raw, v, b, ok := eventPrelude(b, e)
	if !ok {
		return b, false
	}
	n := 5 + count(e.MsgID != 0, e.From != nil, e.Group != nil, e.Discuss != nil, e.Text != "", len(e.Segments) > 0,
		e.Picture, e.Status != nil, e.Kick != nil, e.Sess != nil, e.SystemKind != "", len(raw) > 0, e.Part != 0,
		e.Parts != 0, e.Truncated, e.Image != nil, e.File != nil)
	b = mpMapLen(b, n)
	b = mpInt(mpStr(b, "v"), int64(v))
	b = mpStr(mpStr(b, "id"), e.ID)
	b = mpStr(mpStr(b, "type"), e.Type)
	b = mpTime(mpStr(b, "time"), e.Time.UTC())
	b = mpInt(mpStr(b, "account"), e.Account)
	b = mpIntOmit(b, "msg_id", e.MsgID)
	if c := e.From; c != nil {
		b = mpMapLen(mpStr(b, "from"), 1+count(c.QQ != 0, c.Nick != "", c.Card != ""))
		b = mpInt(mpStr(b, "uin"), c.UIN)
		b = mpIntOmit(b, "qq", c.QQ)
		b = mpStrOmit(b, "nick", c.Nick)
		b = mpStrOmit(b, "card", c.Card)
	}
	if g := e.Group; g != nil {
		b = mpMapLen(mpStr(b, "group"), 1+count(g.Number != 0, g.Name != ""))
		b = mpInt(mpStr(b, "gid"), g.GID)
		b = mpIntOmit(b, "number", g.Number)
		b = mpStrOmit(b, "name", g.Name)
	}
	if d := e.Discuss; d != nil {
		b = mpMapLen(mpStr(b, "discuss"), 1+count(d.Name != ""))
		b = mpInt(mpStr(b, "did"), d.DID)
		b = mpStrOmit(b, "name", d.Name)
	}
	b = mpStrOmit(b, "text", e.Text)
	if len(e.Segments) > 0 {
		b = mpArrayLen(mpStr(b, "segments"), len(e.Segments))
		for i := range e.Segments {
			b = appendSegmentMsgpack(b, &e.Segments[i])
		}
	}
	if e.Picture {
		b = append(mpStr(b, "picture"), 0xc3)
	}
	if s := e.Status; s != nil {
		b = mpMapLen(mpStr(b, "status"), 3+count(s.QQ != 0))
		b = mpInt(mpStr(b, "uin"), s.UIN)
		b = mpIntOmit(b, "qq", s.QQ)
		b = mpStr(mpStr(b, "status"), s.Status)
		b = mpInt(mpStr(b, "client_type"), int64(s.ClientType))
	}
	if k := e.Kick; k != nil {
		b = mpMapLen(mpStr(b, "kick"), 1)
		b = mpStr(mpStr(b, "reason"), k.Reason)
	}
	if s := e.Sess; s != nil {
		b = mpMapLen(mpStr(b, "sess"), 1+count(s.ViaNumber != 0))
		b = mpInt(mpStr(b, "via_gid"), s.ViaGID)
		b = mpIntOmit(b, "via_number", s.ViaNumber)
	}
	b = mpStrOmit(b, "system_kind", e.SystemKind)
	if len(raw) > 0 {
		b = mpBin(mpStr(b, "raw"), raw)
	}
	b = mpIntOmit(b, "part", int64(e.Part))
	b = mpIntOmit(b, "parts", int64(e.Parts))
	if e.Truncated {
		b = append(mpStr(b, "truncated"), 0xc3)
	}
	if e.Image != nil {
		b = appendImageMsgpack(mpStr(b, "image"), e.Image)
	}
	if f := e.File; f != nil {
		b = mpMapLen(mpStr(b, "file"), 2+count(!f.Expires.IsZero(), f.Ref != "", f.Bucket != "", f.Size != 0,
			f.ContentType != "", f.SHA256 != ""))
		b = mpStr(mpStr(b, "offer"), f.Offer)
		b = mpStr(mpStr(b, "name"), f.Name)
		if !f.Expires.IsZero() {
			b = mpTime(mpStr(b, "expires"), f.Expires)
		}
		b = mpStrOmit(b, "ref", f.Ref)
		b = mpStrOmit(b, "bucket", f.Bucket)
		b = mpIntOmit(b, "size", f.Size)
		b = mpStrOmit(b, "content_type", f.ContentType)
		b = mpStrOmit(b, "sha256", f.SHA256)
	}
	return b, true
}

// appendSegmentMsgpack appends a segment's msgpack form (segmentWire).
func appendSegmentMsgpack(b []byte, s *Segment) []byte {
	text := s.Type == SegmentText || s.Text != ""
	face := s.Type == SegmentFace || s.Face != 0
	b = mpMapLen(b, 1+count(text, face, s.Image != nil))
	b = mpStr(mpStr(b, "type"), s.Type)
	if text {
		b = mpStr(mpStr(b, "text"), s.Text)
	}
	if face {
		b = mpInt(mpStr(b, "face"), int64(s.Face))
	}
	if s.Image != nil {
		b = appendImageMsgpack(mpStr(b, "image"), s.Image)
	}
	return b
}

// appendImageMsgpack appends an Image's msgpack form.
func appendImageMsgpack(b []byte, m *Image) []byte {
	b = mpMapLen(b, 2+count(m.Bucket != "", m.Size != 0, m.ContentType != "", m.SHA256 != "", m.Reason != "", m.Event != ""))
	b = mpStr(mpStr(b, "state"), m.State)
	b = mpStr(mpStr(b, "ref"), m.Ref)
	b = mpStrOmit(b, "bucket", m.Bucket)
	b = mpIntOmit(b, "size", m.Size)
	b = mpStrOmit(b, "content_type", m.ContentType)
	b = mpStrOmit(b, "sha256", m.SHA256)
	b = mpStrOmit(b, "reason", m.Reason)
	return mpStrOmit(b, "event", m.Event)
}

// count is the number of true values.
func count(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// mpMapLen appends a map header of n pairs.
func mpMapLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x80|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xde), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdf), uint32(n))
}

// mpArrayLen appends an array header of n elements.
func mpArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xdc), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
}

// mpStr appends a string.
func mpStr(b []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n < 256:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xda), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
	}
	return append(b, s...)
}

// mpBin appends a byte string.
func mpBin(b []byte, p []byte) []byte {
	switch n := len(p); {
	case n < 256:
		b = append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xc5), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xc6), uint32(n))
	}
	return append(b, p...)
}

// mpInt appends n in its shortest form.
func mpInt(b []byte, n int64) []byte {
	if n >= 0 {
		switch u := uint64(n); {
		case u <= math.MaxInt8:
			return append(b, byte(u))
		case u <= math.MaxUint8:
			return append(b, 0xcc, byte(u))
		case u <= math.MaxUint16:
			return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(u))
		case u <= math.MaxUint32:
			return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(u))
		default:
			return binary.BigEndian.AppendUint64(append(b, 0xcf), u)
		}
	}
	switch {
	case n >= -32:
		return append(b, byte(n))
	case n >= math.MinInt8:
		return append(b, 0xd0, byte(n))
	case n >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(n))
}

// mpIntOmit appends key and n unless n is 0.
func mpIntOmit(b []byte, key string, n int64) []byte {
	if n == 0 {
		return b
	}
	return mpInt(mpStr(b, key), n)
}

// mpStrOmit appends key and s unless s is empty.
func mpStrOmit(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return mpStr(mpStr(b, key), s)
}

// mpTime appends t as the msgpack timestamp extension (-1): 32 bits of
// seconds, 64 bits of nanoseconds and seconds, or 96 bits.
func mpTime(b []byte, t time.Time) []byte {
	secs := uint64(t.Unix())
	if secs>>34 == 0 {
		data := uint64(t.Nanosecond())<<34 | secs
		if data&0xffffffff00000000 == 0 {
			return binary.BigEndian.AppendUint32(append(b, 0xd6, 0xff), uint32(data))
		}
		return binary.BigEndian.AppendUint64(append(b, 0xd7, 0xff), data)
	}
	b = binary.BigEndian.AppendUint32(append(b, 0xc7, 12, 0xff), uint32(t.Nanosecond()))
	return binary.BigEndian.AppendUint64(b, secs)
}
