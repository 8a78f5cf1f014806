package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

// step is a state of the leader's loop.
type step int

const (
	stepRestore step = iota // resume the saved session
	stepRelogin             // re-login with the cookies
	stepQR                  // QR login
	stepOnline              // online: wait for a report
	stepKicked              // kicked: stop
	stepWait                // kicked or stopped: wait for a login request
)

// lead logs in and keeps the session while term lasts. run is the Run
// context: when it ends, the state becomes stopped (unless kicked, which must
// outlive restarts).
func (m *Manager) lead(term, run context.Context) {
	term, cancel := context.WithCancel(term)
	defer cancel()
	defer context.AfterFunc(run, cancel)()
	m.goOffline()
	// The latest state, fresher than the watch may be: a kick must not be missed.
	e, err := m.cfg.KV.Get(term, schema.SessionKeyState)
	var st schema.SessionState
	fresh := err == nil && m.cfg.Format.Unmarshal(e.Value(), &st) == nil
	m.mu.Lock()
	if fresh {
		m.state = st
	}
	m.leading = true
	m.pend = pending{} // reports of the follower's generations
	kicked := m.state.State == schema.StateKicked
	m.mu.Unlock()
	m.logger().Info().Msg("leading")
	defer func() {
		m.mu.Lock()
		m.leading = false
		kicked := m.state.State == schema.StateKicked
		m.mu.Unlock()
		m.dropHeld()
		m.goOffline()
		if run.Err() != nil && !kicked {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(run), 2*time.Second)
			m.setState(ctx, schema.StateStopped, "the bridge shut down")
			cancel()
		}
	}()

	next := stepRestore
	if kicked {
		m.logger().Info().Msg("the session was kicked; waiting for a login request")
		next = stepWait
	}
	for term.Err() == nil {
		switch next {
		case stepRestore:
			next = m.restore(term)
		case stepRelogin:
			next = m.relogin(term)
		case stepQR:
			next = m.qrLogin(term)
		case stepOnline:
			next = m.stayOnline(term)
		case stepKicked:
			next = m.kicked(term)
		case stepWait:
			next = m.waitRequest(term)
		}
	}
}

// restore resumes the saved session from the bucket; a session that is gone
// leads to a re-login with its cookies, no usable session to a QR login.
func (m *Manager) restore(ctx context.Context) step {
	b := m.backoff()
	for {
		if m.peekPending().login {
			return stepQR
		}
		e, err := m.cfg.KV.Get(ctx, KeySession)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
			m.logger().Info().Msg("no saved session; QR login")
			return stepQR
		case err != nil:
			d := b.NextBackOff()
			m.logger().Warn().Err(err).Dur("retry_in", d).Msg("reading the saved session failed")
			if !m.pause(ctx, d) {
				return stepRestore
			}
			continue
		}
		saved, err := DecodeSaved(e.Value(), m.cfg.Key)
		if err != nil {
			m.logger().Error().Err(err).Msg("saved session not used; QR login")
			return stepQR
		}
		m.mu.Lock()
		m.account = saved.UIN
		m.mu.Unlock()
		m.setState(ctx, schema.StateReconnecting, "resuming the saved session")
		err = m.cfg.Client.Resume(ctx, saved)
		switch {
		case err == nil:
			gen := m.goOnline(ctx, saved.UIN)
			m.logger().Info().Uint64("gen", gen).Msg("saved session resumed")
			m.setState(ctx, schema.StateOnline, "saved session resumed")
			return stepOnline
		case ctx.Err() != nil:
			return stepRestore
		case errors.Is(err, qqclient.ErrSessionLost), errors.Is(err, qqclient.ErrBadRequest):
			m.logger().Info().Err(err).Msg("saved session is gone; trying its cookies")
			return stepRelogin
		}
		d := b.NextBackOff()
		m.logger().Warn().Err(err).Dur("retry_in", d).Msg("resume failed")
		if !m.pause(ctx, d) {
			return stepRestore
		}
	}
}

// relogin makes a new session from the login cookies the client holds; when
// they no longer work, the state becomes session_lost and a QR login
// follows.
func (m *Manager) relogin(ctx context.Context) step {
	p := m.peekPending()
	m.updatePending(func(p *pending) { p.lost = false })
	m.setState(ctx, schema.StateReconnecting, nonEmpty(p.lostReason, "re-login with the saved cookies"))
	b := m.backoff()
	for {
		switch p := m.peekPending(); {
		case p.kicked:
			return stepKicked
		case p.login:
			return stepQR
		}
		s, err := m.cfg.Client.Relogin(ctx)
		switch {
		case err == nil:
			m.save(ctx, s)
			gen := m.goOnline(ctx, s.UIN)
			m.logger().Info().Uint64("gen", gen).Msg("re-logged in with the saved cookies")
			m.setState(ctx, schema.StateOnline, "re-logged in with the saved cookies")
			return stepOnline
		case ctx.Err() != nil:
			return stepRelogin
		case errors.Is(err, qqclient.ErrSessionLost), errors.Is(err, qqclient.ErrNotLoggedIn), errors.Is(err, qqclient.ErrBadRequest):
			m.logger().Info().Err(err).Msg("the saved cookies no longer work; QR login")
			if m.peekPending().kicked {
				return stepKicked
			}
			m.setState(ctx, schema.StateSessionLost, "the saved cookies no longer work: "+err.Error())
			return stepQR
		}
		d := b.NextBackOff()
		m.logger().Warn().Err(err).Dur("retry_in", d).Msg("re-login failed")
		if !m.pause(ctx, d) {
			return stepRelogin
		}
	}
}

