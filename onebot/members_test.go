package onebot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/qqbridge/qqbridge/schema"
)

const (
	devGroup    = 987654
	hikingGroup = 55443322
	aliceQQ     = 123456
	daveUIN     = 3002 // a member whose QQ number the bridge does not know
	leftQQ      = 555  // spoke in the group, no longer in its list
)

// groupSays converts a group message from sender, so that the gateway
// records the member as seen speaking at at.
func groupSays(t *testing.T, g *Gateway, msgID int64, group int64, sender schema.Contact, at time.Time) {
	t.Helper()
	ev := &schema.Event{ID: fmt.Sprintf("931996776:group:%d", msgID), Type: schema.TypeMessageGroup, Time: at, Account: 931996776, MsgID: msgID,
		From: &sender, Group: &schema.GroupRef{GID: 4000 + group, Number: group}, Segments: []schema.Segment{schema.TextSegment("hi")}}
	if _, err := g.Convert(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
}

// members decodes the data of a member list answer.
func members(t *testing.T, r Response) []memberInfo {
	t.Helper()
	b, _ := json.Marshal(r.Data)
	var ms []memberInfo
	if r.Status != "ok" || json.Unmarshal(b, &ms) != nil {
		t.Fatalf("answer %+v, want a member list", r)
	}
	return ms
}

func userIDs(ms []memberInfo) string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = fmt.Sprint(m.UserID)
	}
	return strings.Join(ids, " ")
}

