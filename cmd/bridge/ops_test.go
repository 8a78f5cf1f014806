package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
	"github.com/qqbridge/qqbridge/status"
)

// get fetches url and returns the status and the body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// metric returns the value of the first series of /metrics whose line matches
// name{…labels…} (labels in any order), "" if none.
func metric(body, name string, labels ...string) string {
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if ok {
			return line[strings.LastIndexByte(line, ' ')+1:]
		}
	}
	return ""
}

// TestStatusPageAndMetrics: both replicas' HTTP ports serve the status page
// (state, leader, the live QR code from the bucket) and /metrics (state on
// every replica, leadership, QR codes, directory sizes); the micro service
// announces the prefix and replica; the NATS connections carry prefix and replica
// in their names.
func TestStatusPageAndMetrics(t *testing.T) {
	sim := testenv.StartSim(t, testenv.SimConfig())
	cfg := testConfig(t, sim.URL)
	cfg.ReplicaID = "replica-a"
	rb := wireBridge(t, cfg)
	s := cfg.Subjects
	nc := testenv.Connect(t, rb.b.NATSURL())
	rec := testenv.Record(t, nc, s.Prefix()+".>")
	rb.start(t)
	rec.WaitFrom(0, "state awaiting_scan", testenv.IsState(s, schema.StateAwaitingScan))

	cfg2 := testConfig(t, sim.URL)
	cfg2.NATSURL, cfg2.ReplicaID = rb.b.NATSURL(), "replica-b"
	rb2 := startBridge(t, cfg2)
	a, b := "http://"+rb.b.HTTPAddr(), "http://"+rb2.b.HTTPAddr()

	for _, tc := range []struct {
		name, url, replica, leader string
	}{{"leader", a, "replica-a", "1"}, {"follower", b, "replica-b", "0"}} {
		t.Run(tc.name, func(t *testing.T) {
			var v status.View
			testenv.Eventually(t, "the status page showing the QR code", func() bool {
				v = status.View{}
				getJSON(t, tc.url+"/status.json", &v)
				return v.State == schema.StateAwaitingScan && v.QR != ""
			})
			if v.Prefix != "qq" || v.Replica != tc.replica || v.Leader != "replica-a" || v.IsLeader != (tc.leader == "1") || v.NATS != "CONNECTED" || v.QRExpires == nil {
				t.Errorf("status.json %+v", v)
			}
			if code, body := get(t, tc.url+"/qr.png"); code != 200 || !strings.HasPrefix(body, "\x89PNG") {
				t.Errorf("/qr.png: %d", code)
			}
			if code, body := get(t, tc.url+"/"); code != 200 || !strings.Contains(body, "<html") {
				t.Errorf("/: %d %.100s", code, body)
			}
			var body string
			testenv.Eventually(t, "the state metric", func() bool {
				_, body = get(t, tc.url+"/metrics")
				return metric(body, "qqbridge_session_state", `state="awaiting_scan"`) == "1"
			})
			if got := metric(body, "qqbridge_leader", `prefix="qq"`); got != tc.leader {
				t.Errorf("qqbridge_leader = %q, want %s", got, tc.leader)
			}
			if got := metric(body, "qqbridge_session_state", `state="online"`); got != "0" {
				t.Errorf(`qqbridge_session_state{state="online"} = %q before the login`, got)
			}
			var hs healthStatus
			if code := getJSON(t, tc.url+"/healthz", &hs); code != 200 || !hs.OK {
				t.Errorf("/healthz: %d %+v", code, hs)
			}
		})
	}
	_, body := get(t, a+"/metrics")
	if got := metric(body, "qqbridge_qr_codes_total"); got == "" || got == "0" {
		t.Errorf("qqbridge_qr_codes_total = %q on the leader", got)
	}

	loginByQR(t, sim, rec, s)
	testenv.Eventually(t, "the directory metrics after the login", func() bool {
		_, body = get(t, a+"/metrics")
		return metric(body, "qqbridge_directory_entries", `kind="friend"`) > "0" &&
			metric(body, "qqbridge_session_state", `state="online"`) == "1"
	})
	if got := metric(body, "qqbridge_directory_refresh_duration_seconds_count", `outcome="ok"`); got == "" || got == "0" {
		t.Errorf("no successful directory refresh counted: %q", got)
	}
	testenv.Eventually(t, "the follower's state metric at online", func() bool {
		_, body := get(t, b+"/metrics")
		return metric(body, "qqbridge_session_state", `state="online"`) == "1"
	})
	// Traffic moves the ingress and egress series.
	sim.Say(qqsim.Say{Kind: "group", From: testenv.Alice, Group: testenv.DevChat, Text: "metrics: in"})
	rec.WaitFrom(0, "the group message", testenv.IsEvent(fmt.Sprintf("%s.in.group.%d", s.Prefix(), testenv.DevChat), "metrics: in"))
	sendReq := nats.NewMsg(s.Out(schema.KindGroup))
	sendReq.Header.Set(schema.HeaderMsgID, "metrics-out")
	sendReq.Data = []byte(fmt.Sprintf(`{"id":"metrics-out","to":{"group":%d},"text":"metrics: out"}`, testenv.DevChat))
	if err := nc.PublishMsg(sendReq); err != nil {
		t.Fatal(err)
	}
	rec.WaitFrom(0, "the result of metrics-out", testenv.IsResult(s, "metrics-out"))
	// Ingress moves on the leader, which polls; egress on whichever replica
	// took the request from the shared consumer.
	testenv.Eventually(t, "the ingress and egress metrics after traffic", func() bool {
		_, body = get(t, a+"/metrics")
		_, bodyB := get(t, b+"/metrics")
		counted := func(v string) bool { return v != "" && v != "0" }
		return counted(metric(body, "qqbridge_events_published_total", `kind="group"`)) &&
			counted(metric(body, "qqbridge_polls_total", `outcome="events"`)) &&
			(counted(metric(body, "qqbridge_sends_total", `code="ok"`, `kind="group"`)) ||
				counted(metric(bodyB, "qqbridge_sends_total", `code="ok"`, `kind="group"`)))
	})

	var v status.View
	getJSON(t, b+"/status.json", &v)
	if v.State != schema.StateOnline || v.Account != sim.WorldView().Self.QQ || v.QR != "" {
		t.Errorf("follower status.json after the login: %+v", v)
	}

	t.Run("service metadata", func(t *testing.T) {
		m, err := nc.Request("$SRV.INFO."+schema.ServiceName, nil, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		body := string(m.Data)
		for _, want := range []string{`"prefix":"qq"`, `"api":"`, `"version":"`} {
			if !strings.Contains(body, want) {
				t.Errorf("$SRV.INFO lacks %s: %s", want, body)
			}
		}
		if !strings.Contains(body, `"replica":"replica-a"`) && !strings.Contains(body, `"replica":"replica-b"`) {
			t.Errorf("$SRV.INFO names no replica: %s", body)
		}
		// A bridge started after this login announces the account too.
		md := rb2.b.serviceMetadata(context.Background())
		if md["account"] != fmt.Sprint(sim.WorldView().Self.QQ) || md["replica"] != "replica-b" {
			t.Errorf("metadata after the login: %v", md)
		}
	})
	t.Run("connection names", func(t *testing.T) {
		cz, err := rb.b.ns.Connz(&server.ConnzOptions{})
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, c := range cz.Conns {
			names[c.Name] = true
		}
		if !names["qqbridge qq replica-a"] || !names["qqbridge qq replica-b"] {
			t.Errorf("connection names %v", names)
		}
	})
}

// freeAddr returns a loopback host:port nobody listens on (now).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// waitDone waits for the command to end by itself and returns its error.
func (rc *runCommand) waitDone(t *testing.T) error {
	t.Helper()
	select {
	case err := <-rc.done:
		rc.done <- err
		return err
	case <-time.After(testenv.WaitTimeout):
		t.Fatalf("the command did not end by itself; stderr:\n%s", rc.stderr)
		return nil
	}
}

// TestAddressInUse: a taken port for the embedded nats-server or for --http is
// an error that says "address in use", not a wait.
func TestAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"embedded nats", "embedded nats-server: --nats-listen " + taken + ": address in use", []string{"--nats-listen", taken, "--http", ""}},
		{"http", "--http " + taken + ": address in use", []string{"--nats-listen", "127.0.0.1:0", "--http", taken}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"run", "--data-dir", t.TempDir(), "--log-format", "json"}, tc.args...)
			rc := startCommand(t, nil, args...)
			err := rc.waitDone(t)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
			if code := exitCode(err, io.Discard); code != exitFailure {
				t.Errorf("exit code %d", code)
			}
		})
	}
}

