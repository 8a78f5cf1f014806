package qqclient

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodePollFile(t *testing.T, name string) []Event {
	t.Helper()
	a, err := decodePollAnswer(readTestdata(t, name))
	if err != nil {
		t.Fatal(err)
	}
	if a.retcode != 0 {
		t.Fatalf("retcode %d", a.retcode)
	}
	return a.events
}

var yaheiFont = Font{Name: "微软雅黑", Size: 10, Style: [3]int{0, 0, 0}, Color: "000000"}

func TestDecodePollSeeds(t *testing.T) {
	tests := []struct {
		file string
		typ  PollType
		want *Message
	}{
		{"poll/message.json", PollMessage, &Message{
			MsgID: 25477, FromUIN: 3785096088, ToUIN: 931996776,
			Time: time.Unix(1450686775, 0).UTC(), Font: yaheiFont, Segments: []Segment{TextSegment("好啊")},
		}},
		{"poll/group_message.json", PollGroupMessage, &Message{
			MsgID: 50873, FromUIN: 2323421101, ToUIN: 931996776, SendUIN: 3680220215, GroupCode: 2323421101,
			Time: time.Unix(1450687625, 0).UTC(), Font: yaheiFont, Segments: []Segment{TextSegment("好啊")},
		}},
		{"poll/discu_message.json", PollDiscuMessage, &Message{
			MsgID: 50873, FromUIN: 2322423201, ToUIN: 931996776, SendUIN: 3680220215, DID: 2322423201,
			Time: time.Unix(1450687625, 0).UTC(), Font: yaheiFont, Segments: []Segment{TextSegment("好啊")},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			evs := decodePollFile(t, tt.file)
			if len(evs) != 1 {
				t.Fatalf("%d events, want 1", len(evs))
			}
			ev := evs[0]
			if ev.Type != tt.typ || ev.Err != nil || ev.Kick != nil || ev.Status != nil {
				t.Fatalf("event = %+v", ev)
			}
			if !reflect.DeepEqual(ev.Message, tt.want) {
				t.Errorf("message = %+v\nwant %+v", ev.Message, tt.want)
			}
			if !json.Valid(ev.Raw) || len(ev.Raw) < 10 {
				t.Errorf("raw = %s", ev.Raw)
			}
		})
	}
}

func TestDecodePollKickSeed002(t *testing.T) {
	evs := decodePollFile(t, "poll/kick_message.json")
	if len(evs) != 1 || evs[0].Type != PollKick || evs[0].Kick == nil {
		t.Fatalf("events = %+v", evs)
	}
	want := &Kick{MsgID: 53125, ShowReason: 1, Reason: "您的帐号在另一地点登录，您已被迫下线。如有疑问，请登录 safe.qq.com 了解更多。"}
	if !reflect.DeepEqual(evs[0].Kick, want) {
		t.Errorf("kick = %+v, want %+v", evs[0].Kick, want)
	}
}

func TestDecodePollOtherKinds(t *testing.T) {
	evs := decodePollFile(t, "poll/other_kinds.json")
	if len(evs) != 8 {
		t.Fatalf("%d events, want 8", len(evs))
	}
	for i, ev := range evs {
		if ev.Err != nil {
			t.Errorf("event %d: %v", i, ev.Err)
		}
	}
	sess := &Message{
		MsgID: 1201, MsgID2: 981201, MsgType: 140, FromUIN: 3785096088, ToUIN: 931996776,
		SessID: 2323421101, SessRUIN: 123456, Time: time.Unix(1450686780, 0).UTC(),
		Font: DefaultFont(), Segments: []Segment{TextSegment("temp chat")},
	}
	checks := []struct {
		typ  PollType
		got  any
		want any
	}{
		{PollSessMessage, evs[0].Message, sess},
		{PollBuddiesStatus, evs[1].Status, &BuddyStatus{UIN: 3017767504, Status: "away", ClientType: 1}},
		{PollInputNotify, evs[2].Input, &InputNotify{MsgID: 1202, FromUIN: 3785096088, ToUIN: 931996776}},
		{PollFileMessage, evs[3].Notice, &Notice{FromUIN: 3785096088, Kind: "file"}},
		{PollTips, evs[4].Notice, &Notice{FromUIN: 10000, Kind: "2"}},
		{PollSystemMessage, evs[5].Notice, &Notice{FromUIN: 2440652742, Kind: "verify_required"}},
		{PollSysGroupMessage, evs[6].Notice, &Notice{FromUIN: 2323421101, Kind: "group_request_join"}},
	}
	for i, c := range checks {
		if evs[i].Type != c.typ {
			t.Errorf("event %d type %q, want %q", i, evs[i].Type, c.typ)
		}
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("event %d (%s) = %+v, want %+v", i, c.typ, c.got, c.want)
		}
	}
	unknown := evs[7]
	if unknown.Type != "shake_message" || unknown.Message != nil || unknown.Notice != nil || unknown.Err != nil {
		t.Errorf("unknown kind = %+v", unknown)
	}
	if string(unknown.Raw) != `{"msg_id":1205,"from_uin":3785096088}` {
		t.Errorf("unknown raw = %s", unknown.Raw)
	}
}

