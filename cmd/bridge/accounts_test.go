package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
	"github.com/qqbridge/qqbridge/status"
)

// TestParseAccounts: the accounts file's defaults, key references and
// refusals; an error never shows a session key.
func TestParseAccounts(t *testing.T) {
	cfg := defaultConfig()
	cfg.Rate, cfg.Burst, cfg.SessionKey = 2, 4, "flag-key"
	env := map[string]string{"K1": "k1-Vq8Lr2Tz9Wm4Xn7Yp3Bc6Dh5Fj0Gk1Hs", "EMPTY": "", "WEAK": "short"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	read := func(p string) ([]byte, error) {
		if p == "/keys/two" {
			return []byte("k2-Ra9Sb8Tc7Ud6Ve5Wf4Xg3Yh2Zi1Aj0Bk\n"), nil
		}
		return nil, fmt.Errorf("open %s: no such file", p)
	}
	specs, err := parseAccounts([]byte(`{"accounts":[
		{"prefix":"a1","session_key_env":"K1","rate":0.5},
		{"prefix":"a2","session_key_file":"/keys/two","burst":1,"qq_endpoint":"http://127.0.0.1:9"},
		{"prefix":"a3"}]}`), cfg, lookup, read)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		prefix, key, endpoint string
		rate                  float64
		burst                 int
	}{{"a1", "k1-Vq8Lr2Tz9Wm4Xn7Yp3Bc6Dh5Fj0Gk1Hs", "", 0.5, 4}, {"a2", "k2-Ra9Sb8Tc7Ud6Ve5Wf4Xg3Yh2Zi1Aj0Bk", "http://127.0.0.1:9", 2, 1}, {"a3", "flag-key", "", 2, 4}}
	if len(specs) != len(want) {
		t.Fatalf("%d accounts", len(specs))
	}
	for i, w := range want {
		g := specs[i]
		if g.Subjects.Prefix() != w.prefix || g.SessionKey != w.key || g.QQEndpoint != w.endpoint || g.Rate != w.rate || g.Burst != w.burst {
			t.Errorf("account %d: %+v, want %+v", i, g, w)
		}
	}

	bad := []struct{ name, file, says string }{
		{"not JSON", `{`, "accounts file"},
		{"unknown field", `{"accounts":[{"prefix":"a","session_key":"x"}]}`, "unknown field"},
		{"no accounts", `{"accounts":[]}`, "no accounts"},
		{"bad prefix", `{"accounts":[{"prefix":"a b"}]}`, `accounts[0]: prefix "a b"`},
		{"empty prefix", `{"accounts":[{}]}`, "accounts[0]: prefix"},
		{"twice", `{"accounts":[{"prefix":"a"},{"prefix":"a"}]}`, "accounts[1]: prefix \"a\" listed twice"},
		{"both keys", `{"accounts":[{"prefix":"a","session_key_env":"K1","session_key_file":"/keys/two"}]}`, "not both"},
		{"env unset", `{"accounts":[{"prefix":"a","session_key_env":"NOPE"}]}`, "NOPE is not set"},
		{"env empty", `{"accounts":[{"prefix":"a","session_key_env":"EMPTY"}]}`, "EMPTY is not set"},
		{"file missing", `{"accounts":[{"prefix":"a","session_key_file":"/keys/none"}]}`, "/keys/none"},
		{"rate", `{"accounts":[{"prefix":"a","rate":-1}]}`, "rate must be above 0"},
		{"burst", `{"accounts":[{"prefix":"a","burst":-2}]}`, "burst must be at least 1"},
		{"endpoint", `{"accounts":[{"prefix":"a","qq_endpoint":"ftp://x"}]}`, "qq_endpoint"},
		{"second value", `{"accounts":[{"prefix":"a"}]} {}`, "second JSON value"},
		{"weak key", `{"accounts":[{"prefix":"a","session_key_env":"WEAK"}]}`, "too weak"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseAccounts([]byte(tc.file), cfg, lookup, read)
			if !errors.Is(err, errAccounts) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("err %v, want errAccounts saying %q", err, tc.says)
			}
			for _, secret := range []string{"k1-Vq8Lr2Tz9Wm4Xn7Yp3Bc6Dh5Fj0Gk1Hs", "k2-Ra9Sb8Tc7Ud6Ve5Wf4Xg3Yh2Zi1Aj0Bk", "flag-key", "short"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error shows a session key: %v", err)
				}
			}
		})
	}
}

