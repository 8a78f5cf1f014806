package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
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
	"github.com/qqbridge/qqbridge/pace"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
	"github.com/qqbridge/qqbridge/session"
)

// accountsReload is how often the accounts file is looked at for changes.
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
// client, session manager, directory, media store, ingress, egress and API.
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
}

// wireAccount creates or updates one account's streams and buckets and
// makes its components on the bridge's NATS connection; the replica's id,
// metrics and lease spread (nil for a single account) are shared.
func (b *Bridge) wireAccount(ctx context.Context, spec accountSpec, egressLog zerolog.Logger) (*account, error) {
	cfg := b.cfg
	log := b.log.With().Str("prefix", spec.Subjects.Prefix()).Logger()
	a := &account{spec: spec}
	s := spec.Subjects
	// Waits (logging "waiting for JetStream: <reason>") while JetStream is not
	// ready, as on a cluster that has just started.
	b.setPhase("setting up the streams and buckets")
	buckets, err := bus.Setup(ctx, b.js, bus.SetupConfig{
		Subjects: s, Replicas: cfg.Replicas, Streams: cfg.Streams, LeaderTTL: cfg.LeaderTTL, Log: log,
		OnWait: func(w bus.Wait) { b.setPhase("waiting for JetStream: " + w.Reason) },
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
		Metrics:       b.metrics,
		Spread:        spread,
	})
	if err != nil {
		return nil, err
	}
	a.dir = directory.New(a.client, log, directory.WithMetrics(b.metrics)) // it names itself (component)
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
		Metrics:    b.metrics,
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
		Metrics:  b.metrics,
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
// and the accounts file watcher adds the new ones while the bridge runs.
type accountRun struct {
	mu       sync.Mutex
	accounts []*account
	sessCtx  context.Context // the sessions' and directories' context
	workCtx  context.Context // ingress, egress and the API
	sessWG   sync.WaitGroup
	workWG   sync.WaitGroup
	failed   func(what string, err error)
	refresh  time.Duration
}

// start runs a's components under the run's contexts.
func (r *accountRun) start(a *account) {
	p := a.spec.Subjects.Prefix()
	r.mu.Lock()
	r.accounts = append(r.accounts, a)
	r.mu.Unlock()
	r.sessWG.Go(func() { r.failed("session "+p, a.session.Run(r.sessCtx)) })
	r.sessWG.Go(func() { a.dir.Run(r.sessCtx, r.refresh) })
	if _, err := a.api.Start(r.workCtx); err != nil {
		r.failed("API service "+p, err)
	}
	r.workWG.Go(func() { r.failed("ingress "+p, a.in.Run(r.workCtx)) })
	r.workWG.Go(func() { r.failed("media "+p, a.media.Run(r.workCtx)) })
	r.workWG.Go(func() { r.failed("egress "+p, a.out.Run(r.workCtx)) })
}

// waitWork waits for ingress, egress and the API requests of every account.
func (r *accountRun) waitWork() {
	r.workWG.Wait()
	r.mu.Lock()
	accts := append([]*account(nil), r.accounts...)
	r.mu.Unlock()
	for _, a := range accts {
		a.api.Wait()
		a.media.Wait()
	}
}

// watchAccounts looks at the accounts file every accountsReload and starts
// the accounts added to it (the others keep running); an account removed
// from the file is logged and keeps running until the next restart.
func (b *Bridge) watchAccounts(ctx context.Context, run *accountRun) {
	path := b.cfg.AccountsFile
	known := map[string]bool{}
	for _, a := range b.accounts {
		known[a.spec.Subjects.Prefix()] = true
	}
	var last []byte
	if data, err := os.ReadFile(path); err == nil {
		last = data
	}
	t := time.NewTicker(accountsReload)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		data, err := os.ReadFile(path)
		if err != nil || bytes.Equal(data, last) {
			continue
		}
		last = data
		specs, err := parseAccounts(data, b.cfg, os.LookupEnv, os.ReadFile)
		if err != nil {
			b.log.Error().Err(err).Str("file", path).Msg("accounts file changed but is invalid; running accounts unchanged")
			continue
		}
		listed := map[string]bool{}
		for _, spec := range specs {
			p := spec.Subjects.Prefix()
			listed[p] = true
			if known[p] {
				continue
			}
			a, err := b.wireAccount(ctx, spec, b.log)
			if err != nil {
				b.log.Error().Err(err).Str("account_prefix", p).Msg("new account not started")
				continue
			}
			known[p] = true
			if b.spread != nil {
				b.spread.SetAccounts(len(specs))
			}
			run.start(a)
			b.log.Info().Str("account_prefix", p).Msg("account added from the accounts file")
		}
		for p := range known {
			if !listed[p] {
				b.log.Warn().Str("account_prefix", p).Msg("account removed from the accounts file; it keeps running until the bridge restarts")
			}
		}
	}
}
