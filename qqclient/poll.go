package qqclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// PollType is the wire poll_type of a poll2 item.
type PollType string

// The poll_type values of the seeds and notes.
const (
	PollMessage         PollType = "message"
	PollGroupMessage    PollType = "group_message"
	PollDiscuMessage    PollType = "discu_message"
	PollSessMessage     PollType = "sess_message"
	PollKick            PollType = "kick_message"
	PollBuddiesStatus   PollType = "buddies_status_change"
	PollInputNotify     PollType = "input_notify"
	PollFileMessage     PollType = "file_message"
	PollTips            PollType = "tips"
	PollSystemMessage   PollType = "system_message"
	PollSysGroupMessage PollType = "sys_g_msg"
)

// Event is one item of poll2's result. Type is the wire poll_type and Raw the item's "value"
// verbatim (the whole item when it has no value). For a known kind exactly one of the typed
// pointers is set; for an unknown kind none is. An item that could not be decoded keeps its
// Type and Raw, has no typed pointer, and Err (wrapping ErrProtocol) says why: a malformed
// item never costs the other items of the poll.
type Event struct {
	Type    PollType
	Raw     json.RawMessage
	Message *Message     // message, group_message, discu_message, sess_message
	Status  *BuddyStatus // buddies_status_change
	Input   *InputNotify // input_notify
	Kick    *Kick        // kick_message
	Notice  *Notice      // file_message, tips, system_message, sys_g_msg (common fields; rest in Raw)
	Err     error        // the item was malformed
}

// Message is a chat message of any kind (friend, group, discussion, temporary session).
type Message struct {
	MsgID, MsgID2 int64
	MsgType       int
	// FromUIN: the friend's uin; for group/discu messages the group's / discussion's session number.
	FromUIN, ToUIN int64
	SendUIN        int64 // group/discu: the speaker's uin
	GroupCode      int64 // group_message
	DID            int64 // discu_message
	SessID         int64 // sess_message "id": the group session number the temporary chat came through
	SessRUIN       int64 // sess_message "ruin" when present (the sender's QQ number)
	ServiceType    int
	Seq            int64 // group/discu "seq" when present
	Time           time.Time
	Font           Font
	Segments       []Segment // text (entities unescaped) and faces, in order; empty = picture the server stripped
	// Pictures are the message's pictures (offpic in friend and temporary chats, cface
	// in groups and discussions), in order; Picture.Index places each among Segments.
	Pictures []Picture
}

// BuddyStatus is a friend's online status (buddies_status_change, get_online_buddies2).
type BuddyStatus struct {
	UIN        int64
	Status     string
	ClientType int
}

// InputNotify says a friend is typing.
type InputNotify struct {
	MsgID          int64
	FromUIN, ToUIN int64
}

// Kick says another login replaced this one; the session is gone.
type Kick struct {
	MsgID      int64
	Reason     string
	ShowReason int
}

// Notice holds the common fields of file_message, tips, system_message and sys_g_msg.
type Notice struct {
	FromUIN int64
	Kind    string // the item's "type" field when present
	// File is the offer of a file_message whose mode is "recv" (a friend offers a file:
	// AcceptFile or RefuseFile it); nil for other notices and other modes.
	File *FileOffer
}

// pollAnswer is a decoded poll2 answer.
type pollAnswer struct {
	retcode int
	p       string
	events  []Event
}

// decodePollAnswer decodes the body of a poll2 answer. It is lenient: trailing commas (as the
// seeds print them) are accepted, and an answer that is still not JSON keeps every result
// item that is, the others becoming Events with Err wrapping ErrSkippedItem. Only a body
// without a readable retcode, or a retcode-0 answer whose result is not an array, is an
// error.
func decodePollAnswer(body []byte) (pollAnswer, error) {
	// One pass for the usual answer (fastpoll.go); anything else (not JSON,
	// a result that is not an array, an unusual field) takes the general
	// way below.
	if a, ok := fastPollAnswer(body); ok {
		return a, nil
	}
	return decodePollAnswerGeneral(body)
}

