package main

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/egress"
	"github.com/qqbridge/qqbridge/ingress"
	"github.com/qqbridge/qqbridge/schema"
	"github.com/qqbridge/qqbridge/session"
)

// config is everything wire needs to assemble a bridge. parseRunFlags fills it
// from the command line; tests build it directly (with short durations).
type config struct {
	NATSURL     string // "" = start an embedded nats-server with JetStream
	NATSCreds   string // a .creds file for --nats (optional)
	NATSNkey    string // a user nkey seed file for --nats (optional; not with NATSCreds)
	NATSTLSCA   string // PEM CA bundle the NATS server's certificate is checked against (optional)
	NATSTLSCert string // PEM client certificate for mutual TLS (with NATSTLSKey)
	NATSTLSKey  string // its private key
	NATSListen  string // the embedded server's host:port ("127.0.0.1:0" = any free port)
	DataDir     string // the embedded server's store (JetStream files)

	QQEndpoint string // one base URL for every QQ host (qqsim); "" = the real hosts

	Subjects schema.Subjects
	Codec    schema.Codec // inbound events and session messages

	AccountsFile   string        // --accounts: a JSON list of accounts (accounts.go); "" = the one account of the flags
	AccountsReload time.Duration // how often the accounts file is read again (no flag; tests shorten it)

	HTTPAddr string // the status page, /metrics, /healthz and /readyz; "" = no HTTP listener
	PProf    bool   // serve the Go profiler under /debug/pprof/ on HTTPAddr

	SessionKey string // encrypts the saved session in KV; "" = plaintext (logged as a warning)

	Rate     float64           // sends per second per account
	Burst    int               // sends allowed at once after a quiet spell
	Replicas int               // JetStream replicas of the streams and buckets
	Streams  bus.StreamOptions // stream limits and the queue's partitions (its Replicas is ignored: Replicas applies)
	InFlight int               // send requests this replica works at once per account (egress.Config.InFlight)

	ReplicaID string // names this replica (lease, status page, connection name); "" = host name and a random suffix

	QRPollInterval   time.Duration // how often ptqrlogin is asked while a QR is shown
	PollTimeout      time.Duration // client timeout of one poll2 (longer than the server's hold)
	PollMinHold      time.Duration // an empty poll answered sooner was not held: back off (no flag; tests shorten it)
	LeaderTTL        time.Duration // replica leadership lease
	StateDebounce    time.Duration // a reconnecting after online is held this long (no flag; negative: none)
	DirectoryRefresh time.Duration // how often contacts are reloaded
	ShutdownTimeout  time.Duration // how long a stop waits for in-flight sends

	LogLevel  zerolog.Level
	LogFormat string // auto, json, console

	Media mediaConfig // pictures and files (--media-*)
}

// maxInFlight bounds --out-in-flight.
const maxInFlight = 256

// defaultConfig is the configuration of `bridge run` with no flags and no
// environment.
func defaultConfig() config {
	s, _ := schema.NewSubjects(schema.DefaultPrefix) // the default prefix is valid
	return config{
		NATSListen: "127.0.0.1:4222",
		DataDir:    "qqbridge-data",
		Subjects:   s,
		Codec:      schema.JSON(),
		HTTPAddr:   "127.0.0.1:8081",
		Rate:       1,
		Burst:      3,
		Replicas:   1,
		Streams: bus.StreamOptions{
			InMaxAge: bus.DefaultInMaxAge, InMaxBytes: bus.DefaultInMaxBytes, InMaxMsgs: bus.DefaultInMaxMsgs,
			OutMaxAge: bus.DefaultOutMaxAge, OutMaxBytes: bus.DefaultOutMaxBytes, OutMaxMsgs: bus.DefaultOutMaxMsgs,
			ResultMaxAge: bus.DefaultResultMaxAge, ResultMaxBytes: bus.DefaultResultMaxBytes, ResultMaxMsgs: bus.DefaultResultMaxMsgs,
			OutPartitions: bus.DefaultOutPartitions,
		},
		InFlight:         egress.DefaultInFlight,
		QRPollInterval:   1500 * time.Millisecond,
		PollTimeout:      130 * time.Second,
		PollMinHold:      ingress.DefaultMinHold,
		LeaderTTL:        session.DefaultLeaderTTL,
		StateDebounce:    session.DefaultStateDebounce,
		DirectoryRefresh: 10 * time.Minute,
		ShutdownTimeout:  25 * time.Second,
		AccountsReload:   accountsReload,
		LogLevel:         zerolog.InfoLevel,
		LogFormat:        logAuto,
		Media:            defaultMediaConfig(),
	}
}

