// Package status serves the bridge's status page: an HTML page at / that shows,
// for each account the bridge serves (one section each), the account, the
// session state and its reason, which replica leads, the live QR code while
// one waits to be scanned, when an event last arrived and recent counters; a
// JSON document at /status.json that the page polls every second; and the QR
// codes themselves at /qr.png (?prefix=P for an account other than the first).
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
	"net/url"
	"time"

	"github.com/qqbridge/qqbridge/schema"
)

// Snapshot is what the page shows, read once per request. It holds no secret:
// the QR code is public by nature (whoever scans it logs the account in, which
// is why the page must be reached only by the operator, e.g. through
// kubectl port-forward), and nothing else here is sensitive.
//
// A bridge serving one account may fill the account fields (Prefix …
// Counters) directly. A bridge serving several fills Accounts instead: then
// the account fields are not read, and the first of Accounts is shown in
// their place (the top level of /status.json keeps its single-account form).
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

	// Accounts is every account of the bridge, in the order shown; empty:
	// the one account of the fields above. Replica and NATS are the
	// replica's, shared by its accounts.
	Accounts []AccountSnapshot
}

// AccountSnapshot is one account's part of a Snapshot: the account fields
// of Snapshot, and when this replica last published an inbound event of it.
type AccountSnapshot struct {
	Prefix    string
	Account   int64
	State     schema.State
	Reason    string
	Since     time.Time
	Leader    string
	QR        []byte
	QRExpires time.Time
	LastEvent time.Time // zero: none since this replica started (only the leader publishes)
	Counters  []Counter
}

// accounts returns the snapshot's accounts: Accounts, or the one account of
// the top-level fields.
func (s Snapshot) accounts() []AccountSnapshot {
	if len(s.Accounts) > 0 {
		return s.Accounts
	}
	return []AccountSnapshot{{
		Prefix: s.Prefix, Account: s.Account, State: s.State, Reason: s.Reason, Since: s.Since,
		Leader: s.Leader, QR: s.QR, QRExpires: s.QRExpires, Counters: s.Counters,
	}}
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

// View is the JSON of /status.json: the first account's view at the top
// level (the form of a bridge with one account), the replica's own fields,
// and every account's view under accounts (one entry with one account).
type View struct {
	AccountView
	Replica  string        `json:"replica,omitempty"`
	NATS     string        `json:"nats,omitempty"`
	Accounts []AccountView `json:"accounts"`
	Time     time.Time     `json:"time"` // when this view was made
}

// AccountView is one account in /status.json.
type AccountView struct {
	Prefix    string       `json:"prefix"`
	Account   int64        `json:"account,omitempty"`
	State     schema.State `json:"state"`
	Reason    string       `json:"reason,omitempty"`
	Since     *time.Time   `json:"since,omitempty"`
	Leader    string       `json:"leader,omitempty"`
	IsLeader  bool         `json:"is_leader"`
	QR        string       `json:"qr,omitempty"` // URL of the QR image (changes with the code); absent when none is shown
	QRExpires *time.Time   `json:"qr_expires,omitempty"`
	LastEvent *time.Time   `json:"last_event,omitempty"`
	Counters  []Counter    `json:"counters"`
}

//go:embed assets
var assets embed.FS

// Handler serves the status page. Mount it at "/" of the bridge's HTTP
// listener; it answers GET /, /status.json, /qr.png (the first account's
// code; /qr.png?prefix=P another account's), /status.js and /status.css, and 404 for anything else, so more specific patterns such as
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
func (h *Handler) qrShown(a AccountSnapshot) []byte {
	if a.State != schema.StateAwaitingScan || len(a.QR) == 0 {
		return nil
	}
	if !a.QRExpires.IsZero() && !h.now().Before(a.QRExpires) {
		return nil
	}
	return a.QR
}

// View turns a snapshot into the JSON view.
func (h *Handler) View(s Snapshot) View {
	accts := s.accounts()
	v := View{Replica: s.Replica, NATS: s.NATS, Accounts: make([]AccountView, len(accts)), Time: h.now().UTC()}
	for i, a := range accts {
		v.Accounts[i] = h.accountView(a, s.Replica, "qr.png?prefix="+url.QueryEscape(a.Prefix)+"&v=")
	}
	v.AccountView = h.accountView(accts[0], s.Replica, "qr.png?v=")
	return v
}

// accountView is the view of one account; qrURL is the QR image's URL
// before the code's hash.
func (h *Handler) accountView(a AccountSnapshot, replica, qrURL string) AccountView {
	v := AccountView{
		Prefix: a.Prefix, Account: a.Account, State: a.State, Reason: a.Reason,
		Leader: a.Leader, IsLeader: a.Leader != "" && a.Leader == replica,
		LastEvent: utcOrNil(a.LastEvent), Since: utcOrNil(a.Since), Counters: a.Counters,
	}
	if v.Counters == nil {
		v.Counters = []Counter{}
	}
	if png := h.qrShown(a); png != nil {
		sum := sha256.Sum256(png)
		v.QR = qrURL + hex.EncodeToString(sum[:8])
		v.QRExpires = utcOrNil(a.QRExpires)
	}
	return v
}

func utcOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func (h *Handler) serveJSON(w http.ResponseWriter, r *http.Request) {
	header(w, "application/json")
	_ = json.NewEncoder(w).Encode(h.View(h.src.Status())) // escapes <, > and & too
}

func (h *Handler) serveQR(w http.ResponseWriter, r *http.Request) {
	accts := h.src.Status().accounts()
	var png []byte
	if p := r.URL.Query().Get("prefix"); p == "" {
		png = h.qrShown(accts[0])
	} else {
		for _, a := range accts {
			if a.Prefix == p {
				png = h.qrShown(a)
			}
		}
	}
	if png == nil {
		header(w, "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("no QR code is waiting to be scanned\n"))
		return
	}
	header(w, "image/png")
	_, _ = w.Write(png)
}
