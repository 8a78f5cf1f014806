package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/egress"
	"github.com/qqbridge/qqbridge/schema"
)

// testCLI returns a cli whose environment is env and whose output is captured.
func testCLI(env map[string]string) (*cli, *bytes.Buffer, *bytes.Buffer) {
	var stdout, stderr bytes.Buffer
	return &cli{
		stdout: &stdout,
		stderr: &stderr,
		lookupEnv: func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		},
	}, &stdout, &stderr
}

func TestEnvName(t *testing.T) {
	for flag, want := range map[string]string{
		"nats":             "QQBRIDGE_NATS",
		"qq-endpoint":      "QQBRIDGE_QQ_ENDPOINT",
		"qr-poll-interval": "QQBRIDGE_QR_POLL_INTERVAL",
		"session-key":      "QQBRIDGE_SESSION_KEY",
	} {
		if got := envName(flag); got != want {
			t.Errorf("envName(%q) = %q, want %q", flag, got, want)
		}
	}
}

// goodKey is a session key strong enough for --session-key.
const goodKey = "q8V3n1Zr7TkYw2Lh5Gd0Xp9Bs6Mc4FjA"

func TestParseRunFlags(t *testing.T) {
	creds := writeCreds(t)
	seed, _ := writeNkeySeed(t)
	pki := newTestPKI(t)
	missing := filepath.Join(t.TempDir(), "nonexistent")
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string // substring of the usage error; "" = success
		check   func(t *testing.T, cfg config)
	}{
		{
			name: "defaults",
			check: func(t *testing.T, cfg config) {
				def := defaultConfig()
				if cfg.NATSURL != "" || cfg.NATSListen != "127.0.0.1:4222" || cfg.HTTPAddr != "127.0.0.1:8081" ||
					cfg.Subjects.Prefix() != "qq" || cfg.Codec.ContentType() != schema.ContentTypeJSON ||
					cfg.Rate != 1 || cfg.Burst != 3 || cfg.Replicas != 1 || cfg.LogLevel != zerolog.InfoLevel ||
					cfg.DataDir != def.DataDir || cfg.QQEndpoint != "" || cfg.SessionKey != "" || cfg.PProf {
					t.Errorf("defaults: %+v", cfg)
				}
			},
		},
		{
			name: "every flag",
			args: []string{"--nats", "nats://a:4222,nats://b:4222", "--nats-creds", creds, "--qq-endpoint", "http://127.0.0.1:18080",
				"--prefix", "acct1", "--format", "msgpack", "--http", "0.0.0.0:9090", "--session-key", goodKey, "--rate", "2.5", "--burst", "5",
				"--replicas", "3", "--qr-poll-interval", "50ms", "--poll-timeout", "5s", "--leader-ttl", "3s", "--directory-refresh", "1m",
				"--shutdown-timeout", "9s", "--log-level", "debug", "--log-format", "json",
				"--nats-tls-ca", pki.CA, "--nats-tls-cert", pki.ClientCert, "--nats-tls-key", pki.ClientKey, "--replica-id", "pod-0",
				"--in-max-bytes", "2GiB", "--in-max-msgs", "5000", "--in-max-age", "48h", "--out-max-bytes", "10MB", "--out-max-msgs", "-1",
				"--out-max-age", "1h", "--result-max-bytes", "-1", "--result-max-msgs", "77", "--result-max-age", "2h",
				"--out-partitions", "16", "--out-in-flight", "7"},
			check: func(t *testing.T, cfg config) {
				if cfg.NATSURL != "nats://a:4222,nats://b:4222" || cfg.NATSCreds != creds || cfg.QQEndpoint != "http://127.0.0.1:18080" ||
					cfg.Subjects.Prefix() != "acct1" || cfg.Codec.ContentType() != schema.ContentTypeMsgpack || cfg.HTTPAddr != "0.0.0.0:9090" ||
					cfg.SessionKey != goodKey || cfg.Rate != 2.5 || cfg.Burst != 5 || cfg.Replicas != 3 || cfg.QRPollInterval != 50*time.Millisecond ||
					cfg.PollTimeout != 5*time.Second || cfg.LeaderTTL != 3*time.Second || cfg.DirectoryRefresh != time.Minute ||
					cfg.ShutdownTimeout != 9*time.Second || cfg.LogLevel != zerolog.DebugLevel || cfg.LogFormat != logJSON {
					t.Errorf("got %+v", cfg)
				}
				so := cfg.Streams
				if cfg.NATSTLSCA != pki.CA || cfg.NATSTLSCert != pki.ClientCert || cfg.NATSTLSKey != pki.ClientKey || cfg.ReplicaID != "pod-0" ||
					so.InMaxBytes != 2<<30 || so.InMaxMsgs != 5000 || so.InMaxAge != 48*time.Hour || so.OutMaxBytes != 10e6 || so.OutMaxMsgs != -1 ||
					so.OutMaxAge != time.Hour || so.ResultMaxBytes != -1 || so.ResultMaxMsgs != 77 || so.ResultMaxAge != 2*time.Hour ||
					so.OutPartitions != 16 || cfg.InFlight != 7 {
					t.Errorf("got %+v", cfg)
				}
			},
		},
		{
			// The key is judged without the white space but used as given, so
			// that the sessions it sealed still open.
			name: "nkey and a key with spaces around",
			args: []string{"--nats", "tls://n:4222", "--nats-nkey", seed, "--session-key", "  " + goodKey + "\n"},
			check: func(t *testing.T, cfg config) {
				if cfg.NATSNkey != seed || cfg.SessionKey != "  "+goodKey+"\n" {
					t.Errorf("nkey %q, key kept as given %v", cfg.NATSNkey, cfg.SessionKey == "  "+goodKey+"\n")
				}
			},
		},
		{
			name: "stream limit defaults",
			check: func(t *testing.T, cfg config) {
				so := cfg.Streams
				if so.InMaxBytes != bus.DefaultInMaxBytes || so.OutMaxMsgs != bus.DefaultOutMaxMsgs || so.OutMaxAge != bus.DefaultOutMaxAge ||
					so.ResultMaxBytes != bus.DefaultResultMaxBytes || so.InMaxAge != bus.DefaultInMaxAge ||
					so.OutPartitions != bus.DefaultOutPartitions || cfg.InFlight != egress.DefaultInFlight {
					t.Errorf("streams %+v", so)
				}
			},
		},
		{
			name: "env twins",
			env: map[string]string{"QQBRIDGE_NATS": "nats://n:4222", "QQBRIDGE_PREFIX": "acct2", "QQBRIDGE_SESSION_KEY": goodKey,
				"QQBRIDGE_RATE": "0.5", "QQBRIDGE_QR_POLL_INTERVAL": "2s", "QQBRIDGE_HTTP": ""},
			check: func(t *testing.T, cfg config) {
				if cfg.NATSURL != "nats://n:4222" || cfg.Subjects.Prefix() != "acct2" || cfg.SessionKey != goodKey ||
					cfg.Rate != 0.5 || cfg.QRPollInterval != 2*time.Second || cfg.HTTPAddr != "" {
					t.Errorf("got %+v", cfg)
				}
			},
		},
		{
			name: "pprof",
			args: []string{"--pprof"},
			check: func(t *testing.T, cfg config) {
				if !cfg.PProf {
					t.Error("--pprof not set")
				}
			},
		},
		{
			name: "pprof from env",
			env:  map[string]string{"QQBRIDGE_PPROF": "true"},
			check: func(t *testing.T, cfg config) {
				if !cfg.PProf {
					t.Error("QQBRIDGE_PPROF=true did not set --pprof")
				}
			},
		},
		{
			name: "pprof off by flag over env",
			args: []string{"--pprof=false"},
			env:  map[string]string{"QQBRIDGE_PPROF": "1"},
			check: func(t *testing.T, cfg config) {
				if cfg.PProf {
					t.Error("--pprof=false lost to its twin")
				}
			},
		},
		{
			name: "flag wins over env",
			args: []string{"--prefix", "fromflag", "--rate=3"},
			env:  map[string]string{"QQBRIDGE_PREFIX": "fromenv", "QQBRIDGE_RATE": "not a number"},
			check: func(t *testing.T, cfg config) {
				if cfg.Subjects.Prefix() != "fromflag" || cfg.Rate != 3 {
					t.Errorf("prefix %q rate %v", cfg.Subjects.Prefix(), cfg.Rate)
				}
			},
		},
		{name: "unknown flag", args: []string{"--nope"}, wantErr: "--nope"},
		{name: "positional argument", args: []string{"extra"}, wantErr: `unexpected argument "extra"`},
		{name: "flag without value", args: []string{"--nats"}, wantErr: "--nats"},
		{name: "rate not a number", args: []string{"--rate", "fast"}, wantErr: "--rate"},
		{name: "rate zero", args: []string{"--rate", "0"}, wantErr: "--rate"},
		{name: "rate negative", args: []string{"--rate=-1"}, wantErr: "--rate"},
		{name: "burst zero", args: []string{"--burst", "0"}, wantErr: "--burst"},
		{name: "replicas six", args: []string{"--nats", "nats://x:4222", "--replicas", "6"}, wantErr: "--replicas"},
		{name: "replicas on embedded", args: []string{"--replicas", "3"}, wantErr: "--replicas"},
		{name: "bad format", args: []string{"--format", "xml"}, wantErr: "--format"},
		{name: "bad format from env", env: map[string]string{"QQBRIDGE_FORMAT": "xml"}, wantErr: "--format (from QQBRIDGE_FORMAT)"},
		{name: "bad env value for typed flag", env: map[string]string{"QQBRIDGE_BURST": "many"}, wantErr: "QQBRIDGE_BURST (the twin of --burst)"},
		{name: "bad prefix", args: []string{"--prefix", "qq.*"}, wantErr: "--prefix"},
		{name: "empty prefix", args: []string{"--prefix", ""}, wantErr: "--prefix"},
		{name: "bad nats url", args: []string{"--nats", "localhost"}, wantErr: "--nats"},
		{name: "bad nats scheme", args: []string{"--nats", "http://x:4222"}, wantErr: "--nats"},
		{name: "creds without nats", args: []string{"--nats-creds", "/x.creds"}, wantErr: "--nats-creds"},
		{name: "bad nats-listen", args: []string{"--nats-listen", "4222"}, wantErr: "--nats-listen"},
		{name: "empty data dir", args: []string{"--data-dir", ""}, wantErr: "--data-dir"},
		{name: "bad qq endpoint", args: []string{"--qq-endpoint", "127.0.0.1:8080"}, wantErr: "--qq-endpoint"},
		{name: "bad http", args: []string{"--http", "8081"}, wantErr: "--http"},
		{name: "pprof without http", args: []string{"--pprof", "--http", ""}, wantErr: "--pprof: needs --http"},
		{name: "pprof bad twin", env: map[string]string{"QQBRIDGE_PPROF": "maybe"}, wantErr: "QQBRIDGE_PPROF (the twin of --pprof)"},
		{name: "bad duration", args: []string{"--leader-ttl", "soon"}, wantErr: "--leader-ttl"},
		{name: "zero duration", args: []string{"--shutdown-timeout", "0s"}, wantErr: "--shutdown-timeout"},
		{name: "bad log level", args: []string{"--log-level", "loud"}, wantErr: "--log-level"},
		{name: "bad log format", args: []string{"--log-format", "xml"}, wantErr: "--log-format"},
		{name: "leader ttl 1ms", args: []string{"--leader-ttl", "1ms"}, wantErr: "--leader-ttl: must be at least 1s"},
		{name: "leader ttl an hour", args: []string{"--leader-ttl", "1h"}, wantErr: "--leader-ttl"},
		{name: "creds missing", args: []string{"--nats", "nats://n:4222", "--nats-creds", missing}, wantErr: "--nats-creds: " + missing + ": no such file"},
		{name: "creds not creds", args: []string{"--nats", "nats://n:4222", "--nats-creds", notPEM}, wantErr: "not a NATS credentials file"},
		{name: "nkey missing", args: []string{"--nats", "nats://n:4222", "--nats-nkey", missing}, wantErr: "--nats-nkey: " + missing},
		{name: "nkey not a seed", args: []string{"--nats", "nats://n:4222", "--nats-nkey", notPEM}, wantErr: "--nats-nkey: " + notPEM + ": not a user nkey seed"},
		{name: "creds and nkey", args: []string{"--nats", "nats://n:4222", "--nats-creds", creds, "--nats-nkey", seed}, wantErr: "not both"},
		{name: "nkey without nats", args: []string{"--nats-nkey", seed}, wantErr: "--nats-nkey: only used with --nats"},
		{name: "tls ca missing", args: []string{"--nats", "tls://n:4222", "--nats-tls-ca", missing}, wantErr: "--nats-tls-ca"},
		{name: "tls ca not PEM", args: []string{"--nats", "tls://n:4222", "--nats-tls-ca", notPEM}, wantErr: "--nats-tls-ca: " + notPEM + ": no PEM certificate"},
		{name: "tls cert without key", args: []string{"--nats", "tls://n:4222", "--nats-tls-cert", pki.ClientCert}, wantErr: "--nats-tls-key: required"},
		{name: "tls key without cert", args: []string{"--nats", "tls://n:4222", "--nats-tls-key", pki.ClientKey}, wantErr: "--nats-tls-cert: required"},
		{name: "tls cert with another key", args: []string{"--nats", "tls://n:4222", "--nats-tls-cert", pki.ClientCert, "--nats-tls-key", pki.ServerKey}, wantErr: "--nats-tls-cert"},
		{name: "tls without nats", args: []string{"--nats-tls-ca", pki.CA}, wantErr: "--nats-tls-ca: only used with --nats"},
		{name: "size not a size", args: []string{"--in-max-bytes", "big"}, wantErr: "--in-max-bytes"},
		{name: "size zero", args: []string{"--out-max-bytes", "0"}, wantErr: "--out-max-bytes"},
		{name: "msgs zero", args: []string{"--result-max-msgs", "0"}, wantErr: "--result-max-msgs: must be positive"},
		{name: "msgs below -1", args: []string{"--in-max-msgs", "-5"}, wantErr: "--in-max-msgs"},
		{name: "in bytes tiny", args: []string{"--in-max-bytes", "1KiB"}, wantErr: "--in-max-bytes: at least 1MiB"},
		{name: "out age zero", args: []string{"--out-max-age", "0s"}, wantErr: "--out-max-age"},
		{name: "partitions zero", args: []string{"--out-partitions", "0"}, wantErr: "--out-partitions: must be 1 to 256, or -1 for none, got 0"},
		{name: "partitions too many", args: []string{"--out-partitions", "257"}, wantErr: "--out-partitions: must be 1 to 256"},
		{name: "partitions below -1", env: map[string]string{"QQBRIDGE_OUT_PARTITIONS": "-2"}, wantErr: "--out-partitions (from QQBRIDGE_OUT_PARTITIONS): must be 1 to 256"},
		{name: "in flight zero", args: []string{"--out-in-flight", "0"}, wantErr: "--out-in-flight: must be 1 to 256, got 0"},
		{name: "in flight too many", args: []string{"--out-in-flight", "1000"}, wantErr: "--out-in-flight: must be 1 to 256, got 1000"},
		{name: "replica id with space", args: []string{"--replica-id", "a b"}, wantErr: "--replica-id"},
		{name: "key short", args: []string{"--session-key", "k"}, wantErr: "--session-key: too weak (1 characters, want at least 32); make one with: head -c 32 /dev/urandom | base64"},
		{name: "key placeholder", args: []string{"--session-key", "please-CHANGE-ME-before-production-use"}, wantErr: `too weak (it contains "change-me"`},
		{name: "key secret", args: []string{"--session-key", "my-super-secret-session-key-0123456789"}, wantErr: `"secret"`},
		{name: "key xxxx", args: []string{"--session-key", "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"}, wantErr: `"xxxx"`},
		{name: "key few bytes", args: []string{"--session-key", "abcabcabcabcabcabcabcabcabcabcabcabc"}, wantErr: "only 3 distinct characters"},
		{name: "key weak from env", env: map[string]string{"QQBRIDGE_SESSION_KEY": "your-key-here-your-key-here-your-key"}, wantErr: "--session-key (from QQBRIDGE_SESSION_KEY): too weak"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, _ := testCLI(tt.env)
			cfg, err := c.parseRunFlags(tt.args)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				tt.check(t, cfg)
				return
			}
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Fatalf("error %v is not a usage error", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not name %q", err, tt.wantErr)
			}
			if got := exitCode(err, &bytes.Buffer{}); got != exitUsage {
				t.Errorf("exit code %d, want %d", got, exitUsage)
			}
			key := tt.env["QQBRIDGE_SESSION_KEY"]
			for i, a := range tt.args {
				if a == "--session-key" && i+1 < len(tt.args) {
					key = tt.args[i+1]
				}
			}
			if len(key) > 4 && strings.Contains(err.Error(), key) {
				t.Errorf("the error shows the session key: %q", err)
			}
		})
	}
}

func TestParseSendFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantErr  string
		wantKind schema.Kind
		wantTo   schema.Target
		wantText string
	}{
		{name: "group", args: []string{"--group", "987654", "hello there"}, wantKind: schema.KindGroup, wantTo: schema.Target{Group: 987654}, wantText: "hello there"},
		{name: "text before flags", args: []string{"hello", "--friend", "123456"}, wantKind: schema.KindFriend, wantTo: schema.Target{QQ: 123456}, wantText: "hello"},
		{name: "words joined", args: []string{"--friend", "123456", "hello", "world"}, wantKind: schema.KindFriend, wantTo: schema.Target{QQ: 123456}, wantText: "hello world"},
		{name: "dash text after --", args: []string{"--friend", "123456", "--", "--not-a-flag"}, wantKind: schema.KindFriend, wantTo: schema.Target{QQ: 123456}, wantText: "--not-a-flag"},
		{name: "discuss", args: []string{"--discuss", "2322423201", "hi"}, wantKind: schema.KindDiscuss, wantTo: schema.Target{DID: 2322423201}, wantText: "hi"},
		{name: "sess", args: []string{"--sess", "2468024", "--group", "987654", "hi"}, wantKind: schema.KindSess, wantTo: schema.Target{QQ: 2468024, Group: 987654}, wantText: "hi"},
		{name: "target from env", args: []string{"hi"}, env: map[string]string{"QQBRIDGE_GROUP": "55443322"}, wantKind: schema.KindGroup, wantTo: schema.Target{Group: 55443322}, wantText: "hi"},
		{name: "no target", args: []string{"hi"}, wantErr: "no target"},
		{name: "two targets", args: []string{"--friend", "1", "--discuss", "2", "hi"}, wantErr: "one target"},
		{name: "friend and group", args: []string{"--friend", "1", "--group", "2", "hi"}, wantErr: "one target"},
		{name: "sess without group", args: []string{"--sess", "1", "hi"}, wantErr: "--sess"},
		{name: "negative", args: []string{"--group=-5", "hi"}, wantErr: "--group"},
		{name: "no text", args: []string{"--group", "5"}, wantErr: "no text"},
		{name: "bad id", args: []string{"--group", "5", "--id", "a\tb", "hi"}, wantErr: "id"},
		{name: "bad format", args: []string{"--group", "5", "--format", "xml", "hi"}, wantErr: "--format"},
		{name: "bad timeout", args: []string{"--group", "5", "--timeout", "0s", "hi"}, wantErr: "--timeout"},
		{name: "bad nats", args: []string{"--group", "5", "--nats", "nowhere", "hi"}, wantErr: "--nats"},
		{name: "group not a number", args: []string{"--group", "dev", "hi"}, wantErr: "--group"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, _ := testCLI(tt.env)
			sf, err := c.parseSendFlags(tt.args)
			if tt.wantErr != "" {
				var ue *usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v: want a usage error naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sf.kind != tt.wantKind || sf.req.To != tt.wantTo || sf.req.Text != tt.wantText {
				t.Errorf("got kind %s to %+v text %q", sf.kind, sf.req.To, sf.req.Text)
			}
			if !strings.HasPrefix(sf.req.ID, "send-") || sf.client.url != defaultClientNATS {
				t.Errorf("id %q url %q", sf.req.ID, sf.client.url)
			}
		})
	}
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // substring of stderr
	}{
		{name: "no command", args: nil, wantCode: exitUsage, wantOut: "Usage: bridge <command>"},
		{name: "unknown command", args: []string{"bogus"}, wantCode: exitUsage, wantOut: `unknown command "bogus"`},
		{name: "help", args: []string{"help"}, wantCode: exitOK, wantOut: "Commands:"},
		{name: "run help", args: []string{"run", "--help"}, wantCode: exitOK, wantOut: "QQBRIDGE_QQ_ENDPOINT"},
		{name: "run -h lists every twin", args: []string{"run", "-h"}, wantCode: exitOK, wantOut: "env QQBRIDGE_SESSION_KEY"},
		{name: "demo help", args: []string{"demo", "--help"}, wantCode: exitOK, wantOut: "Usage: bridge demo"},
		{name: "tail help", args: []string{"tail", "--help"}, wantCode: exitOK, wantOut: "env QQBRIDGE_NATS"},
		{name: "send help", args: []string{"send", "--help"}, wantCode: exitOK, wantOut: "--sess QQ"},
		{name: "tail bad subject", args: []string{"tail", "qq..in"}, wantCode: exitUsage, wantOut: "not a valid subject"},
		{name: "tail two subjects", args: []string{"tail", "a", "b"}, wantCode: exitUsage, wantOut: "one subject"},
		{name: "run bad flag", args: []string{"run", "--rate", "x"}, wantCode: exitUsage, wantOut: "--rate"},
		{name: "demo bad flag", args: []string{"demo", "--format", "yaml"}, wantCode: exitUsage, wantOut: "--format"},
		{name: "run leader ttl 1ms", args: []string{"run", "--leader-ttl", "1ms"}, wantCode: exitUsage, wantOut: "bridge: run: --leader-ttl: must be at least 1s"},
		{name: "run creds missing", args: []string{"run", "--nats", "nats://127.0.0.1:1", "--nats-creds", "/nonexistent"}, wantCode: exitUsage, wantOut: "--nats-creds: /nonexistent: no such file or directory"},
		{name: "run help lists the new flags", args: []string{"run", "--help"}, wantCode: exitOK, wantOut: "--out-max-age"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, stderr := testCLI(nil)
			err := c.run(context.Background(), tt.args)
			code := exitCode(err, stderr)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d (err %v)", code, tt.wantCode, err)
			}
			if !strings.Contains(stderr.String(), tt.wantOut) {
				t.Errorf("stderr does not contain %q:\n%s", tt.wantOut, stderr)
			}
		})
	}
}

