package main

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/qqbridge/qqbridge/schema"
)

// healthStatus is the JSON body of /healthz and /readyz. The top-level state,
// account and leader are the first account's (the form of a bridge with one
// account); accounts has every account, once the bridge is set up.
type healthStatus struct {
	OK       bool            `json:"ok"`
	NATS     string          `json:"nats"`               // the connection status: CONNECTED, RECONNECTING, …
	State    schema.State    `json:"state,omitempty"`    // the session state (schema.SessionState.State)
	Account  int64           `json:"account,omitempty"`  // the QQ number once logged in
	Leader   bool            `json:"leader"`             // this replica polls
	Error    string          `json:"error,omitempty"`    // why it is not healthy or not ready
	Phase    string          `json:"phase,omitempty"`    // while starting: what the bridge waits for
	Accounts []accountHealth `json:"accounts,omitempty"` // every account, in the order of the accounts file
}

// accountHealth is one account in /healthz and /readyz.
type accountHealth struct {
	Prefix  string       `json:"prefix"`
	OK      bool         `json:"ok"`                // this account is ready (see healthHandler)
	State   schema.State `json:"state,omitempty"`   // its session state as this replica knows it
	Account int64        `json:"account,omitempty"` // its QQ number once logged in
	Leader  bool         `json:"leader"`            // this replica holds its lease (polls it)
	Error   string       `json:"error,omitempty"`   // why it is not ready
}

// healthHandler serves the probes:
//
//   - /healthz: 200 while the bridge starts or runs and no component failed (a
//     NATS outage, or JetStream not ready yet, is not a reason to restart the
//     process: the client reconnects and the start waits by themselves); 503
//     otherwise.
//   - /readyz: 200 when, in addition, the bridge has started (503 with the
//     phase, e.g. "waiting for JetStream: …", before), the NATS connection
//     is up and every account the bridge serves is ready: its components
//     run. An account of the accounts file that could not be started (its
//     streams could not be set up, say) is not ready; one being removed is
//     no longer listed. The session state is reported but not required: a
//     bridge waiting for a QR scan is ready (it serves the API and keeps
//     requests queued); add ?online=1 to require a live QQ session of every
//     account as well.
//
// Both list the accounts with their own ok and error; /healthz's top-level
// ok does not depend on them.
func (b *Bridge) healthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		st := b.status(false)
		switch {
		case st.Error != "":
		case st.Phase != "":
			st.OK = true // starting
		case !b.isRunning():
			st.Error = "not running"
		default:
			st.OK = true
		}
		writeHealth(w, st)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		st := b.status(r.URL.Query().Get("online") != "")
		switch {
		case st.Error != "":
		case st.Phase != "":
			st.Error = "starting: " + st.Phase
		case !b.isRunning():
			st.Error = "not running"
		case !b.nc.IsConnected():
			st.Error = "NATS not connected"
		default:
			st.Error = accountsError(st.Accounts)
			st.OK = st.Error == ""
		}
		writeHealth(w, st)
	})
	return mux
}

// accountsError says which accounts are not ready: with one account its own
// error ("QQ session not online"), with several each prefixed by its
// prefix; "" when all are.
func accountsError(accts []accountHealth) string {
	if len(accts) == 0 {
		return "no account runs"
	}
	var errs []string
	for _, a := range accts {
		if a.OK {
			continue
		}
		if len(accts) == 1 {
			return a.Error
		}
		errs = append(errs, "account "+a.Prefix+": "+a.Error)
	}
	return strings.Join(errs, "; ")
}

// status is what the probes report; online: an account is ready only when
// its QQ session is online.
func (b *Bridge) status(online bool) healthStatus {
	if wired, phase := b.started(); !wired {
		return healthStatus{NATS: "", Phase: phase}
	}
	st := healthStatus{NATS: b.nc.Status().String()}
	running := b.isRunning()
	for _, a := range b.accountList() {
		s := a.session.State()
		ah := accountHealth{Prefix: a.prefix(), State: s.State, Account: s.Account, Leader: a.session.IsLeader()}
		switch {
		case !running:
			ah.Error = "not running"
		case online && s.State != schema.StateOnline:
			ah.Error = "QQ session not online"
		default:
			ah.OK = true
		}
		st.Accounts = append(st.Accounts, ah)
	}
	for _, ae := range b.notStarted() {
		st.Accounts = append(st.Accounts, accountHealth{Prefix: ae.prefix, Error: ae.err.Error()})
	}
	if len(st.Accounts) > 0 {
		first := st.Accounts[0]
		st.State, st.Account, st.Leader = first.State, first.Account, first.Leader
	}
	b.mu.Lock()
	if b.failed != nil {
		st.Error = b.failed.Error()
	}
	b.mu.Unlock()
	return st
}

func (b *Bridge) isRunning() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.running
}

func writeHealth(w http.ResponseWriter, st healthStatus) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !st.OK {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(st)
}
