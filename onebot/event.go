package onebot

import (
	"time"

	"github.com/qqbridge/qqbridge/schema"
)

// Post types of OneBot v11 events.
const (
	PostMessage   = "message"
	PostNotice    = "notice"
	PostMetaEvent = "meta_event"
)

// Event is a OneBot v11 event as the gateway writes it. Fields that do not
// apply to the event's type are omitted; Anonymous is written (as null) on
// group messages only, as the spec's table has it.
type Event struct {
	Time     int64  `json:"time"`
	SelfID   int64  `json:"self_id"`
	PostType string `json:"post_type"`

	// message
	MessageType string  `json:"message_type,omitempty"`
	SubType     string  `json:"sub_type,omitempty"`
	MessageID   int32   `json:"message_id,omitempty"`
	UserID      int64   `json:"user_id,omitempty"`
	GroupID     int64   `json:"group_id,omitempty"`
	DiscussID   int64   `json:"discuss_id,omitempty"`
	Anonymous   *anon   `json:"anonymous,omitempty"`
	Message     any     `json:"message,omitempty"`
	RawMessage  *string `json:"raw_message,omitempty"`
	Font        *int32  `json:"font,omitempty"`
	Sender      *Sender `json:"sender,omitempty"`

	// notice
	NoticeType string `json:"notice_type,omitempty"`

	// meta_event
	MetaEventType string  `json:"meta_event_type,omitempty"`
	Status        *Status `json:"status,omitempty"`
	Interval      int64   `json:"interval,omitempty"`

	// extensions: buddy_status and session_state notices
	BuddyStatus string `json:"status_word,omitempty"`
	ClientType  int    `json:"client_type,omitempty"`
	State       string `json:"state,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

// anon is the "anonymous" field of a group message; the gateway always
// writes null (QQ-over-SmartQQ has no anonymous messages).
type anon struct{}

// MarshalJSON writes null.
func (*anon) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

// Sender is the "sender" object of a message event.
type Sender struct {
	UserID   int64  `json:"user_id"`
	Nickname string `json:"nickname"`
	Card     string `json:"card,omitempty"`
	Sex      string `json:"sex"`
	Age      int32  `json:"age"`
	Role     string `json:"role,omitempty"`
}

// Status is the status object of get_status and of heartbeat events.
// QQState is an extension: the bridge's session state word.
type Status struct {
	Online  bool   `json:"online"`
	Good    bool   `json:"good"`
	QQState string `json:"qq_state,omitempty"`
}

// StatusOf maps a session state to OneBot's status: online and good only
// while the bridge is online.
func StatusOf(st schema.SessionState) Status {
	on := st.State == schema.StateOnline
	return Status{Online: on, Good: on, QQState: string(st.State)}
}

// Numbers are the OneBot numbers of the parties of an event: the stable QQ
// and group numbers where the bridge resolved them, else the session
// numbers (uin, gid), which change at every login. Unresolved says which of
// them are session numbers.
type Numbers struct {
	User, Group           int64
	UserSession, GroupSes bool
}

// NumbersOf returns the OneBot numbers of a message event's sender and group
// (for a temporary chat, the group it came through).
func NumbersOf(e *schema.Event) Numbers {
	var n Numbers
	if e.From != nil {
		n.User = e.From.QQ
		if n.User == 0 {
			n.User, n.UserSession = e.From.UIN, true
		}
	}
	switch {
	case e.Group != nil:
		n.Group = e.Group.Number
		if n.Group == 0 {
			n.Group, n.GroupSes = e.Group.GID, true
		}
	case e.Sess != nil:
		n.Group = e.Sess.ViaNumber
		if n.Group == 0 {
			n.Group, n.GroupSes = e.Sess.ViaGID, true
		}
	}
	return n
}

// MessageEvent maps a qqbridge message event (message.friend, .group,
// .discuss, .sess) to a OneBot message event with the given message_id, in
// the given message format. It returns false for any other type.
//
//   - message.friend → private, sub_type friend
//   - message.sess → private, sub_type group, with group_id (the group the
//     temporary chat came through; an extension that send_private_msg takes
//     back)
//   - message.group → group, sub_type normal, sender.card
//   - message.discuss → discuss (the CQHTTP extension), discuss_id = did
func MessageEvent(e *schema.Event, messageID int32, format string) (*Event, bool) {
	ob := &Event{Time: unix(e.Time), SelfID: e.Account, PostType: PostMessage, MessageID: messageID}
	n := NumbersOf(e)
	switch e.Type {
	case schema.TypeMessageFriend:
		ob.MessageType, ob.SubType = "private", "friend"
	case schema.TypeMessageSess:
		ob.MessageType, ob.SubType = "private", "group"
		ob.GroupID = n.Group
	case schema.TypeMessageGroup:
		ob.MessageType, ob.SubType = "group", "normal"
		ob.GroupID = n.Group
		ob.Anonymous = anonymousNull
	case schema.TypeMessageDiscuss:
		ob.MessageType = "discuss"
		if e.Discuss != nil {
			ob.DiscussID = e.Discuss.DID
		}
	default:
		return nil, false
	}
	ob.UserID = n.User
	segs := FromSchema(e)
	raw := FormatCQ(segs)
	ob.RawMessage = &raw
	if format == FormatString {
		ob.Message = raw
	} else {
		ob.Message = segs
	}
	var font int32
	ob.Font = &font
	s := &Sender{UserID: n.User, Sex: "unknown"}
	if e.From != nil {
		s.Nickname = e.From.Nick
		if e.Type == schema.TypeMessageGroup || e.Type == schema.TypeMessageDiscuss {
			s.Card = e.From.Card
		}
	}
	if e.Type == schema.TypeMessageGroup {
		s.Role = "member"
	}
	ob.Sender = s
	return ob, true
}

// anonymousNull makes MarshalJSON of Event write "anonymous":null: a typed
// nil pointer with omitempty would be omitted, so group messages use this
// marker value instead.
var anonymousNull = &anon{}

// BuddyStatusNotice maps a status.buddy event to the buddy_status notice
// extension: user_id, status_word (QQ's word: online, offline, away, busy,
// callme, silent, hidden) and client_type.
func BuddyStatusNotice(e *schema.Event) (*Event, bool) {
	if e.Type != schema.TypeStatusBuddy || e.Status == nil {
		return nil, false
	}
	user := e.Status.QQ
	if user == 0 {
		user = e.Status.UIN
	}
	return &Event{Time: unix(e.Time), SelfID: e.Account, PostType: PostNotice, NoticeType: "buddy_status",
		UserID: user, BuddyStatus: e.Status.Status, ClientType: e.Status.ClientType}, true
}

// SessionNotice maps a session state change to the session_state notice
// extension: state and reason.
func SessionNotice(st schema.SessionState, selfID int64) *Event {
	return &Event{Time: unix(st.Time), SelfID: selfID, PostType: PostNotice, NoticeType: "session_state", State: string(st.State), Reason: st.Reason}
}

// Lifecycle returns a lifecycle meta event: sub_type connect, enable or
// disable.
func Lifecycle(subType string, selfID int64, now time.Time) *Event {
	return &Event{Time: now.Unix(), SelfID: selfID, PostType: PostMetaEvent, MetaEventType: "lifecycle", SubType: subType}
}

// Heartbeat returns a heartbeat meta event with the status and the interval
// in milliseconds.
func Heartbeat(selfID int64, st Status, interval time.Duration, now time.Time) *Event {
	return &Event{Time: now.Unix(), SelfID: selfID, PostType: PostMetaEvent, MetaEventType: "heartbeat", Status: &st, Interval: interval.Milliseconds()}
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return time.Now().Unix()
	}
	return t.Unix()
}
