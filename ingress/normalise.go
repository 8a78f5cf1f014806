package ingress

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

// Resolver turns the session numbers of a poll item into contacts with stable
// numbers, names and cards. *directory.Directory implements it. The methods
// never fail: what cannot be resolved stays zero (QQ and group numbers) or
// empty (names).
type Resolver interface {
	Friend(ctx context.Context, uin int64) schema.Contact
	Member(ctx context.Context, gid, uin int64) schema.Contact
	DiscussMember(ctx context.Context, did, uin int64) schema.Contact
	Group(ctx context.Context, gid int64) schema.GroupRef
	Discuss(did int64) schema.DiscussRef
}

// numbersOnly is the Resolver of a nil directory: session numbers, no names.
type numbersOnly struct{}

func (numbersOnly) Friend(_ context.Context, uin int64) schema.Contact {
	return schema.Contact{UIN: uin}
}
func (numbersOnly) Member(_ context.Context, _, uin int64) schema.Contact {
	return schema.Contact{UIN: uin}
}
func (numbersOnly) DiscussMember(_ context.Context, _, uin int64) schema.Contact {
	return schema.Contact{UIN: uin}
}
func (numbersOnly) Group(_ context.Context, gid int64) schema.GroupRef {
	return schema.GroupRef{GID: gid}
}
func (numbersOnly) Discuss(did int64) schema.DiscussRef { return schema.DiscussRef{DID: did} }

// normalise turns one poll2 item of account into the event to publish, the
// kind and id of its subject (schema.Subjects.In(kind, id)), and ok = false
// when the item must not be published: the account's own message coming back
// (an echo of a send, from this bridge or another device of the account).
//
//   - message, group_message, discu_message, sess_message: message.* events
//     with the sender (and group or discussion) resolved through dir, the
//     text with entities unescaped, the segments (each picture a pending
//     image segment named schema.ImageRef(event id, n)), and Picture set when
//     the server left nothing but the font (a picture it stripped).
//   - file_message offering a file (mode "recv"): file.offer.
//   - buddies_status_change: status.buddy; input_notify: input.notify.
//   - kick_message: system.kick with the reason (the caller reports the kick
//     to the session too).
//   - other file_messages, tips, system_message, sys_g_msg, any unknown poll_type
//     and any item that could not be decoded: system.<kind> with the wire
//     value in Raw.
//
// The subject id is the stable number when dir resolved it (the sender's QQ
// number; the group number), else the session number with its kind in front
// ("uin…", "gid…", "did…"). The event id (schema.EventID) is made from the
// account, the kind and the msg_id; items without a msg_id get a hash of
// their wire value (schema.HashEventID). dir may be nil (numbers only). ctx
// bounds the lookups dir may make.
func normalise(ctx context.Context, account int64, ev qqclient.Event, dir Resolver) (e *schema.Event, kind schema.Kind, id string, ok bool) {
	if dir == nil {
		dir = numbersOnly{}
	}
	if ev.Err != nil {
		return systemEvent(account, ev), schema.KindSystem, systemKind(ev.Type), true
	}
	switch {
	case ev.Message != nil:
		return normaliseMessage(ctx, account, ev, dir)
	case ev.Status != nil:
		st := ev.Status
		if st.UIN <= 0 {
			return systemEvent(account, ev), schema.KindSystem, systemKind(ev.Type), true
		}
		from := dir.Friend(ctx, st.UIN)
		e = &schema.Event{
			ID:      schema.HashEventID(account, string(schema.KindStatus), ev.Raw),
			Type:    schema.TypeStatusBuddy,
			Time:    time.Now().UTC(),
			Account: account,
			Status:  &schema.Status{UIN: st.UIN, QQ: from.QQ, Status: st.Status, ClientType: st.ClientType},
		}
		return e, schema.KindStatus, personID(from), true
	case ev.Input != nil:
		in := ev.Input
		if in.FromUIN <= 0 {
			return systemEvent(account, ev), schema.KindSystem, systemKind(ev.Type), true
		}
		if in.FromUIN == account {
			return nil, "", "", false
		}
		from := dir.Friend(ctx, in.FromUIN)
		e = &schema.Event{
			ID:      eventID(account, string(schema.KindInput), in.MsgID, ev.Raw),
			Type:    schema.TypeInputNotify,
			Time:    time.Now().UTC(),
			Account: account,
			MsgID:   in.MsgID,
			From:    &from,
		}
		return e, schema.KindInput, personID(from), true
	case ev.Kick != nil:
		e = &schema.Event{
			ID:         eventID(account, schema.SystemKindKick, ev.Kick.MsgID, ev.Raw),
			Type:       schema.TypeSystemKick,
			Time:       time.Now().UTC(),
			Account:    account,
			MsgID:      ev.Kick.MsgID,
			Kick:       &schema.Kick{Reason: ev.Kick.Reason},
			SystemKind: schema.SystemKindKick,
			Raw:        ev.Raw,
		}
		return e, schema.KindSystem, schema.SystemKindKick, true
	}
	if ev.Notice != nil && ev.Notice.FromUIN == account && account != 0 {
		return nil, "", "", false // the account's own file offer or notice
	}
	if f := noticeFile(ev); f != nil && f.FromUIN > 0 {
		from := dir.Friend(ctx, f.FromUIN)
		o := schema.FileOffer{LCID: f.LCID, FromUIN: f.FromUIN, Name: f.Name}
		e = schema.FileOfferEvent(eventID(account, string(schema.KindFile), f.MsgID, ev.Raw), account, f.MsgID, from, o, f.Time)
		return e, schema.KindFile, personID(from), true
	}
	return systemEvent(account, ev), schema.KindSystem, systemKind(ev.Type), true
}