// TestJetStreamNotEnabledForAccount: a server that answers that JetStream is
// not enabled for the account ends the start at once with a clear error.
func TestJetStreamNotEnabledForAccount(t *testing.T) {
	acct := server.NewAccount("NOJS")
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, JetStream: true, StoreDir: t.TempDir(),
		Accounts: []*server.Account{acct},
		Users:    []*server.User{{Username: "bridge", Password: "pw-for-the-test", Account: acct}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	url := fmt.Sprintf("nats://bridge:pw-for-the-test@127.0.0.1:%d", srv.Addr().(*net.TCPAddr).Port)
	rc := startCommand(t, nil, "run", "--nats", url, "--http", "", "--log-format", "json")
	err = rc.waitDone(t)
	if err == nil || !errors.Is(err, bus.ErrJetStreamDisabled) || !strings.Contains(err.Error(), "JetStream is not enabled on this server for the bridge's account") {
		t.Errorf("error %v", err)
	}
	if strings.Contains(rc.stderr.String()+fmt.Sprint(err), "pw-for-the-test") {
		t.Errorf("the password shows in the output")
	}
}

// TestReadyWhileWaitingForJetStream: the HTTP port answers before JetStream is
// there: /healthz 200, /readyz 503 saying that JetStream is not enabled on the
// server, /metrics and the status page with the same reason; once JetStream is
// on, /readyz turns 200.
func TestReadyWhileWaitingForJetStream(t *testing.T) {
	n := testenv.StartNATSWith(t, testenv.NATSOptions{NoJetStream: true})
	sim := testenv.StartSim(t, testenv.SimConfig())
	addr := freeAddr(t)
	startCommand(t, nil, "run", "--nats", n.URL(), "--http", addr, "--qq-endpoint", sim.URL, "--log-format", "json")
	base := "http://" + addr
	var st healthStatus
	testenv.Eventually(t, "/readyz saying JetStream is not enabled", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		st = healthStatus{}
		getJSON(t, base+"/readyz", &st)
		return strings.Contains(st.Error, "JetStream is not enabled on this server")
	})
	if code := getJSON(t, base+"/readyz", &st); code != 503 || st.OK || !strings.HasPrefix(st.Error, "starting: waiting for JetStream: ") {
		t.Errorf("/readyz: %d %+v", code, st)
	}
	if code := getJSON(t, base+"/healthz", &st); code != 200 || !st.OK || st.Phase == "" {
		t.Errorf("/healthz while waiting: %d %+v", code, st)
	}
	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, "qqbridge_session_state") {
		t.Errorf("/metrics while waiting: %d", code)
	}
	var v status.View
	getJSON(t, base+"/status.json", &v)
	if !strings.Contains(v.Reason, "waiting for JetStream") {
		t.Errorf("status.json while waiting: %+v", v)
	}
	n.EnableJetStream()
	testenv.Eventually(t, "/readyz 200 once JetStream is on", func() bool {
		var st healthStatus
		return getJSON(t, base+"/readyz", &st) == 200
	})
}

