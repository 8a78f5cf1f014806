// Package natsembed starts an in-process nats-server with JetStream: the
// single-machine default of `bridge run` without --nats, the demo, and the
// tests. It is the only package of the module (besides test code) that links
// the nats-server; the library packages (bus, session, ingress, egress, …)
// only speak the NATS client protocol, so a program that imports them stays
// free of the server.
package natsembed

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// DefaultReadyTimeout is how long Start waits for the server to accept
// connections.
const DefaultReadyTimeout = 10 * time.Second

// ErrNotReady is returned by Start when the server did not become ready to
// accept connections (or JetStream did not start) in time.
var ErrNotReady = errors.New("natsembed: embedded nats-server not ready")

// Options configures Start.
type Options struct {
	// DataDir is where JetStream keeps its store (required).
	DataDir string
	// Host is the interface to listen on; default 127.0.0.1.
	Host string
	// Port is the client port: 0 = the NATS default 4222, -1 = a random free
	// port (read it back with Server.ClientURL).
	Port int
	// ServerName names the server in its logs and in JetStream; default
	// "qqbridge-embedded".
	ServerName string
	// Log turns on the server's own logging (to stderr); off by default.
	Log bool
	// ReadyTimeout bounds the wait for readiness; default DefaultReadyTimeout.
	ReadyTimeout time.Duration
}

// Start starts an in-process nats-server with JetStream enabled and its store
// under opts.DataDir, and returns it once it accepts connections (or an
// error, having shut it down). The caller stops it with Shutdown (and
// WaitForShutdown).
func Start(opts Options) (*server.Server, error) {
	if opts.DataDir == "" {
		return nil, errors.New("natsembed: Start: DataDir is required")
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("natsembed: Start: data dir: %w", err)
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Port < -1 {
		return nil, fmt.Errorf("natsembed: Start: port %d", opts.Port)
	}
	if opts.ServerName == "" {
		opts.ServerName = "qqbridge-embedded"
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = DefaultReadyTimeout
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: opts.ServerName,
		Host:       opts.Host,
		Port:       opts.Port,
		JetStream:  true,
		StoreDir:   opts.DataDir,
		NoSigs:     true,
		NoLog:      !opts.Log,
	})
	if err != nil {
		return nil, fmt.Errorf("natsembed: Start: %w", err)
	}
	if opts.Log {
		srv.ConfigureLogger()
	}
	srv.Start()
	if !srv.ReadyForConnections(opts.ReadyTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("%w after %v", ErrNotReady, opts.ReadyTimeout)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("%w: JetStream did not start", ErrNotReady)
	}
	return srv, nil
}
