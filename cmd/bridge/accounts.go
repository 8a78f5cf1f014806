package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/api"
	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/directory"
	"github.com/qqbridge/qqbridge/egress"
	"github.com/qqbridge/qqbridge/ingress"
	"github.com/qqbridge/qqbridge/media"
	"github.com/qqbridge/qqbridge/metrics"
	"github.com/qqbridge/qqbridge/pace"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
	"github.com/qqbridge/qqbridge/session"
)

// accountsReload is how often the accounts file is read again by default
// (config.AccountsReload).
const accountsReload = 5 * time.Second

// accountSpec is what differs between the accounts of one bridge: the
// prefix (subjects, streams, buckets), the session key, the pace and the QQ
// endpoint.
type accountSpec struct {
	Subjects   schema.Subjects
	SessionKey string // the secret itself, read from the file or variable the accounts file names
	Rate       float64
	Burst      int
	QQEndpoint string
}

// accountsFile is the JSON of --accounts:
//
//	{"accounts": [
//	  {"prefix": "acct1", "session_key_env": "ACCT1_SESSION_KEY", "rate": 1, "burst": 3},
//	  {"prefix": "acct2", "session_key_file": "/run/secrets/acct2-session-key"}
//	]}
//
// The secret is never in the file itself: session_key_env names an
// environment variable, session_key_file a file (a mounted Secret) whose
// content, trailing newline removed, is the key. Fields left out take the
// values of the flags (--rate, --burst, --qq-endpoint, --session-key).
type accountsFile struct {
	Accounts []accountEntry `json:"accounts"`
}

type accountEntry struct {
	Prefix         string  `json:"prefix"`
	SessionKeyEnv  string  `json:"session_key_env,omitempty"`
	SessionKeyFile string  `json:"session_key_file,omitempty"`
	Rate           float64 `json:"rate,omitempty"`
	Burst          int     `json:"burst,omitempty"`
	QQEndpoint     string  `json:"qq_endpoint,omitempty"`
}

// errAccounts wraps every problem of an accounts file.
var errAccounts = errors.New("accounts file")

// parseAccounts reads an accounts file. Defaults come from cfg; lookupEnv
// and readFile resolve the session key references.
func parseAccounts(data []byte, cfg config, lookupEnv func(string) (string, bool), readFile func(string) ([]byte, error)) ([]accountSpec, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f accountsFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %v", errAccounts, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: a second JSON value after the object", errAccounts)
	}
	if len(f.Accounts) == 0 {
		return nil, fmt.Errorf("%w: no accounts", errAccounts)
	}
	seen := map[string]bool{}
	var specs []accountSpec
	for i, a := range f.Accounts {
		where := fmt.Sprintf("accounts[%d]", i)
		s, err := schema.NewSubjects(a.Prefix)
		if err != nil || a.Prefix == "" {
			return nil, fmt.Errorf("%w: %s: prefix %q: one or more tokens separated by '.', each of A-Z, a-z, 0-9, '_' and '-'", errAccounts, where, a.Prefix)
		}
		if seen[s.Prefix()] {
			return nil, fmt.Errorf("%w: %s: prefix %q listed twice", errAccounts, where, a.Prefix)
		}
		seen[s.Prefix()] = true
		spec := accountSpec{Subjects: s, SessionKey: cfg.SessionKey, Rate: cfg.Rate, Burst: cfg.Burst, QQEndpoint: cfg.QQEndpoint}
		switch {
		case a.SessionKeyEnv != "" && a.SessionKeyFile != "":
			return nil, fmt.Errorf("%w: %s: session_key_env or session_key_file, not both", errAccounts, where)
		case a.SessionKeyEnv != "":
			v, ok := lookupEnv(a.SessionKeyEnv)
			if !ok || v == "" {
				return nil, fmt.Errorf("%w: %s: session_key_env %s is not set", errAccounts, where, a.SessionKeyEnv)
			}
			spec.SessionKey = v
		case a.SessionKeyFile != "":
			b, err := readFile(a.SessionKeyFile)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: session_key_file: %v", errAccounts, where, err) // the error names the file, not its content
			}
			if spec.SessionKey = strings.TrimRight(string(b), "\r\n"); spec.SessionKey == "" {
				return nil, fmt.Errorf("%w: %s: session_key_file %s is empty", errAccounts, where, a.SessionKeyFile)
			}
		}
		if spec.SessionKey != cfg.SessionKey {
			if r := weakKeyReason(strings.TrimSpace(spec.SessionKey)); r != "" {
				return nil, fmt.Errorf("%w: %s: session key too weak (%s); make one with: head -c 32 /dev/urandom | base64", errAccounts, where, r)
			}
		}
		if a.Rate != 0 {
			if !(a.Rate > 0) || a.Rate > 1000 {
				return nil, fmt.Errorf("%w: %s: rate must be above 0 and at most 1000, got %v", errAccounts, where, a.Rate)
			}
			spec.Rate = a.Rate
		}
		if a.Burst != 0 {
			if a.Burst < 1 {
				return nil, fmt.Errorf("%w: %s: burst must be at least 1, got %d", errAccounts, where, a.Burst)
			}
			spec.Burst = a.Burst
		}
		if a.QQEndpoint != "" {
			u, err := url.Parse(a.QQEndpoint)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, fmt.Errorf("%w: %s: qq_endpoint %q: want a base URL such as http://127.0.0.1:8080", errAccounts, where, a.QQEndpoint)
			}
			spec.QQEndpoint = a.QQEndpoint
		}
		specs = append(specs, spec)
	}
	return specs, nil
}

