package qqclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// QRCode is a login QR code to show to the user (a PNG image).
type QRCode struct {
	PNG       []byte
	FetchedAt time.Time
}

// QRStatus is the state of a QR code reported by ptqrlogin.
type QRStatus int

// QR states, valued as the ptuiCB codes.
const (
	QRConfirmed QRStatus = 0
	QRExpired   QRStatus = 65
	QRWaiting   QRStatus = 66
	QRScanned   QRStatus = 67
)

// String implements fmt.Stringer.
func (s QRStatus) String() string {
	switch s {
	case QRConfirmed:
		return "confirmed"
	case QRExpired:
		return "expired"
	case QRWaiting:
		return "waiting"
	case QRScanned:
		return "scanned"
	}
	return "QRStatus(" + strconv.Itoa(int(s)) + ")"
}

// LoginStep is a step of LoginQR reported to its caller.
type LoginStep int

// The steps LoginQR reports, in order of occurrence.
const (
	LoginQRReady   LoginStep = iota // a QR code is ready to show (LoginEvent.QR)
	LoginScanned                    // the phone scanned it; waiting for confirmation
	LoginQRExpired                  // it expired; LoginQR returns ErrQRExpired
	LoginConfirmed                  // the phone confirmed; the login completes next
)

// String implements fmt.Stringer.
func (s LoginStep) String() string {
	switch s {
	case LoginQRReady:
		return "qr_ready"
	case LoginScanned:
		return "scanned"
	case LoginQRExpired:
		return "qr_expired"
	case LoginConfirmed:
		return "confirmed"
	}
	return "LoginStep(" + strconv.Itoa(int(s)) + ")"
}

// LoginEvent is what LoginQR reports as the login progresses. QR is set for LoginQRReady.
type LoginEvent struct {
	Step LoginStep
	QR   *QRCode
}

var pngMagic = []byte("\x89PNG\r\n\x1a\n")

