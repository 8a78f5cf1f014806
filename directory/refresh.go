package directory

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/qqbridge/qqbridge/internal/retry"
	"github.com/qqbridge/qqbridge/live"
	"github.com/qqbridge/qqbridge/qqclient"
)

// Run refreshes the directory every period (DefaultRefreshInterval when
// every is not positive) until ctx is done. Failures are logged; the previous
// lists stay in use.
func (d *Directory) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultRefreshInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := d.Refresh(ctx); err != nil && ctx.Err() == nil {
			lvl := d.log.Warn()
			if errors.Is(err, qqclient.ErrNotLoggedIn) || errors.Is(err, qqclient.ErrSessionLost) {
				lvl = d.log.Debug()
			}
			lvl.Err(err).Msg("periodic refresh failed")
		}
	}
}

// Refresh loads the friends, the groups (with their numbers, members and
// cards) and the discussions (with their members) of the current session.
// When the session changed since the last refresh, the cached QQ numbers of
// the previous session are dropped. A failure to load one group's or
// discussion's details is logged and leaves that entry without members (or
// with those of the previous refresh of the same session); a failure to load
// a list, a lost session or a cancelled ctx returns the error and keeps the
// previous lists. Without a session it returns an error wrapping
// qqclient.ErrNotLoggedIn.
func (d *Directory) Refresh(ctx context.Context) error {
	d.refreshMu.Lock()
	defer d.refreshMu.Unlock()
	return d.refreshLocked(ctx)
}

// RefreshInBackground starts a Refresh of the lists in s's session and
// returns at once: the session goes online without waiting for the lists
// (the bridge calls it from the session's OnOnline hook). Until they are
// loaded, inbound events carry session numbers and the QQ numbers resolved
// per person (get_friend_uin2), without nicks, cards or group names; an
// outbound lookup waits for the lists, since only they say which targets
// the session has. A failure is logged; the next lookup that misses
// refreshes again.
func (d *Directory) RefreshInBackground(s live.Session) {
	go func() {
		start := time.Now()
		err := d.Refresh(s.Context())
		switch {
		case err != nil && s.Err() == nil:
			d.log.Warn().Err(err).Int64("account", s.Account).
				Msg("contact refresh at login failed; names and stable numbers may be missing until the next refresh")
		case err == nil:
			d.log.Debug().Dur("took", time.Since(start)).Msg("contacts loaded after going online")
		}
	}()
}

func (d *Directory) refreshLocked(ctx context.Context) (err error) {
	defer func(start time.Time) { d.observeRefresh(start, err) }(time.Now())
	key, ok := d.sessionKey()
	d.mu.Lock()
	d.lastAttempt, d.attemptSess = time.Now(), key
	d.mu.Unlock()
	if !ok {
		return fmt.Errorf("directory: refresh: %w", qqclient.ErrNotLoggedIn)
	}
	prev := d.snapshot()
	if prev.sess != key {
		prev = emptySnapshot()
	}
	friends, err := retryLimited(ctx, func() ([]qqclient.Friend, error) { return d.c.Friends(ctx) })
	if err != nil {
		return fmt.Errorf("directory: refresh friends: %w", err)
	}
	groups, err := retryLimited(ctx, func() ([]qqclient.Group, error) { return d.c.Groups(ctx) })
	if err != nil {
		return fmt.Errorf("directory: refresh groups: %w", err)
	}
	discs, err := retryLimited(ctx, func() ([]qqclient.Discussion, error) { return d.c.Discussions(ctx) })
	if err != nil {
		return fmt.Errorf("directory: refresh discussions: %w", err)
	}

	s := emptySnapshot()
	s.sess = key
	for _, f := range friends {
		if _, dup := s.friendByUIN[f.UIN]; dup || f.UIN <= 0 {
			continue
		}
		s.friendByUIN[f.UIN] = len(s.friends)
		s.friends = append(s.friends, friend{uin: f.UIN, nick: f.Nick})
	}
	for _, g := range groups {
		if g.GID <= 0 || s.groupByGID[g.GID] != nil {
			continue
		}
		ng, err := d.loadGroup(ctx, g, prev.groupByGID[g.GID])
		if err != nil {
			return err
		}
		s.groups = append(s.groups, ng)
		s.groupByGID[ng.gid] = ng
		if ng.number > 0 {
			s.groupByNum[ng.number] = ng
		}
	}
	ruins := map[int64]int64{}
	for _, dl := range discs {
		if dl.DID <= 0 || s.discussByID[dl.DID] != nil {
			continue
		}
		nd, err := d.loadDiscussion(ctx, dl, prev.discussByID[dl.DID])
		if err != nil {
			return err
		}
		s.discussions = append(s.discussions, nd)
		s.discussByID[nd.did] = nd
		for uin, m := range nd.members {
			if m.qq > 0 {
				ruins[uin] = m.qq
			}
		}
	}

	d.mu.Lock()
	if d.acctSess != key {
		d.acct = map[int64]acctEntry{}
		d.byQQ = map[int64]int64{}
		d.acctSess = key
	}
	for uin, qq := range ruins { // discussion lists carry QQ numbers: no lookup needed
		d.acct[uin] = acctEntry{qq: qq}
		d.byQQ[qq] = uin
	}
	d.snap = s
	d.mu.Unlock()
	d.log.Info().Int("friends", len(s.friends)).Int("groups", len(s.groups)).
		Int("discussions", len(s.discussions)).Msg("contacts refreshed")
	return nil
}

// fatal reports whether err must end a refresh: the session is gone or ctx
// ended.
func fatal(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, qqclient.ErrSessionLost) || errors.Is(err, qqclient.ErrNotLoggedIn)
}

