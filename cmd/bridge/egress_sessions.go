package main

import (
	"context"
	"sync"

	"github.com/qqbridge/qqbridge/egress"
	"github.com/qqbridge/qqbridge/live"
	"github.com/qqbridge/qqbridge/schema"
	"github.com/qqbridge/qqbridge/session"
)

// egressSessions adapts the session manager to egress.Sessions until egress
// takes a live.Source (Manager.Sessions) itself — transitional: delete this
// file when the egress branch lands and wire Sessions() directly.
type egressSessions struct {
	m *session.Manager

	mu   sync.Mutex
	last live.Session // the latest session handed out, for ReportLost
}

// WaitOnline waits for a live session of this replica.
func (a *egressSessions) WaitOnline(ctx context.Context) (egress.Online, error) {
	s, err := a.m.Sessions().Await(ctx)
	if err != nil {
		return egress.Online{}, err
	}
	a.mu.Lock()
	if s.Gen >= a.last.Gen {
		a.last = s
	}
	a.mu.Unlock()
	return egress.Online{Account: s.Account, Gen: s.Gen}, nil
}

// ReportLost reports a lost session through its live.Session; a report of an
// older generation is ignored.
func (a *egressSessions) ReportLost(gen uint64, err error) {
	a.mu.Lock()
	s := a.last
	a.mu.Unlock()
	if s.Gen == gen {
		s.Lost(err)
	}
}

// State is the session state for qq.api.session.state.
func (a *egressSessions) State() schema.SessionState { return a.m.State() }

// RequestLogin serves qq.api.session.login without force: a live session is
// kept (live.ErrAlreadyOnline), until the API can ask with force.
func (a *egressSessions) RequestLogin(ctx context.Context) error {
	return a.m.RequestLogin(ctx, false)
}