func TestSubjectMatches(t *testing.T) {
	for _, tt := range []struct {
		sub, subject string
		want         bool
	}{
		{"qq.>", "qq.session.state", true},
		{">", "qq.session.qr", true},
		{"qq.session.*", "qq.session.qr", true},
		{"qq.*.state", "qq.session.state", true},
		{"qq.session.state", "qq.session.state", true},
		{"qq.in.>", "qq.session.state", false},
		{"qq.session", "qq.session.state", false},
		{"qq.session.state.>", "qq.session.state", false},
		{"acct1.>", "qq.session.state", false},
	} {
		if got := subjectMatches(tt.sub, tt.subject); got != tt.want {
			t.Errorf("subjectMatches(%q, %q) = %v, want %v", tt.sub, tt.subject, got, tt.want)
		}
	}
}

func TestValidSubscription(t *testing.T) {
	for s, want := range map[string]bool{
		"qq.>": true, "qq.in.group.*": true, "qq.session.state": true, ">": true,
		"qq..in": false, "qq.>.in": false, "qq.in*": false, "qq in": false, "": false, "qq.": false,
	} {
		if got := validSubscription(s); got != want {
			t.Errorf("validSubscription(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestVersion: bridge --version (and version) prints the module version and
// the Go version on stdout and exits 0; the short form is a valid token.
func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "version", "-version"} {
		c, stdout, _ := testCLI(nil)
		err := c.run(context.Background(), []string{arg})
		if code := exitCode(err, &bytes.Buffer{}); code != exitOK {
			t.Errorf("%s: exit code %d", arg, code)
		}
		v := readBuildVersion()
		if out := stdout.String(); !strings.HasPrefix(out, "qqbridge "+v.Module) || !strings.Contains(out, v.Go) {
			t.Errorf("%s printed %q", arg, out)
		}
	}
	v := buildVersion{Module: "v1.2.3", Revision: "0123456789abcdef0123", Modified: true, Go: "go1.26"}
	if got := v.Short(); got != "v1.2.3+0123456789ab.dirty" {
		t.Errorf("Short = %q", got)
	}
	if got := v.String(); got != "qqbridge v1.2.3 revision 0123456789abcdef0123 (modified) go1.26" {
		t.Errorf("String = %q", got)
	}
}
