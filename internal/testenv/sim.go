package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/qqbridge/qqbridge/qqsim"
)

// Stable numbers of qqsim's built-in world (qqsim.DefaultWorld).
const (
	Self    = int64(931996776) // the account
	Alice   = int64(123456)    // friend; card Alice@dev in DevChat; member of Lunch
	Bob     = int64(3524125)   // friend (away); member of DevChat, Hiking and Lunch
	Hey     = int64(1301948)   // friend; member of Hiking
	Carol   = int64(2468024)   // not a friend; card in DevChat; member of Lunch (temporary chats)
	Dave    = int64(7654321)   // not a friend; member of Hiking
	DevChat = int64(987654)    // group "Dev chat"
	Hiking  = int64(55443322)  // group "周末爬山" (no cards)
	Lunch   = int64(1008611)   // discussion "午饭吃什么" (the simulator's stable id)
)

// The simulator's era for a whole test run: QQBRIDGE_TEST_PROFILE names a
// profile (2018, the default, or 2015) and QQBRIDGE_TEST_STRICT=1 adds the
// write-ups' header checks, so that every suite that starts its simulator
// through StartSim (or SimFlags, for the cmd/qqsim binary) runs against each
// era: CI runs them once more with QQBRIDGE_TEST_PROFILE=2015
// QQBRIDGE_TEST_STRICT=1.
const (
	EnvProfile = "QQBRIDGE_TEST_PROFILE"
	EnvStrict  = "QQBRIDGE_TEST_STRICT"
)

// SimEra returns the profile and strictness the environment asks for.
func SimEra(t testing.TB) (qqsim.Profile, bool) {
	t.Helper()
	p, err := qqsim.ParseProfile(os.Getenv(EnvProfile))
	if err != nil {
		t.Fatalf("testenv: %s: %v", EnvProfile, err)
	}
	strict := false
	switch v := os.Getenv(EnvStrict); v {
	case "", "0":
	case "1":
		strict = true
	default:
		t.Fatalf("testenv: %s=%q: want 1 or 0", EnvStrict, v)
	}
	return p, strict
}

// SimFlags are the cmd/qqsim flags of the era SimEra returns.
func SimFlags(t testing.TB) []string {
	t.Helper()
	p, strict := SimEra(t)
	return []string{"--profile", string(p), "--strict=" + strconv.FormatBool(strict)}
}

// SimConfig is a simulator configuration for tests: polls held 200ms, no
// rate limit, echo on. Change fields as a test needs. StartSim sets the
// profile and strictness from the environment (SimEra) when cfg leaves the
// profile empty.
func SimConfig() qqsim.Config {
	return qqsim.Config{PollHold: 200 * time.Millisecond, RateLimit: -1, Echo: true}
}

// Sim is a simulator on an httptest loopback listener.
type Sim struct {
	*qqsim.Server             // its Go control methods
	URL           string      // its base URL (the bridge's --qq-endpoint)
	Control       *SimControl // its HTTP control API
}