// messageEvent is a message event and what it points to, allocated together
// (one allocation instead of four or five per event); segs holds the
// segments of a short message.
type messageEvent struct {
	e       schema.Event
	from    schema.Contact
	group   schema.GroupRef
	discuss schema.DiscussRef
	sess    schema.SessRef
	segs    [3]schema.Segment
}

// normaliseMessage handles the four chat message kinds.
func normaliseMessage(ctx context.Context, account int64, ev qqclient.Event, dir Resolver) (*schema.Event, schema.Kind, string, bool) {
	m := ev.Message
	box := &messageEvent{e: schema.Event{Account: account, MsgID: m.MsgID, Time: m.Time}}
	e := &box.e
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	var kind schema.Kind
	var id string
	switch ev.Type {
	case qqclient.PollMessage:
		if m.FromUIN == account {
			return nil, "", "", false
		}
		if m.FromUIN <= 0 {
			return systemEvent(account, ev), schema.KindSystem, systemKind(ev.Type), true
		}
		box.from = dir.Friend(ctx, m.FromUIN)
		kind, id = schema.KindFriend, personID(box.from)
		e.Type, e.From = schema.TypeMessageFriend, &box.from
	case qqclient.PollGroupMessage:
		if m.SendUIN == account {
			return nil, "", "", false
		}
		gid := m.FromUIN
		if gid <= 0 {
			gid = m.GroupCode
		}
		if gid <= 0 || m.SendUIN <= 0 {
			return systemEvent(account, ev), schema.KindSystem, systemKind(ev.Type), true
		}
		box.group = dir.Group(ctx, gid)
		box.from = dir.Member(ctx, gid, m.SendUIN)
		kind = schema.KindGroup
		if box.group.Number > 0 {
			id = schema.StableID(box.group.Number)
		} else {
			id = schema.SessionNumberID(schema.IDPrefixGID, gid)
		}
		e.Type, e.From, e.Group = schema.TypeMessageGroup, &box.from, &box.group
	case qqclient.PollDiscuMessage:
		if m.SendUIN == account {
			return nil, "", "", false
		}
		did := m.DID
		if did <= 0 {
			did = m.FromUIN
		}
		if did <= 0 || m.SendUIN <= 0 {
			return systemEvent(account, ev), schema.KindSystem, systemKind(ev.Type), true
		}
		box.discuss = dir.Discuss(did)
		box.from = dir.DiscussMember(ctx, did, m.SendUIN)
		kind, id = schema.KindDiscuss, schema.SessionNumberID(schema.IDPrefixDID, did)
		e.Type, e.From, e.Discuss = schema.TypeMessageDiscuss, &box.from, &box.discuss
	case qqclient.PollSessMessage:
		if m.FromUIN == account || (m.SessRUIN == account && account != 0) {
			return nil, "", "", false
		}
		if m.FromUIN <= 0 {
			return systemEvent(account, ev), schema.KindSystem, systemKind(ev.Type), true
		}
		sess := &box.sess
		sess.ViaGID = m.SessID
		if m.SessID > 0 {
			box.from = dir.Member(ctx, m.SessID, m.FromUIN)
			sess.ViaNumber = dir.Group(ctx, m.SessID).Number
		} else {
			box.from = dir.Friend(ctx, m.FromUIN)
		}
		if m.SessRUIN > 0 {
			box.from.QQ = m.SessRUIN // the item names the sender's QQ number itself
		}
		kind, id = schema.KindSess, personID(box.from)
		e.Type, e.From, e.Sess = schema.TypeMessageSess, &box.from, sess
	default:
		return systemEvent(account, ev), schema.KindSystem, systemKind(ev.Type), true
	}
	e.ID = eventID(account, string(kind), m.MsgID, ev.Raw)
	if len(m.Segments) == 0 && len(m.Pictures) == 0 {
		e.Picture = true
	} else {
		if n := len(m.Segments) + len(m.Pictures); n <= len(box.segs) {
			e.Segments = box.segs[:0:n]
		} else {
			e.Segments = make([]schema.Segment, 0, n)
		}
		pics := m.Pictures
		for i := 0; i <= len(m.Segments); i++ {
			// The pictures before segment i (all that are left after the last),
			// as pending image segments named after the event (schema.ImageRef).
			for len(pics) > 0 && (pics[0].Index <= i || i == len(m.Segments)) {
				ref := schema.ImageRef(e.ID, len(m.Pictures)-len(pics)+1)
				e.Segments = append(e.Segments, schema.ImageSegment(schema.Image{State: schema.ImagePending, Ref: ref}))
				pics = pics[1:]
			}
			if i == len(m.Segments) {
				break
			}
			if s := m.Segments[i]; s.Type == qqclient.SegmentFace {
				e.Segments = append(e.Segments, schema.FaceSegment(s.Face))
			} else {
				e.Segments = append(e.Segments, schema.TextSegment(s.Text))
			}
		}
		e.Text = plainText(e.Segments)
	}
	return e, kind, id, true
}

