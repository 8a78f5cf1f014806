package schema

import (
	"errors"
	"strings"
	"testing"
)

func TestTargetKey(t *testing.T) {
	tests := []struct {
		kind Kind
		to   Target
		key  string // "" when TargetKey must refuse to
	}{
		{KindFriend, Target{QQ: 789}, "789"},
		{KindFriend, Target{UIN: 42}, "uin42"},
		{KindGroup, Target{Group: 123}, "123"},
		{KindGroup, Target{GID: 456}, "gid456"},
		{KindDiscuss, Target{DID: 7}, "did7"},
		{KindSess, Target{QQ: 789, Group: 123}, "789_123"},
		{KindSess, Target{UIN: 42, GID: 456}, "uin42_gid456"},
		{KindSess, Target{QQ: 789, GID: 456}, "789_gid456"},
		{KindSess, Target{UIN: 42, Group: 123}, "uin42_123"},
		{KindFriend, Target{QQ: 9223372036854775807}, "9223372036854775807"},
		// What Validate refuses, TargetKey refuses.
		{KindFriend, Target{}, ""},
		{KindFriend, Target{QQ: 1, UIN: 2}, ""},
		{KindFriend, Target{QQ: 1, Group: 2}, ""},
		{KindGroup, Target{Group: -1}, ""},
		{KindDiscuss, Target{Group: 1}, ""},
		{KindSess, Target{QQ: 1}, ""},
		{KindSess, Target{Group: 1}, ""},
		{KindSystem, Target{QQ: 1}, ""},
		{Kind("nope"), Target{QQ: 1}, ""},
	}
	s := mustSubjects(t, "acct.qq")
	for _, tt := range tests {
		key, err := TargetKey(tt.kind, tt.to)
		if tt.key == "" {
			if err == nil || !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("TargetKey(%s, %+v) = %q, %v; want an invalid-request error", tt.kind, tt.to, key, err)
			}
			if _, err := s.OutTo(tt.kind, tt.to); err == nil {
				t.Errorf("OutTo(%s, %+v) accepted it", tt.kind, tt.to)
			}
			continue
		}
		if err != nil || key != tt.key {
			t.Errorf("TargetKey(%s, %+v) = %q, %v; want %q", tt.kind, tt.to, key, err, tt.key)
			continue
		}
		if err := ValidToken(key); err != nil {
			t.Errorf("key %q is not a subject token: %v", key, err)
		}
		back, err := ParseTargetKey(tt.kind, key)
		if err != nil || back != tt.to {
			t.Errorf("ParseTargetKey(%s, %q) = %+v, %v; want %+v", tt.kind, key, back, err, tt.to)
		}
		subj, err := s.OutTo(tt.kind, tt.to)
		if want := "acct.qq.out." + string(tt.kind) + "." + tt.key; err != nil || subj != want {
			t.Errorf("OutTo(%s, %+v) = %q, %v; want %q", tt.kind, tt.to, subj, err, want)
		}
		if err := CheckTargetKey(tt.kind, key, tt.to); err != nil {
			t.Errorf("CheckTargetKey(%s, %q, its own target): %v", tt.kind, key, err)
		}
	}
}

func TestParseTargetKeyRefuses(t *testing.T) {
	for _, c := range []struct {
		kind Kind
		key  string
	}{
		{KindFriend, ""}, {KindFriend, "0"}, {KindFriend, "0123"}, {KindFriend, "+1"}, {KindFriend, "-1"},
		{KindFriend, "uin"}, {KindFriend, "uin0"}, {KindFriend, "gid1"}, {KindFriend, "u42"}, {KindFriend, "UIN42"},
		{KindFriend, "9223372036854775808"}, {KindFriend, "1_2"},
		{KindGroup, "uin1"}, {KindGroup, "g456"}, {KindGroup, "did1"},
		{KindDiscuss, "7"}, {KindDiscuss, "d7"}, {KindDiscuss, "gid7"},
		{KindSess, "1"}, {KindSess, "1_"}, {KindSess, "_1"}, {KindSess, "1_2_3"}, {KindSess, "gid1_uin2"}, {KindSess, "did1_2"},
		{KindSystem, "1"},
	} {
		to, err := ParseTargetKey(c.kind, c.key)
		var ve *ValidationError
		if err == nil || !errors.As(err, &ve) {
			t.Errorf("ParseTargetKey(%s, %q) = %+v, %v; want a *ValidationError", c.kind, c.key, to, err)
		}
	}
}

func TestCheckTargetKey(t *testing.T) {
	err := CheckTargetKey(KindGroup, "124", Target{Group: 123})
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Field != "subject" || !strings.Contains(err.Error(), `"124"`) || !strings.Contains(err.Error(), `"123"`) {
		t.Errorf("mismatched key: %v; want a subject error naming both keys", err)
	}
	// The same group by its session number is another target, another key.
	if err := CheckTargetKey(KindGroup, "123", Target{GID: 123}); err == nil {
		t.Error("key 123 accepted for to.gid 123")
	}
	if err := CheckTargetKey(KindGroup, "x", Target{Group: 123}); !errors.As(err, &ve) || ve.Field != "subject" {
		t.Errorf("malformed key: %v; want a subject error", err)
	}
}

