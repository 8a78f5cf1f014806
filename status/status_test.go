package status_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qqbridge/qqbridge/status"
)

// source is a Source whose snapshot the test changes.
type source struct {
	mu sync.Mutex
	s  status.Snapshot
}

func (s *source) Status() status.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.s
}

func (s *source) set(f func(*status.Snapshot)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.s)
}

var pngBytes = []byte("\x89PNG\r\n\x1a\nnot really a picture")

func get(t *testing.T, h http.Handler, path string) (*http.Response, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	resp := rec.Result()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func view(t *testing.T, h http.Handler) status.View {
	t.Helper()
	resp, body := get(t, h, "/status.json")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status.json: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var v status.View
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("status.json %s: %v", body, err)
	}
	return v
}

func TestQRShownOnlyWhileAwaitingScan(t *testing.T) {
	src := &source{}
	h := status.New(src)
	src.set(func(s *status.Snapshot) {
		*s = status.Snapshot{Prefix: "qq", State: "awaiting_scan", Replica: "r1", Leader: "r1",
			QR: pngBytes, QRExpires: time.Now().Add(time.Minute), NATS: "CONNECTED",
			Counters: []status.Counter{{Name: "QR codes", Value: 1}}}
	})
	v := view(t, h)
	if !strings.HasPrefix(v.QR, "qr.png?v=") || v.QRExpires == nil || !v.IsLeader || v.State != "awaiting_scan" {
		t.Fatalf("awaiting_scan view: %+v", v)
	}
	resp, body := get(t, h, "/qr.png")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" || !bytes.Equal(body, pngBytes) {
		t.Fatalf("qr.png: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}

	// a new code gets a new URL, so the page's image reloads
	first := v.QR
	src.set(func(s *status.Snapshot) { s.QR = append([]byte(nil), append(pngBytes, '2')...) })
	if v := view(t, h); v.QR == first || v.QR == "" {
		t.Fatalf("new QR, same URL %q", v.QR)
	}

	for name, f := range map[string]func(*status.Snapshot){
		"online":  func(s *status.Snapshot) { s.State = "online" },
		"scanned": func(s *status.Snapshot) { s.State = "scanned" },
		"expired": func(s *status.Snapshot) { s.QRExpires = time.Now().Add(-time.Second) },
		"no png":  func(s *status.Snapshot) { s.QR = nil },
	} {
		t.Run(name, func(t *testing.T) {
			src.set(func(s *status.Snapshot) {
				s.State, s.QR, s.QRExpires = "awaiting_scan", pngBytes, time.Now().Add(time.Minute)
				f(s)
			})
			if v := view(t, h); v.QR != "" || v.QRExpires != nil {
				t.Fatalf("QR still shown: %+v", v)
			}
			if resp, _ := get(t, h, "/qr.png"); resp.StatusCode != http.StatusNotFound {
				t.Fatalf("qr.png: %d, want 404", resp.StatusCode)
			}
		})
	}
}

func TestJSONEscapesAndHeaders(t *testing.T) {
	evil := `</script><img src=x onerror=alert(1)>&`
	h := status.New(status.SourceFunc(func() status.Snapshot {
		return status.Snapshot{Prefix: "qq", State: "kicked", Reason: evil, Replica: "a", Leader: "b"}
	}))
	resp, body := get(t, h, "/status.json")
	if bytes.ContainsAny(body, "<>") || bytes.Contains(body, []byte("&")) {
		t.Fatalf("unescaped markup in JSON: %s", body)
	}
	if v := view(t, h); v.Reason != evil || v.IsLeader || v.Counters == nil {
		t.Fatalf("view: %+v", v)
	}
	for _, path := range []string{"/", "/status.js", "/status.css", "/status.json", "/qr.png"} {
		resp, _ = get(t, h, path)
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: headers %v", path, resp.Header)
		}
	}
}

func TestPageAndRoutes(t *testing.T) {
	h := status.New(status.SourceFunc(func() status.Snapshot { return status.Snapshot{} }))
	resp, body := get(t, h, "/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("/: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{`src="status.js"`, `href="metrics"`, `href="readyz"`, `id="qr"`, `id="qr-box" hidden`} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("page lacks %s", want)
		}
	}
	if bytes.Contains(body, []byte("<script>")) {
		t.Error("inline script in the page (the CSP forbids it)")
	}
	for path, code := range map[string]int{"/status.js": 200, "/status.css": 200, "/nope": 404, "/healthz": 404} {
		if resp, _ := get(t, h, path); resp.StatusCode != code {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, code)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/status.json", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
}

