package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/qqclient"
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
		sleep(ctx, b.NextBackOff())
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
	if st.Account != 0 && m.account == 0 {
		m.account = st.Account
	}
}

// loginRequested takes a login request a follower forwarded.
func (m *Manager) loginRequested(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		return
	}
	m.mu.Lock()
	leading := m.leading
	if leading {
		m.pend.login = true
	}
	m.mu.Unlock()
	if leading {
		m.logger().Info().Msg("login requested by a follower")
		m.signal()
	}
}

// loginRequest is the value of KeyLogin.
type loginRequest struct {
	By   string    `json:"by"`
	Time time.Time `json:"time"`
}

func encodeLoginRequest(by string) ([]byte, error) {
	return json.Marshal(loginRequest{By: by, Time: time.Now().UTC()})
}

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
			o := m.goOnline(ctx, saved.UIN)
			m.logger().Info().Uint64("gen", o.Gen).Msg("following: resumed the leader's session")
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
			o := m.goOnline(ctx, saved.UIN)
			m.logger().Info().Uint64("gen", o.Gen).Msg("saved session resumed")
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
			o := m.goOnline(ctx, s.UIN)
			m.logger().Info().Uint64("gen", o.Gen).Msg("re-logged in with the saved cookies")
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
			o := m.goOnline(ctx, s.UIN)
			m.logger().Info().Uint64("gen", o.Gen).Msg("logged in by QR code")
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

// save writes the session to the bucket (encrypted when a key is set).
func (m *Manager) save(ctx context.Context, s *qqclient.Session) {
	data, err := EncodeSaved(s, m.cfg.Key)
	if err != nil {
		m.logger().Error().Err(err).Msg("session not saved")
		return
	}
	if len(m.cfg.Key) == 0 {
		m.logger().Warn().Msg("saving the session unencrypted: set a session key to encrypt it")
	}
	b := m.backoff()
	for attempt := 1; ; attempt++ {
		_, err := m.cfg.KV.Put(ctx, KeySession, data)
		if err == nil {
			return
		}
		if attempt == 3 || ctx.Err() != nil {
			m.logger().Error().Err(err).Msg("session not saved; followers and restarts cannot resume it")
			return
		}
		sleep(ctx, b.NextBackOff())
	}
}

// setState publishes a new state (unless it is the current one) on the
// state subject and in the bucket.
func (m *Manager) setState(ctx context.Context, state, reason string) {
	m.mu.Lock()
	if m.state.State == state {
		m.mu.Unlock()
		return
	}
	st := schema.SessionState{State: state, Reason: reason, Time: time.Now().UTC(), Account: m.account}
	m.state = st
	m.mu.Unlock()
	l := m.logger()
	l.Info().Str("state", state).Str("reason", reason).Msg("session state")
	data, err := m.cfg.Format.Marshal(&st)
	if err != nil {
		l.Error().Err(err).Msg("encode session state")
		return
	}
	if _, err := m.cfg.KV.Put(ctx, schema.SessionKeyState, data); err != nil {
		l.Warn().Err(err).Msg("session state not kept in the bucket")
	}
	msg := nats.NewMsg(m.cfg.Subjects.SessionState())
	msg.Header.Set("Content-Type", m.cfg.Format.ContentType())
	msg.Data = data
	if err := m.cfg.NC.PublishMsg(msg); err != nil {
		l.Warn().Err(err).Msg("session state not published")
	}
}

// publishQR keeps a QR code in the bucket and publishes it.
func (m *Manager) publishQR(ctx context.Context, qr *qqclient.QRCode) {
	fetched := qr.FetchedAt
	if fetched.IsZero() {
		fetched = time.Now()
	}
	q := schema.QR{PNG: qr.PNG, ExpiresAt: fetched.Add(m.cfg.QRTTL).UTC().Truncate(time.Second)}
	l := m.logger()
	data, err := m.cfg.Format.Marshal(&q)
	if err != nil {
		l.Error().Err(err).Msg("encode QR")
		return
	}
	if _, err := m.cfg.KV.Put(ctx, schema.SessionKeyQR, data); err != nil {
		l.Warn().Err(err).Msg("QR not kept in the bucket")
	}
	msg := nats.NewMsg(m.cfg.Subjects.SessionQR())
	msg.Header.Set("Content-Type", m.cfg.Format.ContentType())
	msg.Header.Set(HeaderExpiresAt, q.ExpiresAt.Format(time.RFC3339))
	msg.Data = data
	if m.cfg.QRFormat == QRFormatPNG {
		msg.Header.Set("Content-Type", ContentTypePNG)
		msg.Data = q.PNG
	}
	if err := m.cfg.NC.PublishMsg(msg); err != nil {
		l.Warn().Err(err).Msg("QR not published")
		return
	}
	l.Info().Time("expires_at", q.ExpiresAt).Int("bytes", len(q.PNG)).Msg("QR code published")
}

// backoff returns the retry back-off of the config.
func (m *Manager) backoff() *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(m.cfg.RetryInitial),
		backoff.WithMaxInterval(m.cfg.RetryMax),
		backoff.WithMaxElapsedTime(0),
	)
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

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func nonEmpty(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}
