package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
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

// eventText is the text of the event m carries, "" for anything else.
func eventText(m *nats.Msg) string {
	ev, err := schema.DecodeEvent(m.Header, m.Data)
	if err != nil {
		return ""
	}
	return ev.Text
}
