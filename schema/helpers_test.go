package schema

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// readTestdata returns the contents of testdata/<name>.
func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sampleEvents are one event of each shape, keyed by the name of their
// golden file in testdata/events.
func sampleEvents(t testing.TB) map[string]*Event {
	t.Helper()
	const account = 931996776
	at := time.Date(2015, 12, 21, 8, 47, 5, 0, time.UTC)
	kick := readTestdata(t, "kick_message_value.json")
	kick = kick[:len(kick)-1] // the file ends in a newline
	return map[string]*Event{
		"group": {
			V: Version, ID: EventID(account, "group", 50873), Type: TypeMessageGroup, Time: at,
			Account: account, MsgID: 50873,
			From:     &Contact{UIN: 3680220215, QQ: 123456, Nick: "Alice", Card: "Alice@dev"},
			Group:    &GroupRef{GID: 2323421101, Number: 987654, Name: "Dev chat"},
			Text:     "好啊 /微笑",
			Segments: []Segment{TextSegment("好啊 "), FaceSegment(14)},
		},
		"friend": {
			V: Version, ID: EventID(account, "friend", 2), Type: TypeMessageFriend, Time: at,
			Account: account, MsgID: 2,
			From:     &Contact{UIN: 3785096088, QQ: 10001, Nick: "鲍勃 😀"},
			Text:     "<b>a & b</b>\n\"quoted\" \\ tab\t/惊讶",
			Segments: []Segment{TextSegment("<b>a & b</b>\n\"quoted\" \\ tab\t"), FaceSegment(0)},
		},
		"friend_unresolved": {
			V: Version, ID: EventID(account, "friend", 3), Type: TypeMessageFriend, Time: at,
			Account: account, MsgID: 3,
			From:     &Contact{UIN: 3785096088},
			Text:     "hi",
			Segments: []Segment{TextSegment("hi")},
		},
		"discuss": {
			V: Version, ID: EventID(account, "discuss", 7), Type: TypeMessageDiscuss, Time: at,
			Account: account, MsgID: 7,
			From:     &Contact{UIN: 1000001, QQ: 555, Nick: "Carol"},
			Discuss:  &DiscussRef{DID: 2322423201, Name: "周末"},
			Text:     "/惊讶/惊讶",
			Segments: []Segment{FaceSegment(0), FaceSegment(0)},
		},
		"sess": {
			V: Version, ID: EventID(account, "sess", 8), Type: TypeMessageSess, Time: at,
			Account: account, MsgID: 8,
			From:     &Contact{UIN: 4000000001, QQ: 777, Nick: "Dave", Card: "dave"},
			Sess:     &SessRef{ViaGID: 2323421101, ViaNumber: 987654},
			Text:     "请问",
			Segments: []Segment{TextSegment("请问")},
		},
		"part": { // part 2 of a message too large for one NATS message
			V: Version, ID: EventID(account, "friend", 12) + PartSuffix(2, 3), Type: TypeMessageFriend, Time: at,
			Account: account, MsgID: 12,
			From:     &Contact{UIN: 3785096088, QQ: 10001, Nick: "鲍勃 😀"},
			Text:     "… the middle of a long text/微笑 and more …",
			Segments: []Segment{TextSegment("… the middle of a long text"), FaceSegment(14), TextSegment(" and more …")},
			Part:     2, Parts: 3,
		},
		"system_truncated": { // its raw value did not fit in a NATS message
			V: Version, ID: HashEventID(account, "shake_message", []byte(`{"from_uin":1}`)), Type: SystemType("shake_message"),
			Time: at, Account: account, SystemKind: "shake_message", Truncated: true,
		},
		"picture": {
			V: Version, ID: EventID(account, "group", 9), Type: TypeMessageGroup, Time: at,
			Account: account, MsgID: 9,
			From:    &Contact{UIN: 3680220215, QQ: 123456, Nick: "Alice"},
			Group:   &GroupRef{GID: 2323421101, Number: 987654, Name: "Dev chat"},
			Picture: true,
		},
		"status": {
			V: Version, ID: HashEventID(account, "status", []byte(`{"uin":3785096088,"status":"online","client_type":1}`)),
			Type: TypeStatusBuddy, Time: at, Account: account,
			Status: &Status{UIN: 3785096088, QQ: 10001, Status: "online", ClientType: 1},
		},
		"input": {
			V: Version, ID: EventID(account, "input", 11), Type: TypeInputNotify, Time: at,
			Account: account, MsgID: 11,
			From: &Contact{UIN: 3785096088, QQ: 10001, Nick: "鲍勃 😀"},
		},
		"kick": {
			V: Version, ID: EventID(account, SystemKindKick, 53125), Type: TypeSystemKick, Time: at,
			Account: account, MsgID: 53125,
			Kick:       &Kick{Reason: "您的帐号在另一地点登录，您已被迫下线。如有疑问，请登录 safe.qq.com 了解更多。"},
			SystemKind: SystemKindKick,
			Raw:        kick,
		},
		"system_unknown": {
			V: Version, ID: HashEventID(account, "shake_message", []byte(`{"from_uin":1}`)),
			Type: SystemType("shake_message"), Time: at, Account: account,
			SystemKind: "shake_message",
			Raw:        []byte(`{"from_uin":1,"nested":[1,"二",{"x":null}]}`),
		},
	}
}
