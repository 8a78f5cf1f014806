package schema

import (
	"strconv"
	"strings"
)

// TargetKey returns the canonical key of the target to for kind, the last
// token of the target subject Subjects.OutTo: the target as written in the
// request, each number in decimal (no sign, no leading zero), a session
// number with its kind in front as in the inbound subjects:
//
//	friend   to.qq 123 → "123"          to.uin 42 → "uin42"
//	group    to.group 123 → "123"       to.gid 456 → "gid456"
//	discuss  to.did 7 → "did7"
//	sess     the person's key, '_', the group's key:
//	         {qq 123, group 456} → "123_456", {uin 42, gid 9} → "uin42_gid9"
//
// Two requests have the same key exactly when they name the same target the
// same way (to.group and to.gid of one group are different keys, as they are
// different targets for the order of sends). to must be valid for kind (the
// target part of Request.Validate); the error is then that *ValidationError.
func TargetKey(kind Kind, to Target) (string, error) {
	if !kind.Sendable() {
		return "", invalid("kind", "%q cannot be sent to: want friend, group, discuss or sess", truncate(string(kind), 32))
	}
	if err := to.validate(kind); err != nil {
		return "", err
	}
	person := func() string {
		if to.QQ != 0 {
			return strconv.FormatInt(to.QQ, 10)
		}
		return IDPrefixUIN + strconv.FormatInt(to.UIN, 10)
	}
	group := func() string {
		if to.Group != 0 {
			return strconv.FormatInt(to.Group, 10)
		}
		return IDPrefixGID + strconv.FormatInt(to.GID, 10)
	}
	switch kind {
	case KindFriend:
		return person(), nil
	case KindGroup:
		return group(), nil
	case KindDiscuss:
		return IDPrefixDID + strconv.FormatInt(to.DID, 10), nil
	}
	return person() + "_" + group(), nil
}

// ParseTargetKey is the inverse of TargetKey: the target that key names for
// kind. Only the canonical form is accepted (TargetKey of the result is key
// again). The error is a *ValidationError of field "subject" (it matches
// ErrInvalidRequest).
func ParseTargetKey(kind Kind, key string) (Target, error) {
	if !kind.Sendable() {
		return Target{}, invalid("kind", "%q cannot be sent to: want friend, group, discuss or sess", truncate(string(kind), 32))
	}
	bad := func(want string) (Target, error) {
		return Target{}, invalid("subject", "target key %q is not a %s target: want %s", truncate(key, 64), kind, want)
	}
	var t Target
	// either reads a stable number into stable, else a session number
	// with its prefix into session.
	either := func(s, prefix string, stable, session *int64) bool {
		if n, ok := keyNumber(s, ""); ok {
			*stable = n
			return true
		}
		n, ok := keyNumber(s, prefix)
		*session = n
		return ok
	}
	person := func(s string) bool { return either(s, IDPrefixUIN, &t.QQ, &t.UIN) }
	group := func(s string) bool { return either(s, IDPrefixGID, &t.Group, &t.GID) }
	switch kind {
	case KindFriend:
		if !person(key) {
			return bad("<qq> or uin<uin>")
		}
	case KindGroup:
		if !group(key) {
			return bad("<group> or gid<gid>")
		}
	case KindDiscuss:
		n, ok := keyNumber(key, IDPrefixDID)
		if !ok {
			return bad("did<did>")
		}
		t.DID = n
	case KindSess:
		p, g, ok := strings.Cut(key, "_")
		if !ok || !person(p) || !group(g) {
			return bad("<qq> or uin<uin>, '_', <group> or gid<gid>")
		}
	}
	return t, nil
}

