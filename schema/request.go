package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
)

// Limits on a send request.
const (
	// MaxRequestBytes is the largest encoded request DecodeRequest accepts.
	MaxRequestBytes = 128 << 10
	// MaxTextBytes is the most UTF-8 text one request may carry: Text, or
	// the texts of all its Segments together. The bridge splits long text
	// into several QQ messages (Result.Parts).
	MaxTextBytes = 16 << 10
	// MaxSegments is the most segments one request may carry.
	MaxSegments = 512
	// MaxFace is the largest face number accepted.
	MaxFace = 255
	// MaxIDBytes is the longest request id accepted.
	MaxIDBytes = 128
)

// Target says who a request goes to: a stable number (QQ, Group) or a
// session number (UIN, GID, DID), exactly one per role. See Request.Validate.
type Target struct {
	QQ    int64 `json:"qq,omitempty" msgpack:"qq,omitempty"`
	Group int64 `json:"group,omitempty" msgpack:"group,omitempty"`
	UIN   int64 `json:"uin,omitempty" msgpack:"uin,omitempty"`
	GID   int64 `json:"gid,omitempty" msgpack:"gid,omitempty"`
	DID   int64 `json:"did,omitempty" msgpack:"did,omitempty"`
}

// Request asks the bridge to send one message. The kind (friend, group,
// discuss, sess) comes from the subject it is published on. ID is an
// optional idempotency key chosen by the sender and echoed in the Result; a
// sender that publishes to JetStream should also put it in Nats-Msg-Id.
// V is optional; when present it must be Version.
type Request struct {
	V        int       `json:"v,omitempty" msgpack:"v,omitempty"`
	ID       string    `json:"id,omitempty" msgpack:"id,omitempty"`
	To       Target    `json:"to" msgpack:"to"`
	Text     string    `json:"text,omitempty" msgpack:"text,omitempty"`
	Segments []Segment `json:"segments,omitempty" msgpack:"segments,omitempty"`
}

// ValidationError says what is wrong with a request. Field is the path of
// the offending field ("to.qq", "segments[2].face", "text"), "body" for a
// body that could not be decoded, "content-type" for an unknown encoding,
// "kind" for the subject's kind, "subject" for the target key of a target
// subject (Subjects.OutTo), and "" for a problem of the whole message
// (empty, or both text and segments).
type ValidationError struct {
	Field  string
	Reason string
}

// Error returns "invalid request: <field>: <reason>".
func (e *ValidationError) Error() string {
	if e.Field == "" {
		return "invalid request: " + e.Reason
	}
	return "invalid request: " + e.Field + ": " + e.Reason
}

// Is makes errors.Is(err, ErrInvalidRequest) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidRequest }

func invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Validate checks the request for kind:
//   - kind is friend, group, discuss or sess;
//   - friend: to.qq or to.uin; group: to.group or to.gid; discuss: to.did;
//     sess: (to.qq or to.uin) and (to.group or to.gid) — the group the
//     temporary chat goes through; exactly one way per role, no other target
//     field, every number positive;
//   - text or segments, not both, not empty; valid UTF-8 without NUL; at
//     most MaxTextBytes of text and MaxSegments segments;
//   - each segment is {"type":"text"} with non-empty text or {"type":"face"}
//     with 0 <= face <= MaxFace, and nothing else;
//   - id at most MaxIDBytes of printable UTF-8; v absent or Version.
//
// The error is a *ValidationError for the first problem found; it matches
// ErrInvalidRequest.
func (r *Request) Validate(kind Kind) error {
	if r == nil {
		return invalid("", "no request")
	}
	if !kind.Sendable() {
		return invalid("kind", "%q cannot be sent to: want friend, group, discuss or sess", truncate(string(kind), 32))
	}
	if r.V != 0 && r.V != Version {
		return invalid("v", "version %d is not supported (want %d)", r.V, Version)
	}
	if len(r.ID) > MaxIDBytes {
		return invalid("id", "longer than %d bytes", MaxIDBytes)
	}
	if !printable(r.ID) {
		return invalid("id", "must be printable UTF-8")
	}
	if err := r.To.validate(kind); err != nil {
		return err
	}
	return validateContent(r.Text, r.Segments)
}