// flagAccount is the one account of a bridge run without --accounts.
func flagAccount(cfg config) accountSpec {
	return accountSpec{Subjects: cfg.Subjects, SessionKey: cfg.SessionKey, Rate: cfg.Rate, Burst: cfg.Burst, QQEndpoint: cfg.QQEndpoint}
}

// account is one QQ account's components: its streams and buckets, QQ
// client, session manager, directory, media store, ingress, egress and API,
// its metrics, and (once started) what stops them.
type account struct {
	spec    accountSpec
	buckets bus.Buckets
	client  *qqclient.Client
	session *session.Manager
	dir     *directory.Directory
	media   *media.Media
	in      *ingress.Ingress
	out     *egress.Egress
	api     *api.API
	metrics *metrics.Metrics
	view    statusCache // what the status page shows of its buckets

	// Set by accountRun.start.
	stopWork, stopSession context.CancelFunc
	work, sess            sync.WaitGroup // its ingress, media and egress; its session and directory
}

// prefix is the account's subject prefix, which names it.
func (a *account) prefix() string { return a.spec.Subjects.Prefix() }

// wireAccount creates or updates one account's streams and buckets and
// makes its components on the bridge's NATS connection; the replica's id,
// the metrics set and the lease spread (nil for a single account) are
// shared. phase, when not nil, is told what the set-up waits for (the
// bridge's start).
func (b *Bridge) wireAccount(ctx context.Context, spec accountSpec, phase func(string)) (*account, error) {
	cfg := b.cfg
	log := b.baseLog.With().Str("prefix", spec.Subjects.Prefix()).Logger()
	egressLog := b.egressLog // egress names its prefix itself
	if phase == nil {
		phase = func(string) {}
	}
	a := &account{spec: spec, metrics: b.metrics.Account(spec.Subjects.Prefix())}
	s := spec.Subjects
	// Waits (logging "waiting for JetStream: <reason>") while JetStream is not
	// ready, as on a cluster that has just started.
	phase("setting up the streams and buckets")
	buckets, err := bus.Setup(ctx, b.js, bus.SetupConfig{
		Subjects: s, Replicas: cfg.Replicas, Streams: cfg.Streams, LeaderTTL: cfg.LeaderTTL, Log: log,
		OnWait: func(w bus.Wait) { phase("waiting for JetStream: " + w.Reason) },
	})
	if err != nil {
		return nil, setupError(err)
	}
	a.buckets = buckets

	opts := []qqclient.Option{qqclient.WithPollTimeout(cfg.PollTimeout), qqclient.WithQRPollInterval(cfg.QRPollInterval)}
	if spec.QQEndpoint != "" {
		opts = append(opts, qqclient.WithBaseURL(spec.QQEndpoint))
	}
	if a.client, err = qqclient.New(opts...); err != nil {
		return nil, fmt.Errorf("QQ client: %w", err)
	}
	var spread session.LeaseSpread
	if b.spread != nil {
		spread = b.spread
	}
	key := session.DeriveKey(spec.SessionKey) // nil without a key: the session package warns at each save
	a.session, err = session.New(session.Config{
		Client:    a.client,
		NC:        b.nc,
		JS:        b.js,
		KV:        buckets.Session,
		Subjects:  s,
		Key:       key,
		Log:       log.With().Str("component", "session").Logger(),
		Format:    cfg.Codec,
		QRFormat:  session.QRFormatCodec, // a schema.QR in the codec, as docs/events.md says
		LeaderTTL: cfg.LeaderTTL,

		StateDebounce: cfg.StateDebounce,
		LeaderKV:      buckets.Leader,
		ReplicaID:     b.replica,
		Metrics:       a.metrics,
		Spread:        spread,
	})
	if err != nil {
		return nil, err
	}
	a.dir = directory.New(a.client, log, directory.WithMetrics(a.metrics)) // it names itself (component)
	// Online first: the contacts load in the background (see
	// directory.RefreshInBackground for what events carry meanwhile).
	a.session.OnOnline(a.dir.RefreshInBackground)
	if a.media, err = newMedia(ctx, b.js, a.client, a.session.Sessions(), s, cfg.Codec, cfg.Replicas, cfg.Media, log); err != nil {
		return nil, err
	}
	journal, err := ingress.NewJournal(ctx, b.js, s, cfg.Replicas)
	if err != nil {
		return nil, err
	}
	if a.in, err = ingress.New(ingress.Config{
		Client:   a.client,
		Terms:    a.session.LeaderTerms(), // only the leader polls
		Dir:      a.dir,
		JS:       b.js,
		Subjects: s,
		Codec:    cfg.Codec,
		Log:      log,
		MinHold:  cfg.PollMinHold,
		// MaxPayload: the server's limit, known once connected.
		MaxPayload: int(b.nc.MaxPayload()),
		Media:      a.media, // the pictures of each message: fetched and stored apart
		Journal:    journal, // poll answers kept until published; a new leader replays a dead one's
		Metrics:    a.metrics,
	}); err != nil {
		return nil, err
	}
	// One pace per account across the replicas, in the SentKV bucket.
	pacer, err := pace.New(buckets.Sent, spec.Rate, spec.Burst)
	if err != nil {
		return nil, err
	}
	if a.out, err = egress.New(egress.Config{
		Client:   a.client,
		Sessions: a.session.Sessions(),
		Dir:      a.dir,
		JS:       b.js,
		SentKV:   buckets.Sent,
		Subjects: s,
		Codec:    cfg.Codec,
		Log:      egressLog,
		Rate:     spec.Rate,
		Burst:    spec.Burst,
		Pacer:    pacer,
		InFlight: cfg.InFlight,
		Metrics:  a.metrics,
	}); err != nil {
		return nil, err
	}
	if a.api, err = api.New(api.Config{
		NC:       b.nc,
		Sender:   a.out,
		Contacts: a.dir,
		Session:  a.session,
		Subjects: s,
		Codec:    cfg.Codec,
		Log:      egressLog,
		Files:    a.media,
		Version:  b.version.Module,
		Metadata: b.accountMetadata(ctx, a),
	}); err != nil {
		return nil, err
	}
	return a, nil
}