// TestNATSTLSAndNkey: the bridge joins a NATS server that requires TLS with a
// client certificate (a CA made in the test) and an nkey user, and works.
func TestNATSTLSAndNkey(t *testing.T) {
	pki := newTestPKI(t)
	seed, public := writeNkeySeed(t)
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, CaFile: pki.CA, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, JetStream: true, StoreDir: t.TempDir(),
		TLS: true, TLSVerify: true, TLSConfig: tc, TLSTimeout: 5,
		Nkeys: []*server.NkeyUser{{Nkey: public}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	url := fmt.Sprintf("tls://127.0.0.1:%d", srv.Addr().(*net.TCPAddr).Port)

	// Without the client certificate the server refuses the connection.
	if nc, err := nats.Connect(url, nats.RootCAs(pki.CA), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Error("the server accepted a client without a certificate")
	}

	sim := testenv.StartSim(t, testenv.SimConfig())
	rc := startCommand(t, nil, "run", "--nats", url, "--nats-tls-ca", pki.CA, "--nats-tls-cert", pki.ClientCert, "--nats-tls-key", pki.ClientKey,
		"--nats-nkey", seed, "--qq-endpoint", sim.URL, "--http", "", "--log-format", "json", "--replica-id", "tls-replica")
	rc.stderr.WaitFor(t, `"bridge running"`)

	nkOpt, err := nats.NkeyOptionFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, nkOpt, nats.RootCAs(pki.CA), nats.ClientCert(pki.ClientCert, pki.ClientKey))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, _ := schema.NewSubjects("qq")
	testenv.Eventually(t, "the bridge's state in the bucket", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		kv, err := js.KeyValue(ctx, s.SessionBucket())
		if err != nil {
			return false
		}
		e, err := kv.Get(ctx, schema.SessionKeyState)
		return err == nil && strings.Contains(string(e.Value()), string(schema.StateAwaitingScan))
	})
	cz, _ := srv.Connz(&server.ConnzOptions{})
	found := false
	for _, c := range cz.Conns {
		found = found || (c.Name == "qqbridge qq tls-replica" && c.TLSVersion != "")
	}
	if !found {
		t.Errorf("no TLS connection named \"qqbridge qq tls-replica\"")
	}
	if err := rc.stop(t); err != nil {
		t.Errorf("stop: %v", err)
	}
}

