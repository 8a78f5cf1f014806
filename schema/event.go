package schema

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Event types, the "type" field of an Event. System events are
// "system.<system kind>" (see SystemType).
const (
	TypeMessageFriend  = "message.friend"
	TypeMessageGroup   = "message.group"
	TypeMessageDiscuss = "message.discuss"
	TypeMessageSess    = "message.sess"
	TypeStatusBuddy    = "status.buddy"
	TypeInputNotify    = "input.notify"
	TypeSystemKick     = "system.kick"
)

// SystemKindKick is the system kind of a kick_message (TypeSystemKick).
const SystemKindKick = "kick"

// SystemType returns the event type of a system event of the given system
// kind: "system." + kind.
func SystemType(systemKind string) string { return "system." + systemKind }

// Event is the inbound envelope published on qq.in.<kind>.<id>. Pointer fields
// and the fields marked omitempty are present only for the event types that
// use them; docs/events.md lists which.
//
// V is the schema version; a zero V is encoded as Version. Time is encoded in
// UTC. Part and Parts are set only on the parts of a message too large for one
// NATS message (see docs/events.md, "Large messages"): part Part of Parts
// (1-based), each with a piece of the segments and the text of that piece;
// the parts share msg_id, and their ids are ID + PartSuffix(Part, Parts).
// Truncated says that Raw was left out of an event that is not a message
// because it would not fit in a NATS message even alone. Raw, for system and unknown kinds, is the item's wire value: a JSON
// value embedded as it is in JSON, the same bytes as bin in msgpack; both
// encoders compact it (drop white space) and reject invalid JSON.
type Event struct {
	V          int             `json:"v" msgpack:"v"`
	ID         string          `json:"id" msgpack:"id"`
	Type       string          `json:"type" msgpack:"type"`
	Time       time.Time       `json:"time" msgpack:"time"`
	Account    int64           `json:"account" msgpack:"account"`
	MsgID      int64           `json:"msg_id,omitempty" msgpack:"msg_id,omitempty"`
	From       *Contact        `json:"from,omitempty" msgpack:"from,omitempty"`
	Group      *GroupRef       `json:"group,omitempty" msgpack:"group,omitempty"`
	Discuss    *DiscussRef     `json:"discuss,omitempty" msgpack:"discuss,omitempty"`
	Text       string          `json:"text,omitempty" msgpack:"text,omitempty"`
	Segments   []Segment       `json:"segments,omitempty" msgpack:"segments,omitempty"`
	Picture    bool            `json:"picture,omitempty" msgpack:"picture,omitempty"`
	Status     *Status         `json:"status,omitempty" msgpack:"status,omitempty"`
	Kick       *Kick           `json:"kick,omitempty" msgpack:"kick,omitempty"`
	Sess       *SessRef        `json:"sess,omitempty" msgpack:"sess,omitempty"`
	SystemKind string          `json:"system_kind,omitempty" msgpack:"system_kind,omitempty"`
	Raw        json.RawMessage `json:"raw,omitempty" msgpack:"raw,omitempty"`
	Part       int             `json:"part,omitempty" msgpack:"part,omitempty"`
	Parts      int             `json:"parts,omitempty" msgpack:"parts,omitempty"`
	Truncated  bool            `json:"truncated,omitempty" msgpack:"truncated,omitempty"`
	Image      *Image          `json:"image,omitempty" msgpack:"image,omitempty"`
	File       *File           `json:"file,omitempty" msgpack:"file,omitempty"`
}

// PartSuffix is what the id of part part of parts adds to the message's
// event id: "#<part>/<parts>", for example "931996776:friend:2#1/3". A
// different number of parts gives different ids, so that the stream's
// de-duplication never takes one split's part for another's.
func PartSuffix(part, parts int) string {
	return "#" + strconv.Itoa(part) + "/" + strconv.Itoa(parts)
}

// Contact is a person: a friend, a group or discussion member, or the other
// side of a temporary chat. UIN is the session number (it changes at every
// login); QQ is the stable QQ number, zero when the bridge could not resolve
// it. Card is the group card (the member's nickname in that group).
type Contact struct {
	UIN  int64  `json:"uin" msgpack:"uin"`
	QQ   int64  `json:"qq,omitempty" msgpack:"qq,omitempty"`
	Nick string `json:"nick,omitempty" msgpack:"nick,omitempty"`
	Card string `json:"card,omitempty" msgpack:"card,omitempty"`
}

// GroupRef names a group. GID is the session number (group_uin); Number is
// the stable group number, zero when unresolved.
type GroupRef struct {
	GID    int64  `json:"gid" msgpack:"gid"`
	Number int64  `json:"number,omitempty" msgpack:"number,omitempty"`
	Name   string `json:"name,omitempty" msgpack:"name,omitempty"`
}