// accountMetadata is serviceMetadata for account a: its prefix and, when
// its session bucket knows it, its QQ number, so that the qq.api services of
// the accounts of one replica are told apart.
func (b *Bridge) accountMetadata(ctx context.Context, a *account) map[string]string {
	md := map[string]string{
		"version": b.version.Short(),
		"prefix":  a.spec.Subjects.Prefix(),
		"replica": b.replica,
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if e, err := a.buckets.Session.Get(ctx, schema.SessionKeyState); err == nil {
		var st schema.SessionState
		if b.cfg.Codec.Unmarshal(e.Value(), &st) == nil && st.Account != 0 {
			md["account"] = strconv.FormatInt(st.Account, 10)
		}
	}
	return md
}

// accountRun is the bridge's running accounts: Run starts each with start,
// and the accounts file watcher adds, stops and restarts accounts while the
// bridge runs. Every account's components run under contexts of its own,
// children of the run's, so that one account stops as the whole bridge does
// (stop) while the others keep running.
type accountRun struct {
	sessCtx context.Context // the sessions' and directories' context
	workCtx context.Context // ingress, egress and the API
	failed  func(what string, err error)
	refresh time.Duration
	log     zerolog.Logger
	timeout time.Duration // a stop's wait for the sends in flight (--shutdown-timeout)

	sessWG, workWG sync.WaitGroup // every account's goroutines, for the bridge's stop
	changes        sync.WaitGroup // stops and restarts under way (watcher)

	mu      sync.Mutex
	closed  bool            // the bridge stops: no account starts any more
	started []*account      // the accounts started and not stopped, for waitWork
	busy    map[string]bool // prefixes being stopped or restarted
}

// start runs a's components under contexts of its own; false when the
// bridge is stopping (nothing was started).
func (r *accountRun) start(a *account) bool {
	p := a.prefix()
	r.mu.Lock()
	defer r.mu.Unlock() // the WaitGroups are added to before close (then waited on)
	if r.closed {
		return false
	}
	r.started = append(r.started, a)
	workCtx, stopWork := context.WithCancel(r.workCtx)
	sessCtx, stopSession := context.WithCancel(r.sessCtx)
	a.stopWork, a.stopSession = stopWork, stopSession
	goIn := func(all, own *sync.WaitGroup, f func()) {
		all.Add(1)
		own.Add(1)
		go func() {
			defer all.Done()
			defer own.Done()
			f()
		}()
	}
	goIn(&r.sessWG, &a.sess, func() { r.failed("session "+p, a.session.Run(sessCtx)) })
	goIn(&r.sessWG, &a.sess, func() { a.dir.Run(sessCtx, r.refresh) })
	if _, err := a.api.Start(workCtx); err != nil {
		r.failed("API service "+p, err)
	}
	goIn(&r.workWG, &a.work, func() { r.failed("ingress "+p, a.in.Run(workCtx)) })
	goIn(&r.workWG, &a.work, func() { r.failed("media "+p, a.media.Run(workCtx)) })
	goIn(&r.workWG, &a.work, func() { r.failed("egress "+p, a.out.Run(workCtx)) })
	return true
}

// stop stops one started account as Run stops the bridge: polling stops,
// its sends in flight finish (egress finishes the part being sent, records
// it and hands the message back; an API send finishes and answers), at most
// the shutdown timeout, then its session manager stops — the leader
// publishes "stopped" and releases the lease at once, so that no replica
// waits for its TTL.
func (r *accountRun) stop(a *account) {
	log := r.log.With().Str("account_prefix", a.prefix()).Logger()
	a.stopWork()
	if !waitTimeout(func() { a.work.Wait(); a.api.Wait(); a.media.Wait() }, r.timeout) {
		log.Warn().Dur("timeout", r.timeout).Msg("sends still in flight at the shutdown timeout; they are recorded and retried by another bridge")
	}
	a.stopSession()
	if !waitTimeout(a.sess.Wait, 10*time.Second) {
		log.Warn().Msg("the session manager did not stop in time")
	}
	r.mu.Lock()
	r.started = slices.DeleteFunc(r.started, func(x *account) bool { return x == a })
	r.mu.Unlock()
}

// change runs f (a stop or a restart of the account p) in the background,
// unless p is being changed already; false then.
func (r *accountRun) change(p string, f func()) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.busy[p] {
		return false
	}
	if r.busy == nil {
		r.busy = map[string]bool{}
	}
	r.busy[p] = true
	r.changes.Add(1)
	go func() {
		defer r.changes.Done()
		defer func() {
			r.mu.Lock()
			delete(r.busy, p)
			r.mu.Unlock()
		}()
		f()
	}()
	return true
}

