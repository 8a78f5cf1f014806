package directory

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

// Friends returns the friend list in the order the server gave it, with
// the QQ numbers resolved so far (ResolveFriends resolves the others).
func (d *Directory) Friends() []schema.Contact {
	s := d.snapshot()
	out := make([]schema.Contact, 0, len(s.friends))
	for _, f := range s.friends {
		out = append(out, schema.Contact{UIN: f.uin, QQ: d.cachedQQ(f.uin), Nick: f.nick})
	}
	return out
}

// ResolveFriends resolves the QQ numbers of every friend not resolved yet.
// Failures for single friends are remembered (see WithNegativeTTL) and
// skipped; a lost session or an ended ctx is returned.
func (d *Directory) ResolveFriends(ctx context.Context) error {
	s, err := d.current(ctx)
	if err != nil {
		return err
	}
	for _, f := range s.friends {
		if _, err := d.accountOf(ctx, f.uin); err != nil && fatal(ctx, err) {
			return err
		}
	}
	return nil
}

// Groups returns the group list in the order the server gave it.
func (d *Directory) Groups() []schema.GroupRef {
	s := d.snapshot()
	out := make([]schema.GroupRef, 0, len(s.groups))
	for _, g := range s.groups {
		out = append(out, schema.GroupRef{GID: g.gid, Number: g.number, Name: g.name})
	}
	return out
}

// Discussions returns the discussion list in the order the server gave it.
func (d *Directory) Discussions() []schema.DiscussRef {
	s := d.snapshot()
	out := make([]schema.DiscussRef, 0, len(s.discussions))
	for _, dd := range s.discussions {
		out = append(out, schema.DiscussRef{DID: dd.did, Name: dd.name})
	}
	return out
}

// Members returns the members of one group of the current login, in the
// order QQ listed them, with their nicks, cards and QQ numbers. The group
// is target.Group (its group number) or target.GID (its session number,
// which must be one of the current login: a gid of an older login is
// unknown); exactly one of the two, and no other field of target.
//
// A member's QQ number is the one the directory knows in this login without
// asking QQ — members of a discussion, friends resolved (ResolveFriends),
// senders of events, targets of temporary chats — and zero for the others:
// Members makes no get_friend_uin2 request, since QQ answers one person per
// request and refuses requests that come too often (a group of 2,000 would
// take minutes and hold up the account's sends meanwhile).
//
// When the group's members were not loaded (QQ did not give them at the last
// refresh), Members loads them, then answers.
//
// Errors wrap ErrUnknownTarget when the group is not one of the current
// login (a finding, as for Resolve); schema.ErrInvalidRequest for a target
// that does not name one group; otherwise they say why the list could not
// be had (ErrIncomplete, ErrSessionChanged, the client's errors, ctx's), to
// be asked again. Every error has a method ErrorCode() schema.ErrorCode
// that gives the result code it means (unknown_target, invalid_request,
// rate_limited, else session_unavailable), for callers that do not import
// this package.
func (d *Directory) Members(ctx context.Context, target schema.Target) ([]schema.Contact, error) {
	g, s, err := d.groupOf(ctx, target)
	if err == nil && !g.loaded {
		g, err = d.loadMembers(ctx, s, g.gid)
	}
	if err != nil {
		return nil, withCode(err)
	}
	out := make([]schema.Contact, 0, len(g.order))
	d.mu.RLock()
	defer d.mu.RUnlock()
	cached := d.acctSess == s.sess // the QQ numbers belong to this session
	for _, uin := range g.order {
		m := g.members[uin]
		c := schema.Contact{UIN: uin, Nick: m.nick, Card: m.card}
		if cached {
			c.QQ = d.acct[uin].qq
		}
		out = append(out, c)
	}
	return out, nil
}

