package session

import (
	"context"

	"github.com/qqbridge/qqbridge/live"
)

// Sessions returns the live sessions of this replica: the leader's own, or
// on a follower the leader's session it resumed. A Session's term ends with
// its generation (a loss reported, a kick, a new login, a new saved session
// resumed). Egress sends under it.
func (m *Manager) Sessions() live.Source {
	return live.SourceFunc(func(ctx context.Context) (live.Session, error) { return m.await(ctx, false) })
}

// LeaderTerms returns the live sessions of this replica while it leads: a
// Session's term ends when its generation ends or this replica stops
// leading, whichever comes first. Ingress polls under it, so that two
// replicas never poll at once (QQ gives each message to the newest poller
// only).
func (m *Manager) LeaderTerms() live.Source {
	return live.SourceFunc(func(ctx context.Context) (live.Session, error) { return m.await(ctx, true) })
}

// await blocks until this replica has a live session (and leads, when
// leader) or ctx ends. A leader's generation runs under its leadership term
// (see lead), so its context ends with the leadership too.
func (m *Manager) await(ctx context.Context, leader bool) (live.Session, error) {
	for {
		m.mu.Lock()
		if m.online && m.genCtx.Err() != nil {
			// The term ended (the leadership did) before the loop noticed:
			// never hand out an ended term.
			m.goOfflineLocked()
		}
		if m.online && (m.leading || !leader) {
			s := m.sessionLocked()
			m.mu.Unlock()
			return s, nil
		}
		// Offline: wait for the next generation. Online as a follower: wait
		// for the end of this generation, then look again.
		var wait <-chan struct{} = m.onlineCh
		if m.online {
			wait = m.genCtx.Done()
		}
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return live.Session{}, ctx.Err()
		case <-wait:
		}
	}
}

// sessionLocked is the live session of the current generation.
func (m *Manager) sessionLocked() live.Session {
	return live.New(m.genCtx, m.account, m.gen, reports{m})
}

// reports takes the live.Session reports of the Manager's users.
type reports struct{ m *Manager }

// Lost: the first report of the current generation takes the session
// offline and starts a re-login (on the leader) or a new resume (on a
// follower); later and older reports are ignored.
func (r reports) Lost(gen uint64, err error) {
	m := r.m
	m.mu.Lock()
	if gen == 0 || gen != m.gen || !m.online || m.handled == gen {
		m.mu.Unlock()
		return
	}
	m.handled = gen
	m.pend.lost = true
	m.pend.lostReason = reasonOf(err, "session lost")
	m.goOfflineLocked()
	m.mu.Unlock()
	m.signal()
}

// Kicked: the state becomes kicked and no re-login happens until a login
// request, so that the bridge and the other device do not take the account
// from each other in turn. Reports of older generations are ignored.
func (r reports) Kicked(gen uint64, reason string) {
	m := r.m
	m.mu.Lock()
	if gen == 0 || gen != m.gen {
		m.mu.Unlock()
		return
	}
	m.handled = gen
	m.pend.kicked = true
	m.pend.kickReason = reason
	m.goOfflineLocked()
	m.mu.Unlock()
	m.signal()
}

// goOnline ends the live generation, if any, and starts the next one for
// account (0: the one known) under parent: the OnOnline hooks run with its
// session first, then Sessions and LeaderTerms hand it out. It returns the
// generation.
func (m *Manager) goOnline(parent context.Context, account int64) uint64 {
	m.mu.Lock()
	m.goOfflineLocked()
	m.gen++
	if account != 0 {
		m.account = account
	}
	gen := m.gen
	m.genCtx, m.genStop = context.WithCancel(parent)
	s := m.sessionLocked()
	hooks := append([]func(live.Session){}, m.hooks...)
	m.mu.Unlock()
	for _, h := range hooks {
		h(s)
	}
	m.mu.Lock()
	if m.gen == gen && !m.online && m.genCtx.Err() == nil {
		m.online = true
		close(m.onlineCh)
	}
	m.mu.Unlock()
	return gen
}

// goOffline ends the live generation, if any.
func (m *Manager) goOffline() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.goOfflineLocked()
}

func (m *Manager) goOfflineLocked() {
	if m.genStop != nil {
		m.genStop() // also a generation whose hooks are still running
	}
	if !m.online {
		return
	}
	m.online = false
	m.onlineCh = make(chan struct{})
}
