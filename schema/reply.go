package schema

import (
	"errors"
	"fmt"
)

// ErrNoReplyTarget is returned by ReplyTarget for an event that is not a
// message one can answer (a status change, a typing notice, a system event)
// or a message whose sender or conversation is missing.
var ErrNoReplyTarget = errors.New("schema: the event has no reply target")

// ReplyTarget returns where a reply to the message event e goes: the kind
// and the target, stable numbers first, to publish on Subjects.OutTo(kind,
// target):
//
//   - message.friend: the sender, by QQ number, else by uin;
//   - message.group: the group, by group number, else by gid;
//   - message.discuss: the discussion, by did (discussions have no stable
//     number);
//   - message.sess: the sender (QQ number, else uin) through the group the
//     chat came through (group number, else gid).
//
// A session number (uin, gid, did) is valid only in the session it came
// from: the bridge answers a request carrying a number of an older session
// with unknown_target. The account's own messages come back as events too
// (echo): their reply target is the conversation for groups and discussions
// and the account itself for friend and sess messages; a consumer that
// answers messages should skip those whose From.QQ is the event's Account.
//
// A media.stored or media.failed event answers to the conversation of the
// message its picture came in (as above); a file.offer or file.received
// event to the friend who offered the file. Any other event gives an error
// wrapping ErrNoReplyTarget.
func ReplyTarget(e *Event) (Kind, Target, error) {
	if e == nil {
		return "", Target{}, fmt.Errorf("%w: no event", ErrNoReplyTarget)
	}
	person := func() (Target, bool) {
		switch {
		case e.From == nil:
			return Target{}, false
		case e.From.QQ != 0:
			return Target{QQ: e.From.QQ}, true
		case e.From.UIN != 0:
			return Target{UIN: e.From.UIN}, true
		}
		return Target{}, false
	}
	switch e.Type {
	case TypeMessageFriend:
		if t, ok := person(); ok {
			return KindFriend, t, nil
		}
		return "", Target{}, fmt.Errorf("%w: %s without a sender", ErrNoReplyTarget, e.Type)
	case TypeMessageGroup:
		switch {
		case e.Group != nil && e.Group.Number != 0:
			return KindGroup, Target{Group: e.Group.Number}, nil
		case e.Group != nil && e.Group.GID != 0:
			return KindGroup, Target{GID: e.Group.GID}, nil
		}
		return "", Target{}, fmt.Errorf("%w: %s without a group", ErrNoReplyTarget, e.Type)
	case TypeMessageDiscuss:
		if e.Discuss != nil && e.Discuss.DID != 0 {
			return KindDiscuss, Target{DID: e.Discuss.DID}, nil
		}
		return "", Target{}, fmt.Errorf("%w: %s without a discussion", ErrNoReplyTarget, e.Type)
	case TypeMessageSess:
		t, ok := person()
		switch {
		case !ok:
			return "", Target{}, fmt.Errorf("%w: %s without a sender", ErrNoReplyTarget, e.Type)
		case e.Sess != nil && e.Sess.ViaNumber != 0:
			t.Group = e.Sess.ViaNumber
		case e.Sess != nil && e.Sess.ViaGID != 0:
			t.GID = e.Sess.ViaGID
		default:
			return "", Target{}, fmt.Errorf("%w: %s without the group it came through", ErrNoReplyTarget, e.Type)
		}
		return KindSess, t, nil
	case TypeMediaStored, TypeMediaFailed:
		// The conversation of the message the picture came in.
		switch {
		case e.Group != nil:
			return ReplyTarget(&Event{Type: TypeMessageGroup, Group: e.Group})
		case e.Discuss != nil:
			return ReplyTarget(&Event{Type: TypeMessageDiscuss, Discuss: e.Discuss})
		case e.Sess != nil:
			return ReplyTarget(&Event{Type: TypeMessageSess, From: e.From, Sess: e.Sess})
		}
		if t, ok := person(); ok {
			return KindFriend, t, nil
		}
		return "", Target{}, fmt.Errorf("%w: %s without a conversation", ErrNoReplyTarget, e.Type)
	case TypeFileOffer, TypeFileReceived:
		// Files come from friends only.
		if t, ok := person(); ok {
			return KindFriend, t, nil
		}
		return "", Target{}, fmt.Errorf("%w: %s without a sender", ErrNoReplyTarget, e.Type)
	}
	return "", Target{}, fmt.Errorf("%w: type %q", ErrNoReplyTarget, truncate(e.Type, 64))
}
