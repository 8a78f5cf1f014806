package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/internal/retry"
	"github.com/qqbridge/qqbridge/metrics"
	"github.com/qqbridge/qqbridge/natsembed"
	"github.com/qqbridge/qqbridge/session"
)

// Bridge is one assembled bridge: the NATS connection (and the embedded server
// when it has one), the streams and buckets, the QQ client, the session manager,
// the directory, ingress, egress with its API, and the health endpoints. wire makes
// it; Run runs it until its context ends, then stops it gracefully.
type Bridge struct {
	cfg config
	log zerolog.Logger

	baseLog   zerolog.Logger // log without the prefix: each account adds its own
	egressLog zerolog.Logger // egress names its prefix and component itself

	ns *server.Server // the embedded server; nil when joining --nats
	nc *nats.Conn
	js jetstream.JetStream

	httpLn  net.Listener // nil without --http
	httpSrv *http.Server
	httpErr chan error // the listener's failure, for Run

	replica string       // this replica's ID
	version buildVersion // of the binary
	metrics *metrics.Set // every account's, served on /metrics

	specs  []accountSpec   // the accounts read at the start (the flags' one, or the file's)
	spread *session.Spread // with --accounts: the leases spread over the replicas

	mu          sync.Mutex
	accounts    []*account       // the accounts running (accounts.go), in the order of the file
	accountErrs map[string]error // accounts of the file that could not be started (or restarted), by prefix
	wired       bool             // every component exists (the fields above are set)
	phase       string           // what the start waits for while not wired, e.g. "waiting for JetStream: …"
	running     bool             // between the start of Run and the beginning of the stop
	failed      error            // a component that stopped with an error
}

