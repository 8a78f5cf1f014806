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
// Outbound, Resolve turns the target of a send request into the current
// login's numbers and accepts a session number only when the current login's
// lists hold it. Its ErrUnknownTarget is a finding, made from complete lists
// of the current session; a lookup that could not be completed fails with
// its reason instead (ErrIncomplete, a client error), to be tried again.
//
// The files: directory.go (the type, its options and lists), refresh.go
// (loading the lists), accounts.go (QQ numbers of uins, with the negative
// cache), inbound.go (names of the senders of events), outbound.go (targets
// of sends), lists.go (the lists served to consumers).
//
// A Directory is safe for concurrent use.
package directory

import (
	"context"
	"hash/fnv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/metrics"
	"github.com/qqbridge/qqbridge/qqclient"
)

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
	// DefaultListsWait bounds how long an inbound lookup waits for the lists
	// of a login that are still loading (WithListsWait).
	DefaultListsWait = 10 * time.Second
)

// WithListsWait sets how long an inbound lookup waits, at most, for the lists
// of the current login while their refresh is under way (default 10s; 0
// never waits). Without the lists an event carries session numbers (a group
// as gid…) and no names, so consumers that subscribe by group number would
// miss the first events after each login; with it, only those events wait.
func WithListsWait(d time.Duration) Option {
	return func(dir *Directory) {
		if d >= 0 {
			dir.listsWait = d
		}
	}
}

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
	listsWait   time.Duration
	metrics     *metrics.Metrics // WithMetrics; nil: none

	refreshMu sync.Mutex // one Refresh at a time
	empty     *snapshot  // no lists (never changed)

	mu          sync.RWMutex
	snap        *snapshot           // the lists of the last refresh; never nil
	gaveUp      uint64              // the session whose lists an inbound lookup waited for in vain
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
		listsWait:   DefaultListsWait,
		snap:        emptySnapshot(),
		empty:       emptySnapshot(),
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

// inboundSnapshot is the lists of the current session, or empty ones while
// they are not loaded yet in it: the session numbers of another session
// name other people.
func (d *Directory) inboundSnapshot(ctx context.Context) *snapshot {
	s := d.snapshot()
	if key, ok := d.keyFor(ctx); ok && key == s.sess {
		return s
	}
	return d.empty
}

// awaitLists returns the lists of the current session for an inbound lookup
// that found s empty: while a refresh is under way (the one at login) it waits
// for it, at most listsWait or until ctx ends; then it returns what there is.
// Once a wait ran out in a session, no lookup of that session waits again, so
// that lists that never load hold up one event, not every one.
func (d *Directory) awaitLists(ctx context.Context, s *snapshot) *snapshot {
	if s != d.empty || d.listsWait <= 0 {
		return s
	}
	key, _ := d.keyFor(ctx)
	d.mu.RLock()
	gaveUp := d.gaveUp == key
	d.mu.RUnlock()
	if gaveUp {
		return s
	}
	deadline := time.NewTimer(d.listsWait)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if d.refreshMu.TryLock() { // no refresh under way: nothing to wait for
			d.refreshMu.Unlock()
			return d.inboundSnapshot(ctx)
		}
		select {
		case <-ctx.Done():
			return s
		case <-deadline.C:
			d.mu.Lock()
			d.gaveUp = key
			d.mu.Unlock()
			d.log.Warn().Dur("waited", d.listsWait).
				Msg("the contact lists of this login are still loading; events go on with session numbers")
			return d.inboundSnapshot(ctx)
		case <-tick.C:
		}
		if now := d.inboundSnapshot(ctx); now != d.empty {
			return now
		}
	}
}

// pinnedKey is the context key of a session key pinned by Pin.
type pinnedKey struct{ d *Directory }

// pinned is a session key pinned for the lookups of a batch.
type pinned struct {
	key uint64
	ok  bool
}

// Pin returns ctx with the client's current session noted, for the inbound
// lookups of one poll's items (which all come from one session): they then
// take the session from ctx instead of asking the client each time, which
// copies its whole session. Refreshes always ask the client.
func (d *Directory) Pin(ctx context.Context) context.Context {
	key, ok := d.sessionKey()
	return context.WithValue(ctx, pinnedKey{d}, pinned{key: key, ok: ok})
}

// keyFor is the session key pinned in ctx, else the client's current one.
func (d *Directory) keyFor(ctx context.Context) (uint64, bool) {
	if p, ok := ctx.Value(pinnedKey{d}).(pinned); ok {
		return p.key, p.ok
	}
	return d.sessionKey()
}
