package main

import (
	"encoding/json"
	"net/http"

	"github.com/qqbridge/qqbridge/schema"
)

// healthStatus is the JSON body of /healthz and /readyz.
type healthStatus struct {
	OK      bool         `json:"ok"`
	NATS    string       `json:"nats"`              // the connection status: CONNECTED, RECONNECTING, …
	State   schema.State `json:"state,omitempty"`   // the session state (schema.SessionState.State)
	Account int64        `json:"account,omitempty"` // the QQ number once logged in
	Leader  bool         `json:"leader"`            // this replica polls
	Error   string       `json:"error,omitempty"`   // why it is not healthy or not ready
	Phase   string       `json:"phase,omitempty"`   // while starting: what the bridge waits for
}

// healthHandler serves the probes:
//
//   - /healthz: 200 while the bridge starts or runs and no component failed (a
//     NATS outage, or JetStream not ready yet, is not a reason to restart the
//     process: the client reconnects and the start waits by themselves); 503
//     otherwise.
//   - /readyz: 200 when, in addition, the bridge has started (503 with the
//     phase, e.g. "waiting for JetStream: …", before) and the NATS connection
//     is up. The session
//     state is reported but not required: a bridge waiting for a QR scan is ready
//     (it serves the API and keeps requests queued); add ?online=1 to require a
//     live QQ session as well.
func (b *Bridge) healthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		st := b.status()
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
		st := b.status()
		switch {
		case st.Error != "":
		case st.Phase != "":
			st.Error = "starting: " + st.Phase
		case !b.isRunning():
			st.Error = "not running"
		case !b.nc.IsConnected():
			st.Error = "NATS not connected"
		case r.URL.Query().Get("online") != "" && st.State != "online":
			st.Error = "QQ session not online"
		default:
			st.OK = true
		}
		writeHealth(w, st)
	})
	return mux
}

func (b *Bridge) status() healthStatus {
	if wired, phase := b.started(); !wired {
		return healthStatus{NATS: "", Phase: phase}
	}
	s := b.session.State()
	st := healthStatus{NATS: b.nc.Status().String(), State: s.State, Account: s.Account, Leader: b.session.IsLeader()}
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
