package directory

import (
	"context"

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
