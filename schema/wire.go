package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// This file holds the encoded forms of the messages. They differ from the
// public types where the encoding needs something a plain struct tag cannot
// say: a segment writes only the field its type uses (and writes face 0),
// a zero V is written as Version, times are UTC, an event's Raw is compacted.

// segmentWire is the encoded form of a Segment.
type segmentWire struct {
	Type string  `json:"type" msgpack:"type"`
	Text *string `json:"text,omitempty" msgpack:"text,omitempty"`
	Face *int    `json:"face,omitempty" msgpack:"face,omitempty"`
	// Image: image segments only (SegmentImage).
	Image *Image `json:"image,omitempty" msgpack:"image,omitempty"`
}

// wireSegments converts segs: a text segment always has "text", a face
// segment always has "face", and either has the other field only when it is
// set. The pointers point into segs.
func wireSegments(segs []Segment) []segmentWire {
	if segs == nil {
		return nil
	}
	out := make([]segmentWire, len(segs))
	for i := range segs {
		s := &segs[i]
		out[i].Type = s.Type
		if s.Type == SegmentText || s.Text != "" {
			out[i].Text = &s.Text
		}
		if s.Type == SegmentFace || s.Face != 0 {
			out[i].Face = &s.Face
		}
		out[i].Image = s.Image
	}
	return out
}

// MarshalJSON writes the segment with only the fields its type uses.
func (s Segment) MarshalJSON() ([]byte, error) {
	return json.Marshal(wireSegments([]Segment{s})[0])
}

// EncodeMsgpack writes the segment with only the fields its type uses.
func (s Segment) EncodeMsgpack(enc *msgpack.Encoder) error {
	return enc.Encode(wireSegments([]Segment{s})[0])
}

// eventWire is the encoded form of an Event; see Event for the field
// meanings. It repeats Event's fields rather than being `type eventWire Event`
// on purpose: with []segmentWire the whole event goes through one encoder pass,
// while Segment's own MarshalJSON would run a nested json.Marshal per segment
// (HTML-escaping "<" and "&" in text, which the golden files forbid) and cost
// 5 more allocations per event (measured on the group-event benchmark).
type eventWire struct {
	V          int             `json:"v" msgpack:"v"`
	ID         string          `json:"id" msgpack:"id"`
	Type       string          `json:"type" msgpack:"type"`
	Time       time.Time       `json:"time" msgpack:"time"`
	Account    int64           `json:"account" msgpack:"account"`
	MsgID      int64           `json:"msg_id,omitempty" msgpack:"msg_id,omitempty"`
	From       *Contact        `json:"from,omitempty" msgpack:"from,omitempty"`
	Group      *GroupRef       `json:"group,omitempty" msgpack:"group,omitempty"`
	Discuss    *DiscussRef     `json:"discuss,omitempty" msgpack:"discuss,omitempty"`
	Text       string          `json:"text,omitempty" msgpack:"text,omitempty"`
	Segments   []segmentWire   `json:"segments,omitempty" msgpack:"segments,omitempty"`
	Picture    bool            `json:"picture,omitempty" msgpack:"picture,omitempty"`
	Status     *Status         `json:"status,omitempty" msgpack:"status,omitempty"`
	Kick       *Kick           `json:"kick,omitempty" msgpack:"kick,omitempty"`
	Sess       *SessRef        `json:"sess,omitempty" msgpack:"sess,omitempty"`
	SystemKind string          `json:"system_kind,omitempty" msgpack:"system_kind,omitempty"`
	Raw        json.RawMessage `json:"raw,omitempty" msgpack:"raw,omitempty"`
	Part       int             `json:"part,omitempty" msgpack:"part,omitempty"`
	Parts      int             `json:"parts,omitempty" msgpack:"parts,omitempty"`
	Truncated  bool            `json:"truncated,omitempty" msgpack:"truncated,omitempty"`
	Image      *Image          `json:"image,omitempty" msgpack:"image,omitempty"`
	File       *File           `json:"file,omitempty" msgpack:"file,omitempty"`
}

