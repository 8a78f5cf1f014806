package session

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/qqbridge/qqbridge/qqclient"
)

// follow keeps this replica on the leader's saved session until it takes the
// lease; it returns the leadership term, or nil when ctx ends.
func (m *Manager) follow(ctx context.Context) context.Context {
	m.mu.Lock()
	m.leading = false
	m.mu.Unlock()

	var (
		w       jetstream.KeyWatcher
		updates <-chan jetstream.KeyValueEntry
		latest  jetstream.KeyValueEntry
		retry   *time.Timer
		retryC  <-chan time.Time
	)
	b := m.backoff()
	defer func() {
		if w != nil {
			_ = w.Stop()
		}
		if retry != nil {
			retry.Stop()
		}
	}()
	watch := func() {
		var err error
		if w, err = m.cfg.KV.Watch(ctx, KeySession); err != nil {
			w, updates = nil, nil
			m.logger().Warn().Err(err).Msg("watching the saved session failed; retrying")
			return
		}
		updates = w.Updates()
	}
	schedule := func(d time.Duration) {
		if retry == nil {
			retry = time.NewTimer(d)
		} else {
			retry.Reset(d)
		}
		retryC = retry.C
	}
	resume := func() {
		retryC = nil
		if latest == nil || latest.Operation() != jetstream.KeyValuePut {
			return
		}
		saved, err := DecodeSaved(latest.Value(), m.cfg.Key)
		if err != nil {
			m.logger().Error().Err(err).Msg("the leader's saved session cannot be used")
			return
		}
		err = m.cfg.Client.Resume(ctx, saved)
		switch {
		case err == nil:
			b.Reset()
			gen := m.goOnline(ctx, saved.UIN)
			m.logger().Info().Uint64("gen", gen).Msg("following: resumed the leader's session")
		case ctx.Err() != nil:
		case errors.Is(err, qqclient.ErrSessionLost):
			m.logger().Info().Err(err).Msg("following: the saved session is gone; waiting for the leader's next login")
		default:
			d := b.NextBackOff()
			m.logger().Warn().Err(err).Dur("retry_in", d).Msg("following: resume failed")
			schedule(d)
		}
	}

	watch()
	for {
		if term := m.currentTerm(); term != nil {
			return term
		}
		if w == nil && retryC == nil {
			schedule(b.NextBackOff())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-m.termWake:
		case e, ok := <-updates:
			if !ok {
				w, updates = nil, nil
				continue
			}
			if e == nil {
				continue
			}
			latest = e
			if e.Operation() != jetstream.KeyValuePut {
				m.goOffline()
				m.cfg.Client.Logout()
				continue
			}
			resume()
		case <-m.wake:
			if p := m.takePending(); p.lost {
				// The session this replica resumed failed. The leader re-logs
				// in and saves a new one, which the watch brings; in case the
				// failure was this replica's alone, resume again after a pause.
				m.logger().Info().Str("reason", p.lostReason).Msg("following: session lost; waiting for the leader")
				if w != nil {
					schedule(b.NextBackOff())
				}
			}
		case <-retryC:
			if w == nil {
				watch()
				continue
			}
			resume()
		}
	}
}
