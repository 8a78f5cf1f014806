package directory

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/qqclient"
)

// env is a simulator on a loopback listener and a client logged in to it.
type env struct {
	sim *testenv.Sim
	c   *qqclient.Client
}

// newEnv starts the simulator with the default world and logs a client in
// by QR (the test plays the phone through the control methods).
func newEnv(t *testing.T) *env {
	t.Helper()
	sim := testenv.StartSim(t, testenv.SimConfig())
	c, err := qqclient.New(qqclient.WithBaseURL(sim.URL), qqclient.WithPollTimeout(5*time.Second),
		qqclient.WithRequestTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("qqclient.New: %v", err)
	}
	e := &env{sim: sim, c: c}
	e.login(t)
	return e
}

// login runs a whole QR login.
func (e *env) login(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.c.FetchQR(ctx); err != nil {
		t.Fatalf("FetchQR: %v", err)
	}
	if err := e.sim.ScanQR(); err != nil {
		t.Fatalf("ScanQR: %v", err)
	}
	if err := e.sim.ConfirmQR(); err != nil {
		t.Fatalf("ConfirmQR: %v", err)
	}
	st, err := e.c.CheckQR(ctx)
	if err != nil || st != qqclient.QRConfirmed {
		t.Fatalf("CheckQR = %v, %v; want confirmed", st, err)
	}
	if _, err := e.c.CompleteLogin(ctx); err != nil {
		t.Fatalf("CompleteLogin: %v", err)
	}
}

// relogin ends the session the way the server drops one and makes a new one
// from the login cookies: every session number changes.
func (e *env) relogin(t *testing.T) {
	t.Helper()
	e.sim.ExpireSession()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.c.Relogin(ctx); err != nil {
		t.Fatalf("Relogin: %v", err)
	}
}

func testLog(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
}
