package qqclient

import (
	"context"
	"encoding/json"
)

// Friend is one entry of the friend list. UIN is a session number.
type Friend struct {
	UIN      int64
	Nick     string
	MarkName string
	Category int
	Flag     int
	Face     int
	VIP      bool
	VIPLevel int
}

// Category is a friend list category (group of friends).
type Category struct {
	Index int
	Sort  int
	Name  string
}

// Birthday is a user's birthday as the profile gives it.
type Birthday struct {
	Year, Month, Day int
}

// UserInfo is the profile of a friend (get_friend_info2) or of the account (get_self_info2).
type UserInfo struct {
	UIN        int64
	Account    int64 // QQ number, when the answer has it (self info)
	Nick       string
	LongNick   string // "lnick", when present
	Gender     string
	Face       int
	Birthday   Birthday
	Occupation string
	Phone      string
	Mobile     string
	Email      string
	College    string
	Homepage   string
	Country    string
	Province   string
	City       string
	Personal   string
	Allow      int
	Constel    int
	Blood      int
	Shengxiao  int
	Stat       int
	VIPInfo    int
}

// Group is one entry of the group list. GID is the session number used to send; Code the
// number used for GroupInfo and GroupNumber.
type Group struct {
	GID, Code int64
	Name      string
	MarkName  string
	Flag      int64
}

// GroupMember is a member of a group, with the card (group nickname) merged in.
type GroupMember struct {
	UIN    int64
	Nick   string
	Card   string // empty when the member set none (or nobody did: the answer had no cards)
	Gender string
	Flag   int
	// Country, Province and City as in minfo.
	Country, Province, City string
}

// GroupInfo is a group's details and members.
type GroupInfo struct {
	GID, Code  int64
	Name, Memo string
	Owner      int64
	CreateTime int64
	Members    []GroupMember
}

// Discussion is one entry of the discussion list.
type Discussion struct {
	DID  int64
	Name string
}

// DiscussMember is a member of a discussion; RUIN is the seed's "ruin" (QQ number).
type DiscussMember struct {
	UIN, RUIN int64
	Nick      string
}

// DiscussInfo is a discussion's details and members.
type DiscussInfo struct {
	DID     int64
	Name    string
	Members []DiscussMember
}

// Recent is one entry of the recent conversation list: Type 0 friend, 1 group, 2 discussion.
type Recent struct {
	Type int
	UIN  int64
}

// Friends returns the friend list (get_user_friends2, with Hash(uin, ptwebqq)).
func (c *Client) Friends(ctx context.Context) ([]Friend, error) {
	return fetch(ctx, c, "get_user_friends2", func(cr creds) *call {
		return &call{host: hostS, path: "/api/get_user_friends2",
			form: struct {
				VFWebQQ string `json:"vfwebqq"`
				Hash    string `json:"hash"`
			}{cr.vfwebqq, Hash(cr.uin, cr.ptwebqq)},
		}
	}, func(res json.RawMessage) ([]Friend, error) {
		fs, _, err := decodeFriends(res)
		return fs, err
	})
}

// fetch sends the contacts call that build makes from the session's credentials under
// the name op and converts its result with decode.
func fetch[T any](ctx context.Context, c *Client, op string, build func(creds) *call,
	decode func(json.RawMessage) (T, error)) (T, error) {
	cr, err := c.current(op)
	if err != nil {
		var zero T
		return zero, err
	}
	k := build(cr)
	k.op = op
	res, err := c.jsonCall(ctx, k)
	if err != nil {
		var zero T
		return zero, err
	}
	return decode(res)
}

