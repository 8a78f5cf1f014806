package qqsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// MaxContentBytes is the most text a send may carry: the UTF-8 bytes of its text
// segments plus the encoded size of each face segment. Above it: retcode 1000001.
const MaxContentBytes = 720

// errContent is why a content string is refused (1000001).
type errContent string

func (e errContent) Error() string { return "qqsim: content: " + string(e) }

// decodeSent decodes the content string of a send: text and face segments, then the
// font segment last, exactly once.
func decodeSent(content string) ([]segment, json.RawMessage, error) {
	dec := json.NewDecoder(strings.NewReader(content))
	dec.UseNumber()
	var parts []json.RawMessage
	if err := dec.Decode(&parts); err != nil || dec.More() {
		return nil, nil, errContent("not a JSON array")
	}
	if len(parts) == 0 {
		return nil, nil, errContent("empty")
	}
	var segs []segment
	var font json.RawMessage
	size := 0
	for i, p := range parts {
		p = bytes.TrimSpace(p)
		if len(p) > 0 && p[0] == '"' {
			var t string
			if err := json.Unmarshal(p, &t); err != nil {
				return nil, nil, errContent("bad text segment")
			}
			segs = append(segs, segment{text: t})
			size += len(t)
			continue
		}
		var arr []json.RawMessage
		if err := json.Unmarshal(p, &arr); err != nil || len(arr) != 2 {
			return nil, nil, errContent(fmt.Sprintf("segment %d is neither text nor a [name, value] pair", i))
		}
		var name string
		if err := json.Unmarshal(arr[0], &name); err != nil {
			return nil, nil, errContent(fmt.Sprintf("segment %d has no name", i))
		}
		switch name {
		case "face":
			n, err := strconv.Atoi(string(bytes.TrimSpace(arr[1])))
			if err != nil || n < 0 {
				return nil, nil, errContent(fmt.Sprintf("segment %d: face is not a number", i))
			}
			segs = append(segs, segment{face: n, isFace: true})
			size += len(fmt.Sprintf(`["face",%d]`, n))
		case "font":
			if i != len(parts)-1 {
				return nil, nil, errContent("the font segment is not last")
			}
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(arr[1], &obj); err != nil {
				return nil, nil, errContent("the font is not an object")
			}
			font, _ = compactJSON(arr[1])
		default:
			return nil, nil, errContent(fmt.Sprintf("segment %d: unknown kind %q", i, name))
		}
	}
	if font == nil {
		return nil, nil, errContent("no font segment")
	}
	if len(segs) == 0 {
		return nil, nil, errContent("no text and no face")
	}
	if size > MaxContentBytes {
		return nil, nil, errContent(fmt.Sprintf("%d bytes of text, more than %d", size, MaxContentBytes))
	}
	return segs, font, nil
}

// sendTarget is what a send resolved its target to.
type sendTarget struct {
	kind   string
	target int64 // the session number
	stable int64 // QQ number, group number or discussion id
	to     int64 // friend and sess: the QQ number (for the echo)
	group  int64 // group and sess: group number
	did    int64 // discussion id
}

func (s *Server) sendBuddy(c *call) any {
	uin, qq, ok := c.lookup("to", c.sess.num.uinQQ)
	if !ok {
		return rc{rcMissingData}
	}
	if _, friend := s.world.friend(qq); !friend {
		return rc{rcMissingData}
	}
	return s.sendLocked(c, sendTarget{kind: "friend", target: uin, stable: qq, to: qq})
}

func (s *Server) sendQun(c *call) any {
	gid, g, ok := c.lookup("group_uin", c.sess.num.gidNum)
	if !ok {
		return rc{rcMissingData}
	}
	return s.sendLocked(c, sendTarget{kind: "group", target: gid, stable: g, group: g})
}

func (s *Server) sendDiscu(c *call) any {
	did, id, ok := c.lookup("did", c.sess.num.didID)
	if !ok {
		return rc{rcMissingData}
	}
	return s.sendLocked(c, sendTarget{kind: "discuss", target: did, stable: id, did: id})
}

// lookup reads the session number in the body field name and looks it up in stable (a
// session number → stable number map of the caller's session); ok is false when the field
// is missing or the number unknown.
func (c *call) lookup(name string, stable map[int64]int64) (num, id int64, ok bool) {
	num, ok = c.num(name)
	if !ok {
		return 0, 0, false
	}
	id, ok = stable[num]
	return num, id, ok
}

