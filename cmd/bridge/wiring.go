package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof" // its init also registers on http.DefaultServeMux, which nothing here serves
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/schema"
	"github.com/qqbridge/qqbridge/status"
)

// defaultReplicaID names a replica without --replica-id: the host name (the pod
// name on Kubernetes) and a random suffix.
func defaultReplicaID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "replica"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}

// natsOptions are the connection's name (prefix and replica, as the server's
// monitoring shows it), credentials and TLS. The files were checked when the
// flags were parsed.
func (b *Bridge) natsOptions() []nats.Option {
	cfg := b.cfg
	opts := []nats.Option{nats.Name("qqbridge " + cfg.Subjects.Prefix() + " " + b.replica)}
	if cfg.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(cfg.NATSCreds))
	}
	if cfg.NATSNkey != "" {
		if o, err := nats.NkeyOptionFromSeed(cfg.NATSNkey); err == nil {
			opts = append(opts, o)
		}
	}
	if cfg.NATSTLSCA != "" || cfg.NATSTLSCert != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.NATSTLSCA != "" {
			if pem, err := os.ReadFile(cfg.NATSTLSCA); err == nil {
				tc.RootCAs = x509.NewCertPool()
				tc.RootCAs.AppendCertsFromPEM(pem)
			}
		}
		if cfg.NATSTLSCert != "" {
			if cert, err := tls.LoadX509KeyPair(cfg.NATSTLSCert, cfg.NATSTLSKey); err == nil {
				tc.Certificates = []tls.Certificate{cert}
			}
		}
		opts = append(opts, nats.Secure(tc))
	}
	return opts
}

// codeNotEnabledForAccount is the JetStream API error of an account without
// JetStream on a server that has it.
const codeNotEnabledForAccount = 10039

// codeInsufficientStorage is the JetStream API error of a stream whose
// MaxBytes the servers cannot reserve.
const codeInsufficientStorage = 10047

// setupError words the errors of bus.Setup an operator must act on.
func setupError(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == codeNotEnabledForAccount {
		return fmt.Errorf("%w for the bridge's account (the server answered %q): give the account JetStream (jetstream: enabled in its account config)", bus.ErrJetStreamDisabled, apiErr.Description)
	}
	if errors.As(err, &apiErr) && apiErr.ErrorCode == codeInsufficientStorage {
		return fmt.Errorf("%w: the stream limits (--in-max-bytes, --out-max-bytes, --result-max-bytes, times --replicas) do not fit in the JetStream store of the servers: lower them or raise max_file_store", err)
	}
	return err
}

// serviceMetadata is the first account's accountMetadata.
func (b *Bridge) serviceMetadata(ctx context.Context) map[string]string {
	return b.accountMetadata(ctx, b.first())
}

func (b *Bridge) setPhase(p string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.phase = p
}

// started returns whether every component exists, and otherwise what the start
// waits for.
func (b *Bridge) started() (bool, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.wired, b.phase
}

// httpHandler is the bridge's HTTP port: the status page at / (with
// /status.json and /qr.png), /metrics, /healthz and /readyz, and with
// --pprof the Go profiler under /debug/pprof/.
func (b *Bridge) httpHandler() http.Handler {
	mux := http.NewServeMux()
	health := b.healthHandler()
	mux.Handle("GET /healthz", health)
	mux.Handle("GET /readyz", health)
	mux.Handle("GET /metrics", b.metrics.Handler())
	if b.cfg.PProf {
		// Not /debug/pprof/cmdline: the command line may hold --session-key
		// (the index answers it 404, an unknown profile).
		mux.HandleFunc("/debug/pprof/", pprof.Index) // also the named profiles: heap, goroutine, …
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("/", status.New(status.SourceFunc(b.Status)))
	return mux
}

// Status is the status page's snapshot: for each account, the session state
// this replica knows, the leader and the QR code from its buckets (so every
// replica shows them), its ingress counters and its sends; an account of the
// file that could not be started, with why.
func (b *Bridge) Status() status.Snapshot {
	snap := status.Snapshot{Prefix: b.cfg.Subjects.Prefix(), Replica: b.replica}
	wired, phase := b.started()
	if !wired {
		snap.Reason = phase
		for _, spec := range b.specs {
			snap.Accounts = append(snap.Accounts, status.AccountSnapshot{Prefix: spec.Subjects.Prefix(), Reason: phase})
		}
		return snap
	}
	snap.NATS = b.nc.Status().String()
	for _, a := range b.accountList() {
		snap.Accounts = append(snap.Accounts, a.snapshot(b.cfg.Codec))
	}
	for _, ae := range b.notStarted() {
		snap.Accounts = append(snap.Accounts, status.AccountSnapshot{Prefix: ae.prefix, Reason: ae.err.Error()})
	}
	return snap
}

// snapshot is the account's part of the status page.
func (a *account) snapshot(codec schema.Codec) status.AccountSnapshot {
	st := a.session.State()
	as := status.AccountSnapshot{Prefix: a.prefix(), Account: st.Account, State: st.State, Reason: st.Reason, Since: st.Time}
	as.Leader, as.QR, as.QRExpires = a.view.get(a.buckets, codec)
	in := a.in.Stats()
	sum := a.metrics.Summary()
	as.LastEvent = sum.LastEvent
	as.Counters = []status.Counter{
		{Name: "polls", Value: in.Polls},
		{Name: "events published", Value: in.Published},
		{Name: "duplicates", Value: in.Duplicates},
		{Name: "own messages (echoes)", Value: in.Echoes},
		{Name: "publish retries", Value: in.Retries},
		{Name: "events dropped", Value: in.Dropped},
		{Name: "sessions lost", Value: in.Lost},
		{Name: "kicks", Value: in.Kicks},
		{Name: "sends ok", Value: sum.SendsOK},
		{Name: "sends failed", Value: sum.SendsFailed},
	}
	return as
}

// statusCache keeps the leader and the QR code read from the buckets for a
// second, so that the page's polling costs at most one read of each a second.
type statusCache struct {
	mu      sync.Mutex
	at      time.Time
	leader  string
	qr      []byte
	expires time.Time
}

func (c *statusCache) get(buckets bus.Buckets, codec schema.Codec) (string, []byte, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) < time.Second {
		return c.leader, c.qr, c.expires
	}
	c.at = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	c.leader = ""
	if buckets.Leader != nil {
		if e, err := buckets.Leader.Get(ctx, bus.LeaderKey); err == nil {
			c.leader = string(e.Value())
		}
	}
	c.qr, c.expires = nil, time.Time{}
	if e, err := buckets.Session.Get(ctx, schema.SessionKeyQR); err == nil {
		var q schema.QR
		if codec.Unmarshal(e.Value(), &q) == nil {
			c.qr, c.expires = q.PNG, q.ExpiresAt
		}
	}
	return c.leader, c.qr, c.expires
}
