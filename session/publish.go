package session

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/qqbridge/qqbridge/internal/retry"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

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
		_ = retry.Sleep(ctx, b.NextBackOff())
	}
}

// heldState is a reconnecting state waiting for its debounce.
type heldState struct {
	st    schema.SessionState
	due   time.Time // the end of the debounce
	timer *time.Timer
}

// setState publishes a state on the state subject and in the bucket, unless
// it is the published one with the same reason. A reconnecting state that
// follows online is held for StateDebounce first (see the package doc): the
// next setState replaces it, and a return to online within the debounce
// publishes nothing.
func (m *Manager) setState(ctx context.Context, state schema.State, reason string) {
	m.pubMu.Lock()
	defer m.pubMu.Unlock()
	m.mu.Lock()
	st := schema.SessionState{State: state, Reason: reason, Time: time.Now().UTC(), Account: m.account}
	held := m.held
	if held != nil {
		held.timer.Stop()
		m.held = nil
	}
	switch {
	case state == schema.StateReconnecting && m.cfg.StateDebounce > 0 &&
		(held != nil || m.state.State == schema.StateOnline):
		// A flap from online: hold it, until the first hold's debounce ends.
		h := &heldState{st: st}
		if held != nil {
			h.due = held.due
		} else {
			h.due = time.Now().Add(m.cfg.StateDebounce)
		}
		h.timer = time.AfterFunc(time.Until(h.due), func() { m.endDebounce(h) })
		m.held = h
		m.mu.Unlock()
		m.logger().Debug().Str("state", string(state)).Str("reason", reason).Msg("session state held for the debounce")
		return
	case held != nil && state == m.state.State:
		// Back where the flap began (online) within the debounce: nothing to say.
		m.mu.Unlock()
		m.logger().Info().Str("state", string(state)).Str("reason", reason).Str("after", held.st.Reason).
			Msg("session state back within the debounce; not published")
		return
	case state == m.state.State && reason == m.state.Reason:
		m.mu.Unlock()
		return
	}
	m.state = st
	m.mu.Unlock()
	m.publishState(ctx, st)
}

// endDebounce publishes the held state h once its debounce ended, unless
// another state replaced it or this replica no longer leads.
func (m *Manager) endDebounce(h *heldState) {
	m.pubMu.Lock()
	defer m.pubMu.Unlock()
	m.mu.Lock()
	if m.held != h {
		m.mu.Unlock()
		return
	}
	m.held = nil
	if !m.leading {
		m.mu.Unlock()
		return
	}
	m.state = h.st
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.publishState(ctx, h.st)
}

// dropHeld forgets a held state (leadership ended).
func (m *Manager) dropHeld() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.held != nil {
		m.held.timer.Stop()
		m.held = nil
	}
}

// publishState keeps st in the bucket and publishes it. The caller holds
// pubMu, so that states go out in the order they were decided.
func (m *Manager) publishState(ctx context.Context, st schema.SessionState) {
	l := m.logger()
	l.Info().Str("state", string(st.State)).Str("reason", st.Reason).Msg("session state")
	m.cfg.Metrics.SetState(string(st.State))
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
	m.cfg.Metrics.QRIssued()
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