func (e *Event) wire() (*eventWire, error) {
	raw := e.Raw
	if len(raw) > 0 {
		var err error
		if raw, err = compactJSON(raw); err != nil {
			return nil, fmt.Errorf("event %s: raw: %w", e.ID, err)
		}
	}
	v := e.V
	if v == 0 {
		v = Version
	}
	return &eventWire{
		V:          v,
		ID:         e.ID,
		Type:       e.Type,
		Time:       e.Time.UTC(),
		Account:    e.Account,
		MsgID:      e.MsgID,
		From:       e.From,
		Group:      e.Group,
		Discuss:    e.Discuss,
		Text:       e.Text,
		Segments:   wireSegments(e.Segments),
		Picture:    e.Picture,
		Status:     e.Status,
		Kick:       e.Kick,
		Sess:       e.Sess,
		SystemKind: e.SystemKind,
		Raw:        raw,
		Part:       e.Part,
		Parts:      e.Parts,
		Truncated:  e.Truncated,
		Image:      e.Image,
		File:       e.File,
	}, nil
}

// compactJSON returns raw without insignificant white space (raw itself when
// it has none). It fails when raw is not valid JSON.
func compactJSON(raw []byte) ([]byte, error) {
	if !json.Valid(raw) {
		return nil, errors.New("not valid JSON")
	}
	if bytes.IndexAny(raw, " \t\r\n") < 0 {
		return raw, nil
	}
	var buf bytes.Buffer
	buf.Grow(len(raw))
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	if buf.Len() == len(raw) {
		return raw, nil
	}
	return buf.Bytes(), nil
}

// MarshalJSON encodes the event: a zero V is written as Version, the time in
// UTC, Raw compacted (it must be valid JSON).
func (e Event) MarshalJSON() ([]byte, error) {
	w, err := e.wire()
	if err != nil {
		return nil, err
	}
	return json.Marshal(w)
}

// EncodeMsgpack encodes the event as MarshalJSON does, with Raw as bin.
func (e Event) EncodeMsgpack(enc *msgpack.Encoder) error {
	w, err := e.wire()
	if err != nil {
		return err
	}
	return enc.Encode(w)
}

// requestWire is the encoded form of a Request.
type requestWire struct {
	V        int           `json:"v,omitempty" msgpack:"v,omitempty"`
	ID       string        `json:"id,omitempty" msgpack:"id,omitempty"`
	To       Target        `json:"to" msgpack:"to"`
	Text     string        `json:"text,omitempty" msgpack:"text,omitempty"`
	Segments []segmentWire `json:"segments,omitempty" msgpack:"segments,omitempty"`
}

func (r *Request) wire() *requestWire {
	return &requestWire{V: r.V, ID: r.ID, To: r.To, Text: r.Text, Segments: wireSegments(r.Segments)}
}

// MarshalJSON encodes the request; segments carry only the fields their
// type uses.
func (r Request) MarshalJSON() ([]byte, error) { return json.Marshal(r.wire()) }

// EncodeMsgpack encodes the request as MarshalJSON does.
func (r Request) EncodeMsgpack(enc *msgpack.Encoder) error { return enc.Encode(r.wire()) }

// resultWire is the encoded form of a Result.
type resultWire Result

func (r *Result) wire() *resultWire {
	w := resultWire(*r)
	if w.V == 0 {
		w.V = Version
	}
	return &w
}

// MarshalJSON encodes the result; a zero V is written as Version.
func (r Result) MarshalJSON() ([]byte, error) { return json.Marshal(r.wire()) }

// EncodeMsgpack encodes the result; a zero V is written as Version.
func (r Result) EncodeMsgpack(enc *msgpack.Encoder) error { return enc.Encode(r.wire()) }

// SessionState and QR need no wire form: their struct tags say it all
// (times are encoded as given; the session package publishes UTC).