// loadGroup resolves a group's number and loads its members; prev is the
// same group in the previous refresh of this session (or nil), whose values
// stand in for what cannot be loaded now.
func (d *Directory) loadGroup(ctx context.Context, g qqclient.Group, prev *group) (*group, error) {
	ng := &group{gid: g.GID, code: g.Code, name: g.Name, members: map[int64]member{}}
	if prev != nil && prev.code == g.Code {
		ng.number = prev.number
	}
	if g.Code > 0 {
		num, err := retryLimited(ctx, func() (int64, error) { return d.c.GroupNumber(ctx, g.Code) })
		switch {
		case err == nil:
			ng.number = num
		case fatal(ctx, err):
			return nil, fmt.Errorf("directory: refresh group number: %w", err)
		default:
			d.log.Warn().Err(err).Int64("gid", g.GID).Msg("group number not resolved")
		}
		info, err := retryLimited(ctx, func() (*qqclient.GroupInfo, error) { return d.c.GroupInfo(ctx, g.Code) })
		switch {
		case err == nil:
			ng.loaded = true
			ng.members, ng.order = groupMembers(info)
			if ng.name == "" {
				ng.name = info.Name
			}
		case fatal(ctx, err):
			return nil, fmt.Errorf("directory: refresh group members: %w", err)
		default:
			d.log.Warn().Err(err).Int64("gid", g.GID).Msg("group members not loaded")
			if prev != nil && prev.loaded {
				ng.loaded, ng.members, ng.order = true, prev.members, prev.order
			}
		}
	}
	return ng, nil
}

// loadDiscussion loads a discussion's members; prev as in loadGroup.
func (d *Directory) loadDiscussion(ctx context.Context, dl qqclient.Discussion, prev *discussion) (*discussion, error) {
	nd := &discussion{did: dl.DID, name: dl.Name, members: map[int64]discussMember{}}
	info, err := retryLimited(ctx, func() (*qqclient.DiscussInfo, error) { return d.c.DiscussInfo(ctx, dl.DID) })
	switch {
	case err == nil:
		nd.loaded = true
		for _, m := range info.Members {
			if m.UIN > 0 {
				nd.members[m.UIN] = discussMember{qq: m.RUIN, nick: m.Nick}
			}
		}
		if nd.name == "" {
			nd.name = info.Name
		}
	case fatal(ctx, err):
		return nil, fmt.Errorf("directory: refresh discussion members: %w", err)
	default:
		d.log.Warn().Err(err).Int64("did", dl.DID).Msg("discussion members not loaded")
		if prev != nil && prev.loaded {
			nd.loaded, nd.members = true, prev.members
		}
	}
	return nd, nil
}

// retryLimited calls fn again, with a short backoff (300ms growing to 2s, at
// most four more tries), while the server answers that requests come too
// often (ErrRateLimited); any other result is returned, and ctx's error once
// ctx ends.
func retryLimited[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	var zero T
	b := retry.Backoff(300*time.Millisecond, 2*time.Second)
	for tries := 0; ; tries++ {
		v, err := fn()
		switch {
		case err == nil:
			return v, nil
		case !errors.Is(err, qqclient.ErrRateLimited):
			return zero, err
		case tries == 4:
			if ctx.Err() != nil {
				return zero, ctx.Err()
			}
			return zero, err
		}
		if err := retry.Sleep(ctx, b.NextBackOff()); err != nil {
			return zero, err
		}
	}
}

// staleRetry is the least time between two attempts to load the lists of a
// new session after one failed.
const staleRetry = 5 * time.Second

// refreshOnMiss refreshes after a lookup missed — at once when the client is
// in a session the lists were not loaded in (again after staleRetry when that
// failed), else when the last refresh is older than the miss interval — and
// returns the lists to look in again, with the error of the refresh it made
// (nil when it made none). The inbound lookups log the error and go on with
// what they have; an outbound lookup cannot call a miss a finding after it.
// With wait, a refresh under way is waited for (outbound lookups); without,
// the lists at hand are returned at once (inbound ones).
func (d *Directory) refreshOnMiss(ctx context.Context, s *snapshot, wait bool) (*snapshot, error) {
	key, ok := d.sessionKey()
	if !ok {
		return s, nil
	}
	d.mu.RLock()
	since := time.Since(d.lastAttempt)
	due := since >= d.missRefresh
	if key != d.snap.sess {
		due = key != d.attemptSess || since >= min(staleRetry, d.missRefresh)
	}
	d.mu.RUnlock()
	if !due {
		return d.inboundSnapshot(ctx), nil
	}
	if wait {
		d.refreshMu.Lock()
	} else if !d.refreshMu.TryLock() {
		// A refresh is under way (the one at login): an inbound lookup goes
		// on with what there is rather than hold the event up.
		return d.inboundSnapshot(ctx), nil
	}
	defer d.refreshMu.Unlock()
	err := d.refreshLocked(ctx)
	if err != nil && ctx.Err() == nil {
		d.log.Warn().Err(err).Msg("refresh after an unknown number failed")
	}
	return d.inboundSnapshot(ctx), err
}

// current returns the lists, refreshing first when the client moved to a
// new session since they were loaded. Outbound lookups use it: a session
// number of an old session must never be sent to.
func (d *Directory) current(ctx context.Context) (*snapshot, error) {
	key, ok := d.sessionKey()
	if !ok {
		return nil, fmt.Errorf("directory: %w", qqclient.ErrNotLoggedIn)
	}
	s := d.snapshot()
	if s.sess == key {
		return s, nil
	}
	if err := d.Refresh(ctx); err != nil {
		return nil, err
	}
	return d.snapshot(), nil
}