func (s *Server) sendSess(c *call) any {
	uin, ok1 := c.num("to")
	sig, ok2 := c.str("group_sig")
	st, ok3 := c.num("service_type")
	if !ok1 || !ok2 || !ok3 || st != 0 {
		return rc{rcMissingData}
	}
	allowed, ok := c.sess.sigs[sig]
	if !ok || allowed.uin != uin {
		return rc{rcMissingData}
	}
	qq := c.sess.num.uinQQ[uin]
	g := c.sess.num.gidNum[allowed.gid]
	return s.sendLocked(c, sendTarget{kind: "sess", target: uin, stable: qq, to: qq, group: g})
}

// sendEndpoints are the four sends, whose answers Chaos.SendLatencyMS delays.
var sendEndpoints = map[string]bool{"send_buddy_msg2": true, "send_qun_msg2": true, "send_discu_msg2": true, "send_sess_msg2": true}

// sendLocked finishes a send whose target is known: the content string, the msg_id,
// the record, the echo and the answer of the kind's host.
func (s *Server) sendLocked(c *call, t sendTarget) any {
	raw, ok := c.body["content"]
	if !ok {
		return rc{rcMissingData}
	}
	var content string
	if err := json.Unmarshal(raw, &content); err != nil {
		return rc{rcBadContent} // an array (or anything) instead of a string
	}
	segs, font, err := decodeSent(content)
	if err != nil {
		return rc{rcBadContent}
	}
	msgID, ok := c.num("msg_id")
	if !ok {
		return rc{rcMissingData}
	}
	maybe := s.chaos.MaybeSentRate > 0 && s.rng.Float64() < s.chaos.MaybeSentRate

	rec := SentRecord{
		Kind: t.kind, Target: t.target, Stable: t.stable, Content: content,
		Faces: []int{}, MsgID: msgID, Time: c.now, Remote: c.r.RemoteAddr, MaybeSent: maybe,
	}
	var text strings.Builder
	for _, sg := range segs {
		if sg.isFace {
			fmt.Fprintf(&text, "[face %d]", sg.face)
			rec.Faces = append(rec.Faces, sg.face)
		} else {
			text.WriteString(sg.text)
		}
	}
	rec.Text = text.String()
	s.sent = append(s.sent, rec)
	s.count("sent_" + t.kind)
	s.touchRecentLocked(t.kind, t.stable)

	if s.cfg.Echo {
		m := &stableMsg{
			kind: t.kind, from: s.world.Self.QQ, to: t.to, group: t.group, did: t.did,
			segs: segs, font: font, time: c.now,
		}
		s.stampLocked(m)
		s.pending = append(s.pending, pendingItem{msg: m})
		s.notifyLocked()
	}
	if maybe {
		s.count("chaos_1202")
		return rcMsg{Retcode: rcMaybeSent}
	}
	return s.sendOKLocked(t.kind)
}

// stampLocked gives a new message its msg_id, msg_id2 and group or discussion seq.
func (s *Server) stampLocked(m *stableMsg) {
	m.msgID = s.msgIDLocked()
	m.msgID2 = 100000 + s.rng.Int64N(900000)
	switch m.kind {
	case "group":
		k := "g" + strconv.FormatInt(m.group, 10)
		s.groupSeq[k]++
		m.seq = s.groupSeq[k]
	case "discuss":
		k := "d" + strconv.FormatInt(m.did, 10)
		s.groupSeq[k]++
		m.seq = s.groupSeq[k]
	}
}

// c2cmsgSig answers the group_sig that send_sess_msg2 needs for a temporary chat
// with to_uin through group id (a gid).
func (s *Server) c2cmsgSig(c *call) any {
	gid, ok1 := c.num("id")
	uin, ok2 := c.num("to_uin")
	st, ok3 := c.num("service_type")
	if !ok1 || !ok2 || !ok3 || st != 0 {
		return rc{rcMissingData}
	}
	n := c.sess.num
	g, ok := n.gidNum[gid]
	if !ok {
		return rc{rcMissingData}
	}
	qq, ok := n.uinQQ[uin]
	if !ok {
		return rc{rcMissingData}
	}
	grp, _ := s.world.group(g)
	if _, member := grp.member(qq); !member {
		return rc{rcMissingData}
	}
	sig := secret(36)
	c.sess.sigs[sig] = sessSig{gid: gid, uin: uin}
	return result{Result: map[string]any{
		"type":  0,
		"value": sig,
		"flags": map[string]int{"text": 1, "pic": 1, "file": 1, "audio": 1, "video": 1},
	}}
}

// Sent returns what clients sent, oldest first.
func (s *Server) Sent() []SentRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SentRecord, len(s.sent))
	for i, r := range s.sent {
		r.Faces = append([]int{}, r.Faces...)
		out[i] = r
	}
	return out
}