// decodePollAnswerGeneral is decodePollAnswer for any body: the envelope
// first, then the result's items.
func decodePollAnswerGeneral(body []byte) (pollAnswer, error) {
	var e struct {
		Retcode *flexInt        `json:"retcode"`
		Result  json.RawMessage `json:"result"`
		P       flexString      `json:"p"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		e.Retcode, e.Result, e.P = nil, nil, ""
		fixed := stripTrailingCommas(body)
		if len(fixed) == len(body) || json.Unmarshal(fixed, &e) != nil {
			return salvagePollAnswer(body)
		}
	}
	if e.Retcode == nil {
		return pollAnswer{}, protocolError("poll2", "answer has no retcode")
	}
	a := pollAnswer{retcode: int(*e.Retcode), p: string(e.P)}
	if a.retcode == 0 {
		evs, err := DecodeEvents(e.Result)
		if err != nil {
			return pollAnswer{}, err
		}
		a.events = evs
	}
	return a, nil
}

// DecodeEvents decodes the result array of a poll2 answer into events, one per item, in
// order. Only a result that is not an array (or null) is an error; a malformed item becomes an
// Event with Err set.
func DecodeEvents(result json.RawMessage) ([]Event, error) {
	result = bytes.TrimSpace(result)
	if len(result) == 0 || string(result) == "null" {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(result, &items); err != nil {
		return nil, protocolError("poll2", "result is not an array")
	}
	evs := make([]Event, 0, len(items))
	for _, it := range items {
		evs = append(evs, decodeItem(it)) // it is a copy already
	}
	return evs, nil
}

// DecodeEvent decodes one poll2 result item ({"poll_type":…,"value":{…}}).
func DecodeEvent(item json.RawMessage) Event {
	// Raw is a slice of the item: of a copy, as the caller keeps its bytes.
	return decodeItem(append(json.RawMessage(nil), item...))
}

// decodeEventGeneral is DecodeEvent with encoding/json, for any item.
func decodeEventGeneral(item json.RawMessage) Event {
	var w struct {
		PollType *flexString     `json:"poll_type"`
		Value    json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(item, &w); err != nil || w.PollType == nil {
		return Event{Raw: append(json.RawMessage(nil), item...), Err: protocolError("poll2", "item without poll_type")}
	}
	ev := Event{Type: PollType(*w.PollType), Raw: w.Value}
	if len(ev.Raw) == 0 {
		ev.Raw = append(json.RawMessage(nil), item...)
	}
	var err error
	switch ev.Type {
	case PollMessage, PollGroupMessage, PollDiscuMessage, PollSessMessage:
		ev.Message, err = decodeMessage(w.Value)
	case PollKick:
		ev.Kick, err = decodeKick(w.Value)
	case PollBuddiesStatus:
		ev.Status, err = decodeStatus(w.Value)
	case PollInputNotify:
		ev.Input, err = decodeInput(w.Value)
	case PollFileMessage:
		ev.Notice, err = decodeFileNotice(w.Value)
	case PollTips, PollSystemMessage, PollSysGroupMessage:
		ev.Notice, err = decodeNotice(w.Value)
	}
	if err != nil {
		ev.Err = fmt.Errorf("%w: poll2: %s item: %v", ErrProtocol, ev.Type, err)
	}
	return ev
}

var errNotObject = errors.New("value is not an object")

// isObject reports whether raw is a JSON object.
func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

// wireMessage is the value of a message item.
type wireMessage struct {
	MsgID       flexInt         `json:"msg_id"`
	MsgID2      flexInt         `json:"msg_id2"`
	MsgType     flexInt         `json:"msg_type"`
	FromUIN     flexInt         `json:"from_uin"`
	ToUIN       flexInt         `json:"to_uin"`
	SendUIN     flexInt         `json:"send_uin"`
	GroupCode   flexInt         `json:"group_code"`
	DID         flexInt         `json:"did"`
	ID          flexInt         `json:"id"`
	RUIN        flexInt         `json:"ruin"`
	ServiceType flexInt         `json:"service_type"`
	Seq         flexInt         `json:"seq"`
	Time        flexInt         `json:"time"`
	Content     json.RawMessage `json:"content"`
}

// wireMessageItems is wireMessage with the content's items decoded in the
// same pass (contentItem).
type wireMessageItems struct {
	MsgID       flexInt       `json:"msg_id"`
	MsgID2      flexInt       `json:"msg_id2"`
	MsgType     flexInt       `json:"msg_type"`
	FromUIN     flexInt       `json:"from_uin"`
	ToUIN       flexInt       `json:"to_uin"`
	SendUIN     flexInt       `json:"send_uin"`
	GroupCode   flexInt       `json:"group_code"`
	DID         flexInt       `json:"did"`
	ID          flexInt       `json:"id"`
	RUIN        flexInt       `json:"ruin"`
	ServiceType flexInt       `json:"service_type"`
	Seq         flexInt       `json:"seq"`
	Time        flexInt       `json:"time"`
	Content     []contentItem `json:"content"`
}

func decodeMessage(raw json.RawMessage) (*Message, error) {
	if !isObject(raw) {
		return nil, errNotObject
	}
	// One pass: the fields and the content's items together. A content that
	// is not an array (the send form, a string), null or missing takes the
	// general way below.
	var w wireMessageItems
	if err := json.Unmarshal(raw, &w); err == nil && w.Content != nil {
		font, segs, pics, err := decodeContentItems(w.Content)
		if err != nil {
			return nil, errors.New("bad content")
		}
		return w.message(font, segs, pics), nil
	}
	return decodeMessageGeneral(raw)
}

func (w *wireMessageItems) message(font Font, segs []Segment, pics []Picture) *Message {
	m := &Message{
		MsgID: int64(w.MsgID), MsgID2: int64(w.MsgID2), MsgType: int(w.MsgType),
		FromUIN: int64(w.FromUIN), ToUIN: int64(w.ToUIN), SendUIN: int64(w.SendUIN),
		GroupCode: int64(w.GroupCode), DID: int64(w.DID), SessID: int64(w.ID), SessRUIN: int64(w.RUIN),
		ServiceType: int(w.ServiceType), Seq: int64(w.Seq),
		Font: font, Segments: segs, Pictures: pics,
	}
	if w.Time != 0 {
		m.Time = time.Unix(int64(w.Time), 0).UTC()
	}
	return m
}

// decodeMessageGeneral decodes a message value whose content is kept as it
// is and decoded apart (any content decodeContent takes).
func decodeMessageGeneral(raw json.RawMessage) (*Message, error) {
	var w wireMessage
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, errors.New("unexpected field types")
	}
	if len(w.Content) == 0 {
		return nil, errors.New("no content")
	}
	font, segs, pics, err := DecodeContentPictures(w.Content)
	if err != nil {
		return nil, errors.New("bad content")
	}
	m := &Message{
		MsgID: int64(w.MsgID), MsgID2: int64(w.MsgID2), MsgType: int(w.MsgType),
		FromUIN: int64(w.FromUIN), ToUIN: int64(w.ToUIN), SendUIN: int64(w.SendUIN),
		GroupCode: int64(w.GroupCode), DID: int64(w.DID), SessID: int64(w.ID), SessRUIN: int64(w.RUIN),
		ServiceType: int(w.ServiceType), Seq: int64(w.Seq),
		Font: font, Segments: segs, Pictures: pics,
	}
	if w.Time != 0 {
		m.Time = time.Unix(int64(w.Time), 0).UTC()
	}
	return m, nil
}

func decodeKick(raw json.RawMessage) (*Kick, error) {
	if !isObject(raw) {
		return nil, errNotObject
	}
	var w struct {
		MsgID      flexInt    `json:"msg_id"`
		Reason     flexString `json:"reason"`
		ShowReason flexInt    `json:"show_reason"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, errors.New("unexpected field types")
	}
	return &Kick{MsgID: int64(w.MsgID), Reason: string(w.Reason), ShowReason: int(w.ShowReason)}, nil
}

