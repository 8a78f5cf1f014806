package qqclient

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Font is the font segment of a message's content.
type Font struct {
	Name  string `json:"name"`
	Size  int    `json:"size"`
	Style [3]int `json:"style"`
	Color string `json:"color"`
}

// DefaultFont is the font the web client sends: 宋体, size 10, plain, black.
func DefaultFont() Font {
	return Font{Name: "宋体", Size: 10, Style: [3]int{0, 0, 0}, Color: "000000"}
}

// SegmentType is the kind of a content segment.
type SegmentType string

// Segment types.
const (
	SegmentText SegmentType = "text"
	SegmentFace SegmentType = "face"
)

// Segment is one piece of a message: text (Text) or a built-in face (Face, its number).
type Segment struct {
	Type SegmentType `json:"type"`
	Text string      `json:"text,omitempty"`
	Face int         `json:"face,omitempty"`
}

// TextSegment is a text segment.
func TextSegment(s string) Segment { return Segment{Type: SegmentText, Text: s} }

// FaceSegment is a face segment.
func FaceSegment(n int) Segment { return Segment{Type: SegmentFace, Face: n} }

// DecodeContent decodes the content of a received message: a JSON array holding the font
// segment ["font",{…}] (usually first), text strings (HTML entities unescaped) and faces
// ["face",N], in order. The send form — a JSON string holding such an array — is accepted
// too. Empty text strings and unknown segments (pictures the server did not strip) are
// skipped; a content with no text and no face is a picture the server stripped. When no
// font segment is present the font is the zero Font.
func DecodeContent(raw json.RawMessage) (Font, []Segment, error) {
	font, segs, _, err := decodeContent(raw)
	return font, segs, err
}

// DecodeContentPictures is DecodeContent that also returns the pictures of the content
// (offpic and cface items), in order; each Picture's Index says how many segments came
// before it. A picture item that is not [name, {…}] is skipped.
func DecodeContentPictures(raw json.RawMessage) (Font, []Segment, []Picture, error) {
	return decodeContent(raw)
}

func decodeContent(raw json.RawMessage) (Font, []Segment, []Picture, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return Font{}, nil, nil, fmt.Errorf("%w: content: %v", ErrProtocol, err)
		}
		raw = bytes.TrimSpace([]byte(s))
	}
	// One pass over the array: the common items (a text without escapes, a
	// face) are decoded as the array is (contentItem); the others are kept
	// and decoded below, as before.
	var items []contentItem
	if err := json.Unmarshal(raw, &items); err != nil {
		return Font{}, nil, nil, fmt.Errorf("%w: content is not an array", ErrProtocol)
	}
	return decodeContentItems(items)
}

// decodeContentItems decodes the items of a content array.
func decodeContentItems(items []contentItem) (Font, []Segment, []Picture, error) {
	var font Font
	segs := make([]Segment, 0, len(items))
	var pics []Picture
	for i, ci := range items {
		switch ci.kind {
		case itemText:
			if ci.text != "" {
				segs = append(segs, TextSegment(UnescapeEntities(ci.text)))
			}
			continue
		case itemFace:
			segs = append(segs, FaceSegment(ci.face))
			continue
		case itemFont:
			font = ci.font
			continue
		}
		it := bytes.TrimSpace(ci.raw)
		if len(it) == 0 {
			continue
		}
		switch it[0] {
		case '"':
			var s string
			if err := json.Unmarshal(it, &s); err != nil {
				return Font{}, nil, nil, fmt.Errorf("%w: content[%d]: bad string", ErrProtocol, i)
			}
			if s != "" {
				segs = append(segs, TextSegment(UnescapeEntities(s)))
			}
		case '[':
			var parts []json.RawMessage
			if err := json.Unmarshal(it, &parts); err != nil || len(parts) == 0 {
				return Font{}, nil, nil, fmt.Errorf("%w: content[%d]: bad segment", ErrProtocol, i)
			}
			var kind string
			if err := json.Unmarshal(parts[0], &kind); err != nil {
				return Font{}, nil, nil, fmt.Errorf("%w: content[%d]: segment without a name", ErrProtocol, i)
			}
			switch kind {
			case "font":
				if len(parts) < 2 {
					return Font{}, nil, nil, fmt.Errorf("%w: content[%d]: font without value", ErrProtocol, i)
				}
				f, err := decodeFont(parts[1])
				if err != nil {
					return Font{}, nil, nil, fmt.Errorf("%w: content[%d]: %v", ErrProtocol, i, err)
				}
				font = f
			case "face":
				if len(parts) < 2 {
					return Font{}, nil, nil, fmt.Errorf("%w: content[%d]: face without number", ErrProtocol, i)
				}
				var n flexInt
				if err := json.Unmarshal(parts[1], &n); err != nil || n < 0 || n > 1<<31-1 {
					return Font{}, nil, nil, fmt.Errorf("%w: content[%d]: bad face number", ErrProtocol, i)
				}
				segs = append(segs, FaceSegment(int(n)))
			case "offpic", "cface":
				if len(parts) >= 2 {
					if p, ok := decodePicture(kind, parts[1]); ok {
						p.Index = len(segs)
						pics = append(pics, p)
					}
				}
			default:
				// others: not part of the protocol; skipped.
			}
		default:
			// numbers, objects: not part of the protocol; skipped.
		}
	}
	if len(segs) == 0 {
		segs = nil
	}
	return font, segs, pics, nil
}