// FetchQR fetches a new login QR code (ptqrshow) and starts a QR login; any previous
// unfinished one is forgotten.
func (c *Client) FetchQR(ctx context.Context) (*QRCode, error) {
	const op = "ptqrshow"
	a, err := c.do(ctx, &call{
		op: op, host: hostPtlogin, path: "/ptqrshow",
		query: qv("appid", "501004106", "e", "0", "l", "M", "s", "5", "d", "72", "v", "4",
			"t", strconv.FormatFloat(rand.Float64(), 'f', 16, 64)),
	})
	if err != nil {
		return nil, err
	}
	if a.status != 200 {
		return nil, &HTTPError{Op: op, StatusCode: a.status}
	}
	if !bytes.HasPrefix(a.body, pngMagic) {
		return nil, protocolError(op, "answer is not a PNG image")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	qrsig, ok := c.cookies.get(c.ptloginBase, "qrsig")
	if !ok || qrsig == "" {
		return nil, protocolError(op, "no qrsig cookie")
	}
	c.qrsig, c.checkSig = qrsig, ""
	return &QRCode{PNG: a.body, FetchedAt: time.Now()}, nil
}

// CheckQR asks once (ptqrlogin) how the QR code from FetchQR is doing. On QRConfirmed it
// remembers the check_sig URL for CompleteLogin. An expired code is (QRExpired, nil): fetch
// a new one. Without a fetched QR code it returns ErrNotLoggedIn.
func (c *Client) CheckQR(ctx context.Context) (QRStatus, error) {
	const op = "ptqrlogin"
	c.mu.Lock()
	qrsig := c.qrsig
	c.mu.Unlock()
	if qrsig == "" {
		return 0, fmt.Errorf("%w: CheckQR: no QR code fetched", ErrNotLoggedIn)
	}
	a, err := c.do(ctx, &call{
		op: op, host: hostPtlogin, path: "/ptqrlogin",
		query: qv(
			"webqq_type", "10", "remember_uin", "1", "login2qq", "1", "aid", "501004106",
			"u1", "http://w.qq.com/proxy.html?login2qq=1&webqq_type=10",
			"ptredirect", "0", "ptlang", "2052", "daid", "164", "from_ui", "1", "pttype", "1",
			"dumy", "", "fp", "loginerroralert",
			"action", "0-0-"+strconv.FormatInt(time.Now().UnixMilli()%1000000, 10),
			"mibao_css", "m_webqq", "t", "1", "g", "1", "js_type", "0", "js_ver", "10143",
			"login_sig", "", "pt_randsalt", "0",
			"ptqrtoken", strconv.FormatInt(Hash33(qrsig), 10),
		),
	})
	if err != nil {
		return 0, err
	}
	if a.status != 200 {
		return 0, &HTTPError{Op: op, StatusCode: a.status}
	}
	args, err := parsePtuiCB(string(a.body))
	if err != nil {
		return 0, err
	}
	st, sigURL, err := qrState(args)
	if err != nil {
		return 0, err
	}
	if st == QRConfirmed {
		c.mu.Lock()
		c.checkSig = sigURL
		c.mu.Unlock()
	}
	return st, nil
}

// qrState reads the state of a QR code from the arguments of a ptuiCB answer, and on
// confirmation the check_sig URL. The confirmation has two forms: code 0 with the URL
// in the third argument (the 2015 write-ups, the 2017–2018 service), and seed 004's
// code 66 with the URL in the fifth; the URL is taken from whichever argument holds
// it.
func qrState(args []string) (QRStatus, string, error) {
	const op = "ptqrlogin"
	code, err := strconv.Atoi(strings.TrimSpace(args[0]))
	if err != nil {
		return 0, "", protocolError(op, "ptuiCB code is not a number")
	}
	sigURL := ""
	for _, a := range args[1:] {
		if a = strings.TrimSpace(a); strings.Contains(a, "/check_sig") {
			sigURL = a
			break
		}
	}
	if sigURL == "" && code == 0 && len(args) > 2 {
		sigURL = strings.TrimSpace(args[2])
	}
	msg := ""
	if len(args) > 4 {
		msg = args[4]
	}
	switch {
	case code == 0 || (code == 66 && sigURL != ""):
		u, err := url.Parse(sigURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return 0, "", protocolError(op, "confirmation without a valid check_sig URL")
		}
		return QRConfirmed, sigURL, nil
	case code == 65:
		return QRExpired, "", nil
	case code == 67 || (code == 66 && strings.Contains(msg, "认证中")):
		return QRScanned, "", nil
	case code == 66:
		return QRWaiting, "", nil
	}
	return 0, "", retcodeError(op, code)
}

// parsePtuiCB returns the arguments of a ptuiCB('…','…',…) answer.
func parsePtuiCB(s string) ([]string, error) {
	const op = "ptqrlogin"
	i := strings.Index(s, "ptuiCB(")
	if i < 0 {
		return nil, protocolError(op, "answer is not a ptuiCB call")
	}
	s = s[i+len("ptuiCB("):]
	var args []string
	for {
		s = strings.TrimLeft(s, " \t\r\n")
		if s == "" {
			return nil, protocolError(op, "truncated ptuiCB call")
		}
		if s[0] == ')' {
			break
		}
		q := s[0]
		if q != '\'' && q != '"' {
			return nil, protocolError(op, "ptuiCB argument is not a string")
		}
		var b strings.Builder
		j := 1
		for ; j < len(s) && s[j] != q; j++ {
			if s[j] == '\\' && j+1 < len(s) {
				j++
			}
			b.WriteByte(s[j])
		}
		if j >= len(s) {
			return nil, protocolError(op, "unterminated ptuiCB argument")
		}
		args = append(args, b.String())
		s = strings.TrimLeft(s[j+1:], " \t\r\n")
		if strings.HasPrefix(s, ",") {
			s = s[1:]
		}
	}
	if len(args) == 0 {
		return nil, protocolError(op, "empty ptuiCB call")
	}
	return args, nil
}

// CompleteLogin finishes a confirmed QR login: check_sig (the login cookies), getvfwebqq,
// login2 and get_online_buddies2. It returns the new session. Without a confirmed QR code it
// returns ErrNotLoggedIn.
func (c *Client) CompleteLogin(ctx context.Context) (*Session, error) {
	const op = "check_sig"
	c.mu.Lock()
	sig := c.checkSig
	c.mu.Unlock()
	if sig == "" {
		return nil, fmt.Errorf("%w: CompleteLogin: no confirmed QR code", ErrNotLoggedIn)
	}
	u, err := url.Parse(sig)
	if err != nil {
		return nil, protocolError(op, "bad check_sig URL")
	}
	a, err := c.do(ctx, &call{op: op, rawURL: u, referer: refererS})
	if err != nil {
		return nil, err
	}
	if a.status != 302 && a.status != 301 && a.status != 303 && a.status != 200 {
		return nil, &HTTPError{Op: op, StatusCode: a.status}
	}
	c.mu.Lock()
	ptwebqq, ok := c.cookies.get(c.sBase, "ptwebqq")
	if !ok || ptwebqq == "" {
		ptwebqq, ok = c.cookies.get(u, "ptwebqq")
	}
	c.mu.Unlock()
	if !ok || ptwebqq == "" {
		return nil, protocolError(op, "no ptwebqq cookie")
	}
	return c.establish(ctx, ptwebqq)
}

// LoginQR runs a whole QR login: it fetches a QR code and reports it (LoginQRReady), polls
// ptqrlogin every QR poll interval, reports LoginScanned once the phone scanned it and
// LoginConfirmed once it confirmed, then completes the login and returns the session. When
// the code expires it reports LoginQRExpired and returns ErrQRExpired: the caller decides
// whether to try again. report may be nil; it is called on the calling goroutine.
// A few transient HTTP failures while polling are tolerated.
func (c *Client) LoginQR(ctx context.Context, report func(LoginEvent)) (*Session, error) {
	if report == nil {
		report = func(LoginEvent) {}
	}
	qr, err := c.FetchQR(ctx)
	if err != nil {
		return nil, err
	}
	report(LoginEvent{Step: LoginQRReady, QR: qr})
	scanned := false
	failures := 0
	t := time.NewTicker(c.qrInterval)
	defer t.Stop()
	for {
		st, err := c.CheckQR(ctx)
		switch {
		case err != nil && errors.Is(err, ErrHTTP) && ctx.Err() == nil && failures < 3:
			failures++
		case err != nil:
			return nil, err
		default:
			failures = 0
			switch st {
			case QRScanned:
				if !scanned {
					scanned = true
					report(LoginEvent{Step: LoginScanned})
				}
			case QRExpired:
				report(LoginEvent{Step: LoginQRExpired})
				return nil, fmt.Errorf("qqclient: LoginQR: %w", ErrQRExpired)
			case QRConfirmed:
				if !scanned {
					report(LoginEvent{Step: LoginScanned})
				}
				report(LoginEvent{Step: LoginConfirmed})
				return c.CompleteLogin(ctx)
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("qqclient: LoginQR: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// qv builds url.Values from key, value pairs, keeping them in order of Encode (sorted).
func qv(kv ...string) url.Values {
	v := make(url.Values, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