// TestLeastPrivilege runs the bridge under the permission set of
// k8s/base/auth.conf: it logs in, publishes events and carries out a send
// from the consumer, while the consumer is refused forging events, states and
// results, asking for a login and writing the session bucket.
func TestLeastPrivilege(t *testing.T) {
	dir := t.TempDir()
	auth, err := os.ReadFile(filepath.Join("..", "..", "k8s", "base", "auth.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "auth.conf"), auth, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("listen: 127.0.0.1:-1\njetstream { store_dir: %q }\ninclude ./auth.conf\n", filepath.Join(dir, "js"))
	if err := os.WriteFile(filepath.Join(dir, "nats.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NATS_BRIDGE_PASSWORD", "bridge-pw-3f9a")
	t.Setenv("NATS_CONSUMER_PASSWORD", "consumer-pw-8c21")
	t.Setenv("NATS_ADMIN_PASSWORD", "admin-pw-77d0")
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	opts.NoLog, opts.NoSigs = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	port := srv.Addr().(*net.TCPAddr).Port
	urlOf := func(user, pw string) string { return fmt.Sprintf("nats://%s:%s@127.0.0.1:%d", user, pw, port) }

	sim := testenv.StartSim(t, testenv.SimConfig())
	cfg := testConfig(t, sim.URL)
	cfg.NATSURL = urlOf("bridge", "bridge-pw-3f9a")
	s := cfg.Subjects

	violations := make(chan error, 16)
	consumer, err := nats.Connect(urlOf("consumer", "consumer-pw-8c21"), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		violations <- err
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	rec := testenv.Record(t, consumer, "qq.session.>") // what a consumer may subscribe to
	results := testenv.Record(t, consumer, "qq.result.>")
	rb := startBridge(t, cfg)
	defer func() {
		if t.Failed() {
			t.Logf("bridge logs:\n%s", rb.logs)
		}
	}()
	loginByQR(t, sim, rec, s)

	// The consumer sends through the work queue and sees the result.
	js, err := jetstream.New(consumer)
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(s.Out(schema.KindGroup))
	msg.Header.Set(schema.HeaderMsgID, "perm-1")
	msg.Data = []byte(fmt.Sprintf(`{"id":"perm-1","to":{"group":%d},"text":"under least privilege"}`, devGroup))
	ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
	defer cancel()
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatalf("the consumer could not send: %v", err)
	}
	_, m := results.WaitFrom(0, "the result of perm-1", testenv.IsResult(s, "perm-1"))
	if res, _ := testenv.DecodeResult(m); !res.OK {
		t.Errorf("result %+v", res)
	}
	sim.Control.WaitSent("the send under least privilege", testenv.SentText("group", devGroup, "under least privilege"))
	// And reads the session state from the bucket, as docs/events.md says.
	kv, err := js.KeyValue(ctx, s.SessionBucket())
	if err != nil {
		t.Fatalf("the consumer cannot open the session bucket: %v", err)
	}
	if e, err := kv.Get(ctx, schema.SessionKeyState); err != nil || !strings.Contains(string(e.Value()), string(schema.StateOnline)) {
		t.Errorf("the consumer reads the state: %v", err)
	}

	// What it must not do.
	select {
	case err := <-violations:
		t.Fatalf("a permissions violation before the checks: %v", err)
	default:
	}
	for _, subject := range []string{"qq.in.group.1", "qq.session.state", "qq.result.group", "qq.api.session.login", "$KV.qq_session.state"} {
		if err := consumer.Publish(subject, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-violations:
			if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), subject) {
				t.Errorf("publish to %s: %v", subject, err)
			}
		case <-time.After(testenv.WaitTimeout):
			t.Errorf("publish to %s was not refused", subject)
		}
	}
	// A refused request gets no answer: the violation says why.
	cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
	defer ccancel()
	if _, err := js.CreateStream(cctx, jetstream.StreamConfig{Name: "EVIL", Subjects: []string{"evil.>"}}); err == nil {
		t.Error("the consumer could create a stream")
	}
	select {
	case err := <-violations:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), "$JS.API.STREAM.CREATE.EVIL") {
			t.Errorf("stream create: %v", err)
		}
	case <-time.After(testenv.WaitTimeout):
		t.Errorf("the stream create was not refused")
	}
	if err := rb.stopBridge(t); err != nil {
		t.Errorf("the bridge stopped with %v; logs:\n%s", err, rb.logs)
	}
	if strings.Contains(rb.logs.String(), "Permissions Violation") {
		t.Errorf("the bridge met a permissions violation:\n%s", rb.logs)
	}
}

