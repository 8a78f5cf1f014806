package qqsim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0 Safari/537.36"

// testConfig is a Config with short durations for tests, playing the write-ups' service
// (the 2015 profile) with the strict header checks; profile_test.go covers the others.
func testConfig() Config {
	return Config{QRTTL: 5 * time.Second, PollHold: 200 * time.Millisecond, RateLimit: -1, Echo: true, Profile: Profile2015, Strict: true}
}

// newSim starts a simulator on an httptest loopback listener.
func newSim(t testing.TB, cfg Config) (*Server, *tclient) {
	t.Helper()
	sim, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	t.Cleanup(sim.Close) // runs first: held polls answer at once
	return sim, newClient(t, ts.URL)
}

// tclient is what a curl user does: a cookie jar, the browser headers, and the
// values the login hands out.
type tclient struct {
	t          testing.TB
	base       string
	hc         *http.Client
	ptwebqq    string
	vfwebqq    string
	psessionid string
	checkSig   string
}

func newClient(t testing.TB, base string) *tclient {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &tclient{t: t, base: base, hc: &http.Client{
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// mod changes a request before it is sent (the strictness tests drop headers).
type mod func(*http.Request)

func dropHeader(name string) mod { return func(r *http.Request) { r.Header.Del(name) } }
func setHeader(name, v string) mod {
	return func(r *http.Request) { r.Header.Set(name, v) }
}

// dropCookie sends every cookie of the jar but name.
func (c *tclient) dropCookie(name string) mod {
	return func(r *http.Request) {
		var keep []string
		for _, ck := range r.Cookies() {
			if ck.Name != name {
				keep = append(keep, ck.Name+"="+ck.Value)
			}
		}
		r.Header.Set("Cookie", strings.Join(keep, "; "))
	}
}

// request sends one request with the headers of the endpoint's real host. For a
// POST, r (a JSON value or a raw string) goes into the form field r.
func (c *tclient) request(method, path string, q url.Values, r any, mods ...mod) (*http.Response, []byte) {
	c.t.Helper()
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if method == http.MethodPost {
		var rs string
		switch v := r.(type) {
		case string:
			rs = v
		default:
			b, err := json.Marshal(v)
			if err != nil {
				c.t.Fatal(err)
			}
			rs = string(b)
		}
		body = strings.NewReader(url.Values{"r": {rs}}.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("User-Agent", testUA)
	switch {
	case strings.HasPrefix(path, "/ptqr"):
		req.Header.Set("Referer", RefererPTLogin)
	case strings.HasPrefix(path, "/channel/"):
		req.Header.Set("Referer", RefererD1)
		if method == http.MethodPost {
			req.Header.Set("Origin", OriginD1)
		}
	default:
		req.Header.Set("Referer", RefererS)
		if method == http.MethodPost {
			req.Header.Set("Origin", OriginS)
		}
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.hc.Jar != nil {
		for _, ck := range c.hc.Jar.Cookies(req.URL) {
			req.AddCookie(ck)
		}
	}
	for _, m := range mods {
		m(req)
	}
	// The cookies are in the header already: send without the jar adding them twice.
	hc := *c.hc
	jar := hc.Jar
	hc.Jar = nil
	resp, err := hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if jar != nil {
		jar.SetCookies(req.URL, resp.Cookies())
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return resp, b
}

// api sends a request and decodes its JSON answer.
func (c *tclient) api(method, path string, q url.Values, r any, mods ...mod) map[string]any {
	c.t.Helper()
	resp, b := c.request(method, path, q, r, mods...)
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, b)
	}
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		c.t.Fatalf("%s %s: not JSON: %v: %s", method, path, err, b)
	}
	return m
}

// retcode returns the retcode of an answer (errCode for a send's success).
func retcode(t testing.TB, m map[string]any) int64 {
	t.Helper()
	v, ok := m["retcode"]
	if !ok {
		v, ok = m["errCode"]
	}
	if !ok {
		t.Fatalf("no retcode in %v", m)
	}
	return num(t, v)
}

// num reads a JSON number.
func num(t testing.TB, v any) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v (%T) is not a number", v, v)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatalf("%v: %v", v, err)
	}
	return i
}

// obj and arr walk a decoded answer.
func obj(t testing.TB, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%v (%T) is not an object", v, v)
	}
	return m
}

func arr(t testing.TB, v any) []any {
	t.Helper()
	a, ok := v.([]any)
	if !ok {
		t.Fatalf("%v (%T) is not an array", v, v)
	}
	return a
}

var ptuiCBRe = regexp.MustCompile(`^ptuiCB\('(\d+)','0','([^']*)','0','([^']*)', '([^']*)'\);$`)

// qrShow fetches a QR code.
func (c *tclient) qrShow() []byte {
	c.t.Helper()
	resp, b := c.request(http.MethodGet, "/ptqrshow", url.Values{
		"appid": {"501004106"}, "e": {"0"}, "l": {"M"}, "s": {"5"}, "d": {"72"}, "v": {"4"}, "t": {"0.1"},
	}, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/png" {
		c.t.Fatalf("ptqrshow: HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return b
}

// qrsig returns the qrsig cookie of the jar.
func (c *tclient) qrsig() string {
	u, _ := url.Parse(c.base)
	for _, ck := range c.hc.Jar.Cookies(u) {
		if ck.Name == "qrsig" {
			return ck.Value
		}
	}
	c.t.Fatal("no qrsig cookie")
	return ""
}

// qrLogin polls ptqrlogin once and returns the status code and the URL.
func (c *tclient) qrLogin(mods ...mod) (string, string) {
	c.t.Helper()
	q := url.Values{
		"webqq_type": {"10"}, "remember_uin": {"1"}, "login2qq": {"1"}, "aid": {"501004106"},
		"ptqrtoken": {strconv.FormatInt(Hash33(c.qrsig()), 10)}, "t": {"1"},
	}
	resp, b := c.request(http.MethodGet, "/ptqrlogin", q, nil, mods...)
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("ptqrlogin: HTTP %d", resp.StatusCode)
	}
	m := ptuiCBRe.FindStringSubmatch(string(b))
	if m == nil {
		c.t.Fatalf("ptqrlogin: not a ptuiCB call: %s", b)
	}
	return m[1], m[2]
}

// cookieLogin does getvfwebqq and login2 with the login cookies held.
func (c *tclient) cookieLogin() map[string]any {
	c.t.Helper()
	m := c.api(http.MethodGet, "/api/getvfwebqq", url.Values{
		"ptwebqq": {c.ptwebqq}, "clientid": {"53999199"}, "psessionid": {""}, "t": {"0.1"},
	}, nil)
	if rc := retcode(c.t, m); rc != 0 {
		c.t.Fatalf("getvfwebqq: retcode %d", rc)
	}
	c.vfwebqq = obj(c.t, m["result"])["vfwebqq"].(string)
	m = c.api(http.MethodPost, "/channel/login2", nil, map[string]any{
		"ptwebqq": c.ptwebqq, "clientid": 53999199, "psessionid": "", "status": "online",
	})
	if rc := retcode(c.t, m); rc != 0 {
		c.t.Fatalf("login2: retcode %d", rc)
	}
	res := obj(c.t, m["result"])
	c.psessionid = res["psessionid"].(string)
	return res
}

// cookie returns the value of a cookie of the jar.
func (c *tclient) cookie(name string) string {
	u, _ := url.Parse(c.base)
	for _, ck := range c.hc.Jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// login does the whole QR login, with the simulator playing the phone, and calls
// get_online_buddies2 so that poll2 may follow.
func (c *tclient) login(sim *Server) {
	c.t.Helper()
	c.qrShow()
	if err := sim.ConfirmQR(); err != nil {
		c.t.Fatalf("ConfirmQR: %v", err)
	}
	code, u := c.qrLogin()
	if code != "0" {
		c.t.Fatalf("ptqrlogin: %s", code)
	}
	c.followCheckSig(u)
	c.cookieLogin()
	c.onlineBuddies()
}

// followCheckSig follows the check_sig URL and keeps ptwebqq.
func (c *tclient) followCheckSig(u string) {
	c.t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		c.t.Fatal(err)
	}
	resp, _ := c.request(http.MethodGet, pu.Path, pu.Query(), nil)
	if resp.StatusCode != http.StatusFound {
		c.t.Fatalf("check_sig: HTTP %d", resp.StatusCode)
	}
	c.ptwebqq = c.cookie("ptwebqq")
}

func (c *tclient) onlineBuddies() map[string]any {
	c.t.Helper()
	return c.api(http.MethodGet, "/channel/get_online_buddies2", c.sessQuery(), nil)
}

// sessQuery is the query of the d1 GET endpoints.
func (c *tclient) sessQuery() url.Values {
	return url.Values{"vfwebqq": {c.vfwebqq}, "clientid": {"53999199"}, "psessionid": {c.psessionid}, "t": {"0.1"}}
}

// poll makes one poll2.
func (c *tclient) poll(mods ...mod) map[string]any {
	c.t.Helper()
	return c.api(http.MethodPost, "/channel/poll2", nil, map[string]any{
		"ptwebqq": c.ptwebqq, "clientid": 53999199, "psessionid": c.psessionid, "key": "",
	}, mods...)
}

// pollItems polls until something arrives (an empty poll answers 102) and returns
// the items.
func (c *tclient) pollItems() []map[string]any {
	c.t.Helper()
	for range 50 {
		m := c.poll()
		switch rc := retcode(c.t, m); rc {
		case 102:
			continue
		case 0:
			var out []map[string]any
			for _, it := range arr(c.t, m["result"]) {
				out = append(out, obj(c.t, it))
			}
			return out
		default:
			c.t.Fatalf("poll2: retcode %d", rc)
		}
	}
	c.t.Fatal("poll2: nothing arrived")
	return nil
}

// content encodes a send's content string: segments then the font last.
func content(segs ...any) string {
	all := append(segs, []any{"font", map[string]any{"name": "宋体", "size": 10, "style": []int{0, 0, 0}, "color": "000000"}})
	b, _ := json.Marshal(all)
	return string(b)
}

// send posts one send; target is the field name (to, group_uin, did).
func (c *tclient) send(endpoint, field string, target int64, cont any, extra map[string]any) map[string]any {
	c.t.Helper()
	r := map[string]any{field: target, "content": cont, "face": 522, "clientid": 53999199, "msg_id": 65890001, "psessionid": c.psessionid}
	for k, v := range extra {
		r[k] = v
	}
	return c.api(http.MethodPost, "/channel/"+endpoint, nil, r)
}

// eventually waits until cond holds (tests wait for the server, they do not time it).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
