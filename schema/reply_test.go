package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReplyTargetGolden computes the reply target of every golden event
// (testdata/events) and compares it with testdata/reply/<name>.json: the kind
// and target, or the error for an event one cannot answer.
func TestReplyTargetGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "events", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden events: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			e, err := DecodeEvent(nil, readTestdata(t, "events/"+name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			got := replyGolden(t, e)
			want := readTestdata(t, "reply/"+name+".json")
			if !bytes.Equal(got, want) {
				t.Errorf("got  %s\nwant %s", got, want)
				if os.Getenv("SCHEMA_WRITE_GOLDEN") != "" {
					_ = os.WriteFile(filepath.Join("testdata", "reply", name+".json"), got, 0o644)
				}
			}
		})
	}
}

// replyGolden is the golden form of ReplyTarget(e).
func replyGolden(t *testing.T, e *Event) []byte {
	kind, to, err := ReplyTarget(e)
	var v any
	if err != nil {
		if !errors.Is(err, ErrNoReplyTarget) {
			t.Errorf("error %v does not match ErrNoReplyTarget", err)
		}
		v = map[string]string{"error": err.Error()}
	} else {
		v = struct {
			Kind Kind   `json:"kind"`
			To   Target `json:"to"`
		}{kind, to}
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// TestReplyTargetFallbacks: session numbers when the stable ones are
// missing, and an error when even those are.
func TestReplyTargetFallbacks(t *testing.T) {
	tests := []struct {
		name string
		e    *Event
		kind Kind
		to   Target
		ok   bool
	}{
		{"friend by uin", &Event{Type: TypeMessageFriend, From: &Contact{UIN: 5}}, KindFriend, Target{UIN: 5}, true},
		{"friend without sender", &Event{Type: TypeMessageFriend}, "", Target{}, false},
		{"friend with zero sender", &Event{Type: TypeMessageFriend, From: &Contact{}}, "", Target{}, false},
		{"group by gid", &Event{Type: TypeMessageGroup, Group: &GroupRef{GID: 7}}, KindGroup, Target{GID: 7}, true},
		{"group by number first", &Event{Type: TypeMessageGroup, Group: &GroupRef{GID: 7, Number: 8}}, KindGroup, Target{Group: 8}, true},
		{"group without group", &Event{Type: TypeMessageGroup, From: &Contact{UIN: 1}}, "", Target{}, false},
		{"discuss", &Event{Type: TypeMessageDiscuss, Discuss: &DiscussRef{DID: 9}}, KindDiscuss, Target{DID: 9}, true},
		{"discuss without did", &Event{Type: TypeMessageDiscuss, Discuss: &DiscussRef{}}, "", Target{}, false},
		{"sess by uin and gid", &Event{Type: TypeMessageSess, From: &Contact{UIN: 3}, Sess: &SessRef{ViaGID: 4}}, KindSess, Target{UIN: 3, GID: 4}, true},
		{"sess by qq and number", &Event{Type: TypeMessageSess, From: &Contact{UIN: 3, QQ: 30}, Sess: &SessRef{ViaGID: 4, ViaNumber: 40}}, KindSess, Target{QQ: 30, Group: 40}, true},
		{"sess without group", &Event{Type: TypeMessageSess, From: &Contact{UIN: 3}}, "", Target{}, false},
		{"group picture", &Event{Type: TypeMediaFailed, From: &Contact{UIN: 1}, Group: &GroupRef{GID: 7, Number: 8}}, KindGroup, Target{Group: 8}, true},
		{"discussion picture", &Event{Type: TypeMediaStored, From: &Contact{UIN: 1}, Discuss: &DiscussRef{DID: 9}}, KindDiscuss, Target{DID: 9}, true},
		{"sess picture", &Event{Type: TypeMediaStored, From: &Contact{UIN: 3}, Sess: &SessRef{ViaGID: 4}}, KindSess, Target{UIN: 3, GID: 4}, true},
		{"friend picture by uin", &Event{Type: TypeMediaStored, From: &Contact{UIN: 3}}, KindFriend, Target{UIN: 3}, true},
		{"picture without conversation", &Event{Type: TypeMediaStored}, "", Target{}, false},
		{"file offer by uin", &Event{Type: TypeFileOffer, From: &Contact{UIN: 5}}, KindFriend, Target{UIN: 5}, true},
		{"file received without sender", &Event{Type: TypeFileReceived}, "", Target{}, false},
		{"status", &Event{Type: TypeStatusBuddy, Status: &Status{UIN: 1}}, "", Target{}, false},
		{"nil", nil, "", Target{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kind, to, err := ReplyTarget(tc.e)
			if (err == nil) != tc.ok || kind != tc.kind || to != tc.to {
				t.Fatalf("got %q %+v %v; want %q %+v ok=%v", kind, to, err, tc.kind, tc.to, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrNoReplyTarget) {
				t.Errorf("%v does not match ErrNoReplyTarget", err)
			}
			if err == nil {
				// A reply target is always a valid request target.
				if verr := (&Request{To: to, Text: "x"}).Validate(kind); verr != nil {
					t.Errorf("the target does not validate: %v", verr)
				}
			}
		})
	}
}