// groupOf returns the group target names in the current lists, and those
// lists.
func (d *Directory) groupOf(ctx context.Context, target schema.Target) (*group, *snapshot, error) {
	var gid int64
	switch t := target; {
	case t.QQ != 0 || t.UIN != 0 || t.DID != 0:
		return nil, nil, &schema.ValidationError{Reason: "a group's members take its group number or its gid, nothing else"}
	case t.Group != 0 && t.GID != 0:
		return nil, nil, &schema.ValidationError{Reason: "group or gid, not both"}
	case t.Group < 0 || t.GID < 0:
		return nil, nil, &schema.ValidationError{Reason: "a group number or gid must be positive"}
	case t.Group != 0:
		n, err := d.groupGID(ctx, t.Group)
		if err != nil {
			return nil, nil, fmt.Errorf("group %d: %w", t.Group, err)
		}
		gid = n
	case t.GID != 0:
		s, err := d.current(ctx)
		if err == nil {
			err = d.has(ctx, s, (*snapshot).hasGroup, t.GID)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("gid %d: %w", t.GID, err)
		}
		gid = t.GID
	default:
		return nil, nil, &schema.ValidationError{Reason: "no group: want its group number or its gid"}
	}
	s := d.snapshot()
	key, ok := d.sessionKey()
	g := s.groupByGID[gid]
	if !ok || key != s.sess || g == nil { // a refresh into a new session ran meanwhile
		return nil, nil, ErrSessionChanged
	}
	return g, s, nil
}

// loadMembers loads the members of the group with session number gid, which
// were not loaded at the last refresh (of s's session), and puts the group
// with them into the lists. It holds the refresh lock, so that the lists it
// changes are the latest.
func (d *Directory) loadMembers(ctx context.Context, s *snapshot, gid int64) (*group, error) {
	d.refreshMu.Lock()
	defer d.refreshMu.Unlock()
	cur := d.snapshot()
	if cur.sess != s.sess {
		return nil, ErrSessionChanged
	}
	g := cur.groupByGID[gid]
	switch {
	case g == nil: // a refresh meanwhile found the group gone
		return nil, fmt.Errorf("%w: group gid%d left the group list", ErrUnknownTarget, gid)
	case g.loaded: // a refresh meanwhile loaded them
		return g, nil
	case g.code <= 0:
		return nil, fmt.Errorf("%w: QQ gave group gid%d no code, so its members cannot be loaded", ErrIncomplete, gid)
	}
	info, err := retryLimited(ctx, func() (*qqclient.GroupInfo, error) { return d.c.GroupInfo(ctx, g.code) })
	if err != nil {
		return nil, fmt.Errorf("directory: loading the members of group gid%d: %w", gid, err)
	}
	if key, ok := d.sessionKey(); !ok || key != cur.sess {
		return nil, ErrSessionChanged
	}
	ng := *g
	ng.loaded = true
	ng.members, ng.order = groupMembers(info)
	if ng.name == "" {
		ng.name = info.Name
	}
	d.mu.Lock()
	d.snap = cur.withGroup(&ng)
	d.mu.Unlock()
	d.log.Info().Int64("gid", gid).Int("members", len(ng.order)).Msg("group members loaded")
	return &ng, nil
}

// groupMembers returns the members of info by uin, and their uins in list
// order (the first of duplicates kept; uins that are not positive left out).
func groupMembers(info *qqclient.GroupInfo) (map[int64]member, []int64) {
	members := make(map[int64]member, len(info.Members))
	order := make([]int64, 0, len(info.Members))
	for _, m := range info.Members {
		if _, dup := members[m.UIN]; dup || m.UIN <= 0 {
			continue
		}
		members[m.UIN] = member{nick: m.Nick, card: m.Card}
		order = append(order, m.UIN)
	}
	return members, order
}

// withGroup returns a copy of s in which ng replaces the group with its gid
// (s itself is never changed).
func (s *snapshot) withGroup(ng *group) *snapshot {
	c := *s
	c.groups = make([]*group, len(s.groups))
	for i, g := range s.groups {
		if g.gid == ng.gid {
			g = ng
		}
		c.groups[i] = g
	}
	c.groupByGID = maps.Clone(s.groupByGID)
	c.groupByGID[ng.gid] = ng
	c.groupByNum = maps.Clone(s.groupByNum)
	if ng.number > 0 {
		c.groupByNum[ng.number] = ng
	}
	return &c
}

// codedError is an error of Members with the result code it means.
type codedError struct {
	code schema.ErrorCode
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// ErrorCode is the result code the error means.
func (e *codedError) ErrorCode() schema.ErrorCode { return e.code }

// withCode gives err the result code it means.
func withCode(err error) error {
	code := schema.CodeSessionUnavailable
	switch {
	case errors.Is(err, ErrUnknownTarget):
		code = schema.CodeUnknownTarget
	case errors.Is(err, schema.ErrInvalidRequest):
		code = schema.CodeInvalidRequest
	case errors.Is(err, qqclient.ErrRateLimited):
		code = schema.CodeRateLimited
	}
	return &codedError{code: code, err: err}
}