// The handler shares a mux with the bridge's own endpoints: the more specific
// patterns win, the page answers the rest.
func TestMountedBesideOtherEndpoints(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "healthz") })
	mux.Handle("/", status.New(status.SourceFunc(func() status.Snapshot { return status.Snapshot{State: "online"} })))
	if _, body := get(t, mux, "/healthz"); string(body) != "healthz" {
		t.Fatalf("/healthz: %q", body)
	}
	if v := view(t, mux); v.State != "online" {
		t.Fatalf("view: %+v", v)
	}
}

// A snapshot of several accounts: the top level of /status.json is the first
// account (the single-account form), accounts lists each with its own state,
// leader, last event and QR URL, and /qr.png?prefix= serves each account's
// code (only while that account awaits a scan).
func TestManyAccounts(t *testing.T) {
	png2 := append([]byte(nil), append(pngBytes, '2')...)
	last := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	src := &source{}
	src.set(func(s *status.Snapshot) {
		*s = status.Snapshot{
			Prefix: "ignored", State: "kicked", // the account fields are not read when Accounts is set
			Replica: "r1", NATS: "CONNECTED",
			Accounts: []status.AccountSnapshot{
				{Prefix: "acct1", State: "online", Account: 111, Leader: "r1", LastEvent: last,
					Counters: []status.Counter{{Name: "events published", Value: 3}}},
				{Prefix: "acct2", State: "awaiting_scan", Leader: "r2", QR: png2, QRExpires: time.Now().Add(time.Minute)},
			},
		}
	})
	h := status.New(src)
	v := view(t, h)
	if v.Prefix != "acct1" || v.State != "online" || v.Account != 111 || !v.IsLeader || v.QR != "" || v.Replica != "r1" || v.NATS != "CONNECTED" {
		t.Fatalf("top level: %+v", v)
	}
	if v.LastEvent == nil || !v.LastEvent.Equal(last) {
		t.Fatalf("top-level last_event %v", v.LastEvent)
	}
	if len(v.Accounts) != 2 {
		t.Fatalf("accounts: %+v", v.Accounts)
	}
	a1, a2 := v.Accounts[0], v.Accounts[1]
	if a1.Prefix != "acct1" || a1.State != "online" || !a1.IsLeader || len(a1.Counters) != 1 || a1.QR != "" {
		t.Errorf("acct1: %+v", a1)
	}
	if a2.Prefix != "acct2" || a2.State != "awaiting_scan" || a2.IsLeader || a2.Leader != "r2" || a2.Counters == nil || a2.LastEvent != nil ||
		!strings.HasPrefix(a2.QR, "qr.png?prefix=acct2&v=") || a2.QRExpires == nil {
		t.Errorf("acct2: %+v", a2)
	}
	if resp, body := get(t, h, "/"+a2.QR); resp.StatusCode != 200 || !bytes.Equal(body, png2) {
		t.Errorf("%s: %d %q", a2.QR, resp.StatusCode, body)
	}
	for _, path := range []string{"/qr.png", "/qr.png?prefix=acct1", "/qr.png?prefix=nope"} {
		if resp, _ := get(t, h, path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404 (no code waits there)", path, resp.StatusCode)
		}
	}

	// One account without Accounts: accounts lists it alone.
	single := view(t, status.New(status.SourceFunc(func() status.Snapshot {
		return status.Snapshot{Prefix: "qq", State: "awaiting_scan", QR: pngBytes, Replica: "r1", Leader: "r1"}
	})))
	if len(single.Accounts) != 1 || single.Accounts[0].Prefix != "qq" || !strings.HasPrefix(single.QR, "qr.png?v=") ||
		!strings.HasPrefix(single.Accounts[0].QR, "qr.png?prefix=qq&v=") || !single.Accounts[0].IsLeader {
		t.Fatalf("single account: %+v", single)
	}
}
