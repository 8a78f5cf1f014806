package schema

import (
	"errors"
	"strings"
	"testing"
)

func mustSubjects(t testing.TB, prefix string) Subjects {
	t.Helper()
	s, err := NewSubjects(prefix)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewSubjects(t *testing.T) {
	tests := []struct {
		prefix string
		want   string // "" when an error is expected
	}{
		{"", "qq"},
		{"qq", "qq"},
		{"acct1", "acct1"},
		{"bots.acct-1_A", "bots.acct-1_A"},
		{"a.b.c", "a.b.c"},
		{".qq", ""},
		{"qq.", ""},
		{"a..b", ""},
		{"q q", ""},
		{"qq*", ""},
		{"qq.>", ""},
		{"qq\t", ""},
		{"qq/x", ""},
		{"群", ""},
		{strings.Repeat("a", 129), ""},
	}
	for _, tt := range tests {
		s, err := NewSubjects(tt.prefix)
		if tt.want == "" {
			if !errors.Is(err, ErrInvalidSubject) {
				t.Errorf("NewSubjects(%q): err = %v, want ErrInvalidSubject", tt.prefix, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("NewSubjects(%q): %v", tt.prefix, err)
			continue
		}
		if s.Prefix() != tt.want {
			t.Errorf("NewSubjects(%q).Prefix() = %q, want %q", tt.prefix, s.Prefix(), tt.want)
		}
	}
	if (Subjects{}).Prefix() != DefaultPrefix {
		t.Errorf("zero Subjects prefix %q", (Subjects{}).Prefix())
	}
}

func TestSubjectNames(t *testing.T) {
	for _, tt := range []struct {
		prefix string
		want   map[string]string
	}{
		{"qq", map[string]string{
			"InWildcard": "qq.in.>", "InKindWildcard": "qq.in.group.*", "Out": "qq.out.friend", "OutWildcard": "qq.out.>",
			"Result": "qq.result.sess", "ResultWildcard": "qq.result.>",
			"SessionState": "qq.session.state", "SessionQR": "qq.session.qr",
			"APISend": "qq.api.send.group", "APIFriends": "qq.api.contacts.friends", "APILogin": "qq.api.session.login",
			"API": "qq.api", "APIWildcard": "qq.api.>",
			"StreamIn": "QQ_IN", "StreamOut": "QQ_OUT", "StreamResult": "QQ_RESULT", "SessionBucket": "qq_session",
		}},
		{"bots.acct-1", map[string]string{
			"InWildcard": "bots.acct-1.in.>", "InKindWildcard": "bots.acct-1.in.group.*", "Out": "bots.acct-1.out.friend",
			"OutWildcard": "bots.acct-1.out.>", "Result": "bots.acct-1.result.sess", "ResultWildcard": "bots.acct-1.result.>",
			"SessionState": "bots.acct-1.session.state", "SessionQR": "bots.acct-1.session.qr",
			"APISend": "bots.acct-1.api.send.group", "APIFriends": "bots.acct-1.api.contacts.friends",
			"APILogin": "bots.acct-1.api.session.login", "API": "bots.acct-1.api", "APIWildcard": "bots.acct-1.api.>",
			"StreamIn": "BOTS_ACCT_1_IN", "StreamOut": "BOTS_ACCT_1_OUT", "StreamResult": "BOTS_ACCT_1_RESULT",
			"SessionBucket": "bots_acct_1_session",
		}},
	} {
		s := mustSubjects(t, tt.prefix)
		got := map[string]string{
			"InWildcard": s.InWildcard(), "InKindWildcard": s.InKindWildcard(KindGroup), "Out": s.Out(KindFriend),
			"OutWildcard": s.OutWildcard(), "Result": s.Result(KindSess), "ResultWildcard": s.ResultWildcard(),
			"SessionState": s.SessionState(), "SessionQR": s.SessionQR(),
			"APISend": s.API("send", "group"), "APIFriends": s.API("contacts", "friends"),
			"APILogin": s.API("session", "login"), "API": s.API(), "APIWildcard": s.APIWildcard(),
			"StreamIn": s.StreamIn(), "StreamOut": s.StreamOut(), "StreamResult": s.StreamResult(),
			"SessionBucket": s.SessionBucket(),
		}
		for k, w := range tt.want {
			if got[k] != w {
				t.Errorf("prefix %q: %s = %q, want %q", tt.prefix, k, got[k], w)
			}
		}
	}
}

func TestIn(t *testing.T) {
	s := mustSubjects(t, "qq")
	ok := []struct {
		kind Kind
		id   string
		want string
	}{
		{KindGroup, "987654", "qq.in.group.987654"},
		{KindGroup, SessionNumberID(IDPrefixGID, 2323421101), "qq.in.group.gid2323421101"},
		{KindFriend, StableID(123456), "qq.in.friend.123456"},
		{KindFriend, SessionNumberID(IDPrefixUIN, 3785096088), "qq.in.friend.uin3785096088"},
		{KindDiscuss, "did2322423201", "qq.in.discuss.did2322423201"},
		{KindDiscuss, "42", "qq.in.discuss.42"},
		{KindSess, "uin1", "qq.in.sess.uin1"},
		{KindStatus, "uin3785096088", "qq.in.status.uin3785096088"},
		{KindInput, "10001", "qq.in.input.10001"},
		{KindSystem, "kick", "qq.in.system.kick"},
		{KindSystem, "sys_g_msg", "qq.in.system.sys_g_msg"},
		{KindSystem, "file_message2", "qq.in.system.file_message2"},
		{KindGroup, "9223372036854775807", "qq.in.group.9223372036854775807"},
	}
	for _, tt := range ok {
		got, err := s.In(tt.kind, tt.id)
		if err != nil || got != tt.want {
			t.Errorf("In(%s, %q) = %q, %v; want %q", tt.kind, tt.id, got, err, tt.want)
		}
	}
	bad := []struct {
		kind Kind
		id   string
		want error
	}{
		{KindGroup, "", ErrInvalidSubject},
		{KindGroup, "98.7654", ErrInvalidSubject},
		{KindGroup, "987654.x", ErrInvalidSubject},
		{KindGroup, "*", ErrInvalidSubject},
		{KindGroup, ">", ErrInvalidSubject},
		{KindGroup, "98765*", ErrInvalidSubject},
		{KindGroup, "987 654", ErrInvalidSubject},
		{KindGroup, " 987654", ErrInvalidSubject},
		{KindGroup, "987654\n", ErrInvalidSubject},
		{KindGroup, "-987654", ErrInvalidSubject},
		{KindGroup, "+987654", ErrInvalidSubject},
		{KindGroup, "0", ErrInvalidSubject},
		{KindGroup, "0987654", ErrInvalidSubject},
		{KindGroup, "9223372036854775808", ErrInvalidSubject}, // overflows int64
		{KindGroup, "１２３", ErrInvalidSubject},                 // full-width digits
		{KindGroup, "gid", ErrInvalidSubject},
		{KindGroup, "gid-5", ErrInvalidSubject},
		{KindGroup, "gid0", ErrInvalidSubject},
		{KindGroup, "uin5", ErrInvalidSubject}, // the wrong kind of session number
		{KindGroup, "GID5", ErrInvalidSubject},
		{KindFriend, "gid5", ErrInvalidSubject},
		{KindDiscuss, "uin5", ErrInvalidSubject},
		{KindSess, "did5", ErrInvalidSubject},
		{KindStatus, "uin5.1", ErrInvalidSubject},
		{KindSystem, "", ErrInvalidSubject},
		{KindSystem, "Kick", ErrInvalidSubject},
		{KindSystem, "a.b", ErrInvalidSubject},
		{KindSystem, "a b", ErrInvalidSubject},
		{KindSystem, "a-b", ErrInvalidSubject},
		{KindSystem, ">", ErrInvalidSubject},
		{KindSystem, strings.Repeat("a", 65), ErrInvalidSubject},
		{"", "1", ErrInvalidKind},
		{"out", "1", ErrInvalidKind},
		{"group.x", "1", ErrInvalidKind},
	}
	for _, tt := range bad {
		got, err := s.In(tt.kind, tt.id)
		if !errors.Is(err, tt.want) || got != "" {
			t.Errorf("In(%q, %q) = %q, %v; want error %v", tt.kind, tt.id, got, err, tt.want)
		}
	}
}

func TestParseInSubject(t *testing.T) {
	s := mustSubjects(t, "a.b")
	kind, id, err := s.ParseInSubject("a.b.in.group.gid2323421101")
	if err != nil || kind != KindGroup || id != "gid2323421101" {
		t.Errorf("got %q %q %v", kind, id, err)
	}
	for _, subj := range []string{
		"qq.in.group.5", "a.b.in.group", "a.b.in.group.5.6", "a.b.in.nope.5", "a.b.in.friend.gid5",
		"a.b.out.friend", "a.b.in.>", "a.b.in.group.*", "",
	} {
		if _, _, err := s.ParseInSubject(subj); !errors.Is(err, ErrInvalidSubject) {
			t.Errorf("ParseInSubject(%q): err = %v, want ErrInvalidSubject", subj, err)
		}
	}
}

func TestKindFromOutSubject(t *testing.T) {
	s := mustSubjects(t, "qq")
	for _, k := range []Kind{KindFriend, KindGroup, KindDiscuss, KindSess} {
		got, err := KindFromOutSubject(s, s.Out(k))
		if err != nil || got != k {
			t.Errorf("KindFromOutSubject(%q) = %q, %v", s.Out(k), got, err)
		}
		got, err = KindFromAPISendSubject(s, s.API("send", string(k)))
		if err != nil || got != k {
			t.Errorf("KindFromAPISendSubject(%q) = %q, %v", s.API("send", string(k)), got, err)
		}
	}
	for _, subj := range []string{
		"qq.out.status", "qq.out.system", "qq.out.", "qq.out", "qq.out.friend.x", "qq.out.>",
		"qqx.out.friend", "other.out.friend", "qq.in.friend.1", "qq.result.friend", "",
	} {
		if k, err := KindFromOutSubject(s, subj); !errors.Is(err, ErrInvalidSubject) || k != "" {
			t.Errorf("KindFromOutSubject(%q) = %q, %v; want ErrInvalidSubject", subj, k, err)
		}
	}
	if _, err := KindFromAPISendSubject(s, "qq.api.send.input"); !errors.Is(err, ErrInvalidSubject) {
		t.Errorf("KindFromAPISendSubject accepted input: %v", err)
	}
}

func TestValidToken(t *testing.T) {
	for _, tok := range []string{"a", "uin123", "A-b_c", "群聊", "x=y", strings.Repeat("a", 64)} {
		if err := ValidToken(tok); err != nil {
			t.Errorf("ValidToken(%q): %v", tok, err)
		}
	}
	for _, tok := range []string{
		"", "a.b", ".", "*", ">", "a*", "a>", "a b", " ", "a\tb", "a\nb", "a\x00b", "a\x7fb",
		"a\u00a0b", "a\u3000b", "a\u2028b", "\xff", strings.Repeat("a", 65),
	} {
		if err := ValidToken(tok); !errors.Is(err, ErrInvalidSubject) {
			t.Errorf("ValidToken(%q) = %v, want ErrInvalidSubject", tok, err)
		}
	}
}

func TestSessionNumberIDAndStableID(t *testing.T) {
	if got := SessionNumberID(IDPrefixUIN, 3785096088); got != "uin3785096088" {
		t.Errorf("SessionNumberID = %q", got)
	}
	if got := SessionNumberID(IDPrefixDID, 1); got != "did1" {
		t.Errorf("SessionNumberID = %q", got)
	}
	if got := StableID(987654); got != "987654" {
		t.Errorf("StableID = %q", got)
	}
}

func TestSystemKindToken(t *testing.T) {
	tests := map[string]string{
		"kick_message":          "kick_message",
		"sys_g_msg":             "sys_g_msg",
		"File_Message":          "file_message",
		"new.kind":              "new_kind",
		"a b>c*":                "a_b_c_",
		"":                      "unknown",
		"...":                   "unknown",
		"群":                     "unknown",
		strings.Repeat("x", 80): strings.Repeat("x", 64),
	}
	for in, want := range tests {
		got := SystemKindToken(in)
		if got != want {
			t.Errorf("SystemKindToken(%q) = %q, want %q", in, got, want)
		}
		if _, err := mustSubjects(t, "qq").In(KindSystem, got); err != nil {
			t.Errorf("SystemKindToken(%q) = %q is not a valid system kind: %v", in, got, err)
		}
	}
}

func TestParseKind(t *testing.T) {
	for _, k := range []Kind{KindFriend, KindGroup, KindDiscuss, KindSess, KindStatus, KindInput, KindSystem} {
		got, err := ParseKind(string(k))
		if err != nil || got != k {
			t.Errorf("ParseKind(%q) = %q, %v", k, got, err)
		}
		if want := k == KindFriend || k == KindGroup || k == KindDiscuss || k == KindSess; k.Sendable() != want {
			t.Errorf("%s.Sendable() = %v", k, !want)
		}
	}
	for _, s := range []string{"", "Friend", "group ", "groups", "message"} {
		if _, err := ParseKind(s); !errors.Is(err, ErrInvalidKind) {
			t.Errorf("ParseKind(%q): err = %v", s, err)
		}
	}
}

// FuzzSubjectsIn checks that whatever In accepts is a well-formed subject of
// exactly four tokens that ParseInSubject reads back.
func FuzzSubjectsIn(f *testing.F) {
	for _, seed := range []struct{ kind, id string }{
		{"group", "987654"}, {"friend", "uin3785096088"}, {"system", "kick"}, {"discuss", "did1"},
		{"group", "gid1.2"}, {"sess", "uin*"}, {"status", "-1"}, {"system", "a>b"},
	} {
		f.Add(seed.kind, seed.id)
	}
	s := Subjects{}
	f.Fuzz(func(t *testing.T, kind, id string) {
		subj, err := s.In(Kind(kind), id)
		if err != nil {
			return
		}
		toks := strings.Split(subj, ".")
		if len(toks) != 4 {
			t.Fatalf("In(%q, %q) = %q: %d tokens", kind, id, subj, len(toks))
		}
		for _, tok := range toks {
			if err := ValidToken(tok); err != nil {
				t.Fatalf("In(%q, %q) = %q: %v", kind, id, subj, err)
			}
		}
		k, gotID, err := s.ParseInSubject(subj)
		if err != nil || string(k) != kind || gotID != id {
			t.Fatalf("ParseInSubject(%q) = %q, %q, %v", subj, k, gotID, err)
		}
	})
}
