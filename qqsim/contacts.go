package qqsim

import (
	"slices"
	"strconv"
)

// recentEntry is a conversation of get_recent_list2, in stable form.
type recentEntry struct {
	kind   string // friend, group, discuss
	stable int64
}

// touchRecentLocked moves a conversation to the top of the recent list.
func (s *Server) touchRecentLocked(kind string, stable int64) {
	if kind == "sess" {
		return
	}
	e := recentEntry{kind, stable}
	s.recent = slices.DeleteFunc(s.recent, func(x recentEntry) bool { return x == e })
	s.recent = slices.Insert(s.recent, 0, e)
}

// onlineBuddies answers the friends that are online and allows poll2 from now on.
func (s *Server) onlineBuddies(c *call) any {
	c.sess.online = true
	out := []map[string]any{}
	for _, f := range s.world.Friends {
		st := f.Status
		if st == "offline" {
			continue
		}
		if st == "" {
			st = "online"
		}
		out = append(out, map[string]any{"uin": c.sess.num.uin[f.QQ], "status": st, "client_type": 1})
	}
	return result{Result: out}
}

// checkHash checks the hash of get_user_friends2 and get_group_name_list_mask2.
func (s *Server) checkHash(c *call) bool {
	h, ok := c.str("hash")
	return ok && s.hashOK(h, c.creds)
}