func (t Target) validate(kind Kind) error {
	fields := []struct {
		name string
		v    int64
	}{{"qq", t.QQ}, {"group", t.Group}, {"uin", t.UIN}, {"gid", t.GID}, {"did", t.DID}}
	for _, f := range fields {
		if f.v < 0 {
			return invalid("to."+f.name, "must be positive, got %d", f.v)
		}
	}
	person := func() error { return oneOf(kind, "qq", t.QQ, "uin", t.UIN) }
	group := func() error { return oneOf(kind, "group", t.Group, "gid", t.GID) }
	var roles []func() error
	var allowed map[string]bool
	switch kind {
	case KindFriend:
		roles, allowed = []func() error{person}, map[string]bool{"qq": true, "uin": true}
	case KindGroup:
		roles, allowed = []func() error{group}, map[string]bool{"group": true, "gid": true}
	case KindDiscuss:
		roles = []func() error{func() error {
			if t.DID == 0 {
				return invalid("to", "discuss needs did")
			}
			return nil
		}}
		allowed = map[string]bool{"did": true}
	case KindSess:
		roles = []func() error{person, group}
		allowed = map[string]bool{"qq": true, "uin": true, "group": true, "gid": true}
	}
	for _, f := range fields {
		if f.v != 0 && !allowed[f.name] {
			return invalid("to."+f.name, "not used by %s (it takes %s)", kind, takes(kind))
		}
	}
	for _, role := range roles {
		if err := role(); err != nil {
			return err
		}
	}
	return nil
}

func takes(kind Kind) string {
	switch kind {
	case KindFriend:
		return "qq or uin"
	case KindGroup:
		return "group or gid"
	case KindDiscuss:
		return "did"
	}
	return "qq or uin, and group or gid"
}

func oneOf(kind Kind, stable string, sv int64, session string, nv int64) error {
	switch {
	case sv != 0 && nv != 0:
		return invalid("to", "%s takes %s or %s, not both", kind, stable, session)
	case sv == 0 && nv == 0:
		return invalid("to", "%s needs %s or %s", kind, stable, session)
	}
	return nil
}

func validateContent(text string, segs []Segment) error {
	switch {
	case text != "" && len(segs) > 0:
		return invalid("", "text and segments are exclusive: send one of them")
	case text == "" && len(segs) == 0:
		return invalid("", "empty message: text or segments required")
	}
	if text != "" {
		return checkText("text", text, len(text))
	}
	if len(segs) > MaxSegments {
		return invalid("segments", "%d segments, at most %d allowed", len(segs), MaxSegments)
	}
	total := 0
	for i, s := range segs {
		field := fmt.Sprintf("segments[%d]", i)
		switch s.Type {
		case SegmentText:
			if s.Face != 0 {
				return invalid(field+".face", "a text segment has no face")
			}
			if s.Text == "" {
				return invalid(field+".text", "empty")
			}
			total += len(s.Text)
			if err := checkText(field+".text", s.Text, total); err != nil {
				return err
			}
		case SegmentFace:
			if s.Text != "" {
				return invalid(field+".text", "a face segment has no text")
			}
			if s.Face < 0 || s.Face > MaxFace {
				return invalid(field+".face", "%d is out of range 0..%d", s.Face, MaxFace)
			}
		case "":
			return invalid(field+".type", "missing: want \"text\" or \"face\"")
		default:
			return invalid(field+".type", "%q: want \"text\" or \"face\"", truncate(s.Type, 32))
		}
	}
	return nil
}

func checkText(field, s string, total int) error {
	if total > MaxTextBytes {
		return invalid(field, "text longer than %d bytes", MaxTextBytes)
	}
	if !utf8.ValidString(s) {
		return invalid(field, "not valid UTF-8")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return invalid(field, "contains a NUL character")
	}
	return nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < ' ' || r == 0x7f || r >= 0x80 && r <= 0x9f {
			return false
		}
	}
	return true
}

// requestIn is the decoding form of a Request: pointers tell a missing
// field from a zero one.
type requestIn struct {
	V        *int        `json:"v" msgpack:"v"`
	ID       string      `json:"id" msgpack:"id"`
	To       *Target     `json:"to" msgpack:"to"`
	Text     string      `json:"text" msgpack:"text"`
	Segments []segmentIn `json:"segments" msgpack:"segments"`
}

type segmentIn struct {
	Type string  `json:"type" msgpack:"type"`
	Text *string `json:"text" msgpack:"text"`
	Face *int    `json:"face" msgpack:"face"`
}

