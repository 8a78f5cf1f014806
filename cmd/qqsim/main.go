// Command qqsim runs the SmartQQ simulator on one listener: the protocol endpoints
// (login, poll2, sends, contacts) and the /_sim/ control API. See docs/qqsim.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/qqbridge/qqbridge/qqsim"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "qqsim:") {
			msg = "qqsim: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(2)
	}
}

// options are the command line flags.
type options struct {
	listen     string
	world      string
	qrTTL      time.Duration
	pollHold   time.Duration
	sessionTTL time.Duration
	rateLimit  float64
	echo       bool
	baseURL    string
	profile    qqsim.Profile
	strict     bool
	emptyPoll  qqsim.EmptyPoll
	seedConf   bool
	record     string
	fileTTL    time.Duration
	latency    time.Duration
}

// parseFlags reads and checks the flags.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("qqsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to listen on (host:port)")
	fs.StringVar(&o.world, "world", "", "world JSON file (self, friends, groups, discussions); empty: the built-in world")
	fs.DurationVar(&o.qrTTL, "qr-ttl", 120*time.Second, "how long a QR code stays valid")
	fs.DurationVar(&o.pollHold, "poll-hold", 60*time.Second, "how long an empty poll2 is held before retcode 102")
	fs.DurationVar(&o.sessionTTL, "session-ttl", 48*time.Hour, "how long login cookies and sessions live")
	fs.Float64Var(&o.rateLimit, "rate-limit", 20, "requests per second per session (burst twice as many); negative: no limit")
	fs.BoolVar(&o.echo, "echo", true, "echo the account's own sends back through poll2, as the real service did")
	fs.StringVar(&o.baseURL, "base-url", "", "how the simulator names itself in the check_sig URL (http://host:port); empty: from each request's Host")
	profile := fs.String("profile", "2018", "the era of the service to play: 2018 (the 2017–2018 clients' service) or 2015 (the seed write-ups)")
	fs.BoolVar(&o.strict, "strict", false, "add the write-ups' pedantic header checks (exact http Referer and Origin, browser User-Agent, one method per call)")
	emptyPoll := fs.String("empty-poll", "", "how an empty held poll ends: 102, 504, 0, error, json (0 and error in turn) or cycle (504, 0, error); empty: the profile's (2015: 102, 2018: json)")
	fs.BoolVar(&o.seedConf, "seed-confirm", false, "answer a confirmed QR code in seed 004's form ptuiCB('66',…,'<check_sig URL>','')")
	fs.DurationVar(&o.fileTTL, "file-ttl", 60*time.Second, "how long a file offer can be taken or refused (then retcode 102)")
	fs.DurationVar(&o.latency, "transfer-latency", 0, "delay of get_offpic2 and get_file2 answers (the real servers took 10-45s)")
	fs.StringVar(&o.record, "record", "", "append one JSON line per request (values the simulator issued replaced by placeholders) to this file")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var err error
	if o.profile, err = qqsim.ParseProfile(*profile); err != nil {
		return o, fmt.Errorf("--profile: %w", err)
	}
	if o.emptyPoll, err = qqsim.ParseEmptyPoll(*emptyPoll); err != nil {
		return o, fmt.Errorf("--empty-poll: %w", err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (all settings are flags)", fs.Arg(0))
	}
	if _, _, err := net.SplitHostPort(o.listen); err != nil {
		return o, fmt.Errorf("--listen %q: want host:port: %v", o.listen, err)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--qr-ttl", o.qrTTL}, {"--poll-hold", o.pollHold}, {"--session-ttl", o.sessionTTL}, {"--file-ttl", o.fileTTL}} {
		if d.v <= 0 {
			return o, fmt.Errorf("%s must be a positive duration such as 90s, got %v", d.name, d.v)
		}
	}
	if o.latency < 0 {
		return o, fmt.Errorf("--transfer-latency must not be negative, got %v", o.latency)
	}
	if o.rateLimit == 0 {
		return o, errors.New("--rate-limit 0 would refuse every request; give a positive rate, or a negative one for no limit")
	}
	if o.baseURL != "" {
		u, err := url.Parse(o.baseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return o, fmt.Errorf("--base-url %q: want http://host:port or https://host:port", o.baseURL)
		}
	}
	return o, nil
}

// run starts the simulator and serves until SIGINT or SIGTERM.
func run(args []string, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := log.New(stderr, "", log.LstdFlags)
	cfg := qqsim.Config{
		QRTTL:           o.qrTTL,
		PollHold:        o.pollHold,
		SessionTTL:      o.sessionTTL,
		RateLimit:       o.rateLimit,
		Echo:            o.echo,
		BaseURL:         o.baseURL,
		Logf:            logger.Printf,
		Profile:         o.profile,
		Strict:          o.strict,
		EmptyPoll:       o.emptyPoll,
		SeedConfirm:     o.seedConf,
		FileTTL:         o.fileTTL,
		TransferLatency: o.latency,
	}
	if o.record != "" {
		f, err := os.OpenFile(o.record, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("--record: %w", err)
		}
		defer f.Close()
		cfg.Record = f
	}
	if o.world != "" {
		if cfg.World, err = qqsim.LoadWorld(o.world); err != nil {
			return err
		}
	}
	sim, err := qqsim.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	srv.RegisterOnShutdown(sim.Close)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	w := sim.WorldView()
	mode := string(o.profile)
	if o.strict {
		mode += ", strict"
	}
	logger.Printf("qqsim: serving http://%s (profile %s; account %d, %d friends, %d groups, %d discussions); control API under /_sim/",
		ln.Addr(), mode, w.Self.QQ, len(w.Friends), len(w.Groups), len(w.Discussions))

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Printf("qqsim: shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