// TestStreamLimitsDoNotFit: stream limits larger than the server's JetStream
// store end the start with an error that names the flags.
func TestStreamLimitsDoNotFit(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir(), JetStreamMaxStore: 100 << 20})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	rc := startCommand(t, nil, "run", "--nats", srv.ClientURL(), "--http", "", "--in-max-bytes", "1GiB", "--log-format", "json")
	if err := rc.waitDone(t); err == nil || !strings.Contains(err.Error(), "insufficient storage") || !strings.Contains(err.Error(), "--in-max-bytes") {
		t.Errorf("error %v", err)
	}
}

// TestReadyWhileConnecting: with NATS unreachable the HTTP port answers at
// once: /healthz 200, /readyz 503 saying that it connects, and why it failed.
func TestReadyWhileConnecting(t *testing.T) {
	addr := freeAddr(t)
	rc := startCommand(t, nil, "run", "--nats", "nats://"+freeAddr(t), "--http", addr, "--log-format", "json")
	base := "http://" + addr
	var st healthStatus
	testenv.Eventually(t, "/readyz saying it connects to NATS", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		st = healthStatus{}
		getJSON(t, base+"/readyz", &st)
		return strings.HasPrefix(st.Error, "starting: connecting to NATS: ") && strings.Contains(st.Error, "no servers available")
	})
	if code := getJSON(t, base+"/healthz", &st); code != 200 || !st.OK {
		t.Errorf("/healthz while connecting: %d %+v", code, st)
	}
	if err := rc.stop(t); err != nil {
		t.Errorf("a stop while connecting: %v", err)
	}
}

// TestPProf: the Go profiler is on the HTTP port only with --pprof: 404
// without it (the status page answers the path), its index and named
// profiles with it; never the command line, which may hold --session-key.
func TestPProf(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprintf("pprof=%v", on), func(t *testing.T) {
			cfg := testConfig(t, "")
			cfg.PProf = on
			rb := wireBridge(t, cfg) // no Run: nothing talks to QQ
			t.Cleanup(rb.b.close)
			base := "http://" + rb.b.HTTPAddr()
			for path, want := range map[string]string{
				"/debug/pprof/":                  "goroutine",
				"/debug/pprof/heap?debug=1":      "heap profile",
				"/debug/pprof/goroutine?debug=1": "goroutine profile",
			} {
				code, body := get(t, base+path)
				switch {
				case !on && code != http.StatusNotFound:
					t.Errorf("%s without --pprof: %d, want 404", path, code)
				case on && (code != http.StatusOK || !strings.Contains(body, want)):
					t.Errorf("%s with --pprof: %d %.200q, want 200 with %q", path, code, body, want)
				}
			}
			if code, body := get(t, base+"/debug/pprof/cmdline"); code != http.StatusNotFound || strings.Contains(body, "-test.") {
				t.Errorf("/debug/pprof/cmdline: %d %.200q, want 404 without the command line", code, body)
			}
			if code, _ := get(t, base+"/metrics"); code != http.StatusOK {
				t.Errorf("/metrics: %d", code)
			}
		})
	}
}