// noticeFile is the file offer of a file_message item, nil for others.
func noticeFile(ev qqclient.Event) *qqclient.FileOffer {
	if ev.Notice == nil {
		return nil
	}
	return ev.Notice.File
}

// personID is the subject id of a person: the QQ number when resolved, else
// "uin" and the session number.
func personID(c schema.Contact) string {
	if c.QQ > 0 {
		return schema.StableID(c.QQ)
	}
	return schema.SessionNumberID(schema.IDPrefixUIN, c.UIN)
}

// eventID is schema.EventID when the item has a msg_id, else the hash id of
// its wire value.
func eventID(account int64, kind string, msgID int64, raw json.RawMessage) string {
	if msgID > 0 {
		return schema.EventID(account, kind, msgID)
	}
	return schema.HashEventID(account, kind, raw)
}

// systemKind is the system kind token of a poll_type.
func systemKind(t qqclient.PollType) string {
	switch t {
	case qqclient.PollKick:
		return schema.SystemKindKick
	case "":
		return "unknown"
	}
	return schema.SystemKindToken(string(t))
}

// systemEvent is the system.<kind> event of an item published with its wire
// value: notices, unknown kinds and items that could not be decoded.
func systemEvent(account int64, ev qqclient.Event) *schema.Event {
	kind := systemKind(ev.Type)
	raw := ev.Raw
	if !json.Valid(raw) {
		raw = nil
	}
	msgID := rawMsgID(raw)
	return &schema.Event{
		ID:         eventID(account, kind, msgID, ev.Raw),
		Type:       schema.SystemType(kind),
		Time:       time.Now().UTC(),
		Account:    account,
		MsgID:      msgID,
		SystemKind: kind,
		Raw:        raw,
	}
}

