package session

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/internal/retry"
)

// SpreadBucket is the KV bucket in which replicas that serve several
// accounts announce themselves and how many leases they hold (see Spread).
const SpreadBucket = "qqbridge_replicas"

// LeaseSpread is the policy a Manager asks before it takes or keeps its
// lease, so that the leases of many accounts spread over the replicas that
// serve them (Config.Spread). Its methods must be safe for concurrent use;
// all the Managers of one replica share one LeaseSpread.
type LeaseSpread interface {
	// Reserve reports whether this replica may take one more lease now and,
	// if so, counts it as held (so that Managers asking at the same time do
	// not exceed the share together); a Manager that then fails to take the
	// lease calls Released.
	Reserve() bool
	// ShouldYield is asked by a leader after each renewal: true tells it to
	// release its lease so that a replica with room takes it. At most one
	// of the replica's Managers gets true at a time.
	ShouldYield() bool
	// Released tells the policy that a Manager of this replica no longer
	// holds (or did not get) the lease it reserved.
	Released()
}

// Spread is the LeaseSpread of a replica among replicas that all serve the
// same Accounts: each one heartbeats (every TTL/3) its id and the number of
// leases it holds into SpreadBucket, whose entries live TTL. With R replicas
// alive, a replica takes a lease only while it holds fewer than
// ⌈Accounts/R⌉, and a replica holding more than that — the others came back
// — hands one back when another holds fewer, at most one every Cooldown. So
// with all replicas healthy none leads more than ⌈Accounts/R⌉; when one dies,
// its entry expires with its leases and the others' quota grows; when it
// returns, the surplus moves back one lease at a time, without flapping.
type Spread struct {
	cfg SpreadConfig
	kv  jetstream.KeyValue

	mu        sync.Mutex
	held      int
	peers     map[string]peer // replica id → its last heartbeat
	lastYield time.Time
	yielding  bool      // a Manager was told to yield and has not released yet
	ready     bool      // the watch delivered the peers already there
	started   time.Time // Run began: replicas starting together announce themselves within TTL/2
}

type peer struct {
	held int
	seen time.Time
}

// SpreadConfig configures a Spread.
type SpreadConfig struct {
	// JS opens (or creates) SpreadBucket.
	JS jetstream.JetStream
	// ReplicaID names this replica; unique among the replicas.
	ReplicaID string
	// Accounts is the number of accounts every replica serves.
	Accounts int
	// TTL is how long a replica's heartbeat counts; default DefaultLeaderTTL
	// (a dead replica leaves the count with its leases).
	TTL time.Duration
	// Cooldown is the least time between two leases this replica hands
	// back; default 2×TTL.
	Cooldown time.Duration
	// Replicas is the JetStream replicas of the bucket; default 1.
	Replicas int
	Log      zerolog.Logger
}

// spreadEntry is the value of a replica's key.
type spreadEntry struct {
	Held int `json:"held"`
}

// NewSpread opens the bucket; Run must run for the policy to see its peers.
func NewSpread(ctx context.Context, cfg SpreadConfig) (*Spread, error) {
	switch {
	case cfg.JS == nil || cfg.ReplicaID == "":
		return nil, fmt.Errorf("%w: Spread needs JS and ReplicaID", ErrConfig)
	case cfg.Accounts < 1:
		return nil, fmt.Errorf("%w: Spread needs Accounts ≥ 1", ErrConfig)
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultLeaderTTL
	}
	if cfg.Cooldown <= 0 {
		cfg.Cooldown = 2 * cfg.TTL
	}
	if cfg.Replicas < 1 {
		cfg.Replicas = 1
	}
	kvc := jetstream.KeyValueConfig{Bucket: SpreadBucket, Description: "qqbridge replicas and the leases each holds", TTL: cfg.TTL, Storage: jetstream.MemoryStorage, Replicas: cfg.Replicas, History: 1}
	// Replicas starting together race to create the bucket on a new
	// cluster; a loser retries.
	b := retry.Backoff(200*time.Millisecond, 5*time.Second)
	for {
		kv, err := cfg.JS.CreateOrUpdateKeyValue(ctx, kvc)
		if err == nil {
			return &Spread{cfg: cfg, kv: kv, peers: map[string]peer{}}, nil
		}
		cfg.Log.Warn().Err(err).Msg("replica bucket not ready; retrying")
		if retry.Sleep(ctx, b.NextBackOff()) != nil {
			return nil, fmt.Errorf("session: bucket %s: %w", SpreadBucket, err)
		}
	}
}

