package qqclient

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Session is everything needed to resume a login without a new QR scan. It JSON-marshals
// WITH its secrets (for saving; the caller encrypts what it stores), but String, GoString and
// Format print only the uin.
type Session struct {
	UIN        int64         `json:"uin"` // the account's QQ number (login2 result.uin)
	PtWebQQ    string        `json:"ptwebqq"`
	VFWebQQ    string        `json:"vfwebqq"` // from getvfwebqq, not login2
	PSessionID string        `json:"psessionid"`
	Cookies    []SavedCookie `json:"cookies"`
	LoggedInAt time.Time     `json:"logged_in_at"`
}

// String implements fmt.Stringer without secrets.
func (s Session) String() string {
	return fmt.Sprintf("qqclient.Session{UIN:%d [redacted]}", s.UIN)
}

// GoString implements fmt.GoStringer without secrets.
func (s Session) GoString() string { return s.String() }

// Format implements fmt.Formatter: every verb prints the redacted form.
func (s Session) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// Session returns a copy of the current session (with the cookies as they are now), or false
// when the client is not logged in.
func (c *Client) Session() (*Session, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return nil, false
	}
	return c.snapshotLocked(), true
}

func (c *Client) snapshotLocked() *Session {
	s := c.sess
	return &Session{
		UIN: s.uin, PtWebQQ: s.ptwebqq, VFWebQQ: s.vfwebqq, PSessionID: s.psessionid,
		Cookies: c.cookies.saved(), LoggedInAt: s.loggedInAt,
	}
}

// Logout forgets the session, the cookies and any QR login in progress, locally only.
func (c *Client) Logout() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sess = nil
	c.cookies = newCookieStore()
	c.qrsig, c.checkSig = "", ""
}

// Resume installs a saved session and proves it alive with get_online_buddies2 (which also
// satisfies the server's "call it before poll2" rule). A dead session returns an error
// wrapping ErrSessionLost and leaves the client logged out; try Relogin (the saved cookies
// may still be alive — Resume keeps them for it), then LoginQR. Other failures (ErrHTTP,
// ErrRateLimited…) leave the session installed, so Resume or Poll may be tried again.
func (c *Client) Resume(ctx context.Context, s *Session) error {
	if s == nil || s.PtWebQQ == "" || s.VFWebQQ == "" || s.PSessionID == "" || s.UIN == 0 {
		return fmt.Errorf("%w: Resume: incomplete session", ErrBadRequest)
	}
	store := newCookieStore()
	if err := store.restore(s.Cookies); err != nil {
		return err
	}
	c.mu.Lock()
	c.cookies = store
	c.qrsig, c.checkSig = "", ""
	c.sess = newSessionState(s.UIN, s.PtWebQQ, s.VFWebQQ, s.PSessionID, s.LoggedInAt)
	c.mu.Unlock()
	if _, err := c.OnlineBuddies(ctx); err != nil {
		if errors.Is(err, ErrSessionLost) {
			c.mu.Lock()
			c.sess = nil
			c.mu.Unlock()
		}
		return err
	}
	return nil
}

// Relogin makes a new session from the login cookies the client still holds (getvfwebqq,
// login2, get_online_buddies2) — no QR. Dead cookies return an error wrapping ErrSessionLost;
// no cookies at all, ErrNotLoggedIn.
func (c *Client) Relogin(ctx context.Context) (*Session, error) {
	c.mu.Lock()
	ptwebqq := ""
	if c.sess != nil {
		ptwebqq = c.sess.ptwebqq
	}
	if v, ok := c.cookies.get(c.sBase, "ptwebqq"); ok && v != "" {
		ptwebqq = v
	}
	c.mu.Unlock()
	if ptwebqq == "" {
		return nil, fmt.Errorf("%w: Relogin: no login cookies", ErrNotLoggedIn)
	}
	return c.establish(ctx, ptwebqq)
}

// establish runs getvfwebqq, login2 and get_online_buddies2 with ptwebqq and installs the new
// session.
func (c *Client) establish(ctx context.Context, ptwebqq string) (*Session, error) {
	res, err := c.jsonCall(ctx, &call{
		op: "getvfwebqq", host: hostS, path: "/api/getvfwebqq",
		query: qv("ptwebqq", ptwebqq, "clientid", itoa(ClientID), "psessionid", "", "t", tParam()),
	})
	if err != nil {
		return nil, err
	}
	var vf struct {
		VFWebQQ flexString `json:"vfwebqq"`
	}
	if err := decodeResult("getvfwebqq", res, &vf); err != nil {
		return nil, err
	}
	if vf.VFWebQQ == "" {
		return nil, protocolError("getvfwebqq", "no vfwebqq in the answer")
	}
	res, err = c.jsonCall(ctx, &call{
		op: "login2", host: hostD1, path: "/channel/login2",
		form: struct {
			PtWebQQ    string `json:"ptwebqq"`
			ClientID   int    `json:"clientid"`
			PSessionID string `json:"psessionid"`
			Status     string `json:"status"`
		}{ptwebqq, ClientID, "", "online"},
	})
	if err != nil {
		return nil, err
	}
	var l2 struct {
		UIN        flexInt    `json:"uin"`
		PSessionID flexString `json:"psessionid"`
	}
	if err := decodeResult("login2", res, &l2); err != nil {
		return nil, err
	}
	if l2.UIN == 0 || l2.PSessionID == "" {
		return nil, protocolError("login2", "no uin or psessionid in the answer")
	}
	c.mu.Lock()
	c.sess = newSessionState(int64(l2.UIN), ptwebqq, string(vf.VFWebQQ), string(l2.PSessionID), time.Now())
	c.qrsig, c.checkSig = "", ""
	c.mu.Unlock()
	if _, err := c.OnlineBuddies(ctx); err != nil {
		if errors.Is(err, ErrSessionLost) {
			c.mu.Lock()
			c.sess = nil
			c.mu.Unlock()
		}
		return nil, err
	}
	s, ok := c.Session()
	if !ok {
		return nil, fmt.Errorf("%w: session ended during login", ErrSessionLost)
	}
	return s, nil
}