// wire assembles a bridge from cfg: it starts the embedded nats-server (without
// NATSURL) or connects to NATSURL (retrying until ctx ends), creates or updates the
// streams and buckets, and makes every component. Nothing talks to QQ before Run.
// On error everything started is stopped again.
func wire(ctx context.Context, cfg config, log zerolog.Logger) (_ *Bridge, err error) {
	b := &Bridge{cfg: cfg, egressLog: log, httpErr: make(chan error, 1), version: readBuildVersion(),
		metrics: metrics.NewSet(), replica: cfg.ReplicaID}
	if b.replica == "" {
		b.replica = defaultReplicaID()
	}
	b.baseLog = log.With().Str("replica", b.replica).Logger()
	b.log = b.baseLog
	if cfg.AccountsFile == "" { // one account: every line names it
		b.log = b.baseLog.With().Str("prefix", cfg.Subjects.Prefix()).Logger()
	}
	log = b.log
	defer func() {
		if err != nil {
			b.close()
		}
	}()

	// The accounts come first: a bad file stops the start before anything
	// listens, and their metrics exist from the start.
	b.specs = []accountSpec{flagAccount(cfg)}
	if cfg.AccountsFile != "" {
		data, err := os.ReadFile(cfg.AccountsFile)
		if err != nil {
			return nil, fmt.Errorf("--accounts: %w", err)
		}
		if b.specs, err = parseAccounts(data, cfg, os.LookupEnv, os.ReadFile); err != nil {
			return nil, fmt.Errorf("--accounts %s: %w", cfg.AccountsFile, err)
		}
	}
	for _, spec := range b.specs {
		b.metrics.Account(spec.Subjects.Prefix())
	}

	// The HTTP listener comes first, so that the probes answer while NATS and
	// JetStream are awaited (/healthz 200, /readyz 503 with the reason).
	b.setPhase("starting")
	if cfg.HTTPAddr != "" {
		if b.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return nil, listenError("--http", cfg.HTTPAddr, err)
		}
		b.httpSrv = &http.Server{Handler: b.httpHandler(), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := b.httpSrv.Serve(b.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				b.httpErr <- err
			}
		}()
		msg := "HTTP: status page /, /metrics, /healthz and /readyz"
		if cfg.PProf {
			msg += "; the Go profiler on /debug/pprof/"
		}
		log.Info().Str("http", b.HTTPAddr()).Msg(msg)
	}

	url := cfg.NATSURL
	if url == "" {
		if err := checkFreePort("embedded nats-server: --nats-listen", cfg.NATSListen); err != nil {
			return nil, err
		}
		host, portStr, err := net.SplitHostPort(cfg.NATSListen)
		if err != nil {
			return nil, fmt.Errorf("embedded nats-server: listen address %q: %w", cfg.NATSListen, err)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil {
			return nil, fmt.Errorf("embedded nats-server: port %q: %w", portStr, err)
		}
		if port == 0 {
			port = -1 // any free port
		}
		b.ns, err = natsembed.Start(natsembed.Options{DataDir: cfg.DataDir, Host: host, Port: port})
		if err != nil {
			return nil, fmt.Errorf("embedded nats-server: %w", err)
		}
		url = b.ns.ClientURL()
		log.Info().Str("nats", url).Str("data_dir", cfg.DataDir).Msg("embedded nats-server with JetStream started")
	}
	b.setPhase("connecting to NATS")
	if b.nc, err = connectNATS(ctx, url, b.natsOptions(), log, func(err error) { b.setPhase("connecting to NATS: " + err.Error()) }); err != nil {
		return nil, err
	}
	if b.js, err = jetstream.New(b.nc); err != nil {
		return nil, err
	}
	if cfg.AccountsFile != "" {
		// Many accounts: their leases spread over the replicas.
		if b.spread, err = session.NewSpread(ctx, session.SpreadConfig{
			JS: b.js, ReplicaID: b.replica, Accounts: len(b.specs), TTL: cfg.LeaderTTL, Replicas: cfg.Replicas,
			Log: log.With().Str("component", "spread").Logger(),
		}); err != nil {
			return nil, err
		}
	}
	var accts []*account
	for _, spec := range b.specs {
		a, err := b.wireAccount(ctx, spec, b.setPhase)
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", spec.Subjects.Prefix(), err)
		}
		accts = append(accts, a)
	}
	b.mu.Lock()
	b.accounts = accts
	b.wired, b.phase = true, ""
	b.mu.Unlock()
	return b, nil
}

// connectNATS connects to url, retrying with backoff until it succeeds or ctx ends;
// once connected it reconnects forever. Connection events are logged with the URL
// redacted (no credentials).
func connectNATS(ctx context.Context, url string, extra []nats.Option, log zerolog.Logger, onRetry func(error)) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil { // nil: a close of our own (drain)
				log.Warn().Err(err).Msg("NATS disconnected; reconnecting")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("nats", nc.ConnectedUrlRedacted()).Msg("NATS reconnected")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			ev := log.Warn().Err(err)
			if sub != nil {
				ev = ev.Str("subject", sub.Subject)
			}
			ev.Msg("NATS asynchronous error")
		}),
	}
	opts = append(opts, extra...)
	bo := retry.Backoff(500*time.Millisecond, 10*time.Second)
	for {
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			log.Info().Str("nats", nc.ConnectedUrlRedacted()).Msg("connected to NATS")
			return nc, nil
		}
		wait := bo.NextBackOff()
		log.Warn().Err(err).Dur("retry_in", wait).Msg("cannot connect to NATS")
		if onRetry != nil {
			onRetry(err)
		}
		if retry.Sleep(ctx, wait) != nil {
			return nil, fmt.Errorf("connect to NATS: %w (last error: %v)", ctx.Err(), err)
		}
	}
}

// NATSURL returns the URL of the NATS server the bridge is connected to (the
// embedded one's client URL when it has one).
func (b *Bridge) NATSURL() string {
	if b.ns != nil {
		return b.ns.ClientURL()
	}
	return b.nc.ConnectedUrlRedacted()
}