// contentItem is one item of a content array: a text without escapes or a
// face decoded on the way (kind), or, for anything else, the item's JSON
// (raw) for decodeContent to decode.
type contentItem struct {
	kind int
	text string
	face int
	font Font
	raw  []byte
}

const (
	itemRaw = iota
	itemText
	itemFace
	itemFont
)

// UnmarshalJSON implements json.Unmarshaler; it never fails (an item it
// does not take on is kept in raw).
func (c *contentItem) UnmarshalJSON(b []byte) error {
	if t, ok := plainString(b); ok {
		c.kind, c.text = itemText, t
		return nil
	}
	if n, ok := plainFace(b); ok {
		c.kind, c.face = itemFace, n
		return nil
	}
	const fontPrefix = `["font",{`
	if len(b) > len(fontPrefix)+1 && string(b[:len(fontPrefix)]) == fontPrefix && b[len(b)-1] == ']' && b[len(b)-2] == '}' {
		if f, err := decodeFont(b[len(fontPrefix)-1 : len(b)-1]); err == nil {
			c.kind, c.font = itemFont, f
			return nil
		}
	}
	c.kind, c.raw = itemRaw, append([]byte(nil), b...)
	return nil
}

// plainString decodes b when it is a JSON string without escapes and of
// valid UTF-8 (its bytes are then its value).
func plainString(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return "", false
	}
	in := b[1 : len(b)-1]
	if bytes.IndexByte(in, '\\') >= 0 || bytes.IndexByte(in, '"') >= 0 || !utf8.Valid(in) {
		return "", false
	}
	return string(in), true
}

// plainFace decodes b when it is exactly ["face",N] with N a plain number of
// at most 9 digits.
func plainFace(b []byte) (int, bool) {
	const prefix = `["face",`
	if len(b) < len(prefix)+2 || string(b[:len(prefix)]) != prefix || b[len(b)-1] != ']' {
		return 0, false
	}
	digits := b[len(prefix) : len(b)-1]
	if len(digits) == 0 || len(digits) > 9 {
		return 0, false
	}
	n := 0
	for _, d := range digits {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int(d-'0')
	}
	return n, true
}

// wireFont is the font object as it travels, tolerant on input.
type wireFont struct {
	Name  flexString `json:"name"`
	Size  flexInt    `json:"size"`
	Style []flexInt  `json:"style"`
	Color flexString `json:"color"`
}

func decodeFont(raw json.RawMessage) (Font, error) {
	var w wireFont
	if err := json.Unmarshal(raw, &w); err != nil {
		return Font{}, fmt.Errorf("bad font")
	}
	f := Font{Name: string(w.Name), Size: int(w.Size), Color: string(w.Color)}
	for i := 0; i < len(w.Style) && i < 3; i++ {
		f.Style[i] = int(w.Style[i])
	}
	return f, nil
}

// EncodeContent builds the value of the "content" field of a send request: a JSON *string*
// holding the array of text and face segments followed by the font segment LAST, e.g.
// ["hi",["face",14],["font",{"name":"宋体","size":10,"style":[0,0,0],"color":"000000"}]].
// Text is sent as is (no entity escaping). A segment of unknown type or a negative face
// number is an error wrapping ErrBadRequest.
func EncodeContent(segs []Segment, font Font) (string, error) {
	items := make([]any, 0, len(segs)+1)
	for i, s := range segs {
		switch s.Type {
		case SegmentText:
			items = append(items, s.Text)
		case SegmentFace:
			if s.Face < 0 {
				return "", fmt.Errorf("%w: segment %d: negative face number", ErrBadRequest, i)
			}
			items = append(items, []any{"face", s.Face})
		default:
			return "", fmt.Errorf("%w: segment %d: unknown type %q", ErrBadRequest, i, s.Type)
		}
	}
	items = append(items, []any{"font", font})
	b, err := marshalJSON(items)
	if err != nil {
		return "", fmt.Errorf("%w: content: %v", ErrBadRequest, err)
	}
	return string(b), nil
}

// segmentSize is the size a segment counts for in the MaxPartBytes limit: the UTF-8 bytes of
// a text, the encoded size of a face (["face",14] is 11 bytes).
func segmentSize(s Segment) int {
	if s.Type == SegmentFace {
		return faceSize(s.Face)
	}
	return len(s.Text)
}

func faceSize(n int) int { return len(`["face",]`) + len(strconv.Itoa(n)) }

// ContentSize is the size of segs in the MaxPartBytes limit.
func ContentSize(segs []Segment) int {
	n := 0
	for _, s := range segs {
		n += segmentSize(s)
	}
	return n
}

