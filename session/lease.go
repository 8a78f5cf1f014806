package session

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/qqbridge/qqbridge/bus"
)

// campaign holds or seeks the leadership lease until ctx ends: every
// LeaderTTL/3 the leader renews the lease (Update at the revision it holds)
// and a follower tries to take it (Create, which succeeds only once the key
// is gone: released or expired). A leader that cannot renew for LeaderTTL
// minus one period, or finds another revision, steps down. At the end it
// releases a lease it holds, so that a follower takes over at once.
// first is closed after the first attempt.
func (m *Manager) campaign(ctx context.Context, kv jetstream.KeyValue, first chan<- struct{}) {
	ttl := m.cfg.LeaderTTL
	period := ttl / 3
	var (
		rev     uint64
		renewed time.Time
		stop    context.CancelFunc
		seen    string
	)
	stepDown := func(why string) {
		if stop == nil {
			return
		}
		stop()
		stop = nil
		m.mu.Lock()
		m.term = nil
		m.mu.Unlock()
		m.cfg.Metrics.SetLeader(false)
		m.logger().Warn().Str("why", why).Msg("leadership lost")
	}
	defer func() {
		if stop == nil {
			return
		}
		stop()
		m.mu.Lock()
		m.term = nil
		m.mu.Unlock()
		m.cfg.Metrics.SetLeader(false)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), period)
		defer cancel()
		if err := kv.Delete(rctx, bus.LeaderKey, jetstream.LastRevision(rev)); err != nil {
			m.logger().Warn().Err(err).Msg("leadership lease not released; it expires by itself")
		} else {
			m.logger().Info().Msg("leadership released")
		}
	}()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		opCtx, cancel := context.WithTimeout(ctx, period)
		if stop != nil {
			r, err := kv.Update(opCtx, bus.LeaderKey, []byte(m.id), rev)
			switch {
			case err == nil:
				rev, renewed = r, time.Now()
			case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyNotFound):
				stepDown("the lease expired or was taken")
			case ctx.Err() != nil:
			case time.Since(renewed) > ttl-period:
				stepDown("the lease could not be renewed: " + err.Error())
			default:
				m.logger().Warn().Err(err).Msg("lease renewal failed; retrying")
			}
		} else {
			r, err := kv.Create(opCtx, bus.LeaderKey, []byte(m.id))
			switch {
			case err == nil:
				rev, renewed = r, time.Now()
				stop = m.startTerm(ctx)
				m.cfg.Metrics.SetLeader(true)
				m.logger().Info().Msg("leadership taken")
			case errors.Is(err, jetstream.ErrKeyExists):
				if e, gerr := kv.Get(opCtx, bus.LeaderKey); gerr == nil && string(e.Value()) != seen {
					seen = string(e.Value())
					m.logger().Info().Str("leader", seen).Msg("following")
				}
			case ctx.Err() != nil:
			default:
				m.logger().Warn().Err(err).Msg("lease bucket unavailable; retrying")
			}
		}
		cancel()
		if first != nil {
			close(first)
			first = nil
		}
		t.Reset(period)
	}
}

// startTerm begins a leadership term under ctx and tells the loop; the
// returned function ends it.
func (m *Manager) startTerm(ctx context.Context) context.CancelFunc {
	term, cancel := context.WithCancel(ctx)
	m.mu.Lock()
	m.term = term
	m.mu.Unlock()
	select {
	case m.termWake <- struct{}{}:
	default:
	}
	return cancel
}

// currentTerm returns the leadership term the lease holds, if it is live.
func (m *Manager) currentTerm() context.Context {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.term != nil && m.term.Err() == nil {
		return m.term
	}
	return nil
}