func TestDecodePollMalformedItemsKept(t *testing.T) {
	evs := decodePollFile(t, "poll/mixed.json")
	if len(evs) != 6 {
		t.Fatalf("%d events, want 6 (one per item)", len(evs))
	}
	if evs[0].Message == nil || evs[0].Message.Text() != "first" {
		t.Errorf("first = %+v", evs[0])
	}
	if evs[5].Message == nil || evs[5].Message.Text() != "last" {
		t.Errorf("last = %+v", evs[5])
	}
	for i := 1; i <= 4; i++ {
		ev := evs[i]
		if !errors.Is(ev.Err, ErrProtocol) || ev.Message != nil || len(ev.Raw) == 0 {
			t.Errorf("malformed item %d = %+v, want kept raw with Err", i, ev)
		}
	}
	if evs[1].Type != PollMessage || evs[4].Type != PollGroupMessage || evs[2].Type != "" {
		t.Errorf("types = %q %q %q", evs[1].Type, evs[2].Type, evs[4].Type)
	}
	if string(evs[2].Raw) != `"not even an object"` {
		t.Errorf("raw of a non-object item = %s", evs[2].Raw)
	}
}

func TestDecodePollFacesEntities(t *testing.T) {
	evs := decodePollFile(t, "poll/faces_entities.json")
	if len(evs) != 2 {
		t.Fatalf("%d events", len(evs))
	}
	m := evs[0].Message
	want := []Segment{TextSegment(`a <b> & "c" \ x y `), FaceSegment(14), TextSegment("中文"), FaceSegment(0)}
	if !reflect.DeepEqual(m.Segments, want) {
		t.Errorf("segments = %#v", m.Segments)
	}
	if m.Font != (Font{Name: "微软雅黑", Size: 12, Style: [3]int{1, 0, 0}, Color: "ff0000"}) || m.Seq != 51 || m.MsgType != 43 {
		t.Errorf("message = %+v", m)
	}
	if pic := evs[1].Message; pic == nil || len(pic.Segments) != 0 {
		t.Errorf("font-only message = %+v, want no segments (picture)", pic)
	}
}

func TestDecodePollAnswers(t *testing.T) {
	tests := []struct {
		body    string
		retcode int
		p       string
		wantErr bool
	}{
		{body: `{"retcode":102,"errmsg":""}`, retcode: 102},
		{body: `{"retcode":116,"p":"newptwebqq"}`, retcode: 116, p: "newptwebqq"},
		{body: `{"retcode":103,"t":""}`, retcode: 103},
		{body: `{"retcode":0,"result":null}`, retcode: 0},
		{body: `{"retcode":0,"result":{"x":1}}`, wantErr: true},
		{body: `{"errmsg":""}`, wantErr: true},
		{body: `<html>`, wantErr: true},
	}
	for _, tt := range tests {
		a, err := decodePollAnswer([]byte(tt.body))
		if tt.wantErr {
			if !errors.Is(err, ErrProtocol) {
				t.Errorf("%s: err = %v, want ErrProtocol", tt.body, err)
			}
			continue
		}
		if err != nil || a.retcode != tt.retcode || a.p != tt.p {
			t.Errorf("%s: got %+v, %v", tt.body, a, err)
		}
	}
}

func resultOf(t *testing.T, name string) json.RawMessage {
	t.Helper()
	var e struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(readTestdata(t, name), &e); err != nil {
		t.Fatal(err)
	}
	return e.Result
}

