package qqclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ClientID is the constant clientid of every request.
const ClientID = 53999199

// MaxPartBytes is the largest content (UTF-8 text bytes, a face counting as its encoded size)
// one message may carry; longer messages are split with Split.
const MaxPartBytes = 720

// Defaults of the options.
const (
	DefaultPollTimeout    = 130 * time.Second
	DefaultQRPollInterval = 1500 * time.Millisecond
	DefaultRequestTimeout = 30 * time.Second
	defaultUserAgent      = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.102 Safari/537.36"
	maxBodyBytes          = 16 << 20
	refererPtlogin        = "https://ui.ptlogin2.qq.com/cgi-bin/login?daid=164&target=self&style=16&mibao_css=m_webqq&appid=501004106&enable_qlogin=0&no_verifyimg=1&s_url=http%3A%2F%2Fw.qq.com%2Fproxy.html&f_url=loginerroralert&strong_login=1&login_state=10&t=20131024001"
	refererS              = "http://s.web2.qq.com/proxy.html?v=20130916001&callback=1&id=1"
	refererD1             = "http://d1.web2.qq.com/proxy.html?v=20151105001&callback=1&id=2"
	originS               = "http://s.web2.qq.com"
	originD1              = "http://d1.web2.qq.com"
	realPtloginBase       = "https://ssl.ptlogin2.qq.com"
	realSBase             = "http://s.web2.qq.com"
	realD1Base            = "http://d1.web2.qq.com"
)

// Option configures a Client; it returns an error for an invalid value.
type Option func(*Client) error

// WithBaseURL sends every request to one base URL (the simulator: "http://127.0.0.1:8080")
// instead of the real hosts. The endpoint paths are appended unchanged.
func WithBaseURL(u string) Option {
	return func(c *Client) error {
		p, err := url.Parse(strings.TrimRight(u, "/"))
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.RawQuery != "" {
			return fmt.Errorf("qqclient: WithBaseURL: want an http(s) URL without query, got %q", u)
		}
		c.ptloginBase, c.sBase, c.d1Base = p, p, p
		return nil
	}
}

// WithHTTPClient makes the client use hc's transport and settings. The client keeps its own
// cookies and never follows redirects, whatever hc's Jar and CheckRedirect say.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("qqclient: WithHTTPClient: nil client")
		}
		cp := *hc
		c.hc = &cp
		return nil
	}
}

// WithPollTimeout sets the client timeout of one poll2 request (default 130s, longer than
// the server's hold). A poll that times out is an empty poll.
func WithPollTimeout(d time.Duration) Option {
	return func(c *Client) error {
		if d <= 0 {
			return fmt.Errorf("qqclient: WithPollTimeout: %v is not positive", d)
		}
		c.pollTimeout = d
		return nil
	}
}

// WithQRPollInterval sets the period of ptqrlogin polling in LoginQR (default 1.5s).
func WithQRPollInterval(d time.Duration) Option {
	return func(c *Client) error {
		if d <= 0 {
			return fmt.Errorf("qqclient: WithQRPollInterval: %v is not positive", d)
		}
		c.qrInterval = d
		return nil
	}
}

// WithRequestTimeout sets the timeout of every request but poll2 when the caller's context
// has no deadline (default 30s).
func WithRequestTimeout(d time.Duration) Option {
	return func(c *Client) error {
		if d <= 0 {
			return fmt.Errorf("qqclient: WithRequestTimeout: %v is not positive", d)
		}
		c.reqTimeout = d
		return nil
	}
}

// WithUserAgent replaces the default desktop-browser User-Agent.
func WithUserAgent(ua string) Option {
	return func(c *Client) error {
		if strings.TrimSpace(ua) == "" {
			return errors.New("qqclient: WithUserAgent: empty")
		}
		c.userAgent = ua
		return nil
	}
}

// Client is a SmartQQ client for one account. It is safe for concurrent use by multiple
// goroutines; note that the server delivers events only to the newest poller of a session,
// so run one Poll loop per session.
type Client struct {
	hc          *http.Client
	ptloginBase *url.URL
	sBase       *url.URL
	d1Base      *url.URL
	pollTimeout time.Duration
	qrInterval  time.Duration
	reqTimeout  time.Duration
	userAgent   string

	mu       sync.Mutex
	cookies  *cookieStore
	qrsig    string // of the QR code being shown
	checkSig string // the check_sig URL after confirmation
	sess     *sessionState
}

// sessionState is the live session; guarded by Client.mu.
type sessionState struct {
	uin        int64
	ptwebqq    string
	vfwebqq    string
	psessionid string
	loggedInAt time.Time
	msgID      int64
	sigs       map[sigKey]string
}

// sigKey identifies a cached group_sig of a temporary session.
type sigKey struct{ gid, uin int64 }

