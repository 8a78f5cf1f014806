package qqclient

import (
	"bytes"
	"time"
)

// The fast decoding of poll answers: one pass of a reader (reader.go) over
// the answer, each item decoded as the reader reaches it, no value read
// twice, no copy of the items' bytes (Event.Raw is a slice of the answer).
// It takes on the answers and items poll2 sends; for anything else — not
// JSON, a field in an unexpected form, a duplicate field, a kind it does not
// decode (file_message) — it gives up and the general decoding (poll.go,
// lenient.go) decodes the same bytes. Fuzz tests check that both decode
// every input alike.

// The fields of the answer, of an item, of a message value.
var (
	answerFields  = []string{"retcode", "result", "p"}
	itemFields    = []string{"poll_type", "value"}
	messageFields = []string{"msg_id", "msg_id2", "msg_type", "from_uin", "to_uin", "send_uin", "group_code",
		"did", "id", "ruin", "service_type", "seq", "time", "content"}
	fontFields   = []string{"name", "size", "style", "color"}
	kickFields   = []string{"msg_id", "reason", "show_reason"}
	statusFields = []string{"uin", "status", "client_type"}
	inputFields  = []string{"msg_id", "from_uin", "to_uin"}
	noticeFields = []string{"from_uin", "type"}
)

// The indexes of messageFields.
const (
	mMsgID = iota
	mMsgID2
	mMsgType
	mFromUIN
	mToUIN
	mSendUIN
	mGroupCode
	mDID
	mID
	mRUIN
	mServiceType
	mSeq
	mTime
	mContent
)

// fastPollAnswer decodes a poll2 answer body; ok is false when the general
// decoding must (decodePollAnswerGeneral). The events' Raw are slices of
// body.
func fastPollAnswer(body []byte) (a pollAnswer, ok bool) {
	r := reader{b: body}
	var seen uint
	var evs []Event
	ok = r.object(func(key []byte, plain bool) bool {
		k, ok := field(key, plain, answerFields)
		if !ok {
			return false
		}
		if k < 0 {
			return r.skip()
		}
		if seen&(1<<k) != 0 {
			return false
		}
		seen |= 1 << k
		switch k {
		case 0:
			if r.peek() == 'n' { // a null retcode is none
				return false
			}
			n, ok := r.flexInt()
			a.retcode = int(n)
			return ok
		case 1:
			if r.peek() == 'n' {
				return r.lit("null")
			}
			// About one event per poll_type: one allocation for the events.
			evs = make([]Event, 0, bytes.Count(body[r.i:], []byte(`"poll_type"`)))
			sl := slabs{msgs: answerSlab, segs: 4 * answerSlab}
			return r.array(func() bool {
				start, end, ok := r.value()
				if ok {
					evs = append(evs, sl.decodeItem(body[start:end:end]))
				}
				return ok
			})
		default:
			var ok bool
			a.p, ok = r.flexString()
			return ok
		}
	})
	if !ok || seen&1 == 0 || !r.end() {
		return pollAnswer{}, false
	}
	if a.retcode == 0 {
		a.events = evs
	}
	return a, true
}

// decodeItem decodes one result item, the fast way when it can; Raw is a
// slice of item.
func decodeItem(item []byte) Event {
	sl := slabs{msgs: 1, segs: 4}
	return sl.decodeItem(item)
}

// answerSlab is the number of messages of an answer allocated at once.
const answerSlab = 64

// slabs hands out the messages and content segments of the items of one
// answer from a few large allocations instead of two per message: msgs
// Message values at a time, and segs Segment values.
type slabs struct {
	msgs, segs int
	msgSlab    []Message
	segSlab    []Segment
	first      int // segSlab[first:] are the segments of the message being read
}

// decodeItem decodes one result item, the fast way when it can.
func (sl *slabs) decodeItem(item []byte) Event {
	if ev, ok := sl.fastEvent(item); ok {
		return ev
	}
	return decodeEventGeneral(item)
}

// message returns a new zero Message.
func (sl *slabs) message() *Message {
	if len(sl.msgSlab) == cap(sl.msgSlab) {
		sl.msgSlab = make([]Message, 0, sl.msgs)
	}
	sl.msgSlab = sl.msgSlab[:len(sl.msgSlab)+1]
	return &sl.msgSlab[len(sl.msgSlab)-1]
}

// begin starts the segments of a message.
func (sl *slabs) begin() { sl.first = len(sl.segSlab) }

// count is the number of segments of the message so far.
func (sl *slabs) count() int { return len(sl.segSlab) - sl.first }

// add adds a segment to the message's.
func (sl *slabs) add(s Segment) {
	if len(sl.segSlab) == cap(sl.segSlab) {
		n := sl.count()
		next := make([]Segment, n, max(sl.segs, 2*n+1))
		copy(next, sl.segSlab[sl.first:])
		sl.segSlab, sl.first = next, 0
	}
	sl.segSlab = append(sl.segSlab, s)
}

