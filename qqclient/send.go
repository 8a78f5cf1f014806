package qqclient

import (
	"context"
	"fmt"
)

// TargetKind is the kind of conversation a message goes to.
type TargetKind string

// Target kinds.
const (
	TargetFriend  TargetKind = "friend"
	TargetGroup   TargetKind = "group"
	TargetDiscuss TargetKind = "discuss"
	TargetSess    TargetKind = "sess"
)

// Target is where SendPart sends: UIN is the friend's uin (to), the group's gid (group_uin),
// the discussion's did, or the temporary-session peer's uin; GroupUIN is, for sess only, the
// gid of the group the temporary chat goes through (for get_c2cmsg_sig2).
type Target struct {
	Kind     TargetKind
	UIN      int64
	GroupUIN int64
}

// sendOp is the endpoint of a target kind.
func sendOp(k TargetKind) string {
	switch k {
	case TargetFriend:
		return "send_buddy_msg2"
	case TargetGroup:
		return "send_qun_msg2"
	case TargetDiscuss:
		return "send_discu_msg2"
	case TargetSess:
		return "send_sess_msg2"
	}
	return ""
}

// SendPart sends segs as exactly one message (the caller splits with Split and paces: about
// one message a second per account). It returns nil on success (errCode 0, retcode 0 or
// 100100); an error wrapping ErrMaybeSent on 1202 — do not resend blindly; ErrTooLong without
// a request when segs exceed MaxPartBytes; ErrBadRequest for an empty message or a bad target;
// ErrSessionLost, ErrRateLimited and others as answered. Each call uses the session's next
// msg_id. A sess target first fetches (once per session and (group, uin)) the group_sig.
func (c *Client) SendPart(ctx context.Context, t Target, segs []Segment) error {
	op := sendOp(t.Kind)
	if op == "" {
		return fmt.Errorf("%w: SendPart: unknown target kind %q", ErrBadRequest, t.Kind)
	}
	if t.UIN == 0 || (t.Kind == TargetSess && t.GroupUIN == 0) {
		return fmt.Errorf("%w: %s: target without number", ErrBadRequest, op)
	}
	if len(segs) == 0 {
		return fmt.Errorf("%w: %s: empty message", ErrBadRequest, op)
	}
	if n := ContentSize(segs); n > MaxPartBytes {
		return fmt.Errorf("%w: %s: %d bytes > %d", ErrTooLong, op, n, MaxPartBytes)
	}
	content, err := EncodeContent(segs, DefaultFont())
	if err != nil {
		return err
	}
	cr, err := c.current(op)
	if err != nil {
		return err
	}
	var sig string
	if t.Kind == TargetSess {
		if sig, err = c.groupSig(ctx, t.GroupUIN, t.UIN); err != nil {
			return err
		}
	}
	msgID, err := c.nextMsgID(op)
	if err != nil {
		return err
	}
	form := sendForm{
		Content: content, Face: 522, ClientID: ClientID, MsgID: msgID, PSessionID: cr.psessionid,
	}
	switch t.Kind {
	case TargetFriend:
		form.To = t.UIN
	case TargetGroup:
		form.GroupUIN = t.UIN
	case TargetDiscuss:
		form.DID = t.UIN
	case TargetSess:
		form.To, form.GroupSig, form.ServiceType = t.UIN, sig, new(int)
	}
	a, err := c.do(ctx, &call{op: op, host: hostD1, path: "/channel/" + op, form: form})
	if err != nil {
		return err
	}
	e, err := decodeEnvelope(op, a)
	if err != nil {
		return err
	}
	code, ok := e.code()
	if !ok {
		return protocolError(op, "answer has neither errCode nor retcode")
	}
	switch code {
	case 0, 100100:
		return nil
	}
	return retcodeError(op, code)
}

// sendForm is the r field of the four send_*_msg2 calls: exactly one of To, GroupUIN and
// DID names the target; a temporary chat adds GroupSig and ServiceType (0).
type sendForm struct {
	To          int64  `json:"to,omitempty"`
	GroupUIN    int64  `json:"group_uin,omitempty"`
	DID         int64  `json:"did,omitempty"`
	GroupSig    string `json:"group_sig,omitempty"`
	ServiceType *int   `json:"service_type,omitempty"`
	Content     string `json:"content"`
	Face        int    `json:"face"`
	ClientID    int    `json:"clientid"`
	MsgID       int64  `json:"msg_id"`
	PSessionID  string `json:"psessionid"`
}

// nextMsgID returns the session's next msg_id.
func (c *Client) nextMsgID(op string) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return 0, fmt.Errorf("%w (%s)", ErrNotLoggedIn, op)
	}
	c.sess.msgID++
	return c.sess.msgID, nil
}

// groupSig returns the group_sig of a temporary session with uin through group gid, cached
// for the session.
func (c *Client) groupSig(ctx context.Context, gid, uin int64) (string, error) {
	const op = "get_c2cmsg_sig2"
	c.mu.Lock()
	if c.sess == nil {
		c.mu.Unlock()
		return "", fmt.Errorf("%w (%s)", ErrNotLoggedIn, op)
	}
	sess := c.sess
	sig, ok := sess.sigs[sigKey{gid, uin}]
	psid := sess.psessionid
	c.mu.Unlock()
	if ok {
		return sig, nil
	}
	res, err := c.jsonCall(ctx, &call{
		op: op, host: hostD1, path: "/channel/get_c2cmsg_sig2",
		query: qv("id", itoa(gid), "to_uin", itoa(uin), "clientid", itoa(ClientID),
			"psessionid", psid, "service_type", "0", "t", tParam()),
	})
	if err != nil {
		return "", err
	}
	var r struct {
		Value flexString `json:"value"`
	}
	if err := decodeResult(op, res, &r); err != nil {
		return "", err
	}
	if r.Value == "" {
		return "", protocolError(op, "no group_sig in the answer")
	}
	c.mu.Lock()
	if c.sess == sess {
		sess.sigs[sigKey{gid, uin}] = string(r.Value)
	}
	c.mu.Unlock()
	return string(r.Value), nil
}