// decodeFriends decodes the result of get_user_friends2.
func decodeFriends(res json.RawMessage) ([]Friend, []Category, error) {
	const op = "get_user_friends2"
	var r struct {
		Friends []struct {
			Flag       flexInt `json:"flag"`
			UIN        flexInt `json:"uin"`
			Categories flexInt `json:"categories"`
		} `json:"friends"`
		MarkNames []struct {
			UIN      flexInt    `json:"uin"`
			MarkName flexString `json:"markname"`
		} `json:"marknames"`
		Categories []struct {
			Index flexInt    `json:"index"`
			Sort  flexInt    `json:"sort"`
			Name  flexString `json:"name"`
		} `json:"categories"`
		VIPInfo []struct {
			VIPLevel flexInt `json:"vip_level"`
			U        flexInt `json:"u"`
			IsVIP    flexInt `json:"is_vip"`
		} `json:"vipinfo"`
		Info []struct {
			Face flexInt    `json:"face"`
			Flag flexInt    `json:"flag"`
			Nick flexString `json:"nick"`
			UIN  flexInt    `json:"uin"`
		} `json:"info"`
	}
	if err := decodeResult(op, res, &r); err != nil {
		return nil, nil, err
	}
	marks := make(map[int64]string, len(r.MarkNames))
	for _, m := range r.MarkNames {
		marks[int64(m.UIN)] = string(m.MarkName)
	}
	type info struct {
		nick string
		face int
	}
	infos := make(map[int64]info, len(r.Info))
	for _, i := range r.Info {
		infos[int64(i.UIN)] = info{string(i.Nick), int(i.Face)}
	}
	type vip struct {
		is    bool
		level int
	}
	vips := make(map[int64]vip, len(r.VIPInfo))
	for _, v := range r.VIPInfo {
		vips[int64(v.U)] = vip{v.IsVIP != 0, int(v.VIPLevel)}
	}
	fs := make([]Friend, 0, len(r.Friends))
	for _, f := range r.Friends {
		u := int64(f.UIN)
		in, v := infos[u], vips[u]
		fs = append(fs, Friend{
			UIN: u, Nick: in.nick, MarkName: marks[u], Category: int(f.Categories),
			Flag: int(f.Flag), Face: in.face, VIP: v.is, VIPLevel: v.level,
		})
	}
	cats := make([]Category, 0, len(r.Categories))
	for _, k := range r.Categories {
		cats = append(cats, Category{Index: int(k.Index), Sort: int(k.Sort), Name: string(k.Name)})
	}
	return fs, cats, nil
}

// OnlineBuddies returns the friends online now (get_online_buddies2).
func (c *Client) OnlineBuddies(ctx context.Context) ([]BuddyStatus, error) {
	return fetch(ctx, c, "get_online_buddies2", func(cr creds) *call {
		return &call{host: hostD1, path: "/channel/get_online_buddies2",
			query: qv("vfwebqq", cr.vfwebqq, "clientid", itoa(ClientID), "psessionid", cr.psessionid, "t", tParam()),
		}
	}, decodeOnline)
}

func decodeOnline(res json.RawMessage) ([]BuddyStatus, error) {
	var r []wireStatus
	if err := decodeResult("get_online_buddies2", res, &r); err != nil {
		return nil, err
	}
	out := make([]BuddyStatus, 0, len(r))
	for _, w := range r {
		out = append(out, w.typed())
	}
	return out, nil
}

// wireUserInfo is the result of get_friend_info2 / get_self_info2.
type wireUserInfo struct {
	UIN      flexInt    `json:"uin"`
	Account  flexInt    `json:"account"`
	Nick     flexString `json:"nick"`
	LNick    flexString `json:"lnick"`
	Gender   flexString `json:"gender"`
	Face     flexInt    `json:"face"`
	Birthday struct {
		Year  flexInt `json:"year"`
		Month flexInt `json:"month"`
		Day   flexInt `json:"day"`
	} `json:"birthday"`
	Occupation flexString `json:"occupation"`
	Phone      flexString `json:"phone"`
	Mobile     flexString `json:"mobile"`
	Email      flexString `json:"email"`
	College    flexString `json:"college"`
	Homepage   flexString `json:"homepage"`
	Country    flexString `json:"country"`
	Province   flexString `json:"province"`
	City       flexString `json:"city"`
	Personal   flexString `json:"personal"`
	Allow      flexInt    `json:"allow"`
	Constel    flexInt    `json:"constel"`
	Blood      flexInt    `json:"blood"`
	Shengxiao  flexInt    `json:"shengxiao"`
	Stat       flexInt    `json:"stat"`
	VIPInfo    flexInt    `json:"vip_info"`
}

