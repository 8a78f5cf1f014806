// Package status serves the bridge's status page: an HTML page at / that shows
// the account, the session state and its reason, which replica leads, the live
// QR code while one waits to be scanned, and recent counters; a JSON document
// at /status.json that the page polls every second; and the QR code itself at
// /qr.png.
//
// The page is static (embedded), its script fills it from /status.json with
// textContent only, and every response forbids inline script (Content-Security-
// Policy), so nothing the bridge reports — a reason, a nickname — can run as
// code in the browser.
package status

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"time"

	"github.com/qqbridge/qqbridge/schema"
)

// Snapshot is what the page shows, read once per request. It holds no secret:
// the QR code is public by nature (whoever scans it logs the account in, which
// is why the page must be reached only by the operator, e.g. through
// kubectl port-forward), and nothing else here is sensitive.
type Snapshot struct {
	Prefix  string       // subject prefix (one per QQ account)
	Account int64        // QQ number once known; 0 before the first login
	State   schema.State // session state; "" while unknown
	Reason  string       // why, in words (schema.SessionState.Reason)
	Since   time.Time    // when State began; zero if unknown
	Replica string       // this replica's ID
	Leader  string       // the ID of the replica holding the leadership lease; "" if none or unknown
	NATS    string       // the NATS connection status (CONNECTED, RECONNECTING, …)

	// QR is the PNG of the QR code being shown, while State is awaiting_scan;
	// nil otherwise. QRExpires is when it expires (zero if unknown).
	QR        []byte
	QRExpires time.Time

	Counters []Counter // recent counters, shown in this order
}

// Counter is one named number on the page, e.g. {"events published", 42}.
type Counter struct {
	Name  string `json:"name"`
	Value uint64 `json:"value"`
}

// Source gives the current snapshot; the bridge implements it. It is called
// once per request of /status.json and /qr.png, so it must be cheap.
type Source interface {
	Status() Snapshot
}

// SourceFunc adapts a function to Source.
type SourceFunc func() Snapshot

// Status calls f.
func (f SourceFunc) Status() Snapshot { return f() }

// View is the JSON of /status.json.
type View struct {
	Prefix    string       `json:"prefix"`
	Account   int64        `json:"account,omitempty"`
	State     schema.State `json:"state"`
	Reason    string       `json:"reason,omitempty"`
	Since     *time.Time   `json:"since,omitempty"`
	Replica   string       `json:"replica,omitempty"`
	Leader    string       `json:"leader,omitempty"`
	IsLeader  bool         `json:"is_leader"`
	NATS      string       `json:"nats,omitempty"`
	QR        string       `json:"qr,omitempty"` // URL of the QR image (changes with the code); absent when none is shown
	QRExpires *time.Time   `json:"qr_expires,omitempty"`
	Counters  []Counter    `json:"counters"`
	Time      time.Time    `json:"time"` // when this view was made
}

//go:embed assets
var assets embed.FS

// Handler serves the status page. Mount it at "/" of the bridge's HTTP
// listener; it answers GET /, /status.json, /qr.png, /status.js and
// /status.css, and 404 for anything else, so more specific patterns such as
// /healthz, /readyz and /metrics registered on the same mux keep working.
type Handler struct {
	src Source
	now func() time.Time
	mux *http.ServeMux
}

// New returns the handler of the status page fed by src.
func New(src Source) *Handler {
	h := &Handler{src: src, now: time.Now, mux: http.NewServeMux()}
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	static := func(name, ctype string) http.HandlerFunc {
		body, err := fs.ReadFile(sub, name)
		if err != nil {
			panic(err)
		}
		return func(w http.ResponseWriter, r *http.Request) {
			header(w, ctype)
			_, _ = w.Write(body)
		}
	}
	h.mux.HandleFunc("GET /{$}", static("index.html", "text/html; charset=utf-8"))
	h.mux.HandleFunc("GET /status.js", static("status.js", "text/javascript; charset=utf-8"))
	h.mux.HandleFunc("GET /status.css", static("status.css", "text/css; charset=utf-8"))
	h.mux.HandleFunc("GET /status.json", h.serveJSON)
	h.mux.HandleFunc("GET /qr.png", h.serveQR)
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// header sets the headers of every answer: no caching (the page is live), no
// content sniffing, and a policy allowing only this origin's script, style and
// images — no inline script, so injected markup could not run.
func header(w http.ResponseWriter, ctype string) {
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Security-Policy",
		"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
}

// qrShown returns the QR code to show, or nil: only while the state is
// awaiting_scan, and not once it expired.
func (h *Handler) qrShown(s Snapshot) []byte {
	if s.State != "awaiting_scan" || len(s.QR) == 0 {
		return nil
	}
	if !s.QRExpires.IsZero() && !h.now().Before(s.QRExpires) {
		return nil
	}
	return s.QR
}

// View turns a snapshot into the JSON view.
func (h *Handler) View(s Snapshot) View {
	v := View{
		Prefix: s.Prefix, Account: s.Account, State: s.State, Reason: s.Reason,
		Replica: s.Replica, Leader: s.Leader, IsLeader: s.Leader != "" && s.Leader == s.Replica,
		NATS: s.NATS, Counters: s.Counters, Time: h.now().UTC(),
	}
	if v.Counters == nil {
		v.Counters = []Counter{}
	}
	if !s.Since.IsZero() {
		t := s.Since.UTC()
		v.Since = &t
	}
	if png := h.qrShown(s); png != nil {
		sum := sha256.Sum256(png)
		v.QR = "qr.png?v=" + hex.EncodeToString(sum[:8])
		if !s.QRExpires.IsZero() {
			t := s.QRExpires.UTC()
			v.QRExpires = &t
		}
	}
	return v
}

func (h *Handler) serveJSON(w http.ResponseWriter, r *http.Request) {
	header(w, "application/json")
	_ = json.NewEncoder(w).Encode(h.View(h.src.Status())) // escapes <, > and & too
}

func (h *Handler) serveQR(w http.ResponseWriter, r *http.Request) {
	png := h.qrShown(h.src.Status())
	if png == nil {
		header(w, "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("no QR code is waiting to be scanned\n"))
		return
	}
	header(w, "image/png")
	_, _ = w.Write(png)
}
