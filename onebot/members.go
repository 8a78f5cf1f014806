package onebot

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/qqbridge/qqbridge/schema"
)

// memberInfo is a group member as get_group_member_info and
// get_group_member_list answer it.
type memberInfo struct {
	GroupID         int64  `json:"group_id"`
	UserID          int64  `json:"user_id"`
	Nickname        string `json:"nickname"`
	Card            string `json:"card"`
	Sex             string `json:"sex"`
	Age             int32  `json:"age"`
	Area            string `json:"area"`
	JoinTime        int32  `json:"join_time"`
	LastSentTime    int32  `json:"last_sent_time"`
	Level           string `json:"level"`
	Role            string `json:"role"`
	Unfriendly      bool   `json:"unfriendly"`
	Title           string `json:"title"`
	TitleExpireTime int32  `json:"title_expire_time"`
	CardChangeable  bool   `json:"card_changeable"`
}

func newMemberInfo(group, user int64, m Member) memberInfo {
	return memberInfo{GroupID: group, UserID: user, Nickname: m.Nickname, Card: m.Card, Sex: "unknown",
		LastSentTime: int32(m.LastSentTime), Role: "member"}
}

// markConcurrency bounds the store writes of session number markers made at
// once for one member list.
const markConcurrency = 8

// getGroupMemberList answers every member of the group: the bridge's list
// (qq.api.contacts.members) in QQ's order, each with last_sent_time when
// the gateway saw it speak. A member whose QQ number the bridge does not
// know is listed under its session number (uin), marked as one as for
// events. Only when the bridge cannot answer are the members seen speaking
// answered instead.
func (g *Gateway) getGroupMemberList(ctx context.Context, c call) Response {
	group, err := c.params.NeedInt64("group_id")
	if err != nil {
		return paramFailure(err)
	}
	ms, err := g.bridgeMembers(ctx, group)
	switch {
	case errors.Is(err, ErrUnknownGroup):
		return failed(RetUnknownTarget, "no group "+strconv.FormatInt(group, 10))
	case err != nil:
		return g.seenMembers(ctx, group)
	}
	seen, err := g.seen(ctx, group)
	if err != nil {
		g.log.Warn().Err(err).Int64("group_id", group).Msg("store: members seen speaking not read; last_sent_time left 0")
	}
	out := make([]memberInfo, 0, len(ms))
	var uins []int64
	for _, m := range ms {
		user := m.QQ
		if user == 0 {
			user = m.UIN
			uins = append(uins, user)
		}
		out = append(out, newMemberInfo(group, user, Member{Nickname: m.Nick, Card: m.Card, LastSentTime: seen[user].LastSentTime}))
	}
	g.markSessionNumbers(ctx, "uin", uins)
	return ok(out)
}

// getGroupMemberInfo answers one member of the group, looked up in the
// bridge's list by QQ number (or by session number for a member listed
// under it). A user_id the list does not hold while some members' QQ
// numbers are unknown may be one of them: a member seen speaking is then
// answered as seen. When the bridge cannot answer, the member seen speaking.
func (g *Gateway) getGroupMemberInfo(ctx context.Context, c call) Response {
	group, err := c.params.NeedInt64("group_id")
	if err != nil {
		return paramFailure(err)
	}
	user, err := c.params.NeedInt64("user_id")
	if err != nil {
		return paramFailure(err)
	}
	ms, err := g.bridgeMembers(ctx, group)
	switch {
	case errors.Is(err, ErrUnknownGroup):
		return failed(RetUnknownTarget, "no group "+strconv.FormatInt(group, 10))
	case err != nil:
		return g.seenMember(ctx, group, user)
	}
	unknown := 0
	for _, m := range ms {
		if m.QQ == user || m.QQ == 0 && m.UIN == user {
			var last int64
			if sm, err := g.storedMember(ctx, group, user); err == nil {
				last = sm.LastSentTime
			}
			return ok(newMemberInfo(group, user, Member{Nickname: m.Nick, Card: m.Card, LastSentTime: last}))
		}
		if m.QQ == 0 {
			unknown++
		}
	}
	noMember := "no member " + strconv.FormatInt(user, 10) + " in group " + strconv.FormatInt(group, 10)
	if unknown == 0 {
		return failed(RetUnknownTarget, noMember)
	}
	if r := g.seenMember(ctx, group, user); r.Status == "ok" {
		return r
	}
	return failed(RetUnknownTarget, noMember+" among the members whose QQ numbers the bridge knows ("+
		strconv.Itoa(unknown)+" of "+strconv.Itoa(len(ms))+" are listed under their session numbers)")
}