func decodeUserInfo(op string, res json.RawMessage) (*UserInfo, error) {
	var w wireUserInfo
	if err := decodeResult(op, res, &w); err != nil {
		return nil, err
	}
	return &UserInfo{
		UIN: int64(w.UIN), Account: int64(w.Account), Nick: string(w.Nick), LongNick: string(w.LNick),
		Gender: string(w.Gender), Face: int(w.Face),
		Birthday:   Birthday{Year: int(w.Birthday.Year), Month: int(w.Birthday.Month), Day: int(w.Birthday.Day)},
		Occupation: string(w.Occupation), Phone: string(w.Phone), Mobile: string(w.Mobile),
		Email: string(w.Email), College: string(w.College), Homepage: string(w.Homepage),
		Country: string(w.Country), Province: string(w.Province), City: string(w.City),
		Personal: string(w.Personal), Allow: int(w.Allow), Constel: int(w.Constel), Blood: int(w.Blood),
		Shengxiao: int(w.Shengxiao), Stat: int(w.Stat), VIPInfo: int(w.VIPInfo),
	}, nil
}

// FriendInfo returns a friend's profile (get_friend_info2).
func (c *Client) FriendInfo(ctx context.Context, uin int64) (*UserInfo, error) {
	const op = "get_friend_info2"
	return fetch(ctx, c, op, func(cr creds) *call {
		return &call{host: hostS, path: "/api/get_friend_info2",
			query: qv("tuin", itoa(uin), "vfwebqq", cr.vfwebqq, "clientid", itoa(ClientID),
				"psessionid", cr.psessionid, "t", tParam()),
		}
	}, func(res json.RawMessage) (*UserInfo, error) {
		return decodeUserInfo(op, res)
	})
}

// SelfInfo returns the account's own profile (get_self_info2).
func (c *Client) SelfInfo(ctx context.Context) (*UserInfo, error) {
	const op = "get_self_info2"
	return fetch(ctx, c, op, func(creds) *call {
		return &call{host: hostS, path: "/api/get_self_info2", query: qv("t", tParam())}
	}, func(res json.RawMessage) (*UserInfo, error) {
		return decodeUserInfo(op, res)
	})
}

// AccountOf returns the QQ number of a friend's (or member's) uin (get_friend_uin2, type 1).
func (c *Client) AccountOf(ctx context.Context, uin int64) (int64, error) {
	return c.friendUIN(ctx, uin, 1)
}

// GroupNumber returns the group number of a group code (get_friend_uin2, type 4).
func (c *Client) GroupNumber(ctx context.Context, code int64) (int64, error) {
	return c.friendUIN(ctx, code, 4)
}

func (c *Client) friendUIN(ctx context.Context, tuin int64, typ int64) (int64, error) {
	return fetch(ctx, c, "get_friend_uin2", func(cr creds) *call {
		return &call{host: hostS, path: "/api/get_friend_uin2", referer: refererD1,
			query: qv("tuin", itoa(tuin), "type", itoa(typ), "vfwebqq", cr.vfwebqq, "t", tParam()),
		}
	}, decodeAccount)
}

func decodeAccount(res json.RawMessage) (int64, error) {
	const op = "get_friend_uin2"
	var r struct {
		Account flexInt `json:"account"`
	}
	if err := decodeResult(op, res, &r); err != nil {
		return 0, err
	}
	if r.Account == 0 {
		return 0, protocolError(op, "no account in the answer")
	}
	return int64(r.Account), nil
}

// Groups returns the group list (get_group_name_list_mask2), mark names merged in.
func (c *Client) Groups(ctx context.Context) ([]Group, error) {
	return fetch(ctx, c, "get_group_name_list_mask2", func(cr creds) *call {
		return &call{host: hostS, path: "/api/get_group_name_list_mask2", referer: refererD1,
			form: struct {
				VFWebQQ string `json:"vfwebqq"`
				Hash    string `json:"hash"`
			}{cr.vfwebqq, Hash(cr.uin, cr.ptwebqq)},
		}
	}, decodeGroups)
}

