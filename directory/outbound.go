package directory

import (
	"context"
	"errors"
	"fmt"

	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

// Errors of the outbound lookups (Resolve).
var (
	// ErrUnknownTarget is a finding: the contact lists of the current login
	// were loaded (and reloaded after the miss, when due) and the target is
	// not in them — no such friend, group, discussion or member, or a
	// session number of an older login.
	ErrUnknownTarget = errors.New("directory: unknown target")
	// ErrIncomplete: the target was not found, but the lists have gaps (QQ
	// numbers or members QQ did not give), so it may exist. Not a finding:
	// worth asking again later.
	ErrIncomplete = errors.New("directory: contact lists incomplete")
	// ErrSessionChanged: the client moved to a new session while the target
	// was being resolved; the numbers found belong to the old one.
	ErrSessionChanged = errors.New("directory: the session changed during the lookup")
)

// Resolve returns the current login's numbers for the target of a send
// request of kind (validated by schema.Request.Validate). A stable number is
// looked up; a session number is accepted only when the current login's
// lists hold it, so that a number of an older login is never sent to.
//
// An error wrapping ErrUnknownTarget is a finding: the target does not
// exist for this login. Any other error — ErrIncomplete, ErrSessionChanged,
// the client's (not logged in, session lost, rate limited, a failed or
// garbled answer while loading the lists), ctx's — means it could not be
// told, and is worth trying again. Errors name the field: "to.qq 123: …".
func (d *Directory) Resolve(ctx context.Context, kind schema.Kind, to schema.Target) (qqclient.Target, error) {
	s, err := d.current(ctx)
	if err != nil {
		return qqclient.Target{}, err
	}
	var t qqclient.Target
	switch kind {
	case schema.KindFriend:
		t.Kind = qqclient.TargetFriend
		t.UIN, err = pick("to.qq", to.QQ, func() (int64, error) { return d.friendUIN(ctx, to.QQ) },
			"to.uin", to.UIN, func() error { return d.has(ctx, s, (*snapshot).hasFriend, to.UIN) })
	case schema.KindGroup:
		t.Kind = qqclient.TargetGroup
		t.UIN, err = pick("to.group", to.Group, func() (int64, error) { return d.groupGID(ctx, to.Group) },
			"to.gid", to.GID, func() error { return d.has(ctx, s, (*snapshot).hasGroup, to.GID) })
	case schema.KindDiscuss:
		t.Kind, t.UIN = qqclient.TargetDiscuss, to.DID // discussions have no stable number
		if err = d.has(ctx, s, (*snapshot).hasDiscussion, to.DID); err != nil {
			err = fmt.Errorf("to.did %d: %w", to.DID, err)
		}
	case schema.KindSess:
		t.Kind = qqclient.TargetSess
		t.GroupUIN, err = pick("to.group", to.Group, func() (int64, error) { return d.groupGID(ctx, to.Group) },
			"to.gid", to.GID, func() error { return d.has(ctx, s, (*snapshot).hasGroup, to.GID) })
		if err == nil {
			gid := t.GroupUIN
			t.UIN, err = pick("to.qq", to.QQ, func() (int64, error) { return d.memberUIN(ctx, gid, to.QQ) },
				"to.uin", to.UIN, func() error {
					return d.has(ctx, s, func(s *snapshot, uin int64) (bool, error) { return s.hasMember(gid, uin) }, to.UIN)
				})
		}
	default:
		err = fmt.Errorf("%w: kind %q cannot be sent to", ErrUnknownTarget, kind)
	}
	if err != nil {
		return qqclient.Target{}, err
	}
	if key, ok := d.sessionKey(); !ok || key != d.snapshot().sess {
		return qqclient.Target{}, ErrSessionChanged
	}
	return t, nil
}

// pick returns the number of one role of a target: the session number when
// one is given (after check), else the stable number looked up by find.
func pick(stableField string, stable int64, find func() (int64, error), sessionField string, session int64, check func() error) (int64, error) {
	if session != 0 {
		if err := check(); err != nil {
			return 0, fmt.Errorf("%s %d: %w", sessionField, session, err)
		}
		return session, nil
	}
	n, err := find()
	if err != nil {
		return 0, fmt.Errorf("%s %d: %w", stableField, stable, err)
	}
	return n, nil
}

// has tells whether the lists s (of the current session) hold session number
// n by in; on a miss it refreshes when due and looks again. The miss is
// ErrUnknownTarget only when the lists it was found missing in are the
// current session's and no refresh failed on the way.
func (d *Directory) has(ctx context.Context, s *snapshot, in func(*snapshot, int64) (bool, error), n int64) error {
	if ok, err := in(s, n); ok || err != nil {
		return err
	}
	s, err := d.missed(ctx, s)
	if err != nil {
		return err
	}
	ok, err := in(s, n)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("%w: not a session number of the current login", ErrUnknownTarget)
	}
	return nil
}

