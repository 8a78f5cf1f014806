// Package live describes one live QQ session within one term: the value the
// session manager hands to the code that uses the session (ingress polls under
// the leader's term, egress sends under any replica's), so that neither needs
// to know the session manager.
//
// A term ends when the session generation ends (the loss was reported, a kick,
// a new login) or, for a leader's term, when this replica stops leading. Work
// started under a term is cancelled by its Context; a report made after the
// term ended is ignored by the manager.
package live

import (
	"context"
	"errors"
)

// ErrTermEnded is what Err returns, and what a caller should return, once the
// term of a Session ended. It is not a lost session: the manager already knows,
// and the caller waits for the next Session.
var ErrTermEnded = errors.New("live: the session's term ended")

// ErrAlreadyOnline is returned by a login request that does not say force
// while a session is live: a live session is never dropped by accident.
var ErrAlreadyOnline = errors.New("live: a session is online; ask with force to replace it")

// Session is one live session in one term. The zero value is a term that has
// already ended. Copies share the term.
type Session struct {
	// Account is the account's QQ number.
	Account int64
	// Gen increments at every (re)login, resume included, of this replica.
	Gen uint64

	ctx    context.Context
	lost   func(error)
	kicked func(string)
}

// Reports receives what the users of a Session find out about it. Both calls
// must be safe for concurrent use and must not block for long.
type Reports interface {
	// Lost: a call in the session failed because the session is gone
	// (qqclient.ErrSessionLost).
	Lost(gen uint64, err error)
	// Kicked: QQ said another login replaced this one.
	Kicked(gen uint64, reason string)
}

// New returns the Session of account's generation gen whose term is ctx;
// reports of it go to r. The session manager calls New (and tests' stand-ins
// for it); the users of a Session only receive it from a Source.
func New(ctx context.Context, account int64, gen uint64, r Reports) Session {
	return Session{
		Account: account,
		Gen:     gen,
		ctx:     ctx,
		lost:    func(err error) { r.Lost(gen, err) },
		kicked:  func(reason string) { r.Kicked(gen, reason) },
	}
}

// Context ends with the term; run the session's calls under it (or under a
// context that AfterFunc ties to it) so that they stop when the term ends.
func (s Session) Context() context.Context {
	if s.ctx == nil {
		return ended
	}
	return s.ctx
}

// Done is closed when the term ends.
func (s Session) Done() <-chan struct{} { return s.Context().Done() }

// Err is nil while the term lasts and ErrTermEnded after.
func (s Session) Err() error {
	if s.Context().Err() != nil {
		return ErrTermEnded
	}
	return nil
}

// Lost reports that a call failed with a lost session. Reports after the term
// ended, and repeated reports, are ignored by the manager.
func (s Session) Lost(err error) {
	if s.lost != nil && !errors.Is(err, ErrTermEnded) {
		s.lost(err)
	}
}

// Kicked reports that QQ answered with a kick (another login replaced this one).
func (s Session) Kicked(reason string) {
	if s.kicked != nil {
		s.kicked(reason)
	}
}

// Source hands out live sessions: session.Manager's Sessions (any live
// session of the replica, for sending) and LeaderTerms (only while the
// replica leads, for polling).
type Source interface {
	// Await blocks until a Session is live and returns it, or returns ctx's
	// error when ctx ends first.
	Await(ctx context.Context) (Session, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context) (Session, error)

// Await calls f.
func (f SourceFunc) Await(ctx context.Context) (Session, error) { return f(ctx) }

var ended = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()