func decodeGroups(res json.RawMessage) ([]Group, error) {
	var r struct {
		GNameList []struct {
			Flag flexInt    `json:"flag"`
			Name flexString `json:"name"`
			GID  flexInt    `json:"gid"`
			Code flexInt    `json:"code"`
		} `json:"gnamelist"`
		GMarkList []struct {
			UIN      flexInt    `json:"uin"`
			MarkName flexString `json:"markname"`
		} `json:"gmarklist"`
	}
	if err := decodeResult("get_group_name_list_mask2", res, &r); err != nil {
		return nil, err
	}
	marks := make(map[int64]string, len(r.GMarkList))
	for _, m := range r.GMarkList {
		marks[int64(m.UIN)] = string(m.MarkName)
	}
	out := make([]Group, 0, len(r.GNameList))
	for _, g := range r.GNameList {
		out = append(out, Group{
			GID: int64(g.GID), Code: int64(g.Code), Name: string(g.Name),
			MarkName: marks[int64(g.GID)], Flag: int64(g.Flag),
		})
	}
	return out, nil
}

// GroupInfo returns a group's details and members (get_group_info_ext2) by its code; cards
// are merged into the members (an absent "cards" means nobody set one).
func (c *Client) GroupInfo(ctx context.Context, code int64) (*GroupInfo, error) {
	return fetch(ctx, c, "get_group_info_ext2", func(cr creds) *call {
		return &call{host: hostS, path: "/api/get_group_info_ext2",
			query: qv("gcode", itoa(code), "vfwebqq", cr.vfwebqq, "t", tParam()),
		}
	}, decodeGroupInfo)
}

func decodeGroupInfo(res json.RawMessage) (*GroupInfo, error) {
	var r struct {
		GInfo struct {
			GID        flexInt    `json:"gid"`
			Code       flexInt    `json:"code"`
			Name       flexString `json:"name"`
			Memo       flexString `json:"memo"`
			Owner      flexInt    `json:"owner"`
			CreateTime flexInt    `json:"createtime"`
			Members    []struct {
				MUIN  flexInt `json:"muin"`
				MFlag flexInt `json:"mflag"`
			} `json:"members"`
		} `json:"ginfo"`
		MInfo []struct {
			UIN      flexInt    `json:"uin"`
			Nick     flexString `json:"nick"`
			Gender   flexString `json:"gender"`
			Country  flexString `json:"country"`
			Province flexString `json:"province"`
			City     flexString `json:"city"`
		} `json:"minfo"`
		Cards []struct {
			MUIN flexInt    `json:"muin"`
			Card flexString `json:"card"`
		} `json:"cards"`
	}
	if err := decodeResult("get_group_info_ext2", res, &r); err != nil {
		return nil, err
	}
	cards := make(map[int64]string, len(r.Cards))
	for _, k := range r.Cards {
		cards[int64(k.MUIN)] = string(k.Card)
	}
	gi := &GroupInfo{
		GID: int64(r.GInfo.GID), Code: int64(r.GInfo.Code), Name: string(r.GInfo.Name),
		Memo: string(r.GInfo.Memo), Owner: int64(r.GInfo.Owner), CreateTime: int64(r.GInfo.CreateTime),
	}
	idx := make(map[int64]int)
	add := func(uin int64) *GroupMember {
		if i, ok := idx[uin]; ok {
			return &gi.Members[i]
		}
		idx[uin] = len(gi.Members)
		gi.Members = append(gi.Members, GroupMember{UIN: uin, Card: cards[uin]})
		return &gi.Members[len(gi.Members)-1]
	}
	for _, m := range r.GInfo.Members {
		add(int64(m.MUIN)).Flag = int(m.MFlag)
	}
	for _, m := range r.MInfo {
		gm := add(int64(m.UIN))
		gm.Nick, gm.Gender = string(m.Nick), string(m.Gender)
		gm.Country, gm.Province, gm.City = string(m.Country), string(m.Province), string(m.City)
	}
	return gi, nil
}

