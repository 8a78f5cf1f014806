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
