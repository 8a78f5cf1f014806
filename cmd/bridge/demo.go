package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
)

// demoConfig is the configuration of `bridge demo`.
type demoConfig struct {
	Codec      schema.Codec
	NATSListen string        // the embedded nats-server's host:port
	SimListen  string        // the embedded simulator's host:port
	ScanAfter  time.Duration // how long the QR is shown before the scripted scan
	Every      time.Duration // how often a contact says something after the first round trip
	LogLevel   zerolog.Level
	OneBot     string // host:port of a OneBot v11 gateway to start too ("" none)
}

// parseDemoFlags reads the flags of `bridge demo`.
func (c *cli) parseDemoFlags(args []string) (demoConfig, error) {
	dc := demoConfig{}
	f := c.newFlagSet("demo", "bridge demo [flags]",
		"Starts everything in one process: an embedded nats-server with JetStream (store in a\n"+
			"temporary directory), an embedded SmartQQ simulator, and the bridge. It shows the QR\n"+
			"code, scans it as a phone would, then has contacts talk and a little echo consumer\n"+
			"answer through qq.out.* and the qq.api.send.* API, printing every message on qq.> as it\n"+
			"flows. The NATS and simulator URLs are printed: `bridge tail --nats …` and curl work\n"+
			"against them while it runs. Ctrl-C stops it (exit 0).")
	var format, level string
	f.fs.StringVar(&format, "format", "json", "encoding of published events: json or msgpack")
	f.fs.StringVar(&dc.NATSListen, "nats-listen", "127.0.0.1:0", "`host:port` of the embedded nats-server (port 0: any free port)")
	f.fs.StringVar(&dc.SimListen, "sim-listen", "127.0.0.1:0", "`host:port` of the embedded simulator (port 0: any free port)")
	f.fs.DurationVar(&dc.ScanAfter, "scan-after", 2*time.Second, "how long the QR code is shown before the scripted scan")
	f.fs.DurationVar(&dc.Every, "every", 5*time.Second, "how often a contact says something once the bridge is online")
	f.fs.StringVar(&level, "log-level", "warn", "log `level` of the bridge's own logs (stderr)")
	f.fs.StringVar(&dc.OneBot, "onebot", "", "also start a OneBot v11 gateway (bridge onebot) on this `host:port`, e.g. 127.0.0.1:6700")
	pos, err := f.parse(args)
	if err != nil {
		return dc, err
	}
	if err := f.noArgs(pos); err != nil {
		return dc, err
	}
	var ok bool
	if dc.Codec, ok = formatCodec(format); !ok {
		return dc, f.badf("format", "%q: want json or msgpack", format)
	}
	if err := f.checkHostPort("nats-listen", dc.NATSListen); err != nil {
		return dc, err
	}
	if err := f.checkHostPort("sim-listen", dc.SimListen); err != nil {
		return dc, err
	}
	if dc.ScanAfter < 0 {
		return dc, f.badf("scan-after", "must not be negative, got %v", dc.ScanAfter)
	}
	if err := f.checkPositive("every", dc.Every); err != nil {
		return dc, err
	}
	if dc.LogLevel, err = parseLogLevel(level); err != nil {
		return dc, f.badf("log-level", "%v", err)
	}
	return dc, nil
}

// runDemo is `bridge demo`.
func (c *cli) runDemo(ctx context.Context, args []string) error {
	dc, err := c.parseDemoFlags(args)
	if err != nil {
		return err
	}
	return demo(ctx, dc, c.stdout, newLogger(c.stderr, dc.LogLevel, logAuto, c.isTerminal))
}

// demoLine is one thing a contact says in the demo.
type demoLine struct {
	say   qqsim.Say
	label string // who and where, for the narration
}

// demoScript returns what the contacts of qqsim's default world say, in turn.
func demoScript() []demoLine {
	return []demoLine{
		{qqsim.Say{Kind: "group", From: 123456, Group: 987654, Text: "大家好! is the bridge online? ", Faces: []int{14}}, "Alice in group Dev chat"},
		{qqsim.Say{Kind: "friend", From: 3524125, Text: "ping"}, "Bob, privately"},
		{qqsim.Say{Kind: "friend", From: 3524125, Text: "my cat:", Pictures: []string{"cat.png"}}, "Bob, privately, with a picture (the bridge stores it in the Object Store qq_media: media.stored)"},
		{qqsim.Say{Kind: "discuss", From: 2468024, DID: 1008611, Text: "午饭吃什么?"}, "Carol in discussion 午饭吃什么"},
		{qqsim.Say{Kind: "group", From: 7654321, Group: 55443322, Text: "周末去爬山吗"}, "Dave in group 周末爬山"},
		{qqsim.Say{Kind: "friend", From: 123456, Text: "<b>markup stays text</b> & so do entities"}, "Alice, privately"},
		{qqsim.Say{Kind: "sess", From: 2468024, Group: 987654, Text: "hi, a temporary chat through Dev chat"}, "Carol, in a temporary chat"},
	}
}