func (r *accountRun) isBusy(p string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.busy[p]
}

// close refuses every later start: the bridge stops.
func (r *accountRun) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
}

// waitWork waits for ingress, egress and the API requests of every account.
func (r *accountRun) waitWork() {
	r.workWG.Wait()
	r.mu.Lock()
	accts := append([]*account(nil), r.started...)
	r.mu.Unlock()
	for _, a := range accts {
		a.api.Wait()
		a.media.Wait()
	}
}

// watchAccounts reads the accounts file every AccountsReload and makes the
// running accounts what it lists (reconcile). A file that cannot be read or
// parsed changes nothing (logged once per distinct error).
func (b *Bridge) watchAccounts(ctx context.Context, run *accountRun) {
	path := b.cfg.AccountsFile
	var lastErr string
	t := time.NewTicker(b.cfg.AccountsReload)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		data, err := os.ReadFile(path)
		var specs []accountSpec
		if err == nil {
			specs, err = parseAccounts(data, b.cfg, os.LookupEnv, os.ReadFile)
		}
		if err != nil {
			if err.Error() != lastErr {
				b.log.Error().Err(err).Str("file", path).Msg("accounts file unreadable or invalid; running accounts unchanged")
			}
			lastErr = err.Error()
			continue
		}
		lastErr = ""
		b.reconcile(ctx, run, specs)
	}
}

