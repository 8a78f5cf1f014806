package schema

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocsMatchCode keeps docs/events.md honest: every golden payload it
// quotes is the exact encoding, and every code, state, type and limit it
// must name is there.
func TestDocsMatchCode(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "events.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"events", "results", "session"} {
		names, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
		if err != nil || len(names) == 0 {
			t.Fatalf("testdata/%s: %v", dir, err)
		}
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(doc, bytes.TrimSpace(b)) {
				t.Errorf("docs/events.md does not quote %s", n)
			}
		}
	}
	for _, n := range []string{"friend_qq.json", "group_segments.json", "sess.json"} {
		if !bytes.Contains(doc, bytes.TrimSpace(readTestdata(t, "requests/"+n))) {
			t.Errorf("docs/events.md does not quote requests/%s", n)
		}
	}
	words := []string{
		string(CodeInvalidRequest), string(CodeUnknownTarget), string(CodeRateLimited),
		string(CodeSessionUnavailable), string(CodeQQError), string(CodeMaybeSent),
		string(StateAwaitingScan), string(StateScanned), string(StateQRExpired), string(StateOnline),
		string(StateReconnecting), string(StateSessionLost), string(StateKicked), string(StateStopped),
		TypeMessageFriend, TypeMessageGroup, TypeMessageDiscuss, TypeMessageSess,
		TypeStatusBuddy, TypeInputNotify, TypeSystemKick,
		HeaderContentType, HeaderMsgID, HeaderCESpecVersion, HeaderCEID, HeaderCEType, HeaderCESource, HeaderCETime,
		ContentTypeJSON, ContentTypeMsgpack, SessionKeyState, SessionKeyQR, ServiceName,
		"16 KiB", "16384 bytes", "at most 512 segments", "<0..255>", "at most 128 KiB", "at most 128 bytes",
	}
	// The table of target keys says what TargetKey does.
	for _, k := range []struct {
		kind Kind
		to   Target
	}{
		{KindFriend, Target{QQ: 789}}, {KindFriend, Target{UIN: 42}}, {KindGroup, Target{Group: 123}}, {KindGroup, Target{GID: 456}},
		{KindDiscuss, Target{DID: 7}}, {KindSess, Target{QQ: 789, Group: 123}}, {KindSess, Target{UIN: 42, GID: 456}},
	} {
		key, err := TargetKey(k.kind, k.to)
		if err != nil {
			t.Fatal(err)
		}
		words = append(words, "`"+key+"`")
	}
	for _, w := range words {
		if !bytes.Contains(doc, []byte(w)) {
			t.Errorf("docs/events.md does not mention %q", w)
		}
	}
	if MaxTextBytes != 16384 || MaxSegments != 512 || MaxFace != 255 || MaxRequestBytes != 128<<10 || MaxIDBytes != 128 {
		t.Error("a limit changed: update docs/events.md and this test")
	}
	s := Subjects{}
	for _, name := range []string{s.StreamIn(), s.StreamOut(), s.StreamResult(), s.SessionBucket(), s.InWildcard()} {
		if !strings.Contains(string(doc), name) {
			t.Errorf("docs/events.md does not mention %q", name)
		}
	}
}