func newMembersGateway(t *testing.T) (*Gateway, *recordingBackend) {
	t.Helper()
	be := &recordingBackend{members: map[schema.Target][]schema.Contact{
		{Group: devGroup}: {
			{UIN: 931996776, QQ: 931996776, Nick: "qqbridge"},
			{UIN: 3001, QQ: aliceQQ, Nick: "Alice", Card: "Alice@dev"},
			{UIN: daveUIN, Nick: "Dave"},
		},
		{Group: hikingGroup}: {{UIN: 3003, QQ: 3524125, Nick: "Bob"}},
	}}
	g, err := New(Config{}, be, NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	return g, be
}

// TestGroupMemberList: get_group_member_list answers the bridge's whole
// list in its order — not only the members seen speaking — with
// last_sent_time for those who spoke; a member whose QQ number the bridge
// does not know is listed under its uin, which a send then uses as one.
func TestGroupMemberList(t *testing.T) {
	ctx := context.Background()
	g, be := newMembersGateway(t)
	spoke := time.Unix(1700000000, 0)
	groupSays(t, g, 1, devGroup, schema.Contact{UIN: 3001, QQ: aliceQQ, Nick: "Alice", Card: "Alice (then)"}, spoke)
	groupSays(t, g, 2, devGroup, schema.Contact{UIN: 3009, QQ: leftQQ, Nick: "Left"}, spoke)

	ms := members(t, g.Call(ctx, "get_group_member_list", Params{"group_id": json.RawMessage(`987654`)}, nil))
	if got := userIDs(ms); got != fmt.Sprintf("931996776 %d %d", aliceQQ, daveUIN) {
		t.Fatalf("user_ids %s, want the account, Alice and Dave (under his uin), in the bridge's order", got)
	}
	want := memberInfo{GroupID: devGroup, UserID: aliceQQ, Nickname: "Alice", Card: "Alice@dev", Sex: "unknown",
		LastSentTime: int32(spoke.Unix()), Role: "member"}
	if ms[1] != want {
		t.Errorf("Alice %+v, want %+v (the bridge's card, the time she spoke)", ms[1], want)
	}
	if ms[2].Nickname != "Dave" || ms[2].LastSentTime != 0 || ms[2].GroupID != devGroup {
		t.Errorf("Dave %+v", ms[2])
	}
	if last := be.asked[len(be.asked)-1]; last != (schema.Target{Group: devGroup}) {
		t.Errorf("asked the bridge for %+v, want the group number", last)
	}
	// Dave's user_id is a session number: a temporary chat to it goes as uin.
	r := g.Call(ctx, "send_private_msg", Params{"user_id": json.RawMessage(`3002`), "group_id": json.RawMessage(`987654`), "message": json.RawMessage(`"hi"`)}, nil)
	if got := be.last(); r.Status != "ok" || got.kind != schema.KindSess || got.req.To != (schema.Target{UIN: daveUIN, Group: devGroup}) {
		t.Errorf("send to Dave: %+v, sent %s to %+v; want sess to uin %d", r, got.kind, got.req.To, daveUIN)
	}

	t.Run("a group known by its gid", func(t *testing.T) {
		gid := int64(2323421101)
		ev := &schema.Event{ID: "931996776:group:3", Type: schema.TypeMessageGroup, Time: spoke, Account: 931996776, MsgID: 3,
			From: &schema.Contact{UIN: 3001, QQ: aliceQQ}, Group: &schema.GroupRef{GID: gid}, Segments: []schema.Segment{schema.TextSegment("x")}}
		if _, err := g.Convert(ctx, ev); err != nil {
			t.Fatal(err)
		}
		be.members[schema.Target{GID: gid}] = []schema.Contact{{UIN: 3001, QQ: aliceQQ, Nick: "Alice"}}
		ms := members(t, g.Call(ctx, "get_group_member_list", Params{"group_id": json.RawMessage(`2323421101`)}, nil))
		if len(ms) != 1 || ms[0].GroupID != gid || ms[0].LastSentTime != int32(spoke.Unix()) {
			t.Errorf("members %+v", ms)
		}
		if last := be.asked[len(be.asked)-1]; last != (schema.Target{GID: gid}) {
			t.Errorf("asked the bridge for %+v, want the gid", last)
		}
	})

	t.Run("unknown group", func(t *testing.T) {
		groupSays(t, g, 4, 11111, schema.Contact{UIN: 3001, QQ: aliceQQ, Nick: "Alice"}, spoke)
		for _, action := range []string{"get_group_member_list", "get_group_member_info"} {
			r := g.Call(ctx, action, Params{"group_id": json.RawMessage(`11111`), "user_id": json.RawMessage(`123456`)}, nil)
			if r.Status != "failed" || r.Retcode != RetUnknownTarget {
				t.Errorf("%s of a group the bridge does not know (members seen there once) = %+v, want retcode 100", action, r)
			}
		}
	})

	t.Run("bridge unavailable", func(t *testing.T) {
		be.membersErr = errors.New("nats: no responders available for request")
		defer func() { be.membersErr = nil }()
		ms := members(t, g.Call(ctx, "get_group_member_list", Params{"group_id": json.RawMessage(`987654`)}, nil))
		if got := userIDs(ms); got != fmt.Sprintf("%d %d", leftQQ, aliceQQ) {
			t.Errorf("user_ids %s, want those seen speaking (by user_id)", got)
		}
		if ms[1].Card != "Alice (then)" || ms[1].LastSentTime != int32(spoke.Unix()) {
			t.Errorf("Alice as seen: %+v", ms[1])
		}
	})
}

// TestGroupMemberInfo: get_group_member_info finds a member in the bridge's
// list by QQ number or by the uin it is listed under; a user_id not in a
// list where every QQ number is known is no member (100), even one seen
// speaking there once; where some are not known, one seen speaking is
// answered as seen. Without the bridge, the members seen speaking.
func TestGroupMemberInfo(t *testing.T) {
	ctx := context.Background()
	g, be := newMembersGateway(t)
	spoke := time.Unix(1700000000, 0)
	groupSays(t, g, 1, devGroup, schema.Contact{UIN: 3001, QQ: aliceQQ, Nick: "Alice", Card: "Alice@dev"}, spoke)
	groupSays(t, g, 2, devGroup, schema.Contact{UIN: 3009, QQ: leftQQ, Nick: "Left"}, spoke)
	groupSays(t, g, 3, hikingGroup, schema.Contact{UIN: 3010, QQ: leftQQ, Nick: "Left"}, spoke)
	info := func(group, user int64) Response {
		return g.Call(ctx, "get_group_member_info", Params{"group_id": json.RawMessage(fmt.Sprint(group)), "user_id": json.RawMessage(fmt.Sprint(user))}, nil)
	}
	data := func(r Response) memberInfo {
		t.Helper()
		m, ok := r.Data.(memberInfo)
		if r.Status != "ok" || !ok {
			t.Fatalf("answer %+v, want a member", r)
		}
		return m
	}
	if m := data(info(devGroup, aliceQQ)); m.Nickname != "Alice" || m.Card != "Alice@dev" || m.LastSentTime != int32(spoke.Unix()) {
		t.Errorf("Alice %+v", m)
	}
	if m := data(info(devGroup, daveUIN)); m.Nickname != "Dave" || m.UserID != daveUIN || m.LastSentTime != 0 {
		t.Errorf("Dave by his uin %+v", m)
	}
	// Dev chat lists Dave without a QQ number: the one who spoke may be him.
	if m := data(info(devGroup, leftQQ)); m.Nickname != "Left" {
		t.Errorf("a member seen speaking, where some QQ numbers are unknown: %+v", m)
	}
	if r := info(devGroup, 999); r.Retcode != RetUnknownTarget || !strings.Contains(r.Msg, "session numbers") {
		t.Errorf("nobody, where some QQ numbers are unknown: %+v, want 100 saying why it cannot be sure", r)
	}
	// 周末爬山's list has every QQ number: one who spoke there once has left.
	if r := info(hikingGroup, leftQQ); r.Retcode != RetUnknownTarget {
		t.Errorf("a member who left: %+v, want 100", r)
	}

	be.membersErr = errors.New("nats: timeout")
	if m := data(info(hikingGroup, leftQQ)); m.Nickname != "Left" {
		t.Errorf("without the bridge: %+v, want the member seen speaking", m)
	}
	if r := info(devGroup, daveUIN); r.Retcode != RetUnknownTarget || !strings.Contains(r.Msg, "has not spoken") {
		t.Errorf("without the bridge, a member never seen: %+v, want 100", r)
	}
}