// reconcile makes the running accounts those of specs:
//   - an account no longer listed is taken out of the probes, the status page
//     and the account list at once, stopped (stop: sends in flight finish or
//     are handed back, the lease is released), then its metrics are removed;
//   - an account whose settings changed (session key, rate, burst, QQ
//     endpoint) is restarted alone: the new components are made first, then
//     the old ones stop, then the new ones start (a new session key cannot
//     open the session saved under the old one: expect a QR login);
//   - a new account is made and started; one that cannot be is reported by
//     /readyz and tried again at the next look.
//
// The other accounts keep running throughout.
func (b *Bridge) reconcile(ctx context.Context, run *accountRun, specs []accountSpec) {
	listed := map[string]accountSpec{}
	for _, spec := range specs {
		listed[spec.Subjects.Prefix()] = spec
	}
	if b.spread != nil {
		b.spread.SetAccounts(len(specs))
	}
	running := map[string]bool{}
	for _, a := range b.accountList() {
		p := a.prefix()
		running[p] = true
		spec, ok := listed[p]
		switch {
		case !ok:
			run.change(p, func() {
				b.log.Info().Str("account_prefix", p).Msg("account removed from the accounts file; stopping it")
				b.dropAccount(a)
				run.stop(a)
				b.metrics.Remove(p)
				b.log.Info().Str("account_prefix", p).Msg("account stopped")
			})
		case spec != a.spec:
			if run.isBusy(p) {
				continue
			}
			// Made here, not in the background: wireAccount waits under ctx.
			next, err := b.wireAccount(ctx, spec, nil)
			if err != nil {
				b.noteAccountError(p, fmt.Errorf("new settings not applied (the account keeps running with its old ones): %w", err))
				continue
			}
			run.change(p, func() {
				b.log.Info().Str("account_prefix", p).Msg("account settings changed in the accounts file; restarting this account")
				run.stop(a)
				if !run.start(next) {
					return // the bridge stops
				}
				b.replaceAccount(a, next)
				b.log.Info().Str("account_prefix", p).Msg("account restarted with its new settings")
			})
		default:
			b.clearAccountError(p) // e.g. settings that could not be applied were put back
		}
	}
	for _, spec := range specs {
		p := spec.Subjects.Prefix()
		if running[p] || run.isBusy(p) || ctx.Err() != nil {
			continue
		}
		a, err := b.wireAccount(ctx, spec, nil)
		if err != nil {
			if ctx.Err() == nil {
				b.noteAccountError(p, fmt.Errorf("not started: %w", err))
			}
			continue
		}
		if !run.start(a) {
			return
		}
		b.addAccount(a, specs)
		b.log.Info().Str("account_prefix", p).Msg("account added from the accounts file")
	}
	b.forgetUnlisted(listed)
}