// rawMsgID returns the "msg_id" of a poll item's wire value when it is a
// JSON object with a positive integer msg_id (a number or a numeric string),
// else 0.
func rawMsgID(raw json.RawMessage) int64 {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return 0
	}
	var v struct {
		MsgID json.RawMessage `json:"msg_id"`
	}
	if json.Unmarshal(raw, &v) != nil {
		return 0
	}
	s := string(bytes.TrimSpace(v.MsgID))
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	return n
}

// plainText renders message segments as one plain string (Event.Text): the
// text as it is and each face as "/" and its name ("/微笑" for face 14), or
// "/face<N>" for a face without a known name.
func plainText(segs []schema.Segment) string {
	if len(segs) == 1 && segs[0].Type == schema.SegmentText {
		return segs[0].Text
	}
	n := 0
	for _, s := range segs {
		if s.Type != schema.SegmentFace {
			n += len(s.Text)
		} else {
			n += 1 + max(len(faceName(s.Face)), len("face")+10)
		}
	}
	var b strings.Builder
	b.Grow(n)
	for _, s := range segs {
		if s.Type != schema.SegmentFace {
			b.WriteString(s.Text)
			continue
		}
		b.WriteByte('/')
		if name := faceName(s.Face); name != "" {
			b.WriteString(name)
		} else {
			b.WriteString("face")
			b.WriteString(strconv.Itoa(s.Face))
		}
	}
	return b.String()
}

// faceName returns the name of a classic QQ face (0 to 39), as QQ shows it
// in text ("微笑" for 14), or "" for any other number.
func faceName(n int) string {
	switch n {
	case 0:
		return "惊讶"
	case 1:
		return "撇嘴"
	case 2:
		return "色"
	case 3:
		return "发呆"
	case 4:
		return "得意"
	case 5:
		return "流泪"
	case 6:
		return "害羞"
	case 7:
		return "闭嘴"
	case 8:
		return "睡"
	case 9:
		return "大哭"
	case 10:
		return "尴尬"
	case 11:
		return "发怒"
	case 12:
		return "调皮"
	case 13:
		return "呲牙"
	case 14:
		return "微笑"
	case 15:
		return "难过"
	case 16:
		return "酷"
	case 18:
		return "抓狂"
	case 19:
		return "吐"
	case 20:
		return "偷笑"
	case 21:
		return "可爱"
	case 22:
		return "白眼"
	case 23:
		return "傲慢"
	case 24:
		return "饥饿"
	case 25:
		return "困"
	case 26:
		return "惊恐"
	case 27:
		return "流汗"
	case 28:
		return "憨笑"
	case 29:
		return "悠闲"
	case 30:
		return "奋斗"
	case 31:
		return "咒骂"
	case 32:
		return "疑问"
	case 33:
		return "嘘"
	case 34:
		return "晕"
	case 35:
		return "折磨"
	case 36:
		return "衰"
	case 37:
		return "骷髅"
	case 38:
		return "敲打"
	case 39:
		return "再见"
	}
	return ""
}