// Discussions returns the discussion list (get_discus_list).
func (c *Client) Discussions(ctx context.Context) ([]Discussion, error) {
	return fetch(ctx, c, "get_discus_list", func(cr creds) *call {
		return &call{host: hostS, path: "/api/get_discus_list", referer: refererD1,
			query: qv("clientid", itoa(ClientID), "psessionid", cr.psessionid, "vfwebqq", cr.vfwebqq, "t", tParam()),
		}
	}, decodeDiscussions)
}

func decodeDiscussions(res json.RawMessage) ([]Discussion, error) {
	var r struct {
		DNameList []struct {
			DID  flexInt    `json:"did"`
			Name flexString `json:"name"`
		} `json:"dnamelist"`
	}
	if err := decodeResult("get_discus_list", res, &r); err != nil {
		return nil, err
	}
	out := make([]Discussion, 0, len(r.DNameList))
	for _, d := range r.DNameList {
		out = append(out, Discussion{DID: int64(d.DID), Name: string(d.Name)})
	}
	return out, nil
}

// DiscussInfo returns a discussion's details and members (get_discu_info).
func (c *Client) DiscussInfo(ctx context.Context, did int64) (*DiscussInfo, error) {
	return fetch(ctx, c, "get_discu_info", func(cr creds) *call {
		return &call{host: hostD1, path: "/channel/get_discu_info",
			query: qv("did", itoa(did), "psessionid", cr.psessionid, "vfwebqq", cr.vfwebqq,
				"clientid", itoa(ClientID), "t", tParam()),
		}
	}, decodeDiscussInfo)
}

func decodeDiscussInfo(res json.RawMessage) (*DiscussInfo, error) {
	var r struct {
		Info struct {
			DID     flexInt    `json:"did"`
			Name    flexString `json:"discu_name"`
			MemList []struct {
				MemUIN flexInt `json:"mem_uin"`
				RUIN   flexInt `json:"ruin"`
			} `json:"mem_list"`
		} `json:"info"`
		MemInfo []struct {
			Nick flexString `json:"nick"`
			UIN  flexInt    `json:"uin"`
		} `json:"mem_info"`
	}
	if err := decodeResult("get_discu_info", res, &r); err != nil {
		return nil, err
	}
	di := &DiscussInfo{DID: int64(r.Info.DID), Name: string(r.Info.Name)}
	idx := make(map[int64]int)
	for _, m := range r.Info.MemList {
		idx[int64(m.MemUIN)] = len(di.Members)
		di.Members = append(di.Members, DiscussMember{UIN: int64(m.MemUIN), RUIN: int64(m.RUIN)})
	}
	for _, m := range r.MemInfo {
		i, ok := idx[int64(m.UIN)]
		if !ok {
			idx[int64(m.UIN)] = len(di.Members)
			di.Members = append(di.Members, DiscussMember{UIN: int64(m.UIN), Nick: string(m.Nick)})
			continue
		}
		di.Members[i].Nick = string(m.Nick)
	}
	return di, nil
}

// RecentList returns the recent conversations (get_recent_list2).
func (c *Client) RecentList(ctx context.Context) ([]Recent, error) {
	return fetch(ctx, c, "get_recent_list2", func(cr creds) *call {
		return &call{host: hostD1, path: "/channel/get_recent_list2",
			form: struct {
				VFWebQQ    string `json:"vfwebqq"`
				ClientID   int    `json:"clientid"`
				PSessionID string `json:"psessionid"`
			}{cr.vfwebqq, ClientID, cr.psessionid},
		}
	}, decodeRecent)
}

func decodeRecent(res json.RawMessage) ([]Recent, error) {
	var r []struct {
		Type flexInt `json:"type"`
		UIN  flexInt `json:"uin"`
	}
	if err := decodeResult("get_recent_list2", res, &r); err != nil {
		return nil, err
	}
	out := make([]Recent, 0, len(r))
	for _, e := range r {
		out = append(out, Recent{Type: int(e.Type), UIN: int64(e.UIN)})
	}
	return out, nil
}