// userFriends answers the friend list (seed 004's shape).
func (s *Server) userFriends(c *call) any {
	if !s.checkHash(c) {
		return rc{rcMissingData}
	}
	n := c.sess.num
	friends, marks, vip, info := []any{}, []any{}, []any{}, []any{}
	used := map[int]bool{0: true}
	for i, f := range s.world.Friends {
		uin := n.uin[f.QQ]
		used[f.Category] = true
		friends = append(friends, map[string]any{"flag": f.Category * 4, "uin": uin, "categories": f.Category})
		if f.MarkName != "" {
			marks = append(marks, map[string]any{"uin": uin, "markname": f.MarkName, "type": 0})
		}
		vip = append(vip, map[string]any{"vip_level": 0, "u": uin, "is_vip": 0})
		info = append(info, map[string]any{"face": 600 + 3*i, "flag": 8388608 + i, "nick": f.Nick, "uin": uin})
	}
	names := map[int]string{0: "我的好友"}
	for _, c := range s.world.Categories {
		names[c.Index] = c.Name
		used[c.Index] = true
	}
	idx := make([]int, 0, len(used))
	for i := range used {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	cats := []any{}
	for sort, i := range idx {
		name, ok := names[i]
		if !ok {
			name = "分组" + strconv.Itoa(i)
		}
		cats = append(cats, map[string]any{"index": i, "sort": sort + 1, "name": name})
	}
	return result{Result: map[string]any{
		"friends": friends, "marknames": marks, "categories": cats, "vipinfo": vip, "info": info,
	}}
}

// groupList answers the group list (seed 004's shape).
func (s *Server) groupList(c *call) any {
	if !s.checkHash(c) {
		return rc{rcMissingData}
	}
	n := c.sess.num
	names, marks := []any{}, []any{}
	for _, g := range s.world.Groups {
		gid := n.gid[g.Number]
		names = append(names, map[string]any{"flag": 167864331, "name": g.Name, "gid": gid, "code": n.code[g.Number]})
		if g.MarkName != "" {
			marks = append(marks, map[string]any{"uin": gid, "markname": g.MarkName})
		}
	}
	return result{Result: map[string]any{"gmasklist": []any{}, "gnamelist": names, "gmarklist": marks}}
}

// groupInfo answers a group's details by its code; cards is absent when no member
// set a card, as the real service did.
func (s *Server) groupInfo(c *call) any {
	code, ok := c.num("gcode")
	if !ok {
		return rc{rcMissingData}
	}
	n := c.sess.num
	num, ok := n.codeNum[code]
	if !ok {
		return rc{rcMissingData}
	}
	g, _ := s.world.group(num)
	stats, minfo, members, cards, vip := []any{}, []any{}, []any{}, []any{}, []any{}
	self := s.world.Self
	all := append([]MemberDef{{QQ: self.QQ, Nick: self.Nick}}, g.Members...)
	for _, m := range all {
		uin := s.uinOf(n, m.QQ)
		stats = append(stats, map[string]any{"client_type": 1, "uin": uin, "stat": 10})
		minfo = append(minfo, map[string]any{
			"nick": m.Nick, "province": "", "gender": s.world.gender(m.QQ), "uin": uin, "country": "中国", "city": "",
		})
		mflag := 0
		if m.QQ == g.Owner {
			mflag = 1
		}
		members = append(members, map[string]any{"muin": uin, "mflag": mflag})
		if m.Card != "" {
			cards = append(cards, map[string]any{"muin": uin, "card": m.Card})
		}
		vip = append(vip, map[string]any{"vip_level": 0, "u": uin, "is_vip": 0})
	}
	res := map[string]any{
		"stats": stats,
		"minfo": minfo,
		"ginfo": map[string]any{
			"face": 0, "memo": g.Memo, "class": 25, "fingermemo": "", "code": code,
			"createtime": 1231435199, "flag": 721421329, "level": 0, "name": g.Name,
			"gid": n.gid[g.Number], "owner": s.uinOf(n, g.Owner), "members": members, "option": 2,
		},
		"vipinfo": vip,
	}
	if len(cards) > 0 {
		res["cards"] = cards
	}
	return result{Result: res}
}

// friendUIN answers the QQ number of a uin (type 1) or the group number of a group
// code (type 4). The uin comes in tuin, or tuid as some clients sent it.
func (s *Server) friendUIN(c *call) any {
	key := "tuin"
	if !c.query.Has(key) {
		key = "tuid"
	}
	id, ok := c.num(key)
	typ, ok2 := c.num("type")
	if !ok || !ok2 {
		return rc{rcMissingData}
	}
	n := c.sess.num
	var account int64
	switch typ {
	case 1:
		account, ok = s.qqOf(n, id)
	case 4:
		account, ok = n.codeNum[id]
	default:
		ok = false
	}
	if !ok {
		return rc{rcMissingData}
	}
	return result{Result: map[string]any{"uiuin": "", "account": account, "uin": id}}
}

// userInfo is get_friend_info2's and get_self_info2's answer for qq.
func (s *Server) userInfo(qq, uin int64) map[string]any {
	return map[string]any{
		"face": 603, "birthday": map[string]int{"month": 1, "year": 1990, "day": 1},
		"occupation": "", "phone": "", "allow": 1, "college": "", "uin": uin, "constel": 0,
		"blood": 0, "homepage": "", "stat": 10, "vip_info": 0, "country": "中国", "city": "",
		"personal": "", "nick": s.world.nick(qq), "shengxiao": 0, "email": "", "province": "",
		"gender": s.world.gender(qq), "mobile": "",
	}
}

// friendInfo answers a person's details by uin.
func (s *Server) friendInfo(c *call) any {
	uin, ok := c.num("tuin")
	if !ok {
		return rc{rcMissingData}
	}
	qq, ok := s.qqOf(c.sess.num, uin)
	if !ok {
		return rc{rcMissingData}
	}
	return result{Result: s.userInfo(qq, uin)}
}

// selfInfo answers the account's own details; the login cookies are all it needs.
func (s *Server) selfInfo(c *call) any {
	self := s.world.Self.QQ
	info := s.userInfo(self, self)
	info["account"] = self
	info["lnick"] = ""
	return result{Result: info}
}

// discusList answers the discussions.
func (s *Server) discusList(c *call) any {
	list := []any{}
	for _, d := range s.world.Discussions {
		list = append(list, map[string]any{"did": c.sess.num.did[d.ID], "name": d.Name})
	}
	return result{Result: map[string]any{"dnamelist": list}}
}

// discuInfo answers a discussion's details by did.
func (s *Server) discuInfo(c *call) any {
	did, ok := c.num("did")
	if !ok {
		return rc{rcMissingData}
	}
	n := c.sess.num
	id, ok := n.didID[did]
	if !ok {
		return rc{rcMissingData}
	}
	d, _ := s.world.discussion(id)
	self := s.world.Self
	all := append([]DiscussMem{{QQ: self.QQ, Nick: self.Nick}}, d.Members...)
	memList, memInfo, memStatus := []any{}, []any{}, []any{}
	for _, m := range all {
		uin := s.uinOf(n, m.QQ)
		memList = append(memList, map[string]any{"mem_uin": uin, "ruin": m.QQ})
		memInfo = append(memInfo, map[string]any{"nick": m.Nick, "uin": uin})
		memStatus = append(memStatus, map[string]any{"client_type": 1, "status": "online", "uin": uin})
	}
	return result{Result: map[string]any{
		"info":       map[string]any{"did": did, "discu_name": d.Name, "mem_list": memList},
		"mem_info":   memInfo,
		"mem_status": memStatus,
	}}
}

// recentList answers the conversations most recently used, newest first.
func (s *Server) recentList(c *call) any {
	n := c.sess.num
	out := []any{}
	for _, e := range s.recent {
		switch e.kind {
		case "friend":
			out = append(out, map[string]any{"type": 0, "uin": n.uin[e.stable]})
		case "group":
			out = append(out, map[string]any{"type": 1, "uin": n.gid[e.stable]})
		case "discuss":
			out = append(out, map[string]any{"type": 2, "uin": n.did[e.stable]})
		}
	}
	return result{Result: out}
}
