package directory

import (
	"context"

	"github.com/qqbridge/qqbridge/schema"
)

// Friend returns the friend (or other person) with session number uin: its
// nick from the friend list and its QQ number, resolved lazily. Unknown
// parts stay zero; it never fails.
func (d *Directory) Friend(ctx context.Context, uin int64) schema.Contact {
	c := schema.Contact{UIN: uin}
	s := d.awaitLists(ctx, d.inboundSnapshot(ctx))
	i, ok := s.friendByUIN[uin]
	if !ok {
		s, _ = d.refreshOnMiss(ctx, s, false)
		i, ok = s.friendByUIN[uin]
	}
	if ok {
		c.Nick = s.friends[i].nick
	}
	c.QQ, _ = d.accountOf(ctx, uin)
	return c
}

// Member returns the member uin of the group with session number gid: nick,
// card and QQ number (resolved lazily). A person the group list does not
// know gets the friend list's nick when a friend. It never fails.
func (d *Directory) Member(ctx context.Context, gid, uin int64) schema.Contact {
	c := schema.Contact{UIN: uin}
	s := d.awaitLists(ctx, d.inboundSnapshot(ctx))
	m, ok := s.member(gid, uin)
	if !ok {
		s, _ = d.refreshOnMiss(ctx, s, false)
		m, ok = s.member(gid, uin)
	}
	if ok {
		c.Nick, c.Card = m.nick, m.card
	} else if i, isFriend := s.friendByUIN[uin]; isFriend {
		c.Nick = s.friends[i].nick
	}
	c.QQ, _ = d.accountOf(ctx, uin)
	return c
}

func (s *snapshot) member(gid, uin int64) (member, bool) {
	g := s.groupByGID[gid]
	if g == nil {
		return member{}, false
	}
	m, ok := g.members[uin]
	return m, ok
}

// DiscussMember returns the member uin of the discussion with session
// number did: nick and QQ number (the discussion's member list carries it;
// else resolved lazily). It never fails.
func (d *Directory) DiscussMember(ctx context.Context, did, uin int64) schema.Contact {
	c := schema.Contact{UIN: uin}
	s := d.inboundSnapshot(ctx)
	m, ok := s.discussMember(did, uin)
	if !ok {
		s, _ = d.refreshOnMiss(ctx, s, false)
		m, ok = s.discussMember(did, uin)
	}
	if ok {
		c.Nick, c.QQ = m.nick, m.qq
	}
	if c.Nick == "" {
		if i, isFriend := s.friendByUIN[uin]; isFriend {
			c.Nick = s.friends[i].nick
		}
	}
	if c.QQ == 0 {
		c.QQ, _ = d.accountOf(ctx, uin)
	}
	return c
}

func (s *snapshot) discussMember(did, uin int64) (discussMember, bool) {
	dd := s.discussByID[did]
	if dd == nil {
		return discussMember{}, false
	}
	m, ok := dd.members[uin]
	return m, ok
}

// Group returns the group with session number gid: its number (zero when
// the protocol did not give it) and name. It never fails.
func (d *Directory) Group(ctx context.Context, gid int64) schema.GroupRef {
	r := schema.GroupRef{GID: gid}
	s := d.awaitLists(ctx, d.inboundSnapshot(ctx))
	g := s.groupByGID[gid]
	if g == nil {
		s, _ = d.refreshOnMiss(ctx, s, false)
		g = s.groupByGID[gid]
	}
	if g != nil {
		r.Number, r.Name = g.number, g.name
	}
	return r
}

// Discuss returns the discussion with session number did and its name (empty
// when unknown). It makes no request.
func (d *Directory) Discuss(did int64) schema.DiscussRef {
	r := schema.DiscussRef{DID: did}
	if dd := d.inboundSnapshot(context.Background()).discussByID[did]; dd != nil {
		r.Name = dd.name
	}
	return r
}