// TestBridgeManyAccounts runs one bridge with --accounts listing two
// accounts, each on its own simulator: each logs in by its own QR and
// publishes its messages under its own prefix. A third account added to the
// file while the bridge runs starts without a restart of the others.
func TestBridgeManyAccounts(t *testing.T) {
	sims := make([]*testenv.Sim, 3)
	urls := make([]string, 3)
	for i := range sims {
		sims[i] = testenv.StartSim(t, testenv.SimConfig())
		urls[i] = sims[i].URL
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "accounts.json")
	write := func(n int) {
		var entries []string
		for i := range n {
			entries = append(entries, fmt.Sprintf(`{"prefix":"acct%d","qq_endpoint":%q}`, i+1, urls[i]))
		}
		if err := os.WriteFile(file, []byte(`{"accounts":[`+strings.Join(entries, ",")+`]}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(2)
	cfg := testConfig(t, "")
	cfg.AccountsFile = file
	cfg.SessionKey = "tk-Qw3Er5Ty7Ui9Op1As2Df4Gh6Jk8Lz0Xc"
	rb := wireBridge(t, cfg)
	nc := testenv.Connect(t, rb.b.NATSURL())
	subj := func(i int) schema.Subjects { s, _ := schema.NewSubjects(fmt.Sprintf("acct%d", i+1)); return s }
	rec := testenv.Record(t, nc, ">")
	rb.start(t)

	for i := range 2 {
		loginByQR(t, sims[i], rec, subj(i))
	}
	say := func(i int, text string) {
		if _, err := sims[i].Server.Say(qqsim.Say{Kind: "group", From: 2468024, Group: 987654, Text: text}); err != nil {
			t.Fatal(err)
		}
		rec.WaitFrom(0, fmt.Sprintf("account %d's message", i+1), func(m *nats.Msg) bool {
			return strings.HasPrefix(m.Subject, subj(i).Prefix()+".in.group.") && eventText(m) == text
		})
	}
	say(0, "to one")
	say(1, "to two")
	if n := rec.Count(func(m *nats.Msg) bool {
		return strings.HasPrefix(m.Subject, "acct1.in.") && eventText(m) == "to two"
	}); n != 0 {
		t.Errorf("account 2's message published under acct1 %d times", n)
	}

	write(3) // a new account, picked up by the watch
	loginByQR(t, sims[2], rec, subj(2))
	say(2, "to three")
	say(0, "one still runs")
}

// apiSubscriptions counts the subscriptions of the API endpoint
// <prefix>.api.session.state on the bridge's embedded server.
func apiSubscriptions(t *testing.T, rb *runningBridge, s schema.Subjects) int {
	t.Helper()
	subj := s.API("session", "state")
	sz, err := rb.b.ns.Subsz(&server.SubszOptions{Subscriptions: true, Test: subj})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, sub := range sz.Subs {
		if sub.Subject == subj {
			n++
		}
	}
	return n
}

// eventText is the text of the event m carries, "" for anything else.
func eventText(m *nats.Msg) string {
	ev, err := schema.DecodeEvent(m.Header, m.Data)
	if err != nil {
		return ""
	}
	return ev.Text
}

// TestAccountsRemovedAddedChanged runs one bridge serving acct1 and acct2,
// each on its own simulator, and changes the accounts file under it:
//
//  1. both accounts are in /readyz (ready, online, leading), in
//     /status.json and in /metrics under their prefixes;
//  2. acct2 is removed while sends to it are queued (the simulator slowed, so
//     that one is likely in flight): its holder deletes its lease (a delete
//     marker: not left to expire), it publishes "stopped", its API answers
//     no more, it leaves /readyz, the status page and /metrics, and acct1
//     keeps running;
//  3. acct2 is added back: it resumes its saved session without a QR code and
//     sends the rest of the queue; each request is answered ok and reached
//     QQ exactly once;
//  4. acct1's rate is changed: acct1 alone restarts (a new set of components,
//     the saved session resumed without a QR code), acct2 is not touched.
func TestAccountsRemovedAddedChanged(t *testing.T) {
	sims := []*testenv.Sim{testenv.StartSim(t, testenv.SimConfig()), testenv.StartSim(t, testenv.SimConfig())}
	file := filepath.Join(t.TempDir(), "accounts.json")
	entry := func(i int, extra string) string {
		return fmt.Sprintf(`{"prefix":"acct%d","qq_endpoint":%q%s}`, i+1, sims[i].URL, extra)
	}
	write := func(entries ...string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(`{"accounts":[`+strings.Join(entries, ",")+`]}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(entry(0, ""), entry(1, ""))
	cfg := testConfig(t, "")
	cfg.AccountsFile = file
	cfg.SessionKey = "tk-Qw3Er5Ty7Ui9Op1As2Df4Gh6Jk8Lz0Xc"
	cfg.ReplicaID = "replica-a"
	rb := wireBridge(t, cfg)
	nc := testenv.Connect(t, rb.b.NATSURL())
	js := testenv.JetStream(t, nc)
	ctx := testenv.Context(t)
	subj := func(i int) schema.Subjects { s, _ := schema.NewSubjects(fmt.Sprintf("acct%d", i+1)); return s }
	s1, s2 := subj(0), subj(1)
	rec := testenv.Record(t, nc, ">")
	rb.start(t)
	for i := range sims {
		loginByQR(t, sims[i], rec, subj(i))
	}
	base := "http://" + rb.b.HTTPAddr()
	say := func(i int, text string) {
		t.Helper()
		if _, err := sims[i].Server.Say(qqsim.Say{Kind: "group", From: testenv.Alice, Group: testenv.DevChat, Text: text}); err != nil {
			t.Fatal(err)
		}
		rec.WaitFrom(0, fmt.Sprintf("acct%d's message %q", i+1, text), func(m *nats.Msg) bool {
			return strings.HasPrefix(m.Subject, subj(i).Prefix()+".in.group.") && eventText(m) == text
		})
	}
	isQR := func(s schema.Subjects) func(*nats.Msg) bool {
		return func(m *nats.Msg) bool { return m.Subject == s.SessionQR() }
	}
	self := sims[0].WorldView().Self.QQ

	// 1. Both accounts everywhere.
	var ready healthStatus
	testenv.Eventually(t, "/readyz?online=1 with both accounts online and led here", func() bool {
		ready = healthStatus{}
		return getJSON(t, base+"/readyz?online=1", &ready) == 200 && len(ready.Accounts) == 2 &&
			ready.Accounts[0].Leader && ready.Accounts[1].Leader
	})
	for i, a := range ready.Accounts {
		if a.Prefix != subj(i).Prefix() || !a.OK || a.State != schema.StateOnline || a.Account != self || a.Error != "" {
			t.Errorf("/readyz account %d: %+v", i, a)
		}
	}
	if !ready.OK || ready.State != schema.StateOnline || ready.Account != self || !ready.Leader || ready.NATS != "CONNECTED" {
		t.Errorf("/readyz top level (the first account): %+v", ready)
	}
	_, body := get(t, base+"/readyz")
	t.Logf("/readyz with 2 accounts: %s", strings.TrimSpace(body))
	_, body = get(t, base+"/metrics")
	for _, p := range []string{"acct1", "acct2"} {
		if got := metric(body, "qqbridge_leader", `prefix="`+p+`"`); got != "1" {
			t.Errorf(`qqbridge_leader{prefix=%q} = %q, want 1`, p, got)
		}
		if got := metric(body, "qqbridge_session_state", `prefix="`+p+`"`, `state="online"`); got != "1" {
			t.Errorf(`qqbridge_session_state{prefix=%q,state="online"} = %q, want 1`, p, got)
		}
	}
	var v status.View
	getJSON(t, base+"/status.json", &v)
	if len(v.Accounts) != 2 || v.Accounts[0].Prefix != "acct1" || v.Accounts[1].Prefix != "acct2" ||
		v.Accounts[1].State != schema.StateOnline || !v.Accounts[1].IsLeader || v.Prefix != "acct1" {
		t.Errorf("status.json with 2 accounts: %+v", v)
	}

	// 2. acct2 removed with sends queued.
	sims[1].Control.SetChaos(qqsim.Chaos{LatencyMS: 300})
	var ids []string
	for i := range 8 {
		id := fmt.Sprintf("removal-%d", i)
		ids = append(ids, id)
		m := nats.NewMsg(s2.Out(schema.KindGroup))
		m.Header.Set(schema.HeaderMsgID, id)
		m.Data = []byte(fmt.Sprintf(`{"id":%q,"to":{"group":%d},"text":%q}`, id, testenv.DevChat, "queued "+id))
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	rec.WaitFrom(0, "the first queued send's result", testenv.IsResult(s2, ids[0]))
	leaderKV, err := js.KeyValue(ctx, bus.LeaderBucket(s2))
	if err != nil {
		t.Fatal(err)
	}
	lease, err := leaderKV.Watch(ctx, bus.LeaderKey, jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lease.Stop() }()
	write(entry(0, ""))
	released := false
	for !released {
		select {
		case e := <-lease.Updates():
			released = e != nil && e.Operation() == jetstream.KeyValueDelete
		case <-ctx.Done():
			t.Fatal("acct2's lease was not deleted by its holder")
		}
	}
	rec.WaitFrom(0, "acct2 stopped", testenv.IsState(s2, schema.StateStopped))
	testenv.Eventually(t, "/readyz with acct1 alone", func() bool {
		ready = healthStatus{}
		return getJSON(t, base+"/readyz?online=1", &ready) == 200 && len(ready.Accounts) == 1 && ready.Accounts[0].Prefix == "acct1"
	})
	testenv.Eventually(t, "acct2's series gone from /metrics", func() bool {
		_, body = get(t, base+"/metrics")
		return !strings.Contains(body, `prefix="acct2"`)
	})
	if got := metric(body, "qqbridge_leader", `prefix="acct1"`); got != "1" {
		t.Errorf(`qqbridge_leader{prefix="acct1"} = %q after acct2's removal`, got)
	}
	v = status.View{}
	getJSON(t, base+"/status.json", &v)
	if len(v.Accounts) != 1 || v.Accounts[0].Prefix != "acct1" {
		t.Errorf("status.json after acct2's removal: %+v", v.Accounts)
	}
	// (a request would not get "no responders": the recorder subscribes to everything)
	if n := apiSubscriptions(t, rb, s2); n != 0 {
		t.Errorf("acct2's API still has %d subscriptions after its removal", n)
	}
	if n := apiSubscriptions(t, rb, s1); n == 0 {
		t.Error("acct1's API has no subscription")
	}
	say(0, "acct1 after acct2's removal")
	sims[1].Control.SetChaos(qqsim.Chaos{})
	queued := func() map[string]int {
		n := map[string]int{}
		for _, r := range sims[1].Control.Sent() {
			if strings.HasPrefix(r.Text, "queued removal-") {
				n[strings.TrimPrefix(r.Text, "queued ")]++
			}
		}
		return n
	}
	t.Logf("sent before acct2 was removed: %d of %d", len(queued()), len(ids))

	// 3. acct2 back: its saved session, then the rest of its queue.
	qrs2 := rec.Count(isQR(s2))
	mark := rec.Len()
	write(entry(0, ""), entry(1, ""))
	rec.WaitFrom(mark, "acct2 online again", testenv.IsState(s2, schema.StateOnline))
	for _, id := range ids {
		_, m := rec.WaitFrom(0, "the result of "+id, testenv.IsResult(s2, id))
		if res, ok := testenv.DecodeResult(m); !ok || !res.OK {
			t.Errorf("result of %s: %+v", id, res)
		}
	}
	for _, id := range ids {
		if n := queued()[id]; n != 1 {
			t.Errorf("%s reached QQ %d times, want once", id, n)
		}
	}
	if n := rec.Count(isQR(s2)); n != qrs2 {
		t.Errorf("acct2 showed %d more QR codes when added back; it should resume its saved session", n-qrs2)
	}
	testenv.Eventually(t, "/readyz with both accounts again", func() bool {
		ready = healthStatus{}
		return getJSON(t, base+"/readyz?online=1", &ready) == 200 && len(ready.Accounts) == 2 && ready.Accounts[1].Prefix == "acct2"
	})

	// 4. acct1's rate changed: acct1 alone restarts.
	accts := rb.b.accountList()
	old1, old2 := accts[0], accts[1]
	qrs1 := rec.Count(isQR(s1))
	mark = rec.Len()
	write(entry(0, `,"rate":20`), entry(1, ""))
	testenv.Eventually(t, "acct1 restarted with rate 20", func() bool {
		a := rb.b.first()
		return a != old1 && a.spec.Rate == 20
	})
	i, _ := rec.WaitFrom(mark, "acct1 stopped for its restart", testenv.IsState(s1, schema.StateStopped))
	rec.WaitFrom(i, "acct1 online after its restart", testenv.IsState(s1, schema.StateOnline))
	say(0, "acct1 after its restart")
	if n := rec.Count(isQR(s1)); n != qrs1 {
		t.Errorf("acct1 showed %d more QR codes at its restart", n-qrs1)
	}
	if got := rb.b.accountList(); len(got) != 2 || got[1] != old2 {
		t.Errorf("acct2 was restarted too, or the list changed: %v", got)
	}
	if n := rec.Count(func(m *nats.Msg) bool { return testenv.IsState(s2, schema.StateStopped)(m) }); n != 1 {
		t.Errorf("acct2 published stopped %d times; once (its removal) expected", n)
	}
	say(1, "acct2 after acct1's restart")
}

// TestAccountNotStartedIsNotReady: an account added to the file that cannot
// be set up (another stream owns its subjects) makes /readyz 503 naming it,
// while the running account stays ready and /healthz stays 200; the page
// shows it with why. Taken out of the file again, the bridge is ready and
// its series are gone.
func TestAccountNotStartedIsNotReady(t *testing.T) {
	sim := testenv.StartSim(t, testenv.SimConfig())
	file := filepath.Join(t.TempDir(), "accounts.json")
	write := func(prefixes ...string) {
		t.Helper()
		var entries []string
		for _, p := range prefixes {
			entries = append(entries, fmt.Sprintf(`{"prefix":%q,"qq_endpoint":%q}`, p, sim.URL))
		}
		if err := os.WriteFile(file, []byte(`{"accounts":[`+strings.Join(entries, ",")+`]}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("acct1")
	cfg := testConfig(t, "")
	cfg.AccountsFile = file
	rb := startBridge(t, cfg)
	base := "http://" + rb.b.HTTPAddr()
	var ready healthStatus
	testenv.Eventually(t, "/readyz with acct1 (awaiting its scan is ready)", func() bool {
		ready = healthStatus{}
		return getJSON(t, base+"/readyz", &ready) == 200 && len(ready.Accounts) == 1
	})

	nc := testenv.Connect(t, rb.b.NATSURL())
	if _, err := testenv.JetStream(t, nc).CreateStream(testenv.Context(t), jetstream.StreamConfig{Name: "SQUATTER", Subjects: []string{"acct9.in.>"}}); err != nil {
		t.Fatal(err)
	}
	write("acct1", "acct9")
	testenv.Eventually(t, "/readyz 503 naming acct9", func() bool {
		ready = healthStatus{}
		return getJSON(t, base+"/readyz", &ready) == 503 && len(ready.Accounts) == 2
	})
	a1, a9 := ready.Accounts[0], ready.Accounts[1]
	if a1.Prefix != "acct1" || !a1.OK || a9.Prefix != "acct9" || a9.OK || !strings.HasPrefix(a9.Error, "not started: ") {
		t.Errorf("/readyz accounts: %+v", ready.Accounts)
	}
	t.Logf("/readyz with acct9 not started: %+v", ready)
	if !strings.HasPrefix(ready.Error, "account acct9: not started: ") || ready.OK {
		t.Errorf("/readyz: %+v", ready)
	}
	var health healthStatus
	if code := getJSON(t, base+"/healthz", &health); code != 200 || !health.OK || len(health.Accounts) != 2 || health.Accounts[1].OK {
		t.Errorf("/healthz: %d %+v", code, health)
	}
	var v status.View
	getJSON(t, base+"/status.json", &v)
	if len(v.Accounts) != 2 || v.Accounts[1].Prefix != "acct9" || !strings.HasPrefix(v.Accounts[1].Reason, "not started: ") {
		t.Errorf("status.json accounts: %+v", v.Accounts)
	}

	write("acct1")
	testenv.Eventually(t, "/readyz 200 with acct9 out of the file", func() bool {
		ready = healthStatus{}
		return getJSON(t, base+"/readyz", &ready) == 200 && len(ready.Accounts) == 1 && ready.Accounts[0].Prefix == "acct1"
	})
	if _, body := get(t, base+"/metrics"); strings.Contains(body, `prefix="acct9"`) || !strings.Contains(body, `prefix="acct1"`) {
		t.Errorf("/metrics after acct9 left the file:\n%s", body)
	}
}