// HTTPAddr returns the address of the health listener, "" without one.
func (b *Bridge) HTTPAddr() string {
	if b.httpLn == nil {
		return ""
	}
	return b.httpLn.Addr().String()
}

// Session returns the first account's session manager (for the demo and
// tests).
func (b *Bridge) Session() *session.Manager { return b.first().session }

// Run runs the bridge until ctx ends or a component fails, then stops it:
//  1. polling stops (the poll in flight is cancelled; what it received is published);
//  2. sends in flight finish (the consumer's and the API's), at most ShutdownTimeout;
//  3. the session manager stops (the leader publishes "stopped" and frees the lease);
//  4. NATS is drained, the health listener and the embedded server are shut down.
//
// It returns nil after a stop caused by ctx, else the component's error. Run is
// called once; it releases everything wire made.
func (b *Bridge) Run(ctx context.Context) error {
	// The components get contexts of their own, so that they stop in order.
	base := context.WithoutCancel(ctx)
	sessCtx, stopSession := context.WithCancel(base)
	workCtx, stopWork := context.WithCancel(base)
	defer stopSession()
	defer stopWork()

	fail := make(chan error, 4)
	failed := func(what string, err error) {
		if err != nil && !errors.Is(err, context.Canceled) {
			select {
			case fail <- fmt.Errorf("%s: %w", what, err):
			default:
			}
		}
	}
	var sessWG, workWG sync.WaitGroup
	go func() {
		select {
		case err := <-b.httpErr:
			failed("HTTP listener", err)
		case <-workCtx.Done():
		}
	}()
	run := &accountRun{sessCtx: sessCtx, workCtx: workCtx, failed: failed, refresh: b.cfg.DirectoryRefresh,
		log: b.log, timeout: b.cfg.ShutdownTimeout}
	if b.spread != nil {
		sessWG.Go(func() { b.spread.Run(sessCtx) })
	}
	for _, a := range b.accountList() {
		run.start(a)
	}
	if b.cfg.AccountsFile != "" {
		workWG.Go(func() { b.watchAccounts(workCtx, run) })
	}
	b.setRunning(true)

	var runErr error
	select {
	case <-ctx.Done():
		b.log.Info().Msg("stopping: polling stops, sends in flight finish, then NATS drains")
	case runErr = <-fail:
		b.log.Error().Err(runErr).Msg("a component failed; stopping")
		b.setFailed(runErr)
	}
	b.setRunning(false)

	run.close() // no account starts from now on (the watcher's)
	stopWork()
	if !waitTimeout(func() { workWG.Wait(); run.waitWork() }, b.cfg.ShutdownTimeout) {
		b.log.Warn().Dur("timeout", b.cfg.ShutdownTimeout).Msg("sends still in flight at the shutdown timeout; they are recorded and retried by the next bridge")
	}
	stopSession()
	if !waitTimeout(func() { run.sessWG.Wait(); sessWG.Wait(); run.changes.Wait() }, 10*time.Second) {
		b.log.Warn().Msg("the session manager did not stop in time")
	}
	b.close()
	b.log.Info().Msg("stopped")
	return runErr
}

// close drains NATS and shuts down the health listener and the embedded server.
// It is safe to call on a partly wired bridge.
func (b *Bridge) close() {
	if b.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = b.httpSrv.Shutdown(ctx)
		cancel()
	} else if b.httpLn != nil {
		_ = b.httpLn.Close()
	}
	if b.nc != nil {
		if err := drainConn(b.nc, 5*time.Second); err != nil {
			b.log.Warn().Err(err).Msg("NATS drain")
		}
	}
	if b.ns != nil {
		b.ns.Shutdown()
		b.ns.WaitForShutdown()
	}
}

func (b *Bridge) setRunning(v bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.running = v
}

func (b *Bridge) setFailed(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failed = err
}

// waitTimeout runs wait and reports whether it returned within d.
func waitTimeout(wait func(), d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}
