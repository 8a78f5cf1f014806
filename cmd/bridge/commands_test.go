package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
)

// runCommand runs the binary's command line in the background with its own output
// buffers and environment; stop cancels it and returns its error.
type runCommand struct {
	stdout, stderr *testenv.LogBuffer
	cancel         context.CancelFunc
	done           chan error
}

func startCommand(t *testing.T, env map[string]string, args ...string) *runCommand {
	t.Helper()
	rc := &runCommand{stdout: &testenv.LogBuffer{}, stderr: &testenv.LogBuffer{}, done: make(chan error, 1)}
	c := &cli{stdout: rc.stdout, stderr: rc.stderr, lookupEnv: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}}
	ctx, cancel := context.WithCancel(context.Background())
	rc.cancel = cancel
	go func() { rc.done <- c.run(ctx, args) }()
	t.Cleanup(func() { _ = rc.stop(t) })
	return rc
}

func (rc *runCommand) stop(t *testing.T) error {
	t.Helper()
	rc.cancel()
	select {
	case err := <-rc.done:
		rc.done <- err // a second stop sees the same
		return err
	case <-time.After(testenv.WaitTimeout):
		t.Error("the command did not stop")
		return nil
	}
}

// logField waits for a JSON log line whose message is msg and returns its field.
func logField(t *testing.T, logs *testenv.LogBuffer, msg, field string) string {
	t.Helper()
	deadline := time.Now().Add(testenv.WaitTimeout)
	for time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(logs.String()))
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["message"] == msg {
				if v, ok := line[field].(string); ok {
					return v
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no log line %q with field %q:\n%s", msg, field, logs.String())
	return ""
}

// runSend runs `bridge send` to completion and returns its stdout and error.
func runSend(t *testing.T, args ...string) (string, error) {
	t.Helper()
	c, stdout, _ := testCLI(nil)
	err := c.run(context.Background(), append([]string{"send"}, args...))
	return stdout.String(), err
}

// TestRunTailSend runs `bridge run`, `bridge tail` and `bridge send` as a person
// would, in-process: the bridge on its embedded NATS with the simulator as QQ,
// settings from flags and environment twins.
func TestRunTailSend(t *testing.T) {
	sim := testenv.StartSim(t, testenv.SimConfig())
	run := startCommand(t, map[string]string{
		"QQBRIDGE_QQ_ENDPOINT":      sim.URL,
		"QQBRIDGE_SESSION_KEY":      "correct horse battery staple 42 at noon",
		"QQBRIDGE_QR_POLL_INTERVAL": "50ms",
		"QQBRIDGE_LEADER_TTL":       "1s",
	}, "run", "--nats-listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--http", "127.0.0.1:0",
		"--poll-timeout", "5s", "--rate", "50", "--log-format", "json", "--log-level", "debug")
	url := logField(t, run.stderr, "bridge running", "nats")

	tail := startCommand(t, nil, "tail", "--nats", url)
	tail.stderr.WaitFor(t, "tail: listening on qq.>")
	waitSimLogin(t, sim, "qr_waiting")
	if err := sim.ScanQR(); err != nil {
		t.Fatal(err)
	}
	if err := sim.ConfirmQR(); err != nil {
		t.Fatal(err)
	}
	tail.stdout.WaitFor(t, "state online (account 931996776)")

	// A tail started late sees where the session stands, from the session bucket.
	late := startCommand(t, nil, "tail", "--nats", url, "qq.session.>")
	late.stderr.WaitFor(t, "tail: the latest state, from KV qq_session")
	late.stdout.WaitFor(t, "state online (account 931996776)")
	late.stdout.WaitFor(t, "QR code to scan")
	if err := late.stop(t); err != nil {
		t.Errorf("late tail: %v", err)
	}

	if _, err := sim.Say(sayGroup("hello from the group")); err != nil {
		t.Fatal(err)
	}
	tail.stdout.WaitFor(t, "qq.in.group.987654  ce-type=qq.message.group")
	tail.stdout.WaitFor(t, "from Alice@dev (123456): hello from the group")

	out, err := runSend(t, "--nats", url, "--group", "987654", "--id", "cli-1", "hello from bridge send")
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	if !strings.Contains(out, "sent group cli-1 in 1 part(s) (via qq.api.send.group)") {
		t.Errorf("send printed %q", out)
	}
	sim.Control.WaitSent("group hello from bridge send", testenv.SentText("group", devGroup, "hello from bridge send"))
	tail.stdout.WaitFor(t, "qq.api.send.group")

	// The same id again: the bridge answers the first outcome and sends nothing.
	if out, err := runSend(t, "--nats", url, "--group", "987654", "--id", "cli-1", "hello from bridge send"); err != nil || !strings.Contains(out, "sent group cli-1") {
		t.Errorf("repeat: %q %v", out, err)
	}
	if got := sim.Control.SentTexts("group", devGroup); len(got) != 1 {
		t.Errorf("after a repeated id the simulator has %q", got)
	}

	// An unknown group: not sent, exit code 1.
	out, err = runSend(t, "--nats", url, "--group", "1111", "nobody")
	if !errors.Is(err, errNotSent) || exitCode(err, &testenv.LogBuffer{}) != exitFailure || !strings.Contains(out, "unknown_target") {
		t.Errorf("unknown group: %q %v", out, err)
	}

	if err := tail.stop(t); err != nil {
		t.Errorf("tail: %v", err)
	}
	if err := run.stop(t); err != nil {
		t.Errorf("run: %v", err)
	}
	logs := run.stderr.String()
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("a log line is not JSON: %s", line)
		}
	}
	if strings.Contains(logs, "unencrypted") {
		t.Errorf("with a session key the bridge still warns about a plaintext session")
	}
	if !strings.Contains(logs, `"message":"stopped"`) {
		t.Errorf("no stop in the logs")
	}
}