// segments returns the message's segments (nil for none), a slice of its
// own capacity.
func (sl *slabs) segments() []Segment {
	if sl.count() == 0 {
		return nil
	}
	return sl.segSlab[sl.first:len(sl.segSlab):len(sl.segSlab)]
}

// fastEvent decodes an item ({"poll_type":…,"value":{…}}); ok is false when
// the general decoding must (decodeEventGeneral), which it does for every
// item that is malformed.
func (sl *slabs) fastEvent(item []byte) (ev Event, ok bool) {
	r := reader{b: item}
	var seen uint
	var pt []byte
	var ptPlain bool
	var vs, ve int
	ok = r.object(func(key []byte, plain bool) bool {
		k, ok := field(key, plain, itemFields)
		if !ok {
			return false
		}
		if k < 0 {
			return r.skip()
		}
		if seen&(1<<k) != 0 {
			return false
		}
		seen |= 1 << k
		if k == 0 {
			pt, ptPlain, ok = r.str()
			return ok
		}
		vs, ve, ok = r.value()
		return ok
	})
	if !ok || seen&1 == 0 || !r.end() {
		return Event{}, false
	}
	ev.Type = pollType(pt, ptPlain)
	// Raw's capacity ends with it: an append to it never writes into the
	// answer's next item.
	if seen&2 == 0 {
		ev.Raw = item[:len(item):len(item)]
	} else {
		ev.Raw = item[vs:ve:ve]
	}
	switch ev.Type {
	case PollMessage, PollGroupMessage, PollDiscuMessage, PollSessMessage:
		ev.Message, ok = sl.fastMessage(ev.Raw)
	case PollKick:
		var v flatValues
		if ok = seen&2 != 0 && v.read(ev.Raw, kickFields, 1<<1); ok {
			ev.Kick = &Kick{MsgID: v.n[0], Reason: v.s[1], ShowReason: int(v.n[2])}
		}
	case PollBuddiesStatus:
		var v flatValues
		if ok = seen&2 != 0 && v.read(ev.Raw, statusFields, 1<<1); ok {
			ev.Status = &BuddyStatus{UIN: v.n[0], Status: v.s[1], ClientType: int(v.n[2])}
		}
	case PollInputNotify:
		var v flatValues
		if ok = seen&2 != 0 && v.read(ev.Raw, inputFields, 0); ok {
			ev.Input = &InputNotify{MsgID: v.n[0], FromUIN: v.n[1], ToUIN: v.n[2]}
		}
	case PollTips, PollSystemMessage, PollSysGroupMessage:
		var v flatValues
		if ok = seen&2 != 0 && v.read(ev.Raw, noticeFields, 1<<1); ok {
			ev.Notice = &Notice{FromUIN: v.n[0], Kind: v.s[1]}
		}
	case PollFileMessage:
		ok = false // the general way: rare, and an offer is checked there
	}
	if !ok {
		return Event{}, false
	}
	return ev, true
}

// pollType is the PollType of a poll_type string, without a new string for
// the known ones.
func pollType(text []byte, plain bool) PollType {
	if plain {
		switch PollType(text) {
		case PollMessage:
			return PollMessage
		case PollGroupMessage:
			return PollGroupMessage
		case PollDiscuMessage:
			return PollDiscuMessage
		case PollSessMessage:
			return PollSessMessage
		case PollKick:
			return PollKick
		case PollBuddiesStatus:
			return PollBuddiesStatus
		case PollInputNotify:
			return PollInputNotify
		case PollFileMessage:
			return PollFileMessage
		case PollTips:
			return PollTips
		case PollSystemMessage:
			return PollSystemMessage
		case PollSysGroupMessage:
			return PollSysGroupMessage
		}
	}
	return PollType(unquote(text, plain))
}

// flatValues are the members of an object of numbers and strings (at most
// four of interest) as flexInt and flexString decode them.
type flatValues struct {
	n [4]int64
	s [4]string
}

// read reads the object raw; names are the members of interest, strs the
// bit set of those that are strings (the others are numbers).
func (v *flatValues) read(raw []byte, names []string, strs uint) bool {
	r := reader{b: raw}
	var seen uint
	ok := r.object(func(key []byte, plain bool) bool {
		k, ok := field(key, plain, names)
		if !ok {
			return false
		}
		if k < 0 {
			return r.skip()
		}
		if seen&(1<<k) != 0 {
			return false
		}
		seen |= 1 << k
		if strs&(1<<k) != 0 {
			v.s[k], ok = r.flexString()
		} else {
			v.n[k], ok = r.flexInt()
		}
		return ok
	})
	return ok && r.end()
}

