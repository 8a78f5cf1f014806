package main

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/qqbridge/qqbridge/ingress"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/session"
)

// errTermEnded is what the poll loop sees when this replica's polling term ended
// (the session generation ended, or another replica leads now). It wraps
// qqclient.ErrNotLoggedIn, so that ingress goes back to waiting for a session; its
// report is not forwarded to the session manager, which already knows.
var errTermEnded = fmt.Errorf("polling term ended: %w", qqclient.ErrNotLoggedIn)

// leaderSessions adapts the session manager for ingress: only the leader polls, and
// each poll runs under the leader's term (the context WaitLeader returns), so that
// two replicas never poll the same session at once — QQ gives each message to the
// newest poller only.
type leaderSessions struct {
	m *session.Manager

	mu   sync.Mutex
	term context.Context // the current polling term; nil before the first
}

// WaitOnline blocks until this replica leads with a live session.
func (s *leaderSessions) WaitOnline(ctx context.Context) (ingress.Online, error) {
	o, term, err := s.m.WaitLeader(ctx)
	if err != nil {
		return ingress.Online{}, err
	}
	s.mu.Lock()
	s.term = term
	s.mu.Unlock()
	return ingress.Online{Account: o.Account, Gen: o.Gen}, nil
}

// ReportLost forwards a lost session, but not the end of a term.
func (s *leaderSessions) ReportLost(gen uint64, err error) {
	if errors.Is(err, errTermEnded) {
		return
	}
	s.m.ReportLost(gen, err)
}

// ReportKicked forwards a kick.
func (s *leaderSessions) ReportKicked(gen uint64, reason string) { s.m.ReportKicked(gen, reason) }

func (s *leaderSessions) currentTerm() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.term
}

// termPoller polls under the current term: a poll in flight is cancelled when the
// term ends. Events a poll received are returned even when the term ended
// meanwhile, so that they are published.
type termPoller struct {
	client *qqclient.Client
	s      *leaderSessions
}

// Poll makes one poll2 request within the term.
func (p termPoller) Poll(ctx context.Context) ([]qqclient.Event, error) {
	term := p.s.currentTerm()
	if term == nil || term.Err() != nil {
		return nil, errTermEnded
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(term, cancel)
	defer stop()
	evs, err := p.client.Poll(pctx)
	if len(evs) == 0 && term.Err() != nil && ctx.Err() == nil {
		return nil, errTermEnded
	}
	return evs, err
}
