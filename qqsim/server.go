package qqsim

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Server is the simulator: an http.Handler serving the protocol endpoints and the
// /_sim/ control API, and the same control as methods. It is safe for concurrent use.
type Server struct {
	cfg   Config
	world *World

	mu sync.Mutex
}

// New makes a Server from cfg, filling defaults. It fails (wrapping ErrBadWorld) when
// cfg.World is not servable.
func New(cfg Config) (*Server, error) {
	if cfg.World == nil {
		cfg.World = DefaultWorld()
	}
	if err := cfg.World.Validate(); err != nil {
		return nil, err
	}
	if cfg.QRTTL <= 0 {
		cfg.QRTTL = 120 * time.Second
	}
	if cfg.PollHold <= 0 {
		cfg.PollHold = 60 * time.Second
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 48 * time.Hour
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = 20
	}
	return &Server{cfg: cfg, world: cfg.World.clone()}, nil
}

// ServeHTTP serves the protocol endpoints and the /_sim/ control API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "not implemented yet", http.StatusNotImplemented)
}

// ScanQR plays the phone scanning the QR code shown last.
func (s *Server) ScanQR() error { return ErrNoQR }

// ConfirmQR plays the phone confirming the login (scanning first if needed).
func (s *Server) ConfirmQR() error { return ErrNoQR }

// ExpireQR makes the QR code shown last expire now.
func (s *Server) ExpireQR() error { return ErrNoQR }

// Say makes a contact say something; it is delivered through poll2 in wire form with
// the session numbers current at delivery. It returns the item's msg_id.
func (s *Server) Say(m Say) (int64, error) { return 0, ErrBadSay }

// Inject queues poll2 result items verbatim.
func (s *Server) Inject(items []json.RawMessage) error { return ErrBadItem }

// Sent returns what clients sent, oldest first.
func (s *Server) Sent() []SentRecord { return nil }

// ExpireSession ends the current session (psessionid) but not the login cookies.
func (s *Server) ExpireSession() {}

// Kick ends the session and the cookies, as another device taking over would.
func (s *Server) Kick() {}

// SetChaos sets the faults on demand.
func (s *Server) SetChaos(c Chaos) {}

// State returns the observable state.
func (s *Server) State() State { return State{} }

// WorldView returns a copy of the world.
func (s *Server) WorldView() World { return *s.world.clone() }