// StartSim starts a simulator with cfg (SimConfig() for the usual one) on
// 127.0.0.1; it is closed when the test ends (held polls answered first).
// handler, when set, wraps the simulator's handler (to record requests).
func StartSim(t testing.TB, cfg qqsim.Config, wrap ...func(http.Handler) http.Handler) *Sim {
	t.Helper()
	if cfg.Profile == "" {
		cfg.Profile, cfg.Strict = SimEra(t)
	}
	sim, err := qqsim.New(cfg)
	if err != nil {
		t.Fatalf("testenv: qqsim.New: %v", err)
	}
	var h http.Handler = sim
	for _, w := range wrap {
		h = w(h)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	t.Cleanup(sim.Close) // runs first: held polls answer at once
	return &Sim{Server: sim, URL: ts.URL, Control: NewSimControl(t, ts.URL)}
}

// SimControl calls the control API (/_sim/…) of a simulator over HTTP, in
// this process or another. Each call fails the test on an error answer.
type SimControl struct {
	t    testing.TB
	base string
	hc   *http.Client
}

// NewSimControl returns a control API client for the simulator at base.
func NewSimControl(t testing.TB, base string) *SimControl {
	return &SimControl{t: t, base: base, hc: &http.Client{Timeout: WaitTimeout}}
}

// call sends one control request and decodes the answer into out (if not
// nil). It returns the HTTP status; a status other than 200 fails the test
// unless it is in allow.
func (c *SimControl) call(method, path string, in, out any, allow ...int) int {
	c.t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			c.t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("testenv: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("testenv: %s %s: %v", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		if slices.Contains(allow, resp.StatusCode) {
			return resp.StatusCode
		}
		c.t.Fatalf("testenv: %s %s: HTTP %d: %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("testenv: %s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

// Scan plays the phone scanning the QR code shown (POST /_sim/qr/scan).
func (c *SimControl) Scan() {
	c.t.Helper()
	c.call(http.MethodPost, "/_sim/qr/scan", nil, nil)
}

// Confirm plays the phone confirming the login (POST /_sim/qr/confirm).
func (c *SimControl) Confirm() {
	c.t.Helper()
	c.call(http.MethodPost, "/_sim/qr/confirm", nil, nil)
}

// ScanAndConfirm waits until a QR code is shown (a client fetched one), then
// scans and confirms it: the whole QR login, the test playing the phone.
func (c *SimControl) ScanAndConfirm() {
	c.t.Helper()
	Eventually(c.t, "a QR code shown by the simulator", func() bool {
		return c.call(http.MethodPost, "/_sim/qr/scan", nil, nil, http.StatusConflict) == http.StatusOK
	})
	c.Confirm()
}

// ExpireSession ends the session but not the cookies (POST
// /_sim/session/expire): the next poll answers 103/121 and a re-login with
// the cookies works without a QR code.
func (c *SimControl) ExpireSession() {
	c.t.Helper()
	c.call(http.MethodPost, "/_sim/session/expire", nil, nil)
}

// Kick ends session and cookies: another device took over (POST /_sim/kick).
func (c *SimControl) Kick() {
	c.t.Helper()
	c.call(http.MethodPost, "/_sim/kick", nil, nil)
}

// Say makes a contact say something (POST /_sim/messages) and returns its
// msg_id.
func (c *SimControl) Say(m qqsim.Say) int64 {
	c.t.Helper()
	var out struct {
		MsgID int64 `json:"msg_id"`
	}
	c.call(http.MethodPost, "/_sim/messages", m, &out)
	return out.MsgID
}

// Sent returns what clients sent (GET /_sim/sent), oldest first.
func (c *SimControl) Sent() []qqsim.SentRecord {
	c.t.Helper()
	var out []qqsim.SentRecord
	c.call(http.MethodGet, "/_sim/sent", nil, &out)
	return out
}

// State returns the simulator's state (GET /_sim/state).
func (c *SimControl) State() qqsim.State {
	c.t.Helper()
	var out qqsim.State
	c.call(http.MethodGet, "/_sim/state", nil, &out)
	return out
}

// SetChaos sets the faults in force (POST /_sim/chaos); the zero value turns
// them off.
func (c *SimControl) SetChaos(ch qqsim.Chaos) {
	c.t.Helper()
	c.call(http.MethodPost, "/_sim/chaos", ch, nil)
}

// SentMatching returns the records of /_sim/sent that match.
func (c *SimControl) SentMatching(match func(qqsim.SentRecord) bool) []qqsim.SentRecord {
	c.t.Helper()
	var out []qqsim.SentRecord
	for _, r := range c.Sent() {
		if match(r) {
			out = append(out, r)
		}
	}
	return out
}

// SentTexts returns the texts of the records of /_sim/sent of kind to
// stable (a QQ number, group number or discussion id), oldest first.
func (c *SimControl) SentTexts(kind string, stable int64) []string {
	c.t.Helper()
	var out []string
	for _, r := range c.SentMatching(func(r qqsim.SentRecord) bool { return r.Kind == kind && r.Stable == stable }) {
		out = append(out, r.Text)
	}
	return out
}

// WaitSent polls /_sim/sent until a record matches and returns it.
func (c *SimControl) WaitSent(what string, match func(qqsim.SentRecord) bool) qqsim.SentRecord {
	c.t.Helper()
	var got qqsim.SentRecord
	var last []qqsim.SentRecord
	deadline := time.Now().Add(WaitTimeout)
	for {
		last = c.Sent()
		for _, r := range last {
			if match(r) {
				got = r
				return got
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("testenv: the simulator never received %s; it has %s", what, describeSent(last))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SentText matches a record of kind to stable whose text is text.
func SentText(kind string, stable int64, text string) func(qqsim.SentRecord) bool {
	return func(r qqsim.SentRecord) bool { return r.Kind == kind && r.Stable == stable && r.Text == text }
}

func describeSent(rs []qqsim.SentRecord) string {
	var b bytes.Buffer
	for _, r := range rs {
		fmt.Fprintf(&b, "\n  %s %d %q", r.Kind, r.Stable, r.Text)
	}
	if b.Len() == 0 {
		return "nothing"
	}
	return b.String()
}
