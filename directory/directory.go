// Package directory keeps the account's contacts — friends, groups with their
// members and cards, discussions with their members — and translates between
// the session numbers of the SmartQQ protocol (uin, gid, did: drawn anew at
// every login) and the stable numbers a consumer can rely on (QQ numbers and
// group numbers).
//
// The lists are loaded by Refresh: at each login (the session manager's
// OnOnline hook), on a timer (Run) and, at most once per WithMissRefresh
// interval, when a lookup meets a number the directory does not know. A lookup
// that notices the client is in a new session refreshes at once. QQ numbers of
// people are resolved lazily with get_friend_uin2 (Client.AccountOf) and kept
// in a cache that belongs to one session: it is dropped when the session
// changes. Group numbers are resolved at refresh (get_friend_uin2 type 4 with
// the group code).
//
// A Directory is safe for concurrent use.
package directory

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

// ErrUnknownTarget is wrapped by the outbound lookups (FriendUIN, GroupGID,
// MemberUIN) when the stable number names no contact of the account.
var ErrUnknownTarget = errors.New("directory: unknown target")

// Defaults of the options.
const (
	// DefaultRefreshInterval is Run's period when it is given none.
	DefaultRefreshInterval = 10 * time.Minute
	// DefaultMissRefresh is the least time between two refreshes caused by
	// lookups of unknown numbers within one session.
	DefaultMissRefresh = time.Minute
	// DefaultNegativeTTL is how long a failed QQ number lookup is remembered
	// before it is tried again.
	DefaultNegativeTTL = time.Minute
)

// Option configures a Directory.
type Option func(*Directory)

// WithMissRefresh sets the least time between two refreshes caused by
// lookups of numbers the directory does not know (default one minute). A new
// session always refreshes at once. A value that is not positive keeps the
// default.
func WithMissRefresh(d time.Duration) Option {
	return func(dir *Directory) {
		if d > 0 {
			dir.missRefresh = d
		}
	}
}

// WithNegativeTTL sets how long a QQ number that could not be resolved is
// not asked for again (default one minute). A value that is not positive
// keeps the default.
func WithNegativeTTL(d time.Duration) Option {
	return func(dir *Directory) {
		if d > 0 {
			dir.negativeTTL = d
		}
	}
}

// Directory is the contact directory of one account.
type Directory struct {
	c           *qqclient.Client
	log         zerolog.Logger
	missRefresh time.Duration
	negativeTTL time.Duration

	refreshMu sync.Mutex // one Refresh at a time

	mu          sync.RWMutex
	snap        *snapshot           // the lists of the last refresh; never nil
	lastAttempt time.Time           // of the last refresh, successful or not
	attemptSess uint64              // the session of the last refresh attempt
	acctSess    uint64              // the session the caches below belong to
	acct        map[int64]acctEntry // uin → QQ number
	byQQ        map[int64]int64     // QQ number → uin (friends and members resolved)
}

// acctEntry is a resolved QQ number, or a failure remembered until retryAt.
type acctEntry struct {
	qq      int64
	retryAt time.Time
}

// snapshot is the result of one refresh; it is never changed once built.
type snapshot struct {
	sess        uint64 // the session it was loaded in; 0 = never loaded
	friends     []friend
	friendByUIN map[int64]int
	groups      []*group
	groupByGID  map[int64]*group
	groupByNum  map[int64]*group
	discussions []*discussion
	discussByID map[int64]*discussion
}

type friend struct {
	uin  int64
	nick string
}

type group struct {
	gid, code, number int64
	name              string
	loaded            bool // members were loaded
	members           map[int64]member
	order             []int64 // member uins in list order
}

type member struct {
	nick, card string
}

type discussion struct {
	did     int64
	name    string
	loaded  bool
	members map[int64]discussMember
}

type discussMember struct {
	qq   int64
	nick string
}

func emptySnapshot() *snapshot {
	return &snapshot{
		friendByUIN: map[int64]int{},
		groupByGID:  map[int64]*group{},
		groupByNum:  map[int64]*group{},
		discussByID: map[int64]*discussion{},
	}
}

// New returns an empty directory for the account of c; call Refresh once the
// client is logged in. The log receives one line per refresh and per failed
// lookup; it never receives a credential.
func New(c *qqclient.Client, log zerolog.Logger, opts ...Option) *Directory {
	d := &Directory{
		c:           c,
		log:         log.With().Str("component", "directory").Logger(),
		missRefresh: DefaultMissRefresh,
		negativeTTL: DefaultNegativeTTL,
		snap:        emptySnapshot(),
		acct:        map[int64]acctEntry{},
		byQQ:        map[int64]int64{},
	}
	for _, o := range opts {
		if o != nil {
			o(d)
		}
	}
	return d
}

