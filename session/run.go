package session

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/internal/retry"
	"github.com/qqbridge/qqbridge/schema"
)

// Run drives the Manager until ctx ends: it seeks the leadership lease,
// follows the leader's saved session while another replica leads, and logs
// in and keeps the session while it leads. It returns nil when ctx ends, and
// an error only when it cannot start (ErrRunning, the lease bucket).
func (m *Manager) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer m.running.Store(false)

	leaderKV := m.cfg.LeaderKV
	if leaderKV == nil {
		replicas := 1
		if st, err := m.cfg.KV.Status(ctx); err == nil {
			replicas = max(st.Config().Replicas, 1)
		}
		kv, err := bus.LeaderKV(ctx, m.cfg.JS, m.cfg.Subjects, replicas, m.cfg.LeaderTTL)
		if err != nil {
			return fmt.Errorf("session: %w", err)
		}
		leaderKV = kv
	}
	if e, err := m.cfg.KV.Get(ctx, schema.SessionKeyState); err == nil {
		m.mirrorState(e)
	}

	// The lease outlives the loop: it is released only once the loop has
	// published its last state, so that a follower's states come after it.
	leaseCtx, endLease := context.WithCancel(context.WithoutCancel(ctx))
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		endLease()
		wg.Wait()
		m.goOffline()
	}()
	first := make(chan struct{})
	wg.Go(func() { m.campaign(leaseCtx, leaderKV, first) })
	wg.Go(func() { m.watchKey(ctx, schema.SessionKeyState, false, m.mirrorState) })
	wg.Go(func() { m.watchKey(ctx, KeyLogin, true, m.loginRequested) })

	// A replica that can lead at once does not resume as a follower first.
	select {
	case <-first:
	case <-ctx.Done():
	}
	for {
		term := m.follow(ctx)
		if term == nil {
			return nil
		}
		m.lead(term, ctx)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// watchKey calls fn with every value of key in the session bucket (only new
// ones when updatesOnly) until ctx ends, watching again after a failure.
func (m *Manager) watchKey(ctx context.Context, key string, updatesOnly bool, fn func(jetstream.KeyValueEntry)) {
	b := m.backoff()
	for ctx.Err() == nil {
		var opts []jetstream.WatchOpt
		if updatesOnly {
			opts = append(opts, jetstream.UpdatesOnly())
		}
		w, err := m.cfg.KV.Watch(ctx, key, opts...)
		if err == nil {
			b.Reset()
		watch:
			for {
				select {
				case <-ctx.Done():
					break watch
				case e, ok := <-w.Updates():
					if !ok {
						break watch
					}
					if e != nil {
						fn(e)
					}
				}
			}
			_ = w.Stop()
		} else {
			m.logger().Warn().Err(err).Str("key", key).Msg("watching the session bucket failed; retrying")
		}
		_ = retry.Sleep(ctx, b.NextBackOff())
	}
}

// mirrorState keeps the leader's state (from the bucket) while this replica
// does not lead.
func (m *Manager) mirrorState(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		return
	}
	var st schema.SessionState
	if err := m.cfg.Format.Unmarshal(e.Value(), &st); err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leading {
		return
	}
	m.state = st
	m.cfg.Metrics.SetState(string(st.State))
	if st.Account != 0 && m.account == 0 {
		m.account = st.Account
	}
}

// loginRequested takes a login request a follower forwarded. Without force
// it is refused while a session is online (the follower checked the state it
// knew; this is the leader's own check).
func (m *Manager) loginRequested(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		return
	}
	var req loginRequest
	if err := json.Unmarshal(e.Value(), &req); err != nil {
		m.logger().Warn().Err(err).Msg("a forwarded login request is malformed; ignored")
		return
	}
	m.mu.Lock()
	leading, online := m.leading, m.online
	take := leading && (req.Force || !online)
	if take {
		m.pend.login = true
	}
	m.mu.Unlock()
	switch {
	case take:
		m.logger().Info().Str("by", req.By).Bool("force", req.Force).Msg("login requested by a follower")
		m.signal()
	case leading:
		m.logger().Info().Str("by", req.By).Msg("a follower's login request without force refused: the session is online")
	}
}

// loginRequest is the value of KeyLogin.
type loginRequest struct {
	By    string    `json:"by"`
	Time  time.Time `json:"time"`
	Force bool      `json:"force,omitempty"`
}

func encodeLoginRequest(by string, force bool) ([]byte, error) {
	return json.Marshal(loginRequest{By: by, Time: time.Now().UTC(), Force: force})
}