func TestDecodeContactsSeed004(t *testing.T) {
	t.Run("friends", func(t *testing.T) {
		fs, cats, err := decodeFriends(resultOf(t, "contacts/friends.json"))
		if err != nil {
			t.Fatal(err)
		}
		want := []Friend{{UIN: 41837138855, Nick: "昵称", Category: 1, Flag: 4, Face: 603}}
		if !reflect.DeepEqual(fs, want) {
			t.Errorf("friends = %+v", fs)
		}
		if !reflect.DeepEqual(cats, []Category{{Index: 0, Sort: 2, Name: "同学"}}) {
			t.Errorf("categories = %+v", cats)
		}
	})
	t.Run("friends seed 002", func(t *testing.T) {
		fs, cats, err := decodeFriends(resultOf(t, "contacts/friends_seed002.json"))
		if err != nil {
			t.Fatal(err)
		}
		want := []Friend{{UIN: 2318067912, Nick: "YAT-SEN", Face: 105}}
		if !reflect.DeepEqual(fs, want) || len(cats) != 3 || cats[2].Name != "同學" {
			t.Errorf("friends = %+v, categories = %+v", fs, cats)
		}
	})
	t.Run("online buddies", func(t *testing.T) {
		got, err := decodeOnline(resultOf(t, "contacts/online_buddies.json"))
		if err != nil || !reflect.DeepEqual(got, []BuddyStatus{{UIN: 3017767504, Status: "online", ClientType: 1}}) {
			t.Errorf("online = %+v, %v", got, err)
		}
	})
	t.Run("friend uin", func(t *testing.T) {
		got, err := decodeAccount(resultOf(t, "contacts/friend_uin.json"))
		if err != nil || got != 3524125 {
			t.Errorf("account = %d, %v", got, err)
		}
	})
	t.Run("friend info", func(t *testing.T) {
		got, err := decodeUserInfo("get_friend_info2", resultOf(t, "contacts/friend_info.json"))
		if err != nil {
			t.Fatal(err)
		}
		want := &UserInfo{
			UIN: 1382902354, Nick: "ABCD", Gender: "female", Face: 603,
			Birthday: Birthday{Year: 1895, Month: 8, Day: 15}, Occupation: "其他", Phone: "110",
			Mobile: "139********", Email: "352323245@qq.com", College: "aaa", Homepage: "木有",
			Country: "乍得", Personal: "这是简介", Allow: 1, Constel: 7, Blood: 5, Shengxiao: 11,
			Stat: 20, VIPInfo: 6,
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("info = %+v\nwant %+v", got, want)
		}
	})
	t.Run("groups", func(t *testing.T) {
		got, err := decodeGroups(resultOf(t, "contacts/groups.json"))
		want := []Group{{GID: 14611812014, Code: 3157131718, Name: "群名", Flag: 167864331}}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("groups = %+v, %v", got, err)
		}
	})
	t.Run("group info", func(t *testing.T) {
		got, err := decodeGroupInfo(resultOf(t, "contacts/group_info.json"))
		if err != nil {
			t.Fatal(err)
		}
		want := &GroupInfo{
			GID: 2419762790, Code: 591539174, Name: "群名称", Memo: "群公告！", Owner: 3509557797, CreateTime: 1231435199,
			Members: []GroupMember{{UIN: 3623536468, Nick: "昵称", Card: "群名片", Gender: "male", Flag: 192, Country: "中国", Province: "北京"}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("group info = %+v\nwant %+v", got, want)
		}
	})
	t.Run("group info without cards", func(t *testing.T) {
		got, err := decodeGroupInfo(resultOf(t, "contacts/group_info_nocards.json"))
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Members) != 1 || got.Members[0].Card != "" || got.Members[0].Nick != "昵称" {
			t.Errorf("members = %+v", got.Members)
		}
	})
	t.Run("discussions", func(t *testing.T) {
		got, err := decodeDiscussions(resultOf(t, "contacts/discus_list.json"))
		if err != nil || !reflect.DeepEqual(got, []Discussion{{DID: 167864331, Name: "讨论组名"}}) {
			t.Errorf("discussions = %+v, %v", got, err)
		}
	})
	t.Run("discussion info", func(t *testing.T) {
		got, err := decodeDiscussInfo(resultOf(t, "contacts/discu_info.json"))
		want := &DiscussInfo{DID: 236426547, Name: "啊啊啊啊", Members: []DiscussMember{{UIN: 3466696377, RUIN: 1301948, Nick: "Hey"}}}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("discussion info = %+v, %v", got, err)
		}
	})
	t.Run("recent", func(t *testing.T) {
		got, err := decodeRecent(resultOf(t, "contacts/recent_list.json"))
		if err != nil || !reflect.DeepEqual(got, []Recent{{Type: 1, UIN: 2856977416}}) {
			t.Errorf("recent = %+v, %v", got, err)
		}
	})
}

func TestEnvelopeCodes(t *testing.T) {
	tests := []struct {
		file string
		code int
	}{
		{"send/ok_errcode.json", 0},
		{"send/ok_retcode.json", 0},
		{"send/ok_100100.json", 100100},
		{"send/maybe_sent.json", 1202},
	}
	for _, tt := range tests {
		e, err := decodeEnvelope("send", &rawAnswer{status: 200, body: readTestdata(t, tt.file)})
		if err != nil {
			t.Fatal(err)
		}
		if code, ok := e.code(); !ok || code != tt.code {
			t.Errorf("%s: code %d %v, want %d", tt.file, code, ok, tt.code)
		}
	}
}