// Run heartbeats and watches the peers until ctx ends; then it deletes this
// replica's entry so that the others count without it at once.
func (s *Spread) Run(ctx context.Context) {
	s.mu.Lock()
	s.started = time.Now()
	s.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { s.watch(ctx) })
	t := time.NewTicker(s.cfg.TTL / 3)
	defer t.Stop()
	for {
		s.beat(ctx)
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = s.kv.Delete(dctx, s.cfg.ReplicaID)
			cancel()
			wg.Wait()
			return
		case <-t.C:
		}
	}
}

func (s *Spread) beat(ctx context.Context) {
	s.mu.Lock()
	held := s.held
	s.mu.Unlock()
	data, _ := json.Marshal(spreadEntry{Held: held})
	bctx, cancel := context.WithTimeout(ctx, s.cfg.TTL/3)
	defer cancel()
	if _, err := s.kv.Put(bctx, s.cfg.ReplicaID, data); err != nil && ctx.Err() == nil {
		s.cfg.Log.Warn().Err(err).Msg("replica heartbeat failed")
	}
	// Count ourselves at once, whatever the watch says.
	s.mu.Lock()
	s.peers[s.cfg.ReplicaID] = peer{held: held, seen: time.Now()}
	s.mu.Unlock()
}

func (s *Spread) watch(ctx context.Context) {
	b := retry.Backoff(200*time.Millisecond, 5*time.Second)
	for ctx.Err() == nil {
		w, err := s.kv.WatchAll(ctx)
		if err != nil {
			_ = retry.Sleep(ctx, b.NextBackOff())
			continue
		}
		for e := range w.Updates() {
			if e == nil { // the peers already there are known
				s.mu.Lock()
				s.ready = true
				s.mu.Unlock()
				continue
			}
			s.mu.Lock()
			if e.Operation() == jetstream.KeyValuePut {
				var v spreadEntry
				if json.Unmarshal(e.Value(), &v) == nil {
					s.peers[e.Key()] = peer{held: v.Held, seen: time.Now()}
				}
			} else {
				delete(s.peers, e.Key())
			}
			s.mu.Unlock()
		}
		_ = w.Stop()
		if ctx.Err() == nil {
			_ = retry.Sleep(ctx, b.NextBackOff())
		}
	}
}

// liveLocked returns the peers heard from within TTL, this one included.
func (s *Spread) liveLocked() map[string]peer {
	live := map[string]peer{}
	for id, p := range s.peers {
		if time.Since(p.seen) <= s.cfg.TTL {
			live[id] = p
		}
	}
	live[s.cfg.ReplicaID] = peer{held: s.held, seen: time.Now()}
	return live
}

// quotaLocked is ⌈Accounts / live replicas⌉.
func (s *Spread) quotaLocked(live int) int {
	return (s.cfg.Accounts + live - 1) / live
}

// Reserve: the peers are known, Run began TTL/2 ago (so that replicas
// started together see each other before the first takes everything), and
// this replica holds fewer leases than the quota; the lease is then counted.
func (s *Spread) Reserve() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := s.ready && !s.started.IsZero() && time.Since(s.started) >= s.cfg.TTL/2 &&
		s.held < s.quotaLocked(len(s.liveLocked()))
	if ok {
		s.held++
	}
	return ok
}

// ShouldYield: more leases than the quota, another live replica below it,
// no yield in the last Cooldown and none under way.
func (s *Spread) ShouldYield() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	live := s.liveLocked()
	q := s.quotaLocked(len(live))
	if s.held <= q || s.yielding || time.Since(s.lastYield) < s.cfg.Cooldown {
		return false
	}
	for id, p := range live {
		if id != s.cfg.ReplicaID && p.held < q {
			s.yielding, s.lastYield = true, time.Now()
			s.cfg.Log.Info().Int("held", s.held).Int("quota", q).Str("to", id).Msg("handing a lease back: another replica has room")
			return true
		}
	}
	return false
}

// Taken counts a lease taken without Reserve (tests).
func (s *Spread) Taken() {
	s.mu.Lock()
	s.held++
	s.mu.Unlock()
}

// Released forgets a lease.
func (s *Spread) Released() {
	s.mu.Lock()
	if s.held > 0 {
		s.held--
	}
	s.yielding = false
	s.mu.Unlock()
}

// SetAccounts changes the number of accounts every replica serves (an
// account was added to all of them).
func (s *Spread) SetAccounts(n int) {
	if n < 1 {
		return
	}
	s.mu.Lock()
	s.cfg.Accounts = n
	s.mu.Unlock()
}

// Held is the number of leases this replica holds.
func (s *Spread) Held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// Peers returns the live replicas and the leases each announced (this one
// included), for status pages and tests.
func (s *Spread) Peers() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for id, p := range s.liveLocked() {
		out[id] = p.held
	}
	return out
}

var _ LeaseSpread = (*Spread)(nil)