// DecodeRequest decodes a send request whose Content-Type is contentType
// ("" means JSON). It is strict: the body must be one JSON object (or one
// msgpack map) of at most MaxRequestBytes, with no field this package does
// not know (a misspelt "txt" is an error, not an empty message) — though
// encoding/json matches JSON field names case-insensitively — and each
// segment must carry the value its type needs ("face" for a face, "text"
// for a text). A JSON body must be valid UTF-8 as a whole. It does not check the target against a kind: call Validate.
// Errors are *ValidationError and match ErrInvalidRequest; an unknown
// Content-Type also matches ErrUnsupportedContentType.
func DecodeRequest(contentType string, data []byte) (*Request, error) {
	c, err := CodecFor(contentType)
	if err != nil {
		return nil, &contentTypeError{invalid("content-type", "%q: want %s or %s", truncate(contentType, 64), ContentTypeJSON, ContentTypeMsgpack)}
	}
	if len(data) > MaxRequestBytes {
		return nil, invalid("body", "%d bytes, at most %d allowed", len(data), MaxRequestBytes)
	}
	var in requestIn
	switch c.(type) {
	case msgpackCodec:
		err = decodeMsgpackStrict(data, &in)
	default:
		err = decodeJSONStrict(data, &in)
	}
	if err != nil {
		return nil, err
	}
	r := &Request{ID: in.ID, Text: in.Text}
	if in.V != nil {
		if *in.V != Version {
			return nil, invalid("v", "version %d is not supported (want %d)", *in.V, Version)
		}
		r.V = *in.V
	}
	if in.To == nil {
		return nil, invalid("to", "missing")
	}
	r.To = *in.To
	if len(in.Segments) > MaxSegments {
		return nil, invalid("segments", "%d segments, at most %d allowed", len(in.Segments), MaxSegments)
	}
	if len(in.Segments) > 0 {
		r.Segments = make([]Segment, len(in.Segments))
	}
	for i, s := range in.Segments {
		field := fmt.Sprintf("segments[%d]", i)
		seg := Segment{Type: s.Type}
		switch s.Type {
		case SegmentFace:
			if s.Face == nil {
				return nil, invalid(field+".face", "missing")
			}
			if s.Text != nil {
				return nil, invalid(field+".text", "a face segment has no text")
			}
			seg.Face = *s.Face
		case SegmentText:
			if s.Text == nil {
				return nil, invalid(field+".text", "missing")
			}
			if s.Face != nil {
				return nil, invalid(field+".face", "a text segment has no face")
			}
			seg.Text = *s.Text
		case "":
			return nil, invalid(field+".type", "missing: want \"text\" or \"face\"")
		default:
			return nil, invalid(field+".type", "%q: want \"text\" or \"face\"", truncate(s.Type, 32))
		}
		r.Segments[i] = seg
	}
	return r, nil
}

// contentTypeError is a ValidationError that also matches
// ErrUnsupportedContentType.
type contentTypeError struct{ *ValidationError }

func (e *contentTypeError) Is(target error) bool {
	return target == ErrInvalidRequest || target == ErrUnsupportedContentType
}

// Unwrap exposes the *ValidationError to errors.As.
func (e *contentTypeError) Unwrap() error { return e.ValidationError }

func decodeJSONStrict(data []byte, in *requestIn) error {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return invalid("body", "not a JSON object")
	}
	// encoding/json replaces invalid UTF-8 with U+FFFD, after which no check
	// can tell: look at the raw bytes first (msgpack strings keep their
	// bytes, and Validate refuses them).
	if !utf8.Valid(data) {
		return invalid("body", "not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(in); err != nil {
		return invalid("body", "%s", jsonErrorText(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalid("body", "data after the JSON object")
	}
	return nil
}

// jsonErrorText describes a JSON decoding error without quoting the input.
func jsonErrorText(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %s: cannot hold a JSON %s", typ.Field, typ.Value)
		}
		return fmt.Sprintf("cannot hold a JSON %s", typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "truncated JSON"
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return "unknown field " + truncate(f, 64)
	}
	return "malformed JSON"
}

func decodeMsgpackStrict(data []byte, in *requestIn) error {
	if len(data) == 0 {
		return invalid("body", "empty")
	}
	if !isMsgpackMap(data[0]) {
		return invalid("body", "not a msgpack map")
	}
	if err := checkMsgpack(data); err != nil {
		return invalid("body", "%s", msgpackErrorText(err))
	}
	rd := bytes.NewReader(data)
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(rd)
	dec.DisallowUnknownFields(true)
	if err := dec.Decode(in); err != nil {
		return invalid("body", "%s", msgpackErrorText(err))
	}
	if rd.Len() != 0 {
		return invalid("body", "data after the msgpack map")
	}
	return nil
}

func msgpackErrorText(err error) string {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, errMsgpackTruncated) {
		return "truncated msgpack"
	}
	text := strings.TrimPrefix(err.Error(), "msgpack: ")
	if strings.HasPrefix(text, "unknown field ") {
		return truncate(text, 80)
	}
	return "malformed msgpack: " + truncate(text, 120)
}

// isMsgpackMap reports whether c starts a msgpack map (fixmap, map16, map32).
func isMsgpackMap(c byte) bool { return c&0xf0 == 0x80 || c == 0xde || c == 0xdf }