// keyNumber reads prefix followed by a positive decimal number without a
// leading zero.
func keyNumber(s, prefix string) (int64, bool) {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok || !isPositiveNumber(rest) {
		return 0, false
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	return n, err == nil
}

// CheckTargetKey checks that key, the target token of the subject a request
// of kind came on, is the canonical key of the request's target to (see
// TargetKey). The error is a *ValidationError of field "subject" saying
// which key the body's target has.
func CheckTargetKey(kind Kind, key string, to Target) error {
	if _, err := ParseTargetKey(kind, key); err != nil {
		return err
	}
	want, err := TargetKey(kind, to)
	if err != nil {
		return err
	}
	if want != key {
		return invalid("subject", "target key %q does not match the body's target (key %q): publish on the subject of the target in \"to\"", key, want)
	}
	return nil
}

// OutTo returns the target subject of a send request: <prefix>.out.<kind>.<key>
// with key TargetKey(kind, to). The bridge sends requests to different
// targets at the same time, and a second replica adds throughput, when they
// come on their target subjects; requests to one target keep their order
// when all of them use the same form (all on OutTo, or all on Out). Between
// the two forms there is no order. The error is TargetKey's.
func (s Subjects) OutTo(kind Kind, to Target) (string, error) {
	key, err := TargetKey(kind, to)
	if err != nil {
		return "", err
	}
	return s.Out(kind) + "." + key, nil
}

// OutTargetWildcard returns <prefix>.out.*.*, the target subjects (OutTo).
func (s Subjects) OutTargetWildcard() string { return s.Prefix() + ".out.*.*" }

// OutPartitionBase returns <prefix>.outp, under which stream StreamOut stores
// the requests of the target subjects: the stream's subject transform maps
// <prefix>.out.<kind>.<key> to <prefix>.outp.<n>.<kind>.<key>, n the
// partition of kind and key (see package bus). Nothing is published there;
// the subjects are not captured by the stream.
func (s Subjects) OutPartitionBase() string { return s.Prefix() + ".outp" }

// OutPartition returns <prefix>.outp.<n>.>, the stored subjects of partition n.
func (s Subjects) OutPartition(n int) string {
	return s.OutPartitionBase() + "." + strconv.Itoa(n) + ".>"
}

// OutSubject is a subject of stream StreamOut taken apart by ParseOutSubject.
type OutSubject struct {
	// Kind is the kind token, whether sendable or not ("" when missing).
	Kind Kind
	// Key is the target key token of a target subject, "" on Out(kind).
	Key string
	// Partition is the partition of a stored target subject
	// (<prefix>.outp.<n>.…), -1 for a subject as published.
	Partition int
	// Rest is the part after "out." (or after "outp.<n>.") as it came, for a
	// result subject of a subject that cannot be parsed.
	Rest string
}

// ParseOutSubject takes apart a subject a request of stream StreamOut is
// stored under: <prefix>.out.<kind>, <prefix>.out.<kind>.<key>, or its
// stored form <prefix>.outp.<n>.<kind>.<key>. It checks the form, the kind
// (sendable) and the key's syntax for the kind (ParseTargetKey), not whether
// the key matches a body. The OutSubject is filled as far as the subject
// could be read even when the error is not nil; the error is a
// *ValidationError (field "kind" or "subject"), matching ErrInvalidRequest.
func (s Subjects) ParseOutSubject(subject string) (OutSubject, error) {
	o := OutSubject{Partition: -1}
	rest, ok := strings.CutPrefix(subject, s.Prefix()+".out.")
	if !ok {
		head := s.OutPartitionBase() + "."
		prest, ok := strings.CutPrefix(subject, head)
		n, after, found := strings.Cut(prest, ".")
		p, err := strconv.Atoi(n)
		if !ok || !found || err != nil || p < 0 || strconv.Itoa(p) != n {
			return o, invalid("subject", "%q is not a subject of %s", truncate(subject, 128), s.OutWildcard())
		}
		o.Partition, rest = p, after
	}
	o.Rest = rest
	toks := strings.Split(rest, ".")
	o.Kind = Kind(toks[0])
	if len(toks) >= 2 {
		o.Key = toks[1]
	}
	if !o.Kind.Sendable() {
		return o, invalid("kind", "subject %q: the kind must be friend, group, discuss or sess", truncate(subject, 128))
	}
	if len(toks) > 2 || o.Partition >= 0 && len(toks) != 2 {
		return o, invalid("subject", "subject %q: want %s or %s.<target key>, nothing after", truncate(subject, 128), s.Out(o.Kind), s.Out(o.Kind))
	}
	if len(toks) == 2 {
		if _, err := ParseTargetKey(o.Kind, o.Key); err != nil {
			return o, err
		}
	}
	return o, nil
}