// sessionKey identifies the client's current session without exposing any
// credential: a hash of its psessionid. ok is false when not logged in.
func (d *Directory) sessionKey() (uint64, bool) {
	s, ok := d.c.Session()
	if !ok {
		return 0, false
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(s.PSessionID))
	k := h.Sum64()
	if k == 0 {
		k = 1
	}
	return k, true
}

func (d *Directory) snapshot() *snapshot {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.snap
}

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
	friends, err := retry(ctx, func() ([]qqclient.Friend, error) { return d.c.Friends(ctx) })
	if err != nil {
		return fmt.Errorf("directory: refresh friends: %w", err)
	}
	groups, err := retry(ctx, func() ([]qqclient.Group, error) { return d.c.Groups(ctx) })
	if err != nil {
		return fmt.Errorf("directory: refresh groups: %w", err)
	}
	discs, err := retry(ctx, func() ([]qqclient.Discussion, error) { return d.c.Discussions(ctx) })
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
		num, err := retry(ctx, func() (int64, error) { return d.c.GroupNumber(ctx, g.Code) })
		switch {
		case err == nil:
			ng.number = num
		case fatal(ctx, err):
			return nil, fmt.Errorf("directory: refresh group number: %w", err)
		default:
			d.log.Warn().Err(err).Int64("gid", g.GID).Msg("group number not resolved")
		}
		info, err := retry(ctx, func() (*qqclient.GroupInfo, error) { return d.c.GroupInfo(ctx, g.Code) })
		switch {
		case err == nil:
			ng.loaded = true
			for _, m := range info.Members {
				if _, dup := ng.members[m.UIN]; dup || m.UIN <= 0 {
					continue
				}
				ng.members[m.UIN] = member{nick: m.Nick, card: m.Card}
				ng.order = append(ng.order, m.UIN)
			}
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
	info, err := retry(ctx, func() (*qqclient.DiscussInfo, error) { return d.c.DiscussInfo(ctx, dl.DID) })
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

// retry calls fn again, with a short backoff, while the server answers that
// requests come too often (ErrRateLimited); any other result is returned.
func retry[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 300 * time.Millisecond
	b.MaxInterval = 2 * time.Second
	b.MaxElapsedTime = 0
	var out T
	err := backoff.Retry(func() error {
		v, err := fn()
		if err != nil {
			if errors.Is(err, qqclient.ErrRateLimited) {
				return err
			}
			return backoff.Permanent(err)
		}
		out = v
		return nil
	}, backoff.WithContext(backoff.WithMaxRetries(b, 4), ctx))
	return out, err
}

// staleRetry is the least time between two attempts to load the lists of a
// new session after one failed.
const staleRetry = 5 * time.Second

// refreshOnMiss refreshes after a lookup missed — at once when the client is
// in a session the lists were not loaded in (again after staleRetry when that
// failed), else when the last refresh is older than the miss interval — and
// returns the lists to look in again.
func (d *Directory) refreshOnMiss(ctx context.Context, s *snapshot) *snapshot {
	key, ok := d.sessionKey()
	if !ok {
		return s
	}
	d.mu.RLock()
	since := time.Since(d.lastAttempt)
	due := since >= d.missRefresh
	if key != d.snap.sess {
		due = key != d.attemptSess || since >= min(staleRetry, d.missRefresh)
	}
	d.mu.RUnlock()
	if !due {
		return d.snapshot()
	}
	if err := d.Refresh(ctx); err != nil && ctx.Err() == nil {
		d.log.Warn().Err(err).Msg("refresh after an unknown number failed")
	}
	return d.snapshot()
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

// accountOf returns the QQ number of uin in the current session, from the
// cache or from get_friend_uin2. A failed lookup is remembered for the
// negative TTL (unless ctx ended or the session is gone) and answers 0 with
// the error.
func (d *Directory) accountOf(ctx context.Context, uin int64) (int64, error) {
	if uin <= 0 {
		return 0, fmt.Errorf("%w: uin %d", ErrUnknownTarget, uin)
	}
	d.mu.RLock()
	e, ok := d.acct[uin]
	sess := d.acctSess
	d.mu.RUnlock()
	if ok && (e.qq > 0 || time.Now().Before(e.retryAt)) {
		if e.qq == 0 {
			return 0, fmt.Errorf("%w: QQ number of uin %d not resolved", ErrUnknownTarget, uin)
		}
		return e.qq, nil
	}
	qq, err := retry(ctx, func() (int64, error) { return d.c.AccountOf(ctx, uin) })
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.acctSess != sess { // a refresh into a new session ran meanwhile
		return qq, err
	}
	if err != nil {
		if !fatal(ctx, err) {
			d.acct[uin] = acctEntry{retryAt: time.Now().Add(d.negativeTTL)}
			d.log.Debug().Err(err).Int64("uin", uin).Msg("QQ number not resolved")
		}
		return 0, err
	}
	d.acct[uin] = acctEntry{qq: qq}
	d.byQQ[qq] = uin
	return qq, nil
}

// cachedQQ returns the QQ number of uin when it is known without a request.
func (d *Directory) cachedQQ(uin int64) int64 {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.acct[uin].qq
}

// Friend returns the friend (or other person) with session number uin: its
// nick from the friend list and its QQ number, resolved lazily. Unknown
// parts stay zero; it never fails.
func (d *Directory) Friend(ctx context.Context, uin int64) schema.Contact {
	c := schema.Contact{UIN: uin}
	s := d.snapshot()
	i, ok := s.friendByUIN[uin]
	if !ok {
		s = d.refreshOnMiss(ctx, s)
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
	s := d.snapshot()
	m, ok := s.member(gid, uin)
	if !ok {
		s = d.refreshOnMiss(ctx, s)
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
	s := d.snapshot()
	m, ok := s.discussMember(did, uin)
	if !ok {
		s = d.refreshOnMiss(ctx, s)
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
	s := d.snapshot()
	g := s.groupByGID[gid]
	if g == nil {
		s = d.refreshOnMiss(ctx, s)
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
	if dd := d.snapshot().discussByID[did]; dd != nil {
		r.Name = dd.name
	}
	return r
}

// FriendUIN returns the current session number of the friend with QQ number
// qq. It resolves the QQ numbers of the friend list lazily until it meets qq.
// An unknown friend is an error wrapping ErrUnknownTarget; a lost session or
// a failed request returns the client's error.
func (d *Directory) FriendUIN(ctx context.Context, qq int64) (int64, error) {
	s, err := d.current(ctx)
	if err != nil {
		return 0, err
	}
	for attempt := 0; attempt < 2; attempt++ {
		uins := make([]int64, len(s.friends))
		for i, f := range s.friends {
			uins[i] = f.uin
		}
		uin, err := d.findUIN(ctx, qq, uins)
		if err != nil || uin != 0 {
			return uin, err
		}
		if attempt == 0 {
			s = d.refreshOnMiss(ctx, s)
		}
	}
	return 0, fmt.Errorf("%w: no friend with QQ number %d", ErrUnknownTarget, qq)
}

// MemberUIN returns the current session number of the member with QQ number
// qq of the group with session number gid (for temporary chats). Errors as
// FriendUIN.
func (d *Directory) MemberUIN(ctx context.Context, gid, qq int64) (int64, error) {
	s, err := d.current(ctx)
	if err != nil {
		return 0, err
	}
	for attempt := 0; attempt < 2; attempt++ {
		if g := s.groupByGID[gid]; g != nil {
			uin, err := d.findUIN(ctx, qq, g.order)
			if err != nil || uin != 0 {
				return uin, err
			}
		}
		if attempt == 0 {
			s = d.refreshOnMiss(ctx, s)
		}
	}
	return 0, fmt.Errorf("%w: no member with QQ number %d in group gid%d", ErrUnknownTarget, qq, gid)
}

// findUIN returns the uin among uins whose QQ number is qq, resolving QQ
// numbers not yet known; 0 when none. Only a fatal error is returned.
func (d *Directory) findUIN(ctx context.Context, qq int64, uins []int64) (int64, error) {
	d.mu.RLock()
	uin, ok := d.byQQ[qq]
	d.mu.RUnlock()
	if ok {
		for _, u := range uins {
			if u == uin {
				return uin, nil
			}
		}
	}
	for _, u := range uins {
		got, err := d.accountOf(ctx, u)
		if err != nil {
			if fatal(ctx, err) {
				return 0, err
			}
			continue
		}
		if got == qq {
			return u, nil
		}
	}
	return 0, nil
}

// GroupGID returns the current session number (gid) of the group with group
// number number. An unknown group is an error wrapping ErrUnknownTarget.
func (d *Directory) GroupGID(ctx context.Context, number int64) (int64, error) {
	s, err := d.current(ctx)
	if err != nil {
		return 0, err
	}
	g := s.groupByNum[number]
	if g == nil {
		s = d.refreshOnMiss(ctx, s)
		g = s.groupByNum[number]
	}
	if g == nil {
		return 0, fmt.Errorf("%w: no group with number %d", ErrUnknownTarget, number)
	}
	return g.gid, nil
}

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
