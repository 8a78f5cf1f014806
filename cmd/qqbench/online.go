package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/directory"
	"github.com/qqbridge/qqbridge/live"
	"github.com/qqbridge/qqbridge/schema"
	"github.com/qqbridge/qqbridge/session"
)

// Online is one start of a session: how long from the Manager's start until
// it published online, and until the directory it loads in the background
// held every friend.
type Online struct {
	Online, Lists time.Duration
}

// StartOnline starts NATS, a simulator whose account has friends friends and
// a session Manager wired as `bridge run` wires it (the directory refreshed
// in the background from OnOnline), scans the QR code as soon as it is
// published and measures the start.
func StartOnline(ctx context.Context, friends int) (Online, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	e, err := startEnv(World(0, friends))
	if err != nil {
		return Online{}, err
	}
	defer e.Close()
	nc, js, subjects, sim, client := e.NC, e.JS, e.Subjects, e.Sim, e.Client
	kv, err := bus.SessionKV(ctx, js, subjects, 1)
	if err != nil {
		return Online{}, err
	}
	m, err := session.New(session.Config{Client: client, NC: nc, JS: js, KV: kv, Subjects: subjects,
		Log: zerolog.Nop(), LeaderTTL: 2 * time.Second, StateDebounce: -1})
	if err != nil {
		return Online{}, err
	}
	d := directory.New(client, zerolog.Nop())
	lists := make(chan time.Time, 1)
	m.OnOnline(func(s live.Session) {
		d.RefreshInBackground(s)
		go func() {
			for len(d.Friends()) < friends && s.Err() == nil {
				time.Sleep(5 * time.Millisecond)
			}
			lists <- time.Now()
		}()
	})
	// The QR code is scanned and confirmed as soon as the Manager shows it.
	qr, err := nc.Subscribe(subjects.SessionQR(), func(*nats.Msg) {
		if sim.ScanQR() == nil {
			_ = sim.ConfirmQR()
		}
	})
	if err != nil {
		return Online{}, err
	}
	defer func() { _ = qr.Unsubscribe() }()
	online := make(chan time.Time, 1)
	st, err := nc.Subscribe(subjects.SessionState(), func(msg *nats.Msg) {
		if m.State().State == schema.StateOnline {
			select {
			case online <- time.Now():
			default:
			}
		}
	})
	if err != nil {
		return Online{}, err
	}
	defer func() { _ = st.Unsubscribe() }()
	if err := nc.Flush(); err != nil {
		return Online{}, err
	}

	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- m.Run(rctx) }()
	defer func() { stop(); <-done }()
	var r Online
	select {
	case at := <-online:
		r.Online = at.Sub(start)
	case err := <-done:
		return Online{}, fmt.Errorf("bench: session stopped before online: %w", err)
	case <-ctx.Done():
		return Online{}, errors.New("bench: not online within 2 minutes")
	}
	select {
	case at := <-lists:
		r.Lists = at.Sub(start)
	case <-ctx.Done():
		return Online{}, errors.New("bench: the directory did not load within 2 minutes")
	}
	return r, nil
}