// demo runs the demo until ctx ends: an embedded nats-server, an embedded
// simulator, the bridge, a scripted QR scan, contacts who talk and a small echo
// consumer who answers — through qq.out.* for group and discussion messages and
// through the qq.api.send.* API for private ones. Every message on qq.> is printed
// to out as it flows; narration lines start with "demo:". Logs go to log.
func demo(ctx context.Context, dc demoConfig, out io.Writer, log zerolog.Logger) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, "demo: "+format+"\n", args...) }
	dir, err := os.MkdirTemp("", "qqbridge-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	sim, err := qqsim.New(qqsim.Config{PollHold: 10 * time.Second, Echo: true})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", dc.SimListen)
	if err != nil {
		return fmt.Errorf("demo: simulator listener: %w", err)
	}
	simSrv := &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second}
	simSrv.RegisterOnShutdown(sim.Close)
	go func() { _ = simSrv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = simSrv.Shutdown(sctx)
	}()
	simURL := "http://" + ln.Addr().String()

	cfg := defaultConfig()
	cfg.NATSListen = dc.NATSListen
	cfg.DataDir = dir
	cfg.QQEndpoint = simURL
	cfg.HTTPAddr = ""
	cfg.Codec = dc.Codec
	cfg.QRPollInterval = 200 * time.Millisecond
	cfg.PollTimeout = 30 * time.Second
	cfg.SessionKey = newRequestID() // the store is temporary; a random key keeps the saved session sealed
	b, err := wire(ctx, cfg, log)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("demo: %w", err)
	}
	s := cfg.Subjects
	natsURL := b.NATSURL()
	say("NATS (embedded, JetStream) at %s — look at it from another terminal:", natsURL)
	say("    go run ./cmd/bridge tail --nats %s", natsURL)
	say("    go run ./cmd/bridge send --nats %s --group 987654 \"hello from the shell\"", natsURL)
	say("SmartQQ simulator at %s — talk as a contact:", simURL)
	say(`    curl -d '{"kind":"friend","from":123456,"text":"hi"}' %s/_sim/messages`, simURL)
	say("Ctrl-C stops the demo.")

	nc, err := nats.Connect(natsURL, nats.Name("qqbridge demo"))
	if err != nil {
		b.close()
		return fmt.Errorf("demo: %w", err)
	}
	defer nc.Close()
	p := &printer{w: out, subjects: s, drawQR: true}
	states := make(chan schema.State, 64)
	internal := []string{s.Prefix() + ".journal.", s.MediaJobs()} // the bridge's own work queues
	if _, err := nc.Subscribe(s.Prefix()+".>", func(m *nats.Msg) {
		if slices.ContainsFunc(internal, func(pre string) bool { return strings.HasPrefix(m.Subject, pre) }) {
			return
		}
		p.print(m)
		if m.Subject == s.SessionState() {
			var st schema.SessionState
			if schema.Decode(schema.HeaderValue(m.Header, schema.HeaderContentType), m.Data, &st) == nil {
				select {
				case states <- st.State:
				default:
				}
			}
		}
	}); err != nil {
		b.close()
		return fmt.Errorf("demo: %w", err)
	}
	if err := nc.Flush(); err != nil {
		b.close()
		return fmt.Errorf("demo: %w", err)
	}

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runErr := make(chan error, 1)
	go func() { runErr <- b.Run(runCtx) }()
	if dc.OneBot != "" {
		if err := startDemoOnebot(runCtx, nc, s, dc.OneBot, log, say); err != nil {
			say("the OneBot gateway could not start: %v", err)
		}
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		demoScriptRun(runCtx, dc, sim, nc, s, states, say)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		watchSent(runCtx, sim, say)
	}()

	var err2 error
	select {
	case <-ctx.Done():
		say("stopping (Ctrl-C): polling stops, sends in flight finish, NATS drains")
		err2 = <-runErr
	case err2 = <-runErr:
	}
	stopRun()
	wg.Wait()
	if err2 != nil {
		return fmt.Errorf("demo: %w", err2)
	}
	say("stopped")
	return nil
}