func TestParseOutSubject(t *testing.T) {
	s := mustSubjects(t, "a.qq")
	tests := []struct {
		subject string
		want    OutSubject
		field   string // of the error; "" for none
	}{
		{"a.qq.out.group", OutSubject{Kind: KindGroup, Partition: -1, Rest: "group"}, ""},
		{"a.qq.out.group.123", OutSubject{Kind: KindGroup, Key: "123", Partition: -1, Rest: "group.123"}, ""},
		{"a.qq.outp.7.sess.uin1_gid2", OutSubject{Kind: KindSess, Key: "uin1_gid2", Partition: 7, Rest: "sess.uin1_gid2"}, ""},
		{"a.qq.outp.0.friend.5", OutSubject{Kind: KindFriend, Key: "5", Partition: 0, Rest: "friend.5"}, ""},
		{"a.qq.out.group.123.4", OutSubject{Kind: KindGroup, Key: "123", Partition: -1, Rest: "group.123.4"}, "subject"},
		{"a.qq.out.group.", OutSubject{Kind: KindGroup, Partition: -1, Rest: "group."}, "subject"},
		{"a.qq.out.group.gid0", OutSubject{Kind: KindGroup, Key: "gid0", Partition: -1, Rest: "group.gid0"}, "subject"},
		{"a.qq.out.system", OutSubject{Kind: KindSystem, Partition: -1, Rest: "system"}, "kind"},
		{"a.qq.out.nope.1", OutSubject{Kind: "nope", Key: "1", Partition: -1, Rest: "nope.1"}, "kind"},
		{"a.qq.outp.3.group", OutSubject{Kind: KindGroup, Partition: 3, Rest: "group"}, "subject"},
		{"a.qq.outp.03.group.1", OutSubject{Partition: -1}, "subject"},
		{"a.qq.outp.x.group.1", OutSubject{Partition: -1}, "subject"},
		{"a.qq.in.group.1", OutSubject{Partition: -1}, "subject"},
		{"qq.out.group", OutSubject{Partition: -1}, "subject"},
	}
	for _, tt := range tests {
		got, err := s.ParseOutSubject(tt.subject)
		if got != tt.want {
			t.Errorf("ParseOutSubject(%q) = %+v, want %+v", tt.subject, got, tt.want)
		}
		var ve *ValidationError
		switch {
		case tt.field == "" && err != nil:
			t.Errorf("ParseOutSubject(%q): %v", tt.subject, err)
		case tt.field != "" && (!errors.As(err, &ve) || ve.Field != tt.field):
			t.Errorf("ParseOutSubject(%q): error %v, want one of field %q", tt.subject, err, tt.field)
		}
	}
	if got, want := s.OutPartition(5), "a.qq.outp.5.>"; got != want {
		t.Errorf("OutPartition(5) = %q, want %q", got, want)
	}
	if got, want := s.OutTargetWildcard(), "a.qq.out.*.*"; got != want {
		t.Errorf("OutTargetWildcard = %q, want %q", got, want)
	}
}

// FuzzTargetKey: whatever the key, ParseTargetKey never panics, and a key it
// accepts is canonical (TargetKey gives it back) and a valid subject token;
// ParseOutSubject of any subject never panics and agrees with it.
func FuzzTargetKey(f *testing.F) {
	for _, seed := range []string{"123", "uin42", "gid456", "did7", "789_123", "uin42_gid456", "0", "0123", "uin", "1_2_3", "_", "9223372036854775808", "did-1"} {
		f.Add(seed)
	}
	s := mustSubjects(f, "qq")
	f.Fuzz(func(t *testing.T, key string) {
		for _, kind := range []Kind{KindFriend, KindGroup, KindDiscuss, KindSess} {
			to, err := ParseTargetKey(kind, key)
			if err != nil {
				if !errors.Is(err, ErrInvalidRequest) {
					t.Fatalf("ParseTargetKey(%s, %q): %v does not match ErrInvalidRequest", kind, key, err)
				}
				continue
			}
			back, err := TargetKey(kind, to)
			if err != nil || back != key {
				t.Fatalf("ParseTargetKey(%s, %q) = %+v, whose key is %q, %v", kind, key, to, back, err)
			}
			if err := ValidToken(key); err != nil {
				t.Fatalf("accepted key %q is not a token: %v", key, err)
			}
			o, err := s.ParseOutSubject(s.Out(kind) + "." + key)
			if err != nil || o.Key != key || o.Kind != kind {
				t.Fatalf("ParseOutSubject of the target subject of %q: %+v, %v", key, o, err)
			}
		}
		_, _ = s.ParseOutSubject("qq.out." + key)
		_, _ = s.ParseOutSubject("qq.outp." + key)
	})
}