// wireStatus is a buddies_status_change value or an online buddy.
type wireStatus struct {
	UIN        flexInt    `json:"uin"`
	Status     flexString `json:"status"`
	ClientType flexInt    `json:"client_type"`
}

func (w wireStatus) typed() BuddyStatus {
	return BuddyStatus{UIN: int64(w.UIN), Status: string(w.Status), ClientType: int(w.ClientType)}
}

func decodeStatus(raw json.RawMessage) (*BuddyStatus, error) {
	if !isObject(raw) {
		return nil, errNotObject
	}
	var w wireStatus
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, errors.New("unexpected field types")
	}
	s := w.typed()
	return &s, nil
}

func decodeInput(raw json.RawMessage) (*InputNotify, error) {
	if !isObject(raw) {
		return nil, errNotObject
	}
	var w struct {
		MsgID   flexInt `json:"msg_id"`
		FromUIN flexInt `json:"from_uin"`
		ToUIN   flexInt `json:"to_uin"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, errors.New("unexpected field types")
	}
	return &InputNotify{MsgID: int64(w.MsgID), FromUIN: int64(w.FromUIN), ToUIN: int64(w.ToUIN)}, nil
}

func decodeNotice(raw json.RawMessage) (*Notice, error) {
	if !isObject(raw) {
		return nil, errNotObject
	}
	var w struct {
		FromUIN flexInt    `json:"from_uin"`
		Type    flexString `json:"type"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, errors.New("unexpected field types")
	}
	return &Notice{FromUIN: int64(w.FromUIN), Kind: string(w.Type)}, nil
}