// DiscussRef names a discussion group. DID is its session number;
// discussions have no stable number.
type DiscussRef struct {
	DID  int64  `json:"did" msgpack:"did"`
	Name string `json:"name,omitempty" msgpack:"name,omitempty"`
}

// Status is the payload of a status.buddy event (poll type
// buddies_status_change). Status is the wire value ("online", "offline",
// "away", "busy", "callme", "silent", "hidden"); ClientType the wire client
// type number (1 PC, 21 phone, 41 web, …).
type Status struct {
	UIN        int64  `json:"uin" msgpack:"uin"`
	QQ         int64  `json:"qq,omitempty" msgpack:"qq,omitempty"`
	Status     string `json:"status" msgpack:"status"`
	ClientType int    `json:"client_type" msgpack:"client_type"`
}

// Kick is the payload of a system.kick event: the server's reason text.
type Kick struct {
	Reason string `json:"reason" msgpack:"reason"`
}

// SessRef is the group a temporary chat (message.sess) came through. A
// reply to the same person goes through the same group.
type SessRef struct {
	ViaGID    int64 `json:"via_gid" msgpack:"via_gid"`
	ViaNumber int64 `json:"via_number,omitempty" msgpack:"via_number,omitempty"`
}

// Segment is one piece of message content: a run of text or a face (a QQ
// smiley by number). Its encoded form carries only the field its type uses:
// {"type":"text","text":"…"} or {"type":"face","face":0} — face 0 is a real
// face and is always written.
type Segment struct {
	Type string `json:"type" msgpack:"type"`
	Text string `json:"text,omitempty" msgpack:"text,omitempty"`
	Face int    `json:"face,omitempty" msgpack:"face,omitempty"`
	// Image is set on image segments only (SegmentImage, see media.go).
	Image *Image `json:"image,omitempty" msgpack:"image,omitempty"`
}

// Segment types.
const (
	SegmentText = "text"
	SegmentFace = "face"
)

// TextSegment returns a text segment.
func TextSegment(s string) Segment { return Segment{Type: SegmentText, Text: s} }

// FaceSegment returns a face segment.
func FaceSegment(n int) Segment { return Segment{Type: SegmentFace, Face: n} }

// Kind returns the kind of the event, derived from its Type ("" when the type
// is unknown).
func (e *Event) Kind() Kind {
	switch e.Type {
	case TypeMessageFriend:
		return KindFriend
	case TypeMessageGroup:
		return KindGroup
	case TypeMessageDiscuss:
		return KindDiscuss
	case TypeMessageSess:
		return KindSess
	case TypeStatusBuddy:
		return KindStatus
	case TypeInputNotify:
		return KindInput
	}
	if strings.HasPrefix(e.Type, "system.") {
		return KindSystem
	}
	if strings.HasPrefix(e.Type, "media.") {
		return KindMedia
	}
	if strings.HasPrefix(e.Type, "file.") {
		return KindFile
	}
	return ""
}

// EventID returns the deterministic id of an event that carries a QQ msg_id:
// "<account>:<kind>:<msg_id>", for example "931996776:group:50873". The same
// message seen twice (a repeated poll, a re-login, a bridge restart) gets the
// same id, which the bridge sends as Nats-Msg-Id so that the stream drops the
// repeat. kind is the subject kind ("friend", "group", …) or, for system
// events, the system kind ("kick", …).
func EventID(account int64, kind string, msgID int64) string {
	b := make([]byte, 0, 40)
	b = strconv.AppendInt(b, account, 10)
	b = append(b, ':')
	b = append(b, kind...)
	b = append(b, ':')
	b = strconv.AppendInt(b, msgID, 10)
	return string(b)
}

// HashEventID returns the id of an event that has no msg_id (a
// buddies_status_change, some system items): "<account>:<kind>:h<hash>",
// where hash is the first 16 hex digits of the SHA-256 of content (the wire
// value of the item, as received).
//
// The trade-off: the id repeats whenever the content repeats. A poll item
// delivered twice is dropped as it should be, but so is a genuine repeat
// within the stream's duplicate window — a buddy who goes offline, online
// and offline again inside the window produces one "offline" event, not two.
// For status changes, where only the latest value matters, that is
// acceptable; a consumer must not count them.
func HashEventID(account int64, kind string, content []byte) string {
	sum := sha256.Sum256(content)
	b := make([]byte, 0, 48)
	b = strconv.AppendInt(b, account, 10)
	b = append(b, ':')
	b = append(b, kind...)
	b = append(b, ':', 'h')
	b = hex.AppendEncode(b, sum[:8])
	return string(b)
}
