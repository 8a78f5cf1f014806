package qqsim

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// pendingItem is one poll2 result item waiting for a poller: a message in stable
// form (rendered with the session numbers current at delivery) or a raw item.
type pendingItem struct {
	raw  json.RawMessage
	msg  *stableMsg
	file *fileOffer
}

// stableMsg is a message with stable numbers only.
type stableMsg struct {
	kind   string // friend, group, discuss, sess
	from   int64  // the speaker's QQ number; the account's own for an echo
	to     int64  // friend and sess echo: the QQ number sent to
	group  int64  // group number (group; sess: the group the chat comes through)
	did    int64  // discussion id
	segs   []segment
	font   json.RawMessage
	msgID  int64
	msgID2 int64
	seq    int64
	time   time.Time
}

// segment is one text or face segment of a content array.
type segment struct {
	text   string
	face   int
	isFace bool
	pic    *picture // a picture segment
}

// defaultFont is the font the web client's contacts had.
const defaultFont = `{"color":"000000","name":"微软雅黑","size":10,"style":[0,0,0]}`

// kickReason is the real service's text of a kick_message.
const kickReason = "您的帐号在另一地点登录，您已被迫下线。如有疑问，请登录 safe.qq.com 了解更多。"

// escapeEntities writes text as the service put it on the wire: &, <, >, " and \ as
// HTML entities.
func escapeEntities(s string) string {
	if !strings.ContainsAny(s, `&<>"\`) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '"':
			b.WriteString("&quot;")
		case '\\':
			b.WriteString("&#92;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// wireContent renders segments as a received content array: the font first, then
// text (entity-escaped) and faces in order.
func wireContent(kind string, font json.RawMessage, segs []segment) []any {
	if len(font) == 0 {
		font = json.RawMessage(defaultFont)
	}
	out := []any{[]any{"font", font}}
	for _, sg := range segs {
		if sg.pic != nil {
			out = append(out, pictureItem(kind, sg.pic))
		} else if sg.isFace {
			out = append(out, []any{"face", sg.face})
		} else {
			out = append(out, escapeEntities(sg.text))
		}
	}
	return out
}

// pollItem is one poll2 result item.
type pollItem struct {
	PollType string `json:"poll_type"`
	Value    any    `json:"value"`
}

// renderLocked renders m with the session numbers n.
func (s *Server) renderLocked(m *stableMsg, n *numbers) pollItem {
	self := s.world.Self.QQ
	v := map[string]any{
		"msg_id":  m.msgID,
		"msg_id2": m.msgID2,
		"time":    m.time.Unix(),
		"to_uin":  self,
		"content": wireContent(m.kind, m.font, m.segs),
	}
	echo := m.from == self
	switch m.kind {
	case "friend":
		v["msg_type"] = 9
		v["from_uin"] = s.uinOf(n, m.from)
		if echo {
			v["to_uin"] = s.uinOf(n, m.to)
		}
		return pollItem{"message", v}
	case "group":
		gid := n.gid[m.group]
		v["msg_type"] = 43
		v["from_uin"] = gid
		v["group_code"] = gid
		v["send_uin"] = s.uinOf(n, m.from)
		v["seq"] = m.seq
		return pollItem{"group_message", v}
	case "discuss":
		did := n.did[m.did]
		v["msg_type"] = 42
		v["from_uin"] = did
		v["did"] = did
		v["send_uin"] = s.uinOf(n, m.from)
		v["seq"] = m.seq
		return pollItem{"discu_message", v}
	default: // sess
		v["msg_type"] = 140
		v["from_uin"] = s.uinOf(n, m.from)
		if echo {
			v["to_uin"] = s.uinOf(n, m.to)
		}
		v["id"] = n.gid[m.group]
		v["ruin"] = m.from
		v["service_type"] = 0
		v["flags"] = map[string]int{"text": 1, "pic": 1, "file": 1, "audio": 1, "video": 1}
		return pollItem{"sess_message", v}
	}
}

// kickItemLocked is the kick_message item of a kicked session.
func (s *Server) kickItemLocked() pollItem {
	id := s.msgIDLocked()
	return pollItem{"kick_message", map[string]any{
		"msg_id":      id,
		"msg_id2":     id + 1,
		"from_uin":    10000,
		"to_uin":      s.world.Self.QQ,
		"msg_type":    48,
		"reply_ip":    0,
		"show_reason": 1,
		"reason":      kickReason,
	}}
}

// poll answers poll2 (the checks are done): at once when there is something to say,
// else held until there is, until a newer poll of the session arrives (102), the
// session ends (103, 121 or a kick_message) or the hold time passes (102).
//
// A poll whose client went away takes nothing; items taken by a poll whose client
// went away while the answer was written go back to the front of the queue, so a
// restarting poller loses nothing.
func (s *Server) poll(w http.ResponseWriter, c *call) {
	sess := c.sess
	ctx := c.r.Context()
	s.mu.Lock()
	if ans, _ := s.pollStepLocked(sess, 0, false, false); ans != nil {
		s.mu.Unlock()
		writeAnswer(w, ans)
		return
	}
	if !sess.online {
		s.count("retcode_103")
		s.mu.Unlock()
		writeJSON(w, rcMsg{Retcode: rcSessionLost})
		return
	}
	sess.pollGen++
	gen := sess.pollGen
	s.count("polls_held")
	s.notifyLocked() // an older held poll now answers 102
	hold := time.NewTimer(s.cfg.PollHold)
	defer hold.Stop()
	final := false
	for {
		if ctx.Err() != nil {
			s.mu.Unlock()
			return
		}
		if ans, taken := s.pollStepLocked(sess, gen, true, final); ans != nil {
			s.mu.Unlock()
			writeAnswer(w, ans)
			if len(taken) > 0 && ctx.Err() != nil {
				s.mu.Lock()
				s.pending = append(taken, s.pending...)
				s.counters["items_delivered"] -= int64(len(taken))
				s.count("items_requeued")
				s.notifyLocked()
				s.mu.Unlock()
			}
			return
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-hold.C:
			final = true
		case <-ctx.Done():
			return
		}
		if !settle(ctx) {
			return
		}
		s.mu.Lock()
		s.tickLocked(time.Now())
	}
}

// settleTime is how long a woken poll waits before it takes anything: a client that
// went away just before the wake-up (its connection closed, the server not yet told)
// is then noticed, and does not take items into a dead connection. 5ms was too
// short on a loaded machine (a poll cancelled at a term's end took a message into
// its closed connection about once in a dozen runs under the race detector).
const settleTime = 20 * time.Millisecond

// settle waits settleTime; false when the client went away meanwhile.
func settle(ctx context.Context) bool {
	t := time.NewTimer(settleTime)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// pollStepLocked returns poll2's answer when it has one: gen is the poll's number
// (0 before it holds), held whether it was held, final whether its time is up. It
// also returns the queued items the answer took.
func (s *Server) pollStepLocked(sess *session, gen int64, held, final bool) (any, []pendingItem) {
	if held && gen != sess.pollGen {
		s.count("polls_superseded")
		ans, _ := s.emptyPollLocked()
		return ans, nil
	}
	switch sess.state {
	case sessKicked:
		if !sess.kickSent {
			sess.kickSent = true
			s.count("kicks_delivered")
			return result{Result: []pollItem{s.kickItemLocked()}}, nil
		}
		s.count("retcode_121")
		return map[string]any{"retcode": rcKicked, "t": ""}, nil
	case sessReplaced:
		if held {
			s.count("retcode_121")
			return map[string]any{"retcode": rcKicked, "t": ""}, nil
		}
		s.count("retcode_103")
		return rcMsg{Retcode: rcSessionLost}, nil
	case sessExpired:
		s.count("retcode_103")
		return rcMsg{Retcode: rcSessionLost}, nil
	}
	if sess.creds.dead {
		s.count("retcode_103")
		return rcMsg{Retcode: rcSessionLost}, nil
	}
	if !held {
		return nil, nil
	}
	if s.closed {
		ans, _ := s.emptyPollLocked()
		return ans, nil
	}
	if cr := sess.creds; cr.renew != "" {
		cr.ptwebqq, cr.renew = cr.renew, ""
		s.count("retcode_116")
		return map[string]any{"retcode": rcNewPtWebQQ, "p": cr.ptwebqq}, nil
	}
	if len(s.pending) > 0 {
		taken := s.pending
		s.pending = nil
		items := make([]any, 0, len(taken))
		for _, p := range taken {
			if p.raw != nil {
				items = append(items, p.raw)
			} else if p.file != nil {
				items = append(items, s.fileItemLocked(p.file, sess.num))
			} else {
				items = append(items, s.renderLocked(p.msg, sess.num))
			}
		}
		s.counters["items_delivered"] += int64(len(items))
		return result{Result: items}, taken
	}
	if final {
		ans, counter := s.emptyPollLocked()
		s.count(counter)
		return ans, nil
	}
	return nil, nil
}
