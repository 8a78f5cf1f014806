package schema

import "fmt"

// Kind is the conversation or notification kind of a message. It is the
// second token of an inbound subject (qq.in.<kind>.<id>) and the last token of
// an outbound one (qq.out.<kind>).
type Kind string

// The kinds. Only the first four can be sent to (see Kind.Sendable).
const (
	KindFriend  Kind = "friend"  // a buddy's private message
	KindGroup   Kind = "group"   // a group (qun) message
	KindDiscuss Kind = "discuss" // a discussion-group message
	KindSess    Kind = "sess"    // a temporary chat with a group member who is not a friend
	KindStatus  Kind = "status"  // a buddy's online status changed
	KindInput   Kind = "input"   // a buddy is typing
	KindSystem  Kind = "system"  // kicks, system notices, tips and unknown poll types
	KindMedia   Kind = "media"   // a picture of a message was stored or could not be (media.stored, media.failed)
	KindFile    Kind = "file"    // a friend offers a file, an accepted file was stored (file.offer, file.received)
)

// Valid reports whether k is one of the kinds above.
func (k Kind) Valid() bool {
	switch k {
	case KindFriend, KindGroup, KindDiscuss, KindSess, KindStatus, KindInput, KindSystem, KindMedia, KindFile:
		return true
	}
	return false
}

// Sendable reports whether a request can be sent to k: friend, group,
// discuss or sess.
func (k Kind) Sendable() bool {
	switch k {
	case KindFriend, KindGroup, KindDiscuss, KindSess:
		return true
	}
	return false
}

// String returns the kind as it appears in subjects.
func (k Kind) String() string { return string(k) }

// ParseKind returns the Kind named s. The error wraps ErrInvalidKind.
func ParseKind(s string) (Kind, error) {
	k := Kind(s)
	if !k.Valid() {
		return "", fmt.Errorf("%w: %q", ErrInvalidKind, truncate(s, 32))
	}
	return k, nil
}

// truncate shortens s to at most n bytes (on a rune boundary) so that error
// messages quoting outside input stay short.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
