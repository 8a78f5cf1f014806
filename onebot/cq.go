package onebot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Segment is one OneBot v11 message segment: {"type":"face","data":{"id":"14"}}.
// Data values are strings, as the CQ-code form writes them; a value that a
// client sent as a JSON number or boolean is kept in its JSON text.
type Segment struct {
	Type string            `json:"type"`
	Data map[string]string `json:"data"`
}

// MarshalJSON writes data as {} when it is empty (never null).
func (s Segment) MarshalJSON() ([]byte, error) {
	type plain Segment
	if s.Data == nil {
		s.Data = map[string]string{}
	}
	return marshalNoEscape(plain(s))
}

// UnmarshalJSON accepts data values of any JSON scalar type; objects and
// arrays inside data are kept as their JSON text.
func (s *Segment) UnmarshalJSON(b []byte) error {
	var in struct {
		Type string                     `json:"type"`
		Data map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	if in.Type == "" {
		return errors.New("segment without type")
	}
	s.Type = in.Type
	s.Data = make(map[string]string, len(in.Data))
	for k, raw := range in.Data {
		if string(bytes.TrimSpace(raw)) == "null" {
			continue
		}
		var str string
		if err := json.Unmarshal(raw, &str); err == nil {
			s.Data[k] = str
			continue
		}
		s.Data[k] = string(bytes.TrimSpace(raw))
	}
	return nil
}

// TextSeg returns a text segment.
func TextSeg(text string) Segment {
	return Segment{Type: "text", Data: map[string]string{"text": text}}
}

// FaceSeg returns a face segment.
func FaceSeg(id int) Segment {
	return Segment{Type: "face", Data: map[string]string{"id": strconv.Itoa(id)}}
}

// EscapeCQ escapes text for the text part of a CQ-code string: & [ ].
func EscapeCQ(s string) string {
	if !strings.ContainsAny(s, "&[]") {
		return s
	}
	return cqTextEscaper.Replace(s)
}

// EscapeCQParam escapes a CQ code's parameter value: & [ ] and ",".
func EscapeCQParam(s string) string {
	if !strings.ContainsAny(s, "&[],") {
		return s
	}
	return cqParamEscaper.Replace(s)
}

// UnescapeCQ reverses EscapeCQ and EscapeCQParam; an & that starts none of
// the four entities is kept as it is.
func UnescapeCQ(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	return cqUnescaper.Replace(s)
}

var (
	cqTextEscaper  = strings.NewReplacer("&", "&amp;", "[", "&#91;", "]", "&#93;")
	cqParamEscaper = strings.NewReplacer("&", "&amp;", "[", "&#91;", "]", "&#93;", ",", "&#44;")
	cqUnescaper    = strings.NewReplacer("&amp;", "&", "&#91;", "[", "&#93;", "]", "&#44;", ",")
)

// FormatCQ writes segments as a CQ-code string: text escaped, every other
// segment as [CQ:type,key=value,…] with its keys in sorted order.
func FormatCQ(segs []Segment) string {
	var b strings.Builder
	for _, s := range segs {
		if s.Type == "text" {
			b.WriteString(EscapeCQ(s.Data["text"]))
			continue
		}
		b.WriteString("[CQ:")
		b.WriteString(s.Type)
		keys := make([]string, 0, len(s.Data))
		for k := range s.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			b.WriteByte(',')
			b.WriteString(k)
			b.WriteByte('=')
			b.WriteString(EscapeCQParam(s.Data[k]))
		}
		b.WriteByte(']')
	}
	return b.String()
}

// ErrCQ is the error of a CQ-code string that does not parse.
var ErrCQ = errors.New("onebot: malformed CQ code")

// ParseCQ parses a CQ-code string into segments. Text between codes becomes
// text segments (unescaped); "[CQ:type,k=v,…]" becomes a segment of that
// type. A "[" that does not start "[CQ:" is an error only when unescaped
// brackets would be ambiguous: a lone "[" or "]" in text is kept as text, as
// the common implementations do. A code without its closing "]", with an
// empty type or a parameter without "=", is an error matching ErrCQ.
func ParseCQ(s string) ([]Segment, error) {
	var segs []Segment
	var text strings.Builder
	flush := func() {
		if text.Len() > 0 {
			segs = append(segs, TextSeg(UnescapeCQ(text.String())))
			text.Reset()
		}
	}
	for len(s) > 0 {
		i := strings.Index(s, "[CQ:")
		if i < 0 {
			text.WriteString(s)
			break
		}
		text.WriteString(s[:i])
		s = s[i+len("[CQ:"):]
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return nil, fmt.Errorf("%w: a code is not closed with ]", ErrCQ)
		}
		body := s[:end]
		s = s[end+1:]
		if strings.IndexByte(body, '[') >= 0 {
			return nil, fmt.Errorf("%w: [ inside a code", ErrCQ)
		}
		parts := strings.Split(body, ",")
		typ := parts[0]
		if typ == "" || strings.ContainsAny(typ, "&= \t\r\n") {
			return nil, fmt.Errorf("%w: code type %q", ErrCQ, truncate(typ, 32))
		}
		seg := Segment{Type: typ, Data: make(map[string]string, len(parts)-1)}
		for _, p := range parts[1:] {
			k, v, ok := strings.Cut(p, "=")
			if !ok || k == "" {
				return nil, fmt.Errorf("%w: parameter %q of %s has no key=value", ErrCQ, truncate(p, 32), truncate(typ, 32))
			}
			seg.Data[k] = UnescapeCQ(v)
		}
		flush()
		segs = append(segs, seg)
	}
	flush()
	return segs, nil
}

// truncate shortens s to at most n bytes for error messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

// marshalNoEscape is json.Marshal without HTML escaping (so that a chat's
// "<", ">" and "&" stay as they are, as JavaScript's JSON.stringify writes
// them: the X-Signature of a push is checked against that form).
func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}