func sayGroup(text string) qqsim.Say {
	return qqsim.Say{Kind: "group", From: aliceQQ, Group: devGroup, Text: text}
}

// waitSimLogin waits until the simulator's login state is state.
func waitSimLogin(t *testing.T, sim *testenv.Sim, state string) {
	t.Helper()
	deadline := time.Now().Add(testenv.WaitTimeout)
	for sim.State().Login != state {
		if time.Now().After(deadline) {
			t.Fatalf("the simulator never reached login state %q (it is %q)", state, sim.State().Login)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSendQueuedWithoutBridge sends while no bridge runs: the request is queued in
// the out stream and `bridge send` gives up waiting (exit 1); a bridge started later
// sends it.
func TestSendQueuedWithoutBridge(t *testing.T) {
	sim := testenv.StartSim(t, testenv.SimConfig())
	cfg := testConfig(t, sim.URL)
	ns := testenv.StartNATS(t)
	url := ns.URL()
	nc := testenv.Connect(t, url)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(context.Background(), js, cfg.Subjects, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}

	out, err := runSend(t, "--nats", url, "--friend", "123456", "--id", "queued-1", "--timeout", "300ms", "sent later")
	if err == nil || exitCode(err, &testenv.LogBuffer{}) != exitFailure || !strings.Contains(err.Error(), "queued on qq.out.friend") {
		t.Fatalf("send without a bridge: %q %v", out, err)
	}
	stream, err := js.Stream(context.Background(), cfg.Subjects.StreamOut())
	if err != nil {
		t.Fatal(err)
	}
	if info, err := stream.Info(context.Background()); err != nil || info.State.Msgs != 1 {
		t.Fatalf("out stream: %+v %v", info, err)
	}

	cfg.NATSURL = url
	rec := testenv.Record(t, nc, "qq.>")
	rb := startBridge(t, cfg)
	loginByQR(t, sim, rec, cfg.Subjects)
	rec.WaitFrom(0, "the result of queued-1", testenv.IsResult(cfg.Subjects, "queued-1"))
	sim.Control.WaitSent("friend sent later", testenv.SentText("friend", aliceQQ, "sent later"))
	if err := rb.stopBridge(t); err != nil {
		t.Fatal(err)
	}
}

// waitAPI waits until a bridge answers on its API.
func waitAPI(t *testing.T, nc *nats.Conn, s schema.Subjects) {
	t.Helper()
	deadline := time.Now().Add(testenv.WaitTimeout)
	for {
		if _, err := nc.Request(s.API("session", "state"), nil, time.Second); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the bridge's API never answered")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSendTimeoutWhileOffline: `bridge send --timeout` while the bridge has no
// QQ session gets a clear "not sent" before its timeout (the bridge was told
// the deadline and starts nothing after it), exit 1; once the session is back,
// the message is not delivered late. (It used to exit with "context deadline
// exceeded" and the bridge sent the message when the session came back, so
// that a retry sent it twice.)
func TestSendTimeoutWhileOffline(t *testing.T) {
	sim := testenv.StartSim(t, testenv.SimConfig())
	cfg := testConfig(t, sim.URL)
	ns := testenv.StartNATS(t)
	cfg.NATSURL = ns.URL()
	nc := testenv.Connect(t, cfg.NATSURL)
	rec := testenv.Record(t, nc, "qq.>")
	startBridge(t, cfg)
	waitAPI(t, nc, cfg.Subjects)

	out, err := runSend(t, "--nats", cfg.NATSURL, "--friend", "123456", "--id", "offline-1", "--timeout", "1s", "too late")
	if !errors.Is(err, errNotSent) || exitCode(err, &testenv.LogBuffer{}) != exitFailure {
		t.Fatalf("send while offline: %q, %v; want exit 1, not sent", out, err)
	}
	if !strings.Contains(err.Error(), "not sent") || !strings.Contains(err.Error(), "deadline") {
		t.Errorf("send while offline says %q, want it to say not sent, and why", err)
	}

	loginByQR(t, sim, rec, cfg.Subjects)
	if out, err := runSend(t, "--nats", cfg.NATSURL, "--friend", "123456", "--id", "online-1", "in time"); err != nil {
		t.Fatalf("send online: %q %v", out, err)
	}
	if got := sim.Control.SentTexts("friend", aliceQQ); len(got) != 1 || got[0] != "in time" {
		t.Fatalf("the simulator received %q, want only the message sent in time", got)
	}
}

// TestSendNoAnswerSaysMaybeSent: a bridge that takes the request but does not
// answer in time (here a subscriber that never answers) leaves the outcome
// open; `bridge send` says so, with the deadline it gave, and how to learn the
// outcome.
func TestSendNoAnswerSaysMaybeSent(t *testing.T) {
	ns := testenv.StartNATS(t)
	nc := testenv.Connect(t, ns.URL())
	got := make(chan *nats.Msg, 1)
	sub, err := nc.ChanSubscribe("qq.api.send.friend", got)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = runSend(t, "--nats", ns.URL(), "--friend", "123456", "--id", "hung-1", "--timeout", "400ms", "hello")
	if err == nil || !strings.Contains(err.Error(), "maybe sent") || !strings.Contains(err.Error(), "starts no send after") ||
		!strings.Contains(err.Error(), "--id hung-1") {
		t.Fatalf("send to a bridge that does not answer: %v", err)
	}
	returned := time.Now()
	m := <-got
	dl, perr := time.Parse(time.RFC3339Nano, m.Header.Get("Qq-Deadline"))
	if perr != nil || !dl.After(start) || !dl.Before(returned) {
		t.Errorf("Qq-Deadline %q (%v): want a time within the wait, before it ended", m.Header.Get("Qq-Deadline"), perr)
	}
}