// demoScriptRun plays the phone and the contacts, and runs the echo consumer.
func demoScriptRun(ctx context.Context, dc demoConfig, sim *qqsim.Server, nc *nats.Conn, s schema.Subjects, states <-chan schema.State, say func(string, ...any)) {
	waitState := func(want schema.State) bool {
		for {
			select {
			case <-ctx.Done():
				return false
			case st := <-states:
				if st == want {
					return true
				}
			}
		}
	}
	pause := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	if !waitState(schema.StateAwaitingScan) {
		return
	}
	say("the bridge shows a QR code (above); in real use you scan it with the QQ app. Here the simulator plays the phone in %v.", dc.ScanAfter)
	if !pause(dc.ScanAfter) {
		return
	}
	say("the phone scans the QR code")
	if err := sim.ScanQR(); err != nil {
		say("scan failed: %v", err)
		return
	}
	if !pause(dc.ScanAfter / 2) {
		return
	}
	say("the phone confirms the login")
	if err := sim.ConfirmQR(); err != nil {
		say("confirm failed: %v", err)
		return
	}
	if !waitState(schema.StateOnline) {
		return
	}
	if err := startEcho(ctx, nc, s, say); err != nil {
		say("the echo consumer could not start: %v", err)
		return
	}
	say("online. Contacts start talking; an echo consumer answers each message.")
	script := demoScript()
	for i := 0; ; i++ {
		line := script[i%len(script)]
		say("%s says %q", line.label, line.say.Text)
		if _, err := sim.Say(line.say); err != nil {
			say("say failed: %v", err)
		}
		if !pause(dc.Every) {
			return
		}
	}
}

// startEcho runs the demo's consumer: an ordered JetStream consumer on the inbound
// stream that answers every message — group and discussion messages through
// qq.out.<kind> (durable; the outcome comes on qq.result.<kind>), private and
// temporary chats through the qq.api.send.<kind> request/reply API.
func startEcho(ctx context.Context, nc *nats.Conn, s schema.Subjects, say func(string, ...any)) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, err := js.OrderedConsumer(ctx, s.StreamIn(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{s.InKindWildcard(schema.KindGroup), s.InKindWildcard(schema.KindDiscuss), s.InKindWildcard(schema.KindFriend), s.InKindWildcard(schema.KindSess)},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return err
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		ev, err := schema.DecodeEvent(m.Headers(), m.Data())
		if err != nil || ev.Text == "" {
			return
		}
		req := &schema.Request{ID: "echo-" + ev.ID, Text: "echo: " + ev.Text}
		kind := ev.Kind()
		switch kind {
		case schema.KindGroup:
			req.To = schema.Target{GID: ev.Group.GID}
			if ev.Group.Number != 0 {
				req.To = schema.Target{Group: ev.Group.Number}
			}
		case schema.KindDiscuss:
			req.To = schema.Target{DID: ev.Discuss.DID}
		case schema.KindFriend, schema.KindSess:
			req.To = schema.Target{UIN: ev.From.UIN}
			if ev.From.QQ != 0 {
				req.To = schema.Target{QQ: ev.From.QQ}
			}
			if kind == schema.KindSess && ev.Sess != nil {
				req.To.GID = ev.Sess.ViaGID
				if ev.Sess.ViaNumber != 0 {
					req.To.GID, req.To.Group = 0, ev.Sess.ViaNumber
				}
			}
		default:
			return
		}
		go echo(ctx, nc, js, s, kind, req, say)
	})
	if err != nil {
		return err
	}
	context.AfterFunc(ctx, cc.Stop)
	return nil
}

// echo sends one answer: queued on qq.out for groups and discussions, through the
// API for people.
func echo(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, s schema.Subjects, kind schema.Kind, req *schema.Request, say func(string, ...any)) {
	body, err := json.Marshal(req)
	if err != nil {
		return
	}
	if kind == schema.KindGroup || kind == schema.KindDiscuss {
		m := nats.NewMsg(s.Out(kind))
		m.Header.Set(schema.HeaderMsgID, req.ID)
		m.Data = body
		if _, err := js.PublishMsg(ctx, m); err != nil && ctx.Err() == nil {
			say("echo: publish to %s failed: %v", s.Out(kind), err)
		}
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	reply, err := nc.RequestWithContext(rctx, s.API("send", string(kind)), body)
	if err != nil {
		if ctx.Err() == nil {
			say("echo: API %s: %v", s.API("send", string(kind)), err)
		}
		return
	}
	if res, err := decodeResult(reply); err == nil {
		say("the API answered %s: %s", s.API("send", string(kind)), resultSummary(res))
	}
}

// watchSent prints what the simulator received from the bridge, as QQ would show it
// to the contact.
func watchSent(ctx context.Context, sim *qqsim.Server, say func(string, ...any)) {
	seen := 0
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sent := sim.Sent()
		for _, r := range sent[seen:] {
			say("qqsim received a %s message for %d: %q", r.Kind, r.Stable, r.Text)
		}
		seen = len(sent)
	}
}
