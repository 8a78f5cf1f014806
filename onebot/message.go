package onebot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/qqbridge/qqbridge/schema"
)

// Message formats of events (Config.MessageFormat, post_message_format in
// the spec).
const (
	FormatArray  = "array"  // message is an array of segments
	FormatString = "string" // message is a CQ-code string
)

// ErrUnsupportedSegment is the error of a message that holds a segment
// SmartQQ cannot send (an image, a record, …).
var ErrUnsupportedSegment = errors.New("onebot: segment type not supported by SmartQQ")

// ErrEmptyMessage is the error of a message with nothing SmartQQ can send.
var ErrEmptyMessage = errors.New("onebot: empty message")

// DecodeMessage decodes the "message" parameter of a send action: a CQ-code
// string (taken as plain text when autoEscape), an array of segments, or one
// segment object.
func DecodeMessage(raw json.RawMessage, autoEscape bool) ([]Segment, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, ErrEmptyMessage
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("message: %w", err)
		}
		if autoEscape {
			return []Segment{TextSeg(s)}, nil
		}
		return ParseCQ(s)
	case '[':
		var segs []Segment
		if err := json.Unmarshal(raw, &segs); err != nil {
			return nil, fmt.Errorf("message: not an array of segments: %w", err)
		}
		return segs, nil
	case '{':
		var seg Segment
		if err := json.Unmarshal(raw, &seg); err != nil {
			return nil, fmt.Errorf("message: not a segment: %w", err)
		}
		return []Segment{seg}, nil
	}
	return nil, errors.New("message: want a string, an array of segments or a segment")
}

// ToSchema maps OneBot segments to qqbridge segments: text stays text (runs
// are merged), face becomes a face (id 0..255), at becomes the text "@name"
// (or "@" and the number; SmartQQ has no mentions), reply is dropped
// (SmartQQ cannot quote). Any other type is an error matching
// ErrUnsupportedSegment; a message left with nothing is ErrEmptyMessage.
func ToSchema(segs []Segment) ([]schema.Segment, error) {
	var out []schema.Segment
	addText := func(t string) {
		if t == "" {
			return
		}
		if n := len(out); n > 0 && out[n-1].Type == schema.SegmentText {
			out[n-1].Text += t
			return
		}
		out = append(out, schema.TextSegment(t))
	}
	for i, s := range segs {
		switch s.Type {
		case "text":
			addText(s.Data["text"])
		case "face":
			id, err := strconv.Atoi(strings.TrimSpace(s.Data["id"]))
			if err != nil || id < 0 || id > schema.MaxFace {
				return nil, fmt.Errorf("message[%d]: face id %q: want 0..%d", i, truncate(s.Data["id"], 16), schema.MaxFace)
			}
			out = append(out, schema.FaceSegment(id))
		case "at":
			who := s.Data["name"]
			if who == "" {
				who = s.Data["qq"]
			}
			if who == "all" {
				who = "全体成员"
			}
			addText("@" + who + " ")
		case "reply":
		default:
			return nil, fmt.Errorf("%w: message[%d] is %q (text, face, at and reply can be sent)", ErrUnsupportedSegment, i, truncate(s.Type, 32))
		}
	}
	if len(out) == 0 {
		return nil, ErrEmptyMessage
	}
	return out, nil
}

// FromSchema maps the content of a qqbridge event to OneBot segments. A
// message that held only a picture (which QQ strips) becomes one image
// segment with file "stripped" and no url; a picture QQ delivered (an image
// segment) is an image segment whose file is its object name in the media
// bucket; segment types this version does not know are skipped.
func FromSchema(e *schema.Event) []Segment {
	segs := make([]Segment, 0, len(e.Segments)+1)
	for _, s := range e.Segments {
		switch s.Type {
		case schema.SegmentText:
			segs = append(segs, TextSeg(s.Text))
		case schema.SegmentFace:
			segs = append(segs, FaceSeg(s.Face))
		case schema.SegmentImage:
			if s.Image != nil {
				segs = append(segs, Segment{Type: "image", Data: map[string]string{"file": s.Image.Ref}})
			}
		}
	}
	if len(segs) == 0 && e.Picture {
		segs = append(segs, Segment{Type: "image", Data: map[string]string{"file": "stripped"}})
	}
	if len(segs) == 0 && e.Text != "" {
		segs = append(segs, TextSeg(e.Text))
	}
	return segs
}

// PlainText is the text of segments with every non-text segment left out.
func PlainText(segs []Segment) string {
	var b strings.Builder
	for _, s := range segs {
		if s.Type == "text" {
			b.WriteString(s.Data["text"])
		}
	}
	return b.String()
}