// New makes a client. Without options it talks to the real SmartQQ hosts.
func New(opts ...Option) (*Client, error) {
	mustParse := func(s string) *url.URL {
		u, _ := url.Parse(s)
		return u
	}
	c := &Client{
		hc:          &http.Client{},
		ptloginBase: mustParse(realPtloginBase),
		sBase:       mustParse(realSBase),
		d1Base:      mustParse(realD1Base),
		pollTimeout: DefaultPollTimeout,
		qrInterval:  DefaultQRPollInterval,
		reqTimeout:  DefaultRequestTimeout,
		userAgent:   defaultUserAgent,
		cookies:     newCookieStore(),
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	c.hc.Jar = nil
	c.hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c, nil
}

// newSessionState starts a session with a fresh msg_id base.
func newSessionState(uin int64, ptwebqq, vfwebqq, psessionid string, at time.Time) *sessionState {
	return &sessionState{
		uin: uin, ptwebqq: ptwebqq, vfwebqq: vfwebqq, psessionid: psessionid, loggedInAt: at,
		msgID: 10_000_000 + rand.Int64N(80_000_000)*10,
		sigs:  make(map[sigKey]string),
	}
}

// creds is a snapshot of the session values a request needs.
type creds struct {
	uin        int64
	ptwebqq    string
	vfwebqq    string
	psessionid string
}

// current returns the session's credentials or ErrNotLoggedIn.
func (c *Client) current(op string) (creds, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return creds{}, fmt.Errorf("%w (%s)", ErrNotLoggedIn, op)
	}
	s := c.sess
	return creds{uin: s.uin, ptwebqq: s.ptwebqq, vfwebqq: s.vfwebqq, psessionid: s.psessionid}, nil
}

// endpoint names a request's host family.
type host int

const (
	hostPtlogin host = iota
	hostS
	hostD1
)

// call describes one request.
type call struct {
	op      string        // endpoint name for errors
	host    host          // base URL family
	path    string        // path below the base
	query   url.Values    // GET query (may be nil)
	form    any           // POST: marshalled to JSON as field r
	referer string        // "" = the host's default
	rawURL  *url.URL      // absolute URL instead of host+path (check_sig)
	poll    bool          // poll2: no default timeout
	timeout time.Duration // the default timeout when not c.reqTimeout (pictures, files)
}

// rawAnswer is one HTTP answer.
type rawAnswer struct {
	status int
	header http.Header
	body   []byte
}

func (c *Client) base(h host) *url.URL {
	switch h {
	case hostPtlogin:
		return c.ptloginBase
	case hostS:
		return c.sBase
	default:
		return c.d1Base
	}
}

// target builds the absolute URL of k.
func (c *Client) target(k *call) *url.URL {
	if k.rawURL != nil {
		return k.rawURL
	}
	b := c.base(k.host)
	u := *b
	u.Path = strings.TrimRight(b.Path, "/") + k.path
	u.RawPath = ""
	if k.query != nil {
		u.RawQuery = k.query.Encode()
	}
	return &u
}