// bridgeMembers asks the bridge for the members of the group within half of
// the action's time (ctx's), so that the answer from the members seen
// speaking, when the bridge does not answer, has the other half.
func (g *Gateway) bridgeMembers(ctx context.Context, group int64) ([]schema.Contact, error) {
	target := g.groupTarget(ctx, group)
	wait := g.cfg.ActionTimeout / 2
	if dl, ok := ctx.Deadline(); ok {
		wait = time.Until(dl) / 2
	}
	mctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	ms, err := g.backend.Members(mctx, target)
	if err != nil && !errors.Is(err, ErrUnknownGroup) {
		g.log.Info().Err(err).Int64("group_id", group).Msg("the bridge did not list the group's members; answering from those seen speaking")
	}
	return ms, err
}

// markSessionNumbers records each of ns as a session number (key
// "<prefix>.<n>"), so that a send to it goes out as one; a few writes at a
// time. A failed write is logged: a send to that number then goes out as a
// stable number and is answered unknown_target.
func (g *Gateway) markSessionNumbers(ctx context.Context, prefix string, ns []int64) {
	sem := make(chan struct{}, markConcurrency)
	var wg sync.WaitGroup
	for _, n := range ns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := g.store.Put(ctx, prefix+"."+strconv.FormatInt(n, 10), []byte("1")); err != nil {
				g.log.Warn().Err(err).Str("key", prefix+"."+strconv.FormatInt(n, 10)).Msg("store: session number marker not written")
			}
		})
	}
	wg.Wait()
}

// seen returns the members of the group seen speaking, by user_id.
func (g *Gateway) seen(ctx context.Context, group int64) (map[int64]Member, error) {
	keys, err := g.store.Keys(ctx, "member."+strconv.FormatInt(group, 10)+".*")
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	out := make(map[int64]Member, len(keys))
	for _, k := range keys {
		user, err := strconv.ParseInt(k[strings.LastIndexByte(k, '.')+1:], 10, 64)
		if err != nil {
			continue
		}
		b, _, err := g.store.Get(ctx, k)
		if err != nil {
			continue
		}
		var m Member
		if json.Unmarshal(b, &m) == nil {
			out[user] = m
		}
	}
	return out, nil
}

// seenMembers answers the members of the group seen speaking (since the
// store keeps them), by user_id.
func (g *Gateway) seenMembers(ctx context.Context, group int64) Response {
	seen, err := g.seen(ctx, group)
	if err != nil {
		return failed(RetInternal, "store: "+err.Error())
	}
	out := make([]memberInfo, 0, len(seen))
	for user, m := range seen {
		out = append(out, newMemberInfo(group, user, m))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UserID < out[j].UserID })
	return ok(out)
}

// storedMember reads what the gateway saw of a member when it last spoke.
func (g *Gateway) storedMember(ctx context.Context, group, user int64) (Member, error) {
	var m Member
	b, _, err := g.store.Get(ctx, memberKey(group, user))
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(b, &m)
}

// seenMember answers a member of the group seen speaking.
func (g *Gateway) seenMember(ctx context.Context, group, user int64) Response {
	m, err := g.storedMember(ctx, group, user)
	switch {
	case errors.Is(err, ErrNotFound):
		return failed(RetUnknownTarget, "member "+strconv.FormatInt(user, 10)+" of group "+strconv.FormatInt(group, 10)+" has not spoken since the gateway started keeping members")
	case err != nil:
		return failed(RetInternal, "store: "+err.Error())
	}
	return ok(newMemberInfo(group, user, m))
}