// Poll makes one poll2 request and returns the events it brought, every item of the result
// in order. An empty poll — retcode 102 or 100012, the poll timeout (WithPollTimeout), HTTP
// 502 or 504 — returns (nil, nil); call Poll again at once. Retcode 116 replaces ptwebqq
// (value and cookie) and returns (nil, nil). A session-gone retcode returns an error wrapping
// ErrSessionLost (try Relogin, then LoginQR). A kick_message event means another login
// replaced this one. Cancelling ctx returns ctx's error.
func (c *Client) Poll(ctx context.Context) ([]Event, error) {
	cr, err := c.current("poll2")
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, c.pollTimeout)
	defer cancel()
	a, err := c.do(pctx, &call{
		op: "poll2", host: hostD1, path: "/channel/poll2", poll: true,
		form: struct {
			PtWebQQ    string `json:"ptwebqq"`
			ClientID   int    `json:"clientid"`
			PSessionID string `json:"psessionid"`
			Key        string `json:"key"`
		}{cr.ptwebqq, ClientID, cr.psessionid, ""},
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("qqclient: poll2: %w", ctx.Err())
		}
		var ne net.Error
		if pctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout()) {
			return nil, nil // client timeout (ours or the HTTP client's): an empty poll
		}
		return nil, err
	}
	switch a.status {
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		return nil, nil
	}
	if a.status < 200 || a.status > 299 {
		return nil, &HTTPError{Op: "poll2", StatusCode: a.status}
	}
	ans, err := decodePollAnswer(a.body)
	if err != nil {
		return nil, err
	}
	switch ans.retcode {
	case 0:
		return ans.events, nil
	case 102, 100012:
		return nil, nil
	case 116:
		if ans.p != "" {
			c.replacePtWebQQ(ans.p)
		}
		return nil, nil
	default:
		return nil, retcodeError("poll2", ans.retcode)
	}
}

// replacePtWebQQ installs a renewed ptwebqq as the session value and the cookie.
func (c *Client) replacePtWebQQ(p string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess != nil {
		c.sess.ptwebqq = p
	}
	c.cookies.replace(c.d1Base, "ptwebqq", p)
}