// Seed 000 prints its answers with trailing commas ("好啊",\n],); such an answer is decoded
// whole.
func TestDecodePollTrailingCommas(t *testing.T) {
	evs := decodePollFile(t, "poll/discu_message_verbatim.txt")
	if len(evs) != 1 || evs[0].Err != nil || evs[0].Message == nil {
		t.Fatalf("events = %+v", evs)
	}
	m := evs[0].Message
	if evs[0].Type != PollDiscuMessage || m.Text() != "好啊" || m.DID != 2322423201 || m.SendUIN != 3680220215 {
		t.Errorf("message = %+v", m)
	}
	if !json.Valid(evs[0].Raw) {
		t.Errorf("raw is not JSON: %s", evs[0].Raw)
	}
	if n := SkippedItems(evs); n != 0 {
		t.Errorf("SkippedItems = %d", n)
	}
}

// An answer that is not JSON even without trailing commas keeps every item that is; the
// others are counted as skipped.
func TestDecodePollSalvagesItems(t *testing.T) {
	good := func(text string) string {
		return `{"poll_type":"message","value":{"msg_id":1,"from_uin":7,"to_uin":8,"time":1,"content":[["font",{"name":"宋体","size":10,"style":[0,0,0],"color":"000000"}],"` + text + `",],},}`
	}
	tests := []struct {
		name      string
		body      string
		texts     []string // "" = a skipped item
		retcode   int
		wantError bool
	}{
		{name: "bad middle item",
			body:  `{"retcode":0,"result":[` + good("first") + `,{"poll_type":"message","value":{"from_uin":0x12}},` + good("last") + `]}`,
			texts: []string{"first", "", "last"}},
		{name: "truncated answer",
			body:  `{"retcode":0,"result":[` + good("first") + `,{"poll_type":"message","value":{"from_uin":`,
			texts: []string{"first", ""}},
		{name: "unquoted key in the envelope",
			body:  `{"retcode":0,"result":[` + good("only") + `],errmsg:""}`,
			texts: []string{"only"}},
		{name: "retcode 102 with junk", body: `{"retcode":102,"errmsg":"",junk}`, retcode: 102},
		{name: "no retcode", body: `{"result":[` + good("x") + `],x}`, wantError: true},
		{name: "result not an array", body: `{"retcode":0,"result":{"a":1},x}`, wantError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := decodePollAnswer([]byte(tt.body))
			if tt.wantError {
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("err = %v, want ErrProtocol", err)
				}
				return
			}
			if err != nil || a.retcode != tt.retcode {
				t.Fatalf("answer %+v, %v", a, err)
			}
			if len(a.events) != len(tt.texts) {
				t.Fatalf("%d events, want %d: %+v", len(a.events), len(tt.texts), a.events)
			}
			skipped := 0
			for i, want := range tt.texts {
				ev := a.events[i]
				if want == "" {
					skipped++
					if ev.Err == nil || ev.Message != nil {
						t.Errorf("event %d = %+v, want skipped", i, ev)
					}
					if !json.Valid(ev.Raw) {
						t.Errorf("event %d: raw is not JSON", i)
					}
					continue
				}
				if ev.Err != nil || ev.Message == nil || ev.Message.Text() != want {
					t.Errorf("event %d = %+v, want %q", i, ev, want)
				}
			}
			if n := SkippedItems(a.events); n != skipped {
				t.Errorf("SkippedItems = %d, want %d", n, skipped)
			}
		})
	}
	a, _ := decodePollAnswer([]byte(tests[0].body))
	if !errors.Is(a.events[1].Err, ErrSkippedItem) && !errors.Is(a.events[1].Err, ErrProtocol) {
		t.Errorf("skipped item error %v", a.events[1].Err)
	}
}

func TestStripTrailingCommas(t *testing.T) {
	for in, want := range map[string]string{
		`[1,2,]`:            `[1,2]`,
		`{"a":[1 , ] ,}`:    `{"a":[1  ] }`,
		`["a,]", "b\",]",]`: `["a,]", "b\",]"]`,
		`[1,2]`:             `[1,2]`,
		"[\n  \"好啊\",\n]":   "[\n  \"好啊\"\n]",
	} {
		if got := string(stripTrailingCommas([]byte(in))); got != want {
			t.Errorf("stripTrailingCommas(%s) = %s, want %s", in, got, want)
		}
	}
}