// accountList returns the accounts the bridge runs (or will run once Run
// starts), in the order of the accounts file.
func (b *Bridge) accountList() []*account {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*account(nil), b.accounts...)
}

// first returns the first account, nil if none runs.
func (b *Bridge) first() *account {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.accounts) == 0 {
		return nil
	}
	return b.accounts[0]
}

// addAccount lists a started account, in the order of specs.
func (b *Bridge) addAccount(a *account, specs []accountSpec) {
	order := map[string]int{}
	for i, spec := range specs {
		order[spec.Subjects.Prefix()] = i
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.accountErrs, a.prefix())
	b.accounts = append(b.accounts, a)
	slices.SortStableFunc(b.accounts, func(x, y *account) int { return order[x.prefix()] - order[y.prefix()] })
}

// dropAccount takes a out of the list (probes, status page).
func (b *Bridge) dropAccount(a *account) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.accounts = slices.DeleteFunc(b.accounts, func(x *account) bool { return x == a })
}

// replaceAccount puts next in old's place.
func (b *Bridge) replaceAccount(old, next *account) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.accountErrs, next.prefix())
	for i, x := range b.accounts {
		if x == old {
			b.accounts[i] = next
		}
	}
}

// noteAccountError remembers why an account listed in the file could not be
// started (or restarted), logging it when it is new.
func (b *Bridge) noteAccountError(p string, err error) {
	b.mu.Lock()
	last, seen := b.accountErrs[p]
	if b.accountErrs == nil {
		b.accountErrs = map[string]error{}
	}
	b.accountErrs[p] = err
	b.mu.Unlock()
	if !seen || last.Error() != err.Error() {
		b.log.Error().Err(err).Str("account_prefix", p).Msg("account from the accounts file")
	}
}

func (b *Bridge) clearAccountError(p string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.accountErrs, p)
}

// forgetUnlisted drops the errors (and the metrics) of accounts that never
// started and are no longer listed.
func (b *Bridge) forgetUnlisted(listed map[string]accountSpec) {
	b.mu.Lock()
	var gone []string
	for p := range b.accountErrs {
		if _, ok := listed[p]; !ok {
			gone = append(gone, p)
			delete(b.accountErrs, p)
		}
	}
	running := map[string]bool{}
	for _, a := range b.accounts {
		running[a.prefix()] = true
	}
	b.mu.Unlock()
	for _, p := range gone {
		if !running[p] {
			b.metrics.Remove(p)
		}
	}
}

// notStarted returns the accounts listed in the file that do not run, with
// why, sorted by prefix.
func (b *Bridge) notStarted() []accountError {
	b.mu.Lock()
	defer b.mu.Unlock()
	running := map[string]bool{}
	for _, a := range b.accounts {
		running[a.prefix()] = true
	}
	var out []accountError
	for p, err := range b.accountErrs {
		if !running[p] {
			out = append(out, accountError{prefix: p, err: err})
		}
	}
	slices.SortFunc(out, func(x, y accountError) int { return strings.Compare(x.prefix, y.prefix) })
	return out
}

type accountError struct {
	prefix string
	err    error
}