// marshalJSON encodes v without HTML escaping, like a browser's JSON.stringify.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// do performs k and returns the raw answer; any HTTP status is returned as is.
func (c *Client) do(ctx context.Context, k *call) (*rawAnswer, error) {
	if !k.poll {
		if _, ok := ctx.Deadline(); !ok {
			d := c.reqTimeout
			if k.timeout > 0 {
				d = k.timeout
			}
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
	}
	u := c.target(k)
	method := http.MethodGet
	var body io.Reader
	if k.form != nil {
		method = http.MethodPost
		r, err := marshalJSON(k.form)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: encoding r: %v", ErrBadRequest, k.op, err)
		}
		body = strings.NewReader(url.Values{"r": {string(r)}}.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, &HTTPError{Op: k.op, Cause: errors.New("cannot build request")}
	}
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Accept", "*/*")
	ref := k.referer
	if ref == "" {
		switch k.host {
		case hostPtlogin:
			ref = refererPtlogin
		case hostS:
			ref = refererS
		default:
			ref = refererD1
		}
	}
	req.Header.Set("Referer", ref)
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
		if k.host == hostS {
			req.Header.Set("Origin", originS)
		} else {
			req.Header.Set("Origin", originD1)
		}
	}
	c.mu.Lock()
	cookie := c.cookies.header(u)
	c.mu.Unlock()
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, k.op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	if err != nil {
		return nil, c.transportError(ctx, k.op, err)
	}
	if cs := resp.Cookies(); len(cs) > 0 {
		c.mu.Lock()
		c.cookies.absorb(u, cs)
		c.mu.Unlock()
	}
	return &rawAnswer{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// transportError turns a net/http error into an *HTTPError without the request URL (which
// carries credentials in its query).
func (c *Client) transportError(ctx context.Context, op string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
		if errors.Is(ctxErr, context.Canceled) {
			return fmt.Errorf("qqclient: %s: %w", op, ctxErr) // the caller gave up: not an HTTP failure
		}
		return &HTTPError{Op: op, Cause: ctxErr}
	}
	return &HTTPError{Op: op, Cause: redactedError{msg: c.redact(err.Error()), err: err}}
}

// redactedError carries a transport error whose message was scrubbed of credentials.
type redactedError struct {
	msg string
	err error
}

func (e redactedError) Error() string { return e.msg }
func (e redactedError) Unwrap() error { return e.err }

// redact removes every credential the client knows of from s.
func (c *Client) redact(s string) string {
	c.mu.Lock()
	var secrets []string
	for _, v := range c.cookies.m {
		secrets = append(secrets, v)
	}
	secrets = append(secrets, c.qrsig, c.checkSig)
	if c.sess != nil {
		secrets = append(secrets, c.sess.ptwebqq, c.sess.vfwebqq, c.sess.psessionid)
	}
	c.mu.Unlock()
	for _, v := range secrets {
		if len(v) >= 4 {
			s = strings.ReplaceAll(s, v, "[redacted]")
			if q := url.QueryEscape(v); q != v {
				s = strings.ReplaceAll(s, q, "[redacted]")
			}
		}
	}
	// A URL query can hold credentials the client does not know yet (check_sig).
	if i := strings.IndexByte(s, '?'); i >= 0 {
		j := strings.IndexAny(s[i:], " \"'")
		if j < 0 {
			s = s[:i] + "?[redacted]"
		} else {
			s = s[:i] + "?[redacted]" + s[i+j:]
		}
	}
	return s
}

// envelope is the common JSON answer shape.
type envelope struct {
	Retcode *flexInt        `json:"retcode"`
	ErrCode *flexInt        `json:"errCode"`
	Result  json.RawMessage `json:"result"`
	P       string          `json:"p"`
}

// decodeEnvelope parses a JSON answer of op. A non-2xx status is an *HTTPError.
func decodeEnvelope(op string, a *rawAnswer) (*envelope, error) {
	if a.status < 200 || a.status > 299 {
		return nil, &HTTPError{Op: op, StatusCode: a.status}
	}
	var e envelope
	if err := json.Unmarshal(a.body, &e); err != nil {
		return nil, protocolError(op, "answer is not a JSON object")
	}
	return &e, nil
}

// code is the answer's retcode (or errCode); ok=false when it has neither.
func (e *envelope) code() (int, bool) {
	if e.Retcode != nil && (int64(*e.Retcode) != 0 || e.ErrCode == nil) {
		return int(*e.Retcode), true
	}
	if e.ErrCode != nil {
		return int(*e.ErrCode), true
	}
	return 0, false
}

// jsonCall performs k and returns the result of a retcode-0 answer, or the typed error.
func (c *Client) jsonCall(ctx context.Context, k *call) (json.RawMessage, error) {
	a, err := c.do(ctx, k)
	if err != nil {
		return nil, err
	}
	return answerResult(k.op, a)
}

// answerResult returns the result of a retcode-0 JSON answer of op, or the typed error.
func answerResult(op string, a *rawAnswer) (json.RawMessage, error) {
	e, err := decodeEnvelope(op, a)
	if err != nil {
		return nil, err
	}
	code, ok := e.code()
	if !ok {
		if len(e.Result) == 0 {
			return nil, protocolError(op, "answer has no retcode")
		}
		code = 0
	}
	if code != 0 {
		return nil, retcodeError(op, code)
	}
	return e.Result, nil
}

// decodeResult unmarshals a result into v.
func decodeResult(op string, raw json.RawMessage, v any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return protocolError(op, "answer has no result")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return protocolError(op, "result has an unexpected shape")
	}
	return nil
}

// tParam is the t parameter (not checked by the server).
func tParam() string { return strconv.FormatInt(time.Now().UnixMilli(), 10) }

// flexInt decodes a JSON number, a numeric string or null.
type flexInt int64

// UnmarshalJSON implements json.Unmarshaler.
func (f *flexInt) UnmarshalJSON(b []byte) error {
	if n, ok := plainInt(b); ok { // the usual case: digits, no allocation
		*f = flexInt(n)
		return nil
	}
	s := string(bytes.TrimSpace(b))
	if s == "null" || s == `""` {
		*f = 0
		return nil
	}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		var uq string
		if err := json.Unmarshal([]byte(s), &uq); err != nil {
			return err
		}
		s = strings.TrimSpace(uq)
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		*f = flexInt(n)
		return nil
	}
	fl, err := strconv.ParseFloat(s, 64)
	if err != nil || fl != fl || fl > 9.2e18 || fl < -9.2e18 {
		return fmt.Errorf("not an integer")
	}
	*f = flexInt(int64(fl))
	return nil
}

// plainInt parses b when it is an optional minus and 1 to 18 digits.
func plainInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int64(d-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// flexString decodes a JSON string, or a number as its text, or null.
type flexString string

// UnmarshalJSON implements json.Unmarshaler.
func (f *flexString) UnmarshalJSON(b []byte) error {
	if t, ok := plainString(b); ok { // the usual case: no escapes
		*f = flexString(t)
		return nil
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		*f = ""
		return nil
	}
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*f = flexString(n.String())
	return nil
}