// qrLogin shows QR codes until one is confirmed, or until MaxQRExpired of
// them expired in a row: then the state is stopped until a login request.
func (m *Manager) qrLogin(ctx context.Context) step {
	m.updatePending(func(p *pending) { *p = pending{} })
	m.goOffline()
	m.cfg.Client.Logout()
	b := m.backoff()
	expired := 0
	for {
		s, err := m.cfg.Client.LoginQR(ctx, func(ev qqclient.LoginEvent) { m.onLoginEvent(ctx, ev) })
		switch {
		case err == nil:
			// A login requested while this one ran is satisfied by it.
			m.updatePending(func(p *pending) { p.login = false })
			m.save(ctx, s)
			gen := m.goOnline(ctx, s.UIN)
			m.logger().Info().Uint64("gen", gen).Msg("logged in by QR code")
			m.setState(ctx, schema.StateOnline, "logged in by QR code")
			return stepOnline
		case ctx.Err() != nil:
			return stepQR
		case errors.Is(err, qqclient.ErrQRExpired):
			expired++
			if m.takePending().login {
				expired = 0
			}
			if expired >= m.cfg.MaxQRExpired {
				m.logger().Warn().Int("expired", expired).Msg("QR login stopped until a login request")
				m.setState(ctx, schema.StateStopped,
					fmt.Sprintf("%d QR codes in a row expired unscanned; waiting for a login request", expired))
				return stepWait
			}
			continue
		}
		d := b.NextBackOff()
		m.logger().Warn().Err(err).Dur("retry_in", d).Msg("QR login failed")
		if !m.pause(ctx, d) {
			return stepQR
		}
		m.takePending()
	}
}

// kicked ends the session after a kick and waits for a login request.
func (m *Manager) kicked(ctx context.Context) step {
	p := m.peekPending()
	m.updatePending(func(p *pending) { p.kicked, p.lost = false, false })
	m.goOffline()
	m.cfg.Client.Logout()
	m.logger().Warn().Msg("kicked: no automatic re-login; waiting for a login request")
	m.setState(ctx, schema.StateKicked, nonEmpty(p.kickReason, "another login replaced this one"))
	return stepWait
}

// stayOnline waits for a report about the live session.
func (m *Manager) stayOnline(ctx context.Context) step {
	for {
		switch p := m.peekPending(); {
		case p.login:
			m.logger().Info().Msg("login requested; new QR login")
			return stepQR
		case p.kicked:
			return stepKicked
		case p.lost:
			m.logger().Warn().Str("reason", p.lostReason).Msg("session lost; re-login")
			return stepRelogin
		}
		select {
		case <-ctx.Done():
			return stepOnline
		case <-m.wake:
		}
	}
}

// waitRequest waits, kicked or stopped, for a login request.
func (m *Manager) waitRequest(ctx context.Context) step {
	for {
		m.updatePending(func(p *pending) { p.kicked, p.lost = false, false })
		if m.peekPending().login {
			m.logger().Info().Msg("login requested; new QR login")
			return stepQR
		}
		select {
		case <-ctx.Done():
			return stepWait
		case <-m.wake:
		}
	}
}

// onLoginEvent publishes a step of a QR login.
func (m *Manager) onLoginEvent(ctx context.Context, ev qqclient.LoginEvent) {
	switch ev.Step {
	case qqclient.LoginQRReady:
		if ev.QR != nil {
			m.publishQR(ctx, ev.QR)
		}
		m.setState(ctx, schema.StateAwaitingScan, "scan the QR code with the QQ app")
	case qqclient.LoginScanned:
		m.setState(ctx, schema.StateScanned, "confirm the login on the phone")
	case qqclient.LoginQRExpired:
		m.setState(ctx, schema.StateQRExpired, "the QR code expired")
	case qqclient.LoginConfirmed:
		m.logger().Info().Msg("QR login confirmed")
	}
}

// pause waits d, or less when a report comes; false when ctx ended.
func (m *Manager) pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-m.wake: // the caller looks at the pending reports
	}
	return true
}