// missed refreshes after an outbound lookup missed in s (when due, see
// refreshOnMiss) and returns the lists to look in again — or the error that
// keeps a miss in them from being a finding: the refresh failed, or the lists
// are not the current session's.
func (d *Directory) missed(ctx context.Context, s *snapshot) (*snapshot, error) {
	s, err := d.refreshOnMiss(ctx, s, true)
	if err != nil {
		return nil, err
	}
	if key, ok := d.sessionKey(); !ok || key != s.sess {
		return nil, ErrSessionChanged
	}
	return s, nil
}

func (s *snapshot) hasFriend(uin int64) (bool, error) {
	_, ok := s.friendByUIN[uin]
	return ok, nil
}

func (s *snapshot) hasGroup(gid int64) (bool, error) { return s.groupByGID[gid] != nil, nil }

func (s *snapshot) hasDiscussion(did int64) (bool, error) { return s.discussByID[did] != nil, nil }

// hasMember: a group whose members could not be loaded answers
// ErrIncomplete rather than no.
func (s *snapshot) hasMember(gid, uin int64) (bool, error) {
	g := s.groupByGID[gid]
	switch {
	case g == nil:
		return false, nil
	case !g.loaded:
		return false, fmt.Errorf("%w: the members of group gid%d were not loaded", ErrIncomplete, gid)
	}
	_, ok := g.members[uin]
	return ok, nil
}

// friendUIN returns the current session number of the friend with QQ number
// qq. It resolves the QQ numbers of the friend list lazily until it meets qq.
// An unknown friend is an error wrapping ErrUnknownTarget; see Resolve for
// the other errors.
func (d *Directory) friendUIN(ctx context.Context, qq int64) (int64, error) {
	s, err := d.current(ctx)
	if err != nil {
		return 0, err
	}
	return d.findIn(ctx, s, qq, func(s *snapshot) ([]int64, error) {
		uins := make([]int64, len(s.friends))
		for i, f := range s.friends {
			uins[i] = f.uin
		}
		return uins, nil
	}, "no friend with QQ number %d", qq)
}

// memberUIN returns the current session number of the member with QQ number
// qq of the group with session number gid (for temporary chats). Errors as
// friendUIN.
func (d *Directory) memberUIN(ctx context.Context, gid, qq int64) (int64, error) {
	s, err := d.current(ctx)
	if err != nil {
		return 0, err
	}
	return d.findIn(ctx, s, qq, func(s *snapshot) ([]int64, error) {
		g := s.groupByGID[gid]
		switch {
		case g == nil:
			return nil, nil
		case !g.loaded:
			return nil, fmt.Errorf("%w: the members of group gid%d were not loaded", ErrIncomplete, gid)
		}
		return g.order, nil
	}, "no member with QQ number %d in group gid%d", qq, gid)
}

// findIn looks for the uin of QQ number qq among the uins that candidates
// picks from s, and again after a refresh (when due). Not found in complete
// lists of the current session, it is ErrUnknownTarget with the message
// format and args.
func (d *Directory) findIn(ctx context.Context, s *snapshot, qq int64, candidates func(*snapshot) ([]int64, error), format string, args ...any) (int64, error) {
	for attempt := 0; ; attempt++ {
		uins, err := candidates(s)
		var uin int64
		if err == nil {
			uin, err = d.findUIN(ctx, qq, uins)
		}
		switch {
		case uin != 0:
			return uin, nil
		case err != nil && fatal(ctx, err):
			return 0, err
		case ctx.Err() != nil:
			return 0, ctx.Err()
		}
		if attempt == 1 {
			if err != nil {
				return 0, err
			}
			return 0, fmt.Errorf("%w: "+format, append([]any{ErrUnknownTarget}, args...)...)
		}
		if s, err = d.missed(ctx, s); err != nil {
			return 0, err
		}
	}
}

// groupGID returns the current session number (gid) of the group with group
// number number. An unknown group is an error wrapping ErrUnknownTarget; a
// group whose number QQ did not give makes a miss ErrIncomplete.
func (d *Directory) groupGID(ctx context.Context, number int64) (int64, error) {
	s, err := d.current(ctx)
	if err != nil {
		return 0, err
	}
	g := s.groupByNum[number]
	if g == nil {
		if s, err = d.missed(ctx, s); err != nil {
			return 0, err
		}
		g = s.groupByNum[number]
	}
	if g != nil {
		return g.gid, nil
	}
	for _, g := range s.groups {
		if g.number == 0 {
			return 0, fmt.Errorf("%w: no group with number %d, but the number of group gid%d is not known", ErrIncomplete, number, g.gid)
		}
	}
	return 0, fmt.Errorf("%w: no group with number %d", ErrUnknownTarget, number)
}