// fastMessage decodes the value of a message item; ok is false when the
// general decoding must (decodeMessage).
func (sl *slabs) fastMessage(raw []byte) (*Message, bool) {
	r := reader{b: raw}
	var seen uint
	var n [mContent]int64
	var font Font
	var pics []Picture
	sl.begin()
	ok := r.object(func(key []byte, plain bool) bool {
		k, ok := field(key, plain, messageFields)
		if !ok {
			return false
		}
		if k < 0 {
			return r.skip()
		}
		if seen&(1<<k) != 0 {
			return false
		}
		seen |= 1 << k
		if k == mContent {
			return r.content(sl, &font, &pics)
		}
		n[k], ok = r.flexInt()
		return ok
	})
	if !ok || seen&(1<<mContent) == 0 || !r.end() {
		return nil, false
	}
	m := sl.message()
	*m = Message{
		MsgID: n[mMsgID], MsgID2: n[mMsgID2], MsgType: int(n[mMsgType]),
		FromUIN: n[mFromUIN], ToUIN: n[mToUIN], SendUIN: n[mSendUIN],
		GroupCode: n[mGroupCode], DID: n[mDID], SessID: n[mID], SessRUIN: n[mRUIN],
		ServiceType: int(n[mServiceType]), Seq: n[mSeq],
		Font: font, Segments: sl.segments(), Pictures: pics,
	}
	if t := n[mTime]; t != 0 {
		m.Time = time.Unix(t, 0).UTC()
	}
	return m, true
}

// content reads a content array: text strings, ["face",N], ["font",{…}],
// pictures ["offpic"|"cface",{…}], anything else skipped, as
// decodeContentItems decodes them. The segments go to sl.
func (r *reader) content(sl *slabs, font *Font, pics *[]Picture) bool {
	if r.peek() != '[' {
		return false // the send form (a string), null: the general way
	}
	return r.array(func() bool {
		switch r.peek() {
		case '"':
			text, plain, ok := r.str()
			if ok && len(text) > 0 {
				sl.add(TextSegment(UnescapeEntities(unquote(text, plain))))
			}
			return ok
		case '[':
			return r.segment(sl, font, pics)
		}
		return r.skip() // numbers, objects, null: not part of the protocol
	})
}

// segment reads a [name, value, …] item of a content array.
func (r *reader) segment(sl *slabs, font *Font, pics *[]Picture) bool {
	var name string
	n := 0
	ok := r.array(func() bool {
		n++
		switch {
		case n == 1:
			if r.peek() != '"' {
				return false // a segment without a name: the general way reports it
			}
			text, plain, ok := r.str()
			name = segmentName(text, plain)
			return ok
		case n == 2 && name == "font":
			f, ok := r.font()
			*font = f
			return ok
		case n == 2 && name == "face":
			v, ok := r.flexInt()
			if !ok || v < 0 || v > 1<<31-1 {
				return false // the general way reports it
			}
			sl.add(FaceSegment(int(v)))
			return true
		case n == 2 && (name == string(PictureOffPic) || name == string(PictureCFace)):
			start, end, ok := r.value()
			if !ok {
				return false
			}
			if p, ok := decodePicture(name, r.b[start:end]); ok {
				p.Index = sl.count()
				*pics = append(*pics, p)
			}
			return true
		}
		return r.skip()
	})
	// [] and a font or face without its value: the general way reports them.
	return ok && n > 0 && (n >= 2 || (name != "font" && name != "face"))
}

// segmentName is the name of a content segment, without a new string for
// the known ones.
func segmentName(text []byte, plain bool) string {
	if plain {
		switch string(text) {
		case "font":
			return "font"
		case "face":
			return "face"
		case "offpic":
			return "offpic"
		case "cface":
			return "cface"
		}
	}
	return unquote(text, plain)
}

// font reads the font object of a ["font",{…}] item as decodeFont does.
func (r *reader) font() (Font, bool) {
	var f Font
	var seen uint
	ok := r.object(func(key []byte, plain bool) bool {
		k, ok := field(key, plain, fontFields)
		if !ok {
			return false
		}
		if k < 0 {
			return r.skip()
		}
		if seen&(1<<k) != 0 {
			return false
		}
		seen |= 1 << k
		switch k {
		case 0:
			f.Name, ok = r.flexString()
		case 1:
			var v int64
			v, ok = r.flexInt()
			f.Size = int(v)
		case 2:
			if r.peek() == 'n' {
				return r.lit("null")
			}
			i := 0
			ok = r.array(func() bool {
				v, ok := r.flexInt()
				if i < len(f.Style) {
					f.Style[i] = int(v)
				}
				i++
				return ok
			})
		case 3:
			f.Color, ok = r.flexString()
		}
		return ok
	})
	return f, ok
}