// Text is the message's text: its text segments concatenated, faces omitted.
func (m *Message) Text() string {
	var b strings.Builder
	for _, s := range m.Segments {
		if s.Type == SegmentText {
			b.WriteString(s.Text)
		}
	}
	return b.String()
}

// splitMin is the lower end of the window where Split prefers to cut at whitespace.
const splitMin = 620

// Split cuts a message into parts of at most MaxPartBytes each (text bytes; a face counts as
// its encoded size). A cut falls after the last whitespace character that ends between bytes
// 620 and 720 of the part, when there is one; else at the last character or segment boundary
// before the limit. Faces are never cut, nor are UTF-8 characters. The parts, concatenated,
// hold exactly the input (adjacent text segments may be merged or divided differently).
// A message that fits is returned as one part; an empty one as none.
func Split(segs []Segment) [][]Segment {
	if len(segs) == 0 {
		return nil
	}
	if ContentSize(segs) <= MaxPartBytes {
		parts := mergeParts([][]Segment{append([]Segment(nil), segs...)})
		if len(parts[0]) == 0 {
			return nil
		}
		return parts
	}
	// Atoms: one per face and per text rune, in order.
	type atom struct {
		seg        int // index in segs
		start, end int // byte range within segs[seg].Text (text atoms)
		size       int
		space      bool
	}
	atoms := make([]atom, 0, ContentSize(segs))
	for i, s := range segs {
		if s.Type != SegmentText {
			atoms = append(atoms, atom{seg: i, size: segmentSize(s)})
			continue
		}
		for j, r := range s.Text {
			_, n := utf8.DecodeRuneInString(s.Text[j:]) // 1 for an invalid byte
			atoms = append(atoms, atom{seg: i, start: j, end: j + n, size: n, space: unicode.IsSpace(r)})
		}
	}
	var parts [][]Segment
	emit := func(as []atom) {
		var part []Segment
		for i := 0; i < len(as); {
			a := as[i]
			s := segs[a.seg]
			if s.Type != SegmentText {
				part = append(part, s)
				i++
				continue
			}
			j := i + 1
			for j < len(as) && as[j].seg == a.seg {
				j++
			}
			part = append(part, TextSegment(s.Text[a.start:as[j-1].end]))
			i = j
		}
		parts = append(parts, part)
	}
	for len(atoms) > 0 {
		size, fit := 0, 0
		for fit < len(atoms) && size+atoms[fit].size <= MaxPartBytes {
			size += atoms[fit].size
			fit++
		}
		if fit == len(atoms) {
			emit(atoms)
			break
		}
		cut := fit
		for i, sz := fit, size; i > 0 && sz >= splitMin; i-- {
			if atoms[i-1].space {
				cut = i
				break
			}
			sz -= atoms[i-1].size
		}
		emit(atoms[:cut])
		atoms = atoms[cut:]
	}
	return mergeParts(parts)
}

// UnescapeEntities replaces the HTML entities SmartQQ puts in received text: &lt; &gt;
// &amp; &quot; &apos; &#92; and other numeric entities (&#NNN; &#xHH;). &nbsp; becomes a
// plain space. Anything else that looks like an entity is left as it is.
func UnescapeEntities(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for {
		i := strings.IndexByte(s, '&')
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		s = s[i:]
		j := strings.IndexByte(s, ';')
		if j < 0 || j > 12 {
			b.WriteByte('&')
			s = s[1:]
			continue
		}
		name := s[1:j]
		if r, ok := entity(name); ok {
			b.WriteString(r)
			s = s[j+1:]
			continue
		}
		b.WriteByte('&')
		s = s[1:]
	}
}

// entity is the text of the named or numeric entity name (without & and ;).
func entity(name string) (string, bool) {
	switch name {
	case "lt":
		return "<", true
	case "gt":
		return ">", true
	case "amp":
		return "&", true
	case "quot":
		return `"`, true
	case "apos":
		return "'", true
	case "nbsp":
		return " ", true
	}
	if len(name) < 2 || name[0] != '#' {
		return "", false
	}
	var n uint64
	var err error
	if name[1] == 'x' || name[1] == 'X' {
		if len(name) < 3 {
			return "", false
		}
		n, err = strconv.ParseUint(name[2:], 16, 32)
	} else {
		n, err = strconv.ParseUint(name[1:], 10, 32)
	}
	if err != nil || n == 0 || n > utf8.MaxRune || (n >= 0xD800 && n <= 0xDFFF) {
		return "", false
	}
	return string(rune(n)), true
}

// mergeParts joins adjacent text segments and drops empty ones inside each part.
func mergeParts(parts [][]Segment) [][]Segment {
	for i, p := range parts {
		out := make([]Segment, 0, len(p))
		for _, s := range p {
			if s.Type == SegmentText && s.Text == "" {
				continue
			}
			if n := len(out); n > 0 && s.Type == SegmentText && out[n-1].Type == SegmentText {
				out[n-1].Text += s.Text
				continue
			}
			out = append(out, s)
		}
		parts[i] = out
	}
	return parts
}
