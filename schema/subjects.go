package schema

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DefaultPrefix is the subject prefix used when none is configured.
const DefaultPrefix = "qq"

// ServiceName is the name of the bridge's NATS micro service (under
// <prefix>.api.).
const ServiceName = "qqbridge"

// Keys in the session KV bucket (Subjects.SessionBucket): the latest
// SessionState and the latest QR.
const (
	SessionKeyState = "state"
	SessionKeyQR    = "qr"
)

// Session-number kinds, the prefixes of SessionNumberID.
const (
	IDPrefixUIN = "uin" // a person's session number
	IDPrefixGID = "gid" // a group's session number (group_uin)
	IDPrefixDID = "did" // a discussion's session number
)

// maxTokenLen bounds the length of any token this package builds or accepts.
const maxTokenLen = 64

// Subjects builds every subject, stream and bucket name of one bridge (one QQ
// account) from its prefix. The zero value uses DefaultPrefix. Subjects is a
// small value; copy it freely.
type Subjects struct {
	prefix string
}

// NewSubjects returns the subjects under prefix: one or more tokens
// separated by '.', each made of [A-Za-z0-9_-]. An empty prefix means
// DefaultPrefix. The error wraps ErrInvalidSubject.
func NewSubjects(prefix string) (Subjects, error) {
	if prefix == "" {
		return Subjects{prefix: DefaultPrefix}, nil
	}
	if len(prefix) > 128 {
		return Subjects{}, fmt.Errorf("%w: prefix longer than 128 bytes", ErrInvalidSubject)
	}
	for i, tok := range strings.Split(prefix, ".") {
		if tok == "" {
			return Subjects{}, fmt.Errorf("%w: prefix %q has an empty token", ErrInvalidSubject, truncate(prefix, 64))
		}
		for _, c := range []byte(tok) {
			if !isNameByte(c) {
				return Subjects{}, fmt.Errorf("%w: prefix token %d %q: only A-Z, a-z, 0-9, '_' and '-' are allowed", ErrInvalidSubject, i+1, truncate(tok, 64))
			}
		}
	}
	return Subjects{prefix: prefix}, nil
}

