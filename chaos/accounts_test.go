//go:build chaos

package chaos

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var accountsN = flag.Int("accounts", 6, "accounts served by every replica in TestChaosAccounts (one qqsim each)")

// TestChaosAccounts runs -accounts accounts (one qqsim process each) on 3
// bridge replicas with one accounts file, and records who holds each
// account's lease: spread when all are healthy, taken over when a replica is
// killed -9, spread again when it returns, without flapping. It prints the
// distribution over time. It fails when a spread is not reached within
// generous bounds (120 s after the logins, 30 s after the kill, 60 s after
// the restart: the minute) or an account has no leader at the end; how fast, and
// whether the leases flapped, it reports.
func TestChaosAccounts(t *testing.T) {
	n := *accountsN
	dir := t.TempDir()
	bridgeBin, simBin := buildBinaries(t, dir)
	cl := startCluster(t, 3)
	nc, err := nats.Connect(cl.urls(), nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	sims := make([]string, n)
	var entries []string
	for i := range n {
		port := freePort(t)
		sims[i] = fmt.Sprintf("http://127.0.0.1:%d", port)
		p := newProc(t, dir, fmt.Sprintf("qqsim%d", i+1), simBin, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
			"--poll-hold", "10s", "--rate-limit", "-1", "--qr-ttl", "600s")
		if err := p.start(); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, fmt.Sprintf(`{"prefix":"acct%d","qq_endpoint":%q}`, i+1, sims[i]))
	}
	file := filepath.Join(dir, "accounts.json")
	if err := os.WriteFile(file, []byte(`{"accounts":[`+strings.Join(entries, ",")+`]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var bridges []*proc
	for i := range 3 {
		p := newProc(t, dir, fmt.Sprintf("bridge%d", i+1), bridgeBin, "run",
			"--nats", cl.urls(), "--replicas", "3", "--accounts", file, "--http", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
			"--session-key", "qqbridge-chaos-suite-key-Zx7Qp2Lm9Vb4Nc", "--qr-poll-interval", "200ms", "--poll-timeout", "30s",
			"--shutdown-timeout", "5s", "--log-format", "json")
		if err := p.start(); err != nil {
			t.Fatal(err)
		}
		bridges = append(bridges, p)
	}
	defer func() {
		if t.Failed() {
			for _, p := range bridges {
				t.Logf("---- %s (last lines)\n%s", p.name, p.tail(3000))
				for _, l := range append(p.grepLog(`"level":"error"`), p.grepLog(`"level":"warn"`)...) {
					t.Logf("%s: %s", p.name, l)
				}
			}
		}
	}()
	// Every account's leader shows a QR code; the phone confirms each.
	for i, u := range sims {
		if !waitFor(90*time.Second, func() bool {
			var st struct{ Login string }
			return getJSON(u+"/_sim/state", &st) == 200 && st.Login == "qr_waiting"
		}) {
			t.Fatalf("account %d: no QR code within 90s", i+1)
		}
		if err := postJSON(context.Background(), u+"/_sim/qr/confirm", struct{}{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now()
	for _, p := range bridges {
		if p.exited() {
			t.Fatalf("%s exited before the accounts were spread", p.name)
		}
	}

	// holders reads each account's lease: replica id → accounts it leads.
	holders := func() map[string]int {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		out := map[string]int{}
		for i := range n {
			kv, err := js.KeyValue(ctx, fmt.Sprintf("acct%d_session_leader", i+1))
			if err != nil {
				continue
			}
			if e, err := kv.Get(ctx, "leader"); err == nil {
				out[string(e.Value())]++
			}
		}
		return out
	}
	shape := func(h map[string]int) []int {
		var c []int
		for _, k := range h {
			c = append(c, k)
		}
		sort.Sort(sort.Reverse(sort.IntSlice(c)))
		return c
	}
	type sample struct {
		at    time.Duration
		shape []int
	}
	var timeline []sample
	var last string
	changes := 0
	observe := func() []int {
		s := shape(holders())
		if k := fmt.Sprint(s); k != last {
			last = k
			changes++
			timeline = append(timeline, sample{time.Since(t0).Round(100 * time.Millisecond), s})
		}
		return s
	}
	until := func(d time.Duration, want []int) (time.Duration, bool) {
		start := time.Now()
		for time.Since(start) < d {
			if fmt.Sprint(observe()) == fmt.Sprint(want) {
				return time.Since(start), true
			}
			time.Sleep(250 * time.Millisecond)
		}
		return time.Since(start), false
	}
	hold := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
			observe()
		}
	}
	quota := func(replicas int) []int {
		var w []int
		left := n
		for r := replicas; r > 0; r-- {
			k := (left + r - 1) / r
			w = append(w, k)
			left -= k
		}
		return w
	}

	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("")
	w("== accounts: %d accounts on 3 replicas (one accounts file), 3-node JetStream cluster", n)
	d, ok := until(120*time.Second, quota(3))
	w("spread after the logins: %v after %v (reached: %v)", last, d.Round(100*time.Millisecond), ok)
	if !ok {
		t.Errorf("the leases were not spread %v within 120 s of the logins: %v", quota(3), last)
	}
	hold(4 * time.Second)
	before := changes
	hold(5 * time.Second)
	w("changes in 5 s while spread: %d", changes-before)

	bridges[2].kill()
	killedAt := time.Now()
	_, ok = until(30*time.Second, quota(2))
	w("kill -9 bridge3: %v after %v (reached: %v)", last, time.Since(killedAt).Round(100*time.Millisecond), ok)
	if !ok {
		t.Errorf("the killed replica's accounts were not taken over %v within 30 s: %v", quota(2), last)
	}
	if err := bridges[2].start(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	_, ok = until(60*time.Second, quota(3))
	w("bridge3 restarted: %v after %v (reached: %v)", last, time.Since(back).Round(100*time.Millisecond), ok)
	if !ok {
		t.Errorf("the leases were not spread %v again within 60 s of the restart: %v", quota(3), last)
	}
	before = changes
	hold(20 * time.Second)
	w("changes in the 20 s after: %d (flapping would show here)", changes-before)
	w("")
	w("lease distribution over time (accounts led per replica):")
	for _, s := range timeline {
		w("  +%-8v %v", s.at, s.shape)
	}
	for _, p := range bridges {
		w("%s: running %v; log lines with level error: %d, warn: %d; handed back: %d", p.name, p.running() && !p.exited(),
			p.countLog(`"level":"error"`), p.countLog(`"level":"warn"`), p.countLog("leadership handed back"))
	}
	t.Log(b.String())
	for _, p := range bridges {
		if p.countLog(`"level":"error"`) > 0 || p.exited() {
			t.Logf("---- %s\n%s", p.name, p.tail(2500))
		}
	}

	total := 0
	for _, k := range holders() {
		total += k
	}
	if total != n {
		t.Errorf("%d of %d accounts have a leader at the end", total, n)
	}
}