// formatCodec maps --format to a codec.
func formatCodec(s string) (schema.Codec, bool) {
	switch s {
	case "json":
		return schema.JSON(), true
	case "msgpack":
		return schema.Msgpack(), true
	}
	return nil, false
}

// formatName maps a codec back to its --format name.
func formatName(c schema.Codec) string {
	if c != nil && c.ContentType() == schema.ContentTypeMsgpack {
		return "msgpack"
	}
	return "json"
}

// parseRunFlags reads the flags (and their environment twins) of `bridge run`.
func (c *cli) parseRunFlags(args []string) (config, error) {
	cfg := defaultConfig()
	f := c.newFlagSet("run", "bridge run [flags]",
		"Bridges one SmartQQ account to NATS JetStream: polls (on the leader replica), publishes\n"+
			"events on <prefix>.in.>, sends what arrives on <prefix>.out.> and <prefix>.api.send.*,\n"+
			"and keeps the session state on <prefix>.session.state and in KV <prefix>_session.\n"+
			"Without --nats it starts an embedded nats-server with JetStream (store under --data-dir).\n"+
			"SIGINT/SIGTERM: stop polling, finish in-flight sends, drain NATS, exit 0.")
	fs := f.fs
	var prefix, format, level string
	fs.StringVar(&cfg.NATSURL, "nats", "", "NATS server `URL`s, comma-separated; empty: start an embedded nats-server with JetStream")
	fs.StringVar(&cfg.NATSCreds, "nats-creds", "", "NATS user credentials `file` (.creds) for --nats")
	fs.StringVar(&cfg.NATSNkey, "nats-nkey", "", "NATS user nkey seed `file` for --nats (instead of --nats-creds)")
	fs.StringVar(&cfg.NATSTLSCA, "nats-tls-ca", "", "PEM `file` of the CA that signed the NATS server's certificate (implies TLS)")
	fs.StringVar(&cfg.NATSTLSCert, "nats-tls-cert", "", "PEM client certificate `file` for mutual TLS with NATS (with --nats-tls-key)")
	fs.StringVar(&cfg.NATSTLSKey, "nats-tls-key", "", "PEM private key `file` of --nats-tls-cert")
	fs.StringVar(&cfg.NATSListen, "nats-listen", cfg.NATSListen, "`host:port` of the embedded nats-server (only without --nats; port 0: any free port)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "`directory` of the embedded nats-server's JetStream store (only without --nats)")
	fs.StringVar(&cfg.QQEndpoint, "qq-endpoint", "", "one base `URL` for every QQ host, e.g. a qqsim at http://127.0.0.1:8080; empty: the real SmartQQ hosts")
	fs.StringVar(&prefix, "prefix", schema.DefaultPrefix, "subject `prefix` (one per QQ account); also names the streams and buckets")
	fs.StringVar(&cfg.AccountsFile, "accounts", "", "JSON `file` listing the accounts to serve (prefix, session key reference, rate; see docs/operations.md); read again every 5s, so that accounts added, removed or changed there apply without a restart; empty: the one account of --prefix")
	fs.StringVar(&format, "format", "json", "encoding of published events and session messages: json or msgpack")
	fs.StringVar(&cfg.HTTPAddr, "http", cfg.HTTPAddr, "`host:port` of the status page /, /metrics, /healthz and /readyz; empty: no HTTP listener")
	fs.BoolVar(&cfg.PProf, "pprof", false, "also serve the Go profiler under /debug/pprof/ on --http (CPU, heap, goroutines; for the operator only)")
	fs.StringVar(&cfg.SessionKey, "session-key", "", "`secret` that encrypts the saved session in the KV bucket (AES-GCM); empty: stored in plaintext")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "sends per second per account (QQ drops messages sent faster than about 1/s)")
	fs.IntVar(&cfg.Burst, "burst", cfg.Burst, "sends allowed at once after a quiet spell")
	fs.IntVar(&cfg.Replicas, "replicas", cfg.Replicas, "JetStream replicas of the bridge's streams and KV buckets (1, 3 or 5 on a cluster)")
	fs.StringVar(&cfg.ReplicaID, "replica-id", "", "`name` of this replica in the lease, the status page, the API metadata and the NATS connection name; empty: host name and a random suffix")
	fs.DurationVar(&cfg.Streams.InMaxAge, "in-max-age", cfg.Streams.InMaxAge, "how long inbound events are kept in the <PREFIX>_IN stream")
	fs.Var(sizeValue{&cfg.Streams.InMaxBytes}, "in-max-bytes", "`size` limit of the <PREFIX>_IN stream (e.g. 1GiB, 500MB; -1: none); the oldest events go first")
	fs.Int64Var(&cfg.Streams.InMaxMsgs, "in-max-msgs", cfg.Streams.InMaxMsgs, "message limit of the <PREFIX>_IN stream (-1: none); the oldest events go first")
	fs.DurationVar(&cfg.Streams.OutMaxAge, "out-max-age", cfg.Streams.OutMaxAge, "how long a send request may wait in the <PREFIX>_OUT work queue before it is dropped unsent")
	fs.Var(sizeValue{&cfg.Streams.OutMaxBytes}, "out-max-bytes", "`size` limit of the <PREFIX>_OUT work queue (-1: none); when full, new requests are refused")
	fs.Int64Var(&cfg.Streams.OutMaxMsgs, "out-max-msgs", cfg.Streams.OutMaxMsgs, "message limit of the <PREFIX>_OUT work queue (-1: none); when full, new requests are refused")
	fs.IntVar(&cfg.Streams.OutPartitions, "out-partitions", cfg.Streams.OutPartitions, fmt.Sprintf("partitions of the target subjects <prefix>.out.<kind>.<key> in the <PREFIX>_OUT work queue, each worked in order, all at once (1 to %d; -1: none, target subjects are then worked one at a time with <prefix>.out.<kind>); every replica must use the same", bus.MaxOutPartitions))
	fs.IntVar(&cfg.InFlight, "out-in-flight", cfg.InFlight, fmt.Sprintf("send requests this replica works at once, per account, across the partitions (1 to %d); each replica adds its own", maxInFlight))
	fs.DurationVar(&cfg.Streams.ResultMaxAge, "result-max-age", cfg.Streams.ResultMaxAge, "how long send results are kept in the <PREFIX>_RESULT stream")
	fs.Var(sizeValue{&cfg.Streams.ResultMaxBytes}, "result-max-bytes", "`size` limit of the <PREFIX>_RESULT stream (-1: none); the oldest results go first")
	fs.Int64Var(&cfg.Streams.ResultMaxMsgs, "result-max-msgs", cfg.Streams.ResultMaxMsgs, "message limit of the <PREFIX>_RESULT stream (-1: none); the oldest results go first")
	fs.DurationVar(&cfg.QRPollInterval, "qr-poll-interval", cfg.QRPollInterval, "how often the QR login status is asked while a QR code is shown")
	fs.DurationVar(&cfg.PollTimeout, "poll-timeout", cfg.PollTimeout, "client timeout of one long poll (must exceed the server's hold)")
	fs.DurationVar(&cfg.LeaderTTL, "leader-ttl", cfg.LeaderTTL, "replica leadership lease: a new leader takes over this long after the old one vanished")
	fs.DurationVar(&cfg.DirectoryRefresh, "directory-refresh", cfg.DirectoryRefresh, "how often friends, groups and discussions are reloaded")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long a stop waits for an in-flight send")
	fs.StringVar(&level, "log-level", "info", "log `level`: trace, debug, info, warn, error or disabled")
	fs.StringVar(&cfg.LogFormat, "log-format", logAuto, "log format: auto (console on a terminal, else json), json or console")
	addMediaFlags(fs, &cfg.Media)
	pos, err := f.parse(args)
	if err != nil {
		return cfg, err
	}
	if err := f.noArgs(pos); err != nil {
		return cfg, err
	}
	if err := f.checkMediaFlags(cfg.Media); err != nil {
		return cfg, err
	}
	if cfg.NATSURL != "" {
		if err := f.checkNATSURL("nats", cfg.NATSURL); err != nil {
			return cfg, err
		}
	} else {
		for _, n := range []struct{ name, v string }{
			{"nats-creds", cfg.NATSCreds}, {"nats-nkey", cfg.NATSNkey}, {"nats-tls-ca", cfg.NATSTLSCA},
			{"nats-tls-cert", cfg.NATSTLSCert}, {"nats-tls-key", cfg.NATSTLSKey},
		} {
			if n.v != "" {
				return cfg, f.badf(n.name, "only used with --nats (the embedded server listens on loopback without credentials or TLS)")
			}
		}
		if err := f.checkHostPort("nats-listen", cfg.NATSListen); err != nil {
			return cfg, err
		}
		if cfg.DataDir == "" {
			return cfg, f.badf("data-dir", "empty: the embedded nats-server needs a directory for its store")
		}
	}
	if err := f.checkNATSFiles(&cfg); err != nil {
		return cfg, err
	}
	if err := f.checkSessionKey("session-key", &cfg.SessionKey); err != nil {
		return cfg, err
	}
	if cfg.QQEndpoint != "" {
		u, err := url.Parse(cfg.QQEndpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cfg, f.badf("qq-endpoint", "%q: want a base URL such as http://127.0.0.1:8080", cfg.QQEndpoint)
		}
	}
	if cfg.Subjects, err = schema.NewSubjects(prefix); err != nil || prefix == "" {
		return cfg, f.badf("prefix", "%q: one or more tokens separated by '.', each of A-Z, a-z, 0-9, '_' and '-'", prefix)
	}
	var ok bool
	if cfg.Codec, ok = formatCodec(format); !ok {
		return cfg, f.badf("format", "%q: want json or msgpack", format)
	}
	if cfg.HTTPAddr != "" {
		if err := f.checkHostPort("http", cfg.HTTPAddr); err != nil {
			return cfg, err
		}
	} else if cfg.PProf {
		return cfg, f.badf("pprof", "needs --http: the profiler is served on its listener")
	}
	if !(cfg.Rate > 0) || cfg.Rate > 1000 {
		return cfg, f.badf("rate", "must be above 0 and at most 1000 sends per second, got %v", cfg.Rate)
	}
	if cfg.Burst < 1 {
		return cfg, f.badf("burst", "must be at least 1, got %d", cfg.Burst)
	}
	if p := cfg.Streams.OutPartitions; p != -1 && (p < 1 || p > bus.MaxOutPartitions) {
		return cfg, f.badf("out-partitions", "must be 1 to %d, or -1 for none, got %d", bus.MaxOutPartitions, p)
	}
	if cfg.InFlight < 1 || cfg.InFlight > maxInFlight {
		return cfg, f.badf("out-in-flight", "must be 1 to %d, got %d", maxInFlight, cfg.InFlight)
	}
	if cfg.Replicas < 1 || cfg.Replicas > 5 {
		return cfg, f.badf("replicas", "must be 1 to 5, got %d", cfg.Replicas)
	}
	if cfg.NATSURL == "" && cfg.Replicas != 1 {
		return cfg, f.badf("replicas", "the embedded nats-server is a single server: replicas must be 1, got %d", cfg.Replicas)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"qr-poll-interval", cfg.QRPollInterval}, {"poll-timeout", cfg.PollTimeout}, {"leader-ttl", cfg.LeaderTTL},
		{"directory-refresh", cfg.DirectoryRefresh}, {"shutdown-timeout", cfg.ShutdownTimeout},
		{"in-max-age", cfg.Streams.InMaxAge}, {"out-max-age", cfg.Streams.OutMaxAge}, {"result-max-age", cfg.Streams.ResultMaxAge},
	} {
		if err := f.checkPositive(d.name, d.v); err != nil {
			return cfg, err
		}
	}
	if cfg.LeaderTTL < time.Second {
		return cfg, f.badf("leader-ttl", "must be at least 1s (the lease bucket's TTL), got %v", cfg.LeaderTTL)
	}
	if cfg.LeaderTTL > 10*time.Minute {
		return cfg, f.badf("leader-ttl", "must be at most 10m (a failover waits this long), got %v", cfg.LeaderTTL)
	}
	for _, n := range []struct {
		name string
		v    int64
	}{
		{"in-max-bytes", cfg.Streams.InMaxBytes}, {"in-max-msgs", cfg.Streams.InMaxMsgs},
		{"out-max-bytes", cfg.Streams.OutMaxBytes}, {"out-max-msgs", cfg.Streams.OutMaxMsgs},
		{"result-max-bytes", cfg.Streams.ResultMaxBytes}, {"result-max-msgs", cfg.Streams.ResultMaxMsgs},
	} {
		if n.v == 0 || n.v < -1 {
			return cfg, f.badf(n.name, "must be positive, or -1 for no limit, got %d", n.v)
		}
	}
	if b := cfg.Streams.InMaxBytes; b > 0 && b < 1<<20 {
		return cfg, f.badf("in-max-bytes", "at least 1MiB, got %d bytes", b)
	}
	cfg.ReplicaID = strings.TrimSpace(cfg.ReplicaID)
	if strings.ContainsAny(cfg.ReplicaID, " \t\r\n") || len(cfg.ReplicaID) > 128 {
		return cfg, f.badf("replica-id", "%q: at most 128 characters, no white space", cfg.ReplicaID)
	}
	if cfg.LogLevel, err = parseLogLevel(level); err != nil {
		return cfg, f.badf("log-level", "%v", err)
	}
	if err := checkLogFormat(cfg.LogFormat); err != nil {
		return cfg, f.badf("log-format", "%v", err)
	}
	return cfg, nil
}