// Prefix returns the subject prefix.
func (s Subjects) Prefix() string {
	if s.prefix == "" {
		return DefaultPrefix
	}
	return s.prefix
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// In returns the subject of an inbound event: <prefix>.in.<kind>.<id>.
//
// For every kind but KindSystem, id is a stable number (StableID: a QQ
// number or a group number, decimal, positive, no sign or leading zero) or a
// session number with its kind in front (SessionNumberID): "uin…" for
// friend, sess, status and input, "gid…" for group, "did…" for discuss. For
// KindSystem id is the system kind, [a-z0-9_]+ (see SystemKindToken). The
// error wraps ErrInvalidSubject (or ErrInvalidKind).
func (s Subjects) In(kind Kind, id string) (string, error) {
	if !kind.Valid() {
		return "", fmt.Errorf("%w: %q", ErrInvalidKind, truncate(string(kind), 32))
	}
	if err := checkInID(kind, id); err != nil {
		return "", err
	}
	return s.Prefix() + ".in." + string(kind) + "." + id, nil
}

func checkInID(kind Kind, id string) error {
	if kind == KindSystem {
		if !isSystemKind(id) {
			return fmt.Errorf("%w: system kind %q: want 1 to %d of [a-z0-9_]", ErrInvalidSubject, truncate(id, 64), maxTokenLen)
		}
		return nil
	}
	if isPositiveNumber(id) {
		return nil
	}
	if kind == KindMedia { // the conversation of the message: a person, group or discussion
		for _, p := range []string{IDPrefixUIN, IDPrefixGID, IDPrefixDID} {
			if rest, ok := strings.CutPrefix(id, p); ok && isPositiveNumber(rest) {
				return nil
			}
		}
		return fmt.Errorf("%w: media id %q: want a positive number or \"uin\", \"gid\" or \"did\" followed by one", ErrInvalidSubject, truncate(id, 64))
	}
	want := IDPrefixUIN
	switch kind {
	case KindGroup:
		want = IDPrefixGID
	case KindDiscuss:
		want = IDPrefixDID
	}
	if rest, ok := strings.CutPrefix(id, want); ok && isPositiveNumber(rest) {
		return nil
	}
	return fmt.Errorf("%w: %s id %q: want a positive number or %q followed by one", ErrInvalidSubject, kind, truncate(id, 64), want)
}

// isPositiveNumber reports whether s is a decimal int64 above zero, written
// without sign or leading zero.
func isPositiveNumber(s string) bool {
	if s == "" || len(s) > 19 || s[0] == '0' {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil
}

func isSystemKind(s string) bool {
	if s == "" || len(s) > maxTokenLen {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// SystemKindToken turns a wire poll_type (or another system kind word) into
// a valid system kind: lower case, every byte outside [a-z0-9_] replaced by
// '_', at most 64 bytes; "unknown" when nothing is left.
func SystemKindToken(s string) string {
	if len(s) > maxTokenLen {
		s = s[:maxTokenLen]
	}
	b := []byte(strings.ToLower(s))
	if len(b) > maxTokenLen {
		b = b[:maxTokenLen]
	}
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	if strings.Trim(string(b), "_") == "" {
		return "unknown"
	}
	return string(b)
}

// InWildcard returns the subject that matches every inbound event:
// <prefix>.in.>.
func (s Subjects) InWildcard() string { return s.Prefix() + ".in.>" }

// InKindWildcard returns the subject that matches every inbound event of one
// kind: <prefix>.in.<kind>.*.
func (s Subjects) InKindWildcard(kind Kind) string {
	return s.Prefix() + ".in." + string(kind) + ".*"
}

// Out returns the subject a send request for kind may be published on:
// <prefix>.out.<kind>. kind should be sendable (Kind.Sendable). The bridge
// works the requests of these four subjects one at a time, in the order
// published; the target subjects (OutTo) let it send to several targets at
// once.
func (s Subjects) Out(kind Kind) string { return s.Prefix() + ".out." + string(kind) }

// OutWildcard returns <prefix>.out.>, the subjects of stream StreamOut (Out
// and OutTo).
func (s Subjects) OutWildcard() string { return s.Prefix() + ".out.>" }

// Result returns the subject the outcome of a send request for kind is
// published on: <prefix>.result.<kind>.
func (s Subjects) Result(kind Kind) string { return s.Prefix() + ".result." + string(kind) }

// ResultWildcard returns <prefix>.result.>, the subjects of stream
// StreamResult.
func (s Subjects) ResultWildcard() string { return s.Prefix() + ".result.>" }

// SessionState returns <prefix>.session.state, where SessionState messages
// are published.
func (s Subjects) SessionState() string { return s.Prefix() + ".session.state" }

// SessionQR returns <prefix>.session.qr, where QR messages are published.
func (s Subjects) SessionQR() string { return s.Prefix() + ".session.qr" }

// API returns the subject of a synchronous API endpoint: <prefix>.api.
// followed by parts joined with '.', for example API("send", "group") or
// API("session", "login"). The parts are the program's own constants and are
// not checked; use ValidToken on anything from outside.
func (s Subjects) API(parts ...string) string {
	if len(parts) == 0 {
		return s.Prefix() + ".api"
	}
	return s.Prefix() + ".api." + strings.Join(parts, ".")
}

// APIWildcard returns <prefix>.api.>.
func (s Subjects) APIWildcard() string { return s.Prefix() + ".api.>" }

// KindFromOutSubject returns the kind of an outbound subject
// (<prefix>.out.<kind> for a sendable kind; see ParseOutSubject for the
// target subjects too). The error wraps ErrInvalidSubject.
func KindFromOutSubject(s Subjects, subject string) (Kind, error) {
	return kindAfter(s.Prefix()+".out.", subject)
}

// KindFromAPISendSubject returns the kind of a synchronous send subject
// (<prefix>.api.send.<kind> for a sendable kind). The error wraps
// ErrInvalidSubject.
func KindFromAPISendSubject(s Subjects, subject string) (Kind, error) {
	return kindAfter(s.Prefix()+".api.send.", subject)
}

func kindAfter(head, subject string) (Kind, error) {
	rest, ok := strings.CutPrefix(subject, head)
	if !ok {
		return "", fmt.Errorf("%w: %q does not start with %q", ErrInvalidSubject, truncate(subject, 128), head)
	}
	if k := Kind(rest); k.Sendable() {
		return k, nil
	}
	return "", fmt.Errorf("%w: %q: want %sfriend, group, discuss or sess", ErrInvalidSubject, truncate(subject, 128), head)
}

// ParseInSubject splits an inbound subject <prefix>.in.<kind>.<id> into its
// kind and id, checking both as In does. The error wraps ErrInvalidSubject.
func (s Subjects) ParseInSubject(subject string) (Kind, string, error) {
	head := s.Prefix() + ".in."
	rest, ok := strings.CutPrefix(subject, head)
	if !ok {
		return "", "", fmt.Errorf("%w: %q does not start with %q", ErrInvalidSubject, truncate(subject, 128), head)
	}
	k, id, ok := strings.Cut(rest, ".")
	if !ok || !Kind(k).Valid() {
		return "", "", fmt.Errorf("%w: %q: want %s<kind>.<id>", ErrInvalidSubject, truncate(subject, 128), head)
	}
	if err := checkInID(Kind(k), id); err != nil {
		return "", "", err
	}
	return Kind(k), id, nil
}

// StableID returns the subject token of a stable number (a QQ number or a
// group number): its decimal form.
func StableID(n int64) string { return strconv.FormatInt(n, 10) }

// SessionNumberID returns the subject token of a session number: its kind
// ("uin", "gid" or "did") followed by the number, for example
// "uin3785096088".
func SessionNumberID(prefix string, n int64) string {
	return prefix + strconv.FormatInt(n, 10)
}

// ValidToken checks that tok can be one token of a NATS subject: not empty,
// at most 64 bytes of valid UTF-8, and free of '.', '*', '>', white space
// and control characters. The error wraps ErrInvalidSubject.
func ValidToken(tok string) error {
	if tok == "" {
		return fmt.Errorf("%w: empty token", ErrInvalidSubject)
	}
	if len(tok) > maxTokenLen {
		return fmt.Errorf("%w: token longer than %d bytes", ErrInvalidSubject, maxTokenLen)
	}
	if !utf8.ValidString(tok) {
		return fmt.Errorf("%w: token is not valid UTF-8", ErrInvalidSubject)
	}
	for _, r := range tok {
		switch {
		case r == '.', r == '*', r == '>':
			return fmt.Errorf("%w: token %q contains %q", ErrInvalidSubject, tok, r)
		case r <= ' ', r == 0x7f, r >= 0x80 && r <= 0x9f, r == 0x85, r == 0xa0,
			r == 0x1680, r >= 0x2000 && r <= 0x200a, r == 0x2028, r == 0x2029,
			r == 0x202f, r == 0x205f, r == 0x3000, r == 0xfeff:
			return fmt.Errorf("%w: token %q contains white space or a control character", ErrInvalidSubject, tok)
		}
	}
	return nil
}

// nameBase maps the prefix to the base of stream and bucket names: '.' and
// '-' become '_'. Two prefixes that differ only there ("a.b", "a-b", "a_b")
// map to the same names; give accounts prefixes that differ otherwise.
func (s Subjects) nameBase() string {
	return strings.NewReplacer(".", "_", "-", "_").Replace(s.Prefix())
}

// StreamIn returns the name of the JetStream stream of inbound events
// (subjects InWildcard): the prefix in upper case with "_IN", e.g. QQ_IN.
func (s Subjects) StreamIn() string { return strings.ToUpper(s.nameBase()) + "_IN" }

// StreamOut returns the name of the work-queue stream of send requests
// (subjects OutWildcard), e.g. QQ_OUT.
func (s Subjects) StreamOut() string { return strings.ToUpper(s.nameBase()) + "_OUT" }

// StreamResult returns the name of the stream of send results (subjects
// ResultWildcard), e.g. QQ_RESULT.
func (s Subjects) StreamResult() string { return strings.ToUpper(s.nameBase()) + "_RESULT" }

// SessionBucket returns the name of the KV bucket that keeps the latest
// session state and QR: the prefix with "_session", e.g. qq_session.
func (s Subjects) SessionBucket() string { return s.nameBase() + "_session" }
