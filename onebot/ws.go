package onebot

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Roles of a WebSocket connection (X-Client-Role of a reverse one).
const (
	roleUniversal = "Universal"
	roleAPI       = "API"
	roleEvent     = "Event"
)

const (
	wsReadLimit    = 1 << 20 // the largest action frame accepted
	wsSendBuffer   = 256     // events queued for a slow client before it is dropped
	wsWriteTimeout = 10 * time.Second
	wsConcurrent   = 16 // actions of one connection running at once
)

// conn is one WebSocket connection, forward or reverse.
type conn struct {
	ws      *websocket.Conn
	role    string
	events  bool // receives events
	api     bool // takes actions
	reverse bool
	out     chan frame
	done    chan struct{}
	once    sync.Once
}

// frame is one queued message; written, when non-nil, receives the outcome
// of the write.
type frame struct {
	b       []byte
	written chan error
}

func newConn(ws *websocket.Conn, role string, reverse bool) *conn {
	return &conn{ws: ws, role: role, reverse: reverse,
		events: role != roleAPI, api: role != roleEvent,
		out: make(chan frame, wsSendBuffer), done: make(chan struct{})}
}

// send queues a frame; a client too slow to take wsSendBuffer frames is
// closed (it reconnects and gets a lifecycle connect).
func (c *conn) send(b []byte) {
	select {
	case c.out <- frame{b: b}:
	case <-c.done:
	default:
		c.closeWith(websocket.StatusPolicyViolation, "too slow: event buffer full")
	}
}

// errConnClosed is the outcome of a frame whose connection closed first.
var errConnClosed = errors.New("onebot: WebSocket connection closed")

// sendWait queues a frame and waits until it is written to the socket (not
// until the bot has read it): a pushed event is acknowledged only then.
func (c *conn) sendWait(ctx context.Context, b []byte) error {
	f := frame{b: b, written: make(chan error, 1)}
	select {
	case c.out <- f:
	case <-c.done:
		return errConnClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-f.written:
		return err
	case <-c.done:
		return errConnClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *conn) close() { c.closeWith(websocket.StatusGoingAway, "gateway stopping") }

func (c *conn) closeWith(code websocket.StatusCode, reason string) {
	c.once.Do(func() {
		close(c.done)
		go func() { _ = c.ws.Close(code, reason) }()
	})
}

// serve runs the connection until it closes: a writer for the queued
// frames, and (for API roles) a reader that runs each action on its own
// goroutine, answering with the echo.
func (g *Gateway) serve(ctx context.Context, c *conn) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.ws.SetReadLimit(wsReadLimit)
	g.addConn(c)
	defer g.removeConn(c)
	defer c.closeWith(websocket.StatusNormalClosure, "")
	if c.events {
		g.refreshState(ctx)
		if b, err := marshalNoEscape(Lifecycle("connect", g.SelfID(), time.Now())); err == nil {
			c.send(b)
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel()
		for {
			select {
			case <-ctx.Done():
				return
			case <-c.done:
				return
			case f := <-c.out:
				wctx, wcancel := context.WithTimeout(ctx, wsWriteTimeout)
				err := c.ws.Write(wctx, websocket.MessageText, f.b)
				wcancel()
				if f.written != nil {
					f.written <- err
				}
				if err != nil {
					c.closeWith(websocket.StatusAbnormalClosure, "")
					return
				}
			}
		}
	}()
	if !c.api {
		rctx := c.ws.CloseRead(ctx)
		select {
		case <-rctx.Done():
		case <-c.done:
		}
		cancel()
		wg.Wait()
		return
	}
	sem := make(chan struct{}, wsConcurrent)
	for {
		_, data, err := c.ws.Read(ctx)
		if err != nil {
			break
		}
		var f struct {
			Action string          `json:"action"`
			Params Params          `json:"params"`
			Echo   json.RawMessage `json:"echo"`
		}
		if err := json.Unmarshal(data, &f); err != nil || f.Action == "" {
			r := failed(RetBadRequest, "not an action frame: want {\"action\":…,\"params\":{…},\"echo\":…}")
			r.Echo = f.Echo
			if b, err := marshalNoEscape(r); err == nil {
				c.send(b)
			}
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r := g.Call(g.background(), f.Action, f.Params, f.Echo)
			b, err := marshalNoEscape(r)
			if err != nil {
				b, _ = marshalNoEscape(Response{Status: "failed", Retcode: RetInternal, Msg: "cannot encode the answer", Echo: f.Echo})
			}
			c.send(b)
		}()
	}
	cancel()
	wg.Wait()
}

// acceptWS upgrades a forward WebSocket: "/" universal, "/api", "/event".
func (g *Gateway) acceptWS(w http.ResponseWriter, r *http.Request, role string) {
	// ServeHTTP has refused requests from browser pages of other sites
	// (crossSite); the library's own origin check would also refuse the
	// junk Origin some bot SDKs send.
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	g.serve(g.background(), newConn(ws, role, false))
}

// reverseLoop keeps one reverse WebSocket client connected until ctx ends,
// redialling Config.ReconnectInterval after each failure or close.
func (g *Gateway) reverseLoop(ctx context.Context, url, role string) {
	for {
		g.refreshState(ctx)
		h := http.Header{}
		h.Set("X-Self-ID", strconv.FormatInt(g.SelfID(), 10))
		h.Set("X-Client-Role", role)
		h.Set("User-Agent", "qqbridge-onebot/"+g.cfg.Version)
		if g.cfg.AccessToken != "" {
			h.Set("Authorization", "Bearer "+g.cfg.AccessToken)
		}
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ws, resp, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPHeader: h})
		cancel()
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
		if err == nil {
			g.log.Info().Str("url", redactURL(url)).Str("role", role).Msg("reverse WebSocket connected")
			g.serve(ctx, newConn(ws, role, true))
			g.log.Info().Str("url", redactURL(url)).Str("role", role).Msg("reverse WebSocket closed")
		} else if ctx.Err() == nil {
			g.log.Debug().Err(errors.Unwrap(err)).Str("url", redactURL(url)).Str("role", role).Msg("reverse WebSocket dial failed")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(g.cfg.ReconnectInterval):
		}
	}
}
