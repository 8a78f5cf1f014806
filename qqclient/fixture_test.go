package qqclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// wireFixture is a protocol fixture: an HTTP server that answers poll2 with exactly the wire
// answers given (body, or a bare status), one per request, and records the requests. It
// exercises answers the simulator does not produce (100012, 504, 109, 100000).
type wireFixture struct {
	mu      sync.Mutex
	answers []fixtureAnswer
	reqs    []*http.Request
	forms   []string
}

type fixtureAnswer struct {
	status int
	body   string
}

func (f *wireFixture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	f.mu.Lock()
	f.reqs = append(f.reqs, r)
	f.forms = append(f.forms, r.PostForm.Get("r"))
	var a fixtureAnswer
	if len(f.answers) > 0 {
		a, f.answers = f.answers[0], f.answers[1:]
	} else {
		a = fixtureAnswer{body: `{"retcode":102,"errmsg":""}`}
	}
	f.mu.Unlock()
	if a.status != 0 {
		w.WriteHeader(a.status)
		return
	}
	_, _ = w.Write([]byte(a.body))
}

func newFixtureClient(t *testing.T, answers ...fixtureAnswer) (*Client, *wireFixture) {
	t.Helper()
	f := &wireFixture{answers: answers}
	ts := httptest.NewServer(f)
	t.Cleanup(ts.Close)
	c, err := New(WithBaseURL(ts.URL), WithPollTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	c.sess = newSessionState(931996776, "PTWEBQQ-OLD", "VFWEBQQ", "PSESSIONID", time.Now())
	u, _ := url.Parse(ts.URL)
	c.cookies.set(cookieKey{hostOf(u), "ptwebqq"}, "PTWEBQQ-OLD")
	c.cookies.set(cookieKey{hostOf(u), "skey"}, "@skey")
	c.cookies.set(cookieKey{hostOf(u), "uin"}, "o0931996776")
	return c, f
}

func TestPollWireAnswers(t *testing.T) {
	tests := []struct {
		name    string
		answer  fixtureAnswer
		events  int
		wantErr error
		retcode int
	}{
		{name: "102", answer: fixtureAnswer{body: `{"retcode":102,"errmsg":""}`}},
		{name: "100012 RecvTimeout", answer: fixtureAnswer{body: `{"retcode":100012,"errmsg":""}`}},
		{name: "HTTP 502", answer: fixtureAnswer{status: 502}},
		{name: "HTTP 504", answer: fixtureAnswer{status: 504}},
		{name: "HTTP 500", answer: fixtureAnswer{status: 500}, wantErr: ErrHTTP},
		{name: "103", answer: fixtureAnswer{body: `{"retcode":103,"errmsg":""}`}, wantErr: ErrSessionLost, retcode: 103},
		{name: "109", answer: fixtureAnswer{body: `{"retcode":109}`}, wantErr: ErrSessionLost, retcode: 109},
		{name: "110", answer: fixtureAnswer{body: `{"retcode":110}`}, wantErr: ErrSessionLost, retcode: 110},
		{name: "100", answer: fixtureAnswer{body: `{"retcode":100,"errmsg":""}`}, wantErr: ErrSessionLost, retcode: 100},
		{name: "100000", answer: fixtureAnswer{body: `{"retcode":100000}`}, wantErr: ErrSessionLost, retcode: 100000},
		{name: "121", answer: fixtureAnswer{body: `{"retcode":121,"t":""}`}, wantErr: ErrSessionLost, retcode: 121},
		{name: "100001", answer: fixtureAnswer{body: `{"retcode":100001}`}, wantErr: ErrBadRequest, retcode: 100001},
		{name: "not JSON", answer: fixtureAnswer{body: `<html>502</html>`}, wantErr: ErrProtocol},
		{name: "two items", answer: fixtureAnswer{body: `{"retcode":0,"result":[{"poll_type":"tips","value":{}},{"poll_type":"x","value":1}]}`}, events: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newFixtureClient(t, tt.answer)
			evs, err := c.Poll(context.Background())
			if tt.wantErr == nil {
				if err != nil || len(evs) != tt.events {
					t.Fatalf("Poll = %d events, %v; want %d, nil", len(evs), err, tt.events)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Poll err = %v, want %v", err, tt.wantErr)
			}
			var re *RetcodeError
			if tt.retcode != 0 && (!errors.As(err, &re) || re.Retcode != tt.retcode) {
				t.Errorf("retcode not kept: %#v", err)
			}
			for _, s := range []string{"PTWEBQQ", "VFWEBQQ", "PSESSIONID", "@skey"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q holds a secret", err)
				}
			}
		})
	}
}

func TestPoll116ReplacesPtWebQQ(t *testing.T) {
	c, f := newFixtureClient(t,
		fixtureAnswer{body: `{"retcode":116,"p":"PTWEBQQ-NEW"}`},
		fixtureAnswer{body: `{"retcode":102,"errmsg":""}`},
	)
	ctx := context.Background()
	if evs, err := c.Poll(ctx); err != nil || evs != nil {
		t.Fatalf("Poll = %v, %v", evs, err)
	}
	s, _ := c.Session()
	if s.PtWebQQ != "PTWEBQQ-NEW" {
		t.Errorf("ptwebqq = %q", s.PtWebQQ)
	}
	if _, err := c.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	second := f.reqs[1]
	if ck, err := second.Cookie("ptwebqq"); err != nil || ck.Value != "PTWEBQQ-NEW" {
		t.Errorf("second poll's ptwebqq cookie = %v, %v", ck, err)
	}
	if !strings.Contains(f.forms[1], `"ptwebqq":"PTWEBQQ-NEW"`) || strings.Contains(f.forms[1], "OLD") {
		t.Errorf("second poll's r = %s", f.forms[1])
	}
}

func TestRequestHeaders(t *testing.T) {
	c, f := newFixtureClient(t,
		fixtureAnswer{body: `{"retcode":102,"errmsg":""}`},
		fixtureAnswer{body: `{"retcode":0,"result":{"friends":[]}}`},
		fixtureAnswer{body: `{"retcode":0,"result":[]}`},
		fixtureAnswer{body: `{"retcode":0,"result":{"dnamelist":[]}}`},
	)
	ctx := context.Background()
	if _, err := c.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Friends(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.OnlineBuddies(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Discussions(ctx); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		path, method, referer, origin string
	}{
		{"/channel/poll2", "POST", refererD1, originD1},
		{"/api/get_user_friends2", "POST", refererS, originS},
		{"/channel/get_online_buddies2", "GET", refererD1, ""},
		{"/api/get_discus_list", "GET", refererD1, ""}, // seed 004 gives the d1 Referer
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, w := range want {
		r := f.reqs[i]
		if r.URL.Path != w.path || r.Method != w.method {
			t.Errorf("request %d = %s %s, want %s %s", i, r.Method, r.URL.Path, w.method, w.path)
		}
		if r.Referer() != w.referer || r.Header.Get("Origin") != w.origin {
			t.Errorf("%s: Referer %q Origin %q", w.path, r.Referer(), r.Header.Get("Origin"))
		}
		if !strings.HasPrefix(r.UserAgent(), "Mozilla/5.0") {
			t.Errorf("%s: User-Agent %q", w.path, r.UserAgent())
		}
		for _, name := range []string{"ptwebqq", "skey", "uin"} {
			if _, err := r.Cookie(name); err != nil {
				t.Errorf("%s: no %s cookie", w.path, name)
			}
		}
		if w.method == "POST" && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			t.Errorf("%s: Content-Type %q", w.path, r.Header.Get("Content-Type"))
		}
	}
	if q := f.reqs[2].URL.Query(); q.Get("clientid") != "53999199" || q.Get("vfwebqq") != "VFWEBQQ" || q.Get("psessionid") != "PSESSIONID" {
		t.Errorf("get_online_buddies2 query = %v", q)
	}
	if !strings.Contains(f.forms[1], `"hash":"`+Hash(931996776, "PTWEBQQ-OLD")+`"`) {
		t.Errorf("get_user_friends2 r = %s", f.forms[1])
	}
}

func TestCookieStoreDomains(t *testing.T) {
	s := newCookieStore()
	mustURL := func(raw string) *url.URL {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	checkSig := mustURL("http://ptlogin4.web2.qq.com/check_sig?x=1")
	s.absorb(checkSig, []*http.Cookie{
		{Name: "ptwebqq", Value: "P1", Domain: "qq.com"},
		{Name: "skey", Value: "S1", Domain: ".qq.com"},
		{Name: "p_skey", Value: "PS", Domain: "web2.qq.com"},
		{Name: "pt4_token", Value: "T", Domain: "evil.com"}, // another domain: refused
		{Name: "host", Value: "H"},                          // host-only
	})
	s.absorb(mustURL("https://ssl.ptlogin2.qq.com/ptqrshow"), []*http.Cookie{{Name: "qrsig", Value: "Q"}})
	d1 := mustURL("http://d1.web2.qq.com/channel/poll2")
	got := s.header(d1)
	for _, want := range []string{"ptwebqq=P1", "skey=S1", "p_skey=PS"} {
		if !strings.Contains(got, want) {
			t.Errorf("d1 cookies %q lack %s", got, want)
		}
	}
	for _, not := range []string{"pt4_token", "host=", "qrsig"} {
		if strings.Contains(got, not) {
			t.Errorf("d1 cookies %q hold %s", got, not)
		}
	}
	// 116 replaces the domain cookie, not a second one.
	s.replace(d1, "ptwebqq", "P2")
	if v, _ := s.get(mustURL("http://s.web2.qq.com/api/x"), "ptwebqq"); v != "P2" {
		t.Errorf("ptwebqq after replace = %q", v)
	}
	if n := strings.Count(s.header(d1), "ptwebqq="); n != 1 {
		t.Errorf("%d ptwebqq cookies sent", n)
	}
	// Deletion and save/restore.
	s.absorb(checkSig, []*http.Cookie{{Name: "host", MaxAge: -1}})
	saved := s.saved()
	r := newCookieStore()
	if err := r.restore(saved); err != nil {
		t.Fatal(err)
	}
	if r.header(d1) != s.header(d1) {
		t.Errorf("restored %q, want %q", r.header(d1), s.header(d1))
	}
	if _, ok := r.get(checkSig, "host"); ok {
		t.Error("deleted cookie restored")
	}
	if err := r.restore([]SavedCookie{{URL: "::", Name: "x", Value: "SECRET"}}); !errors.Is(err, ErrBadRequest) || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("bad saved cookie: %v", err)
	}
}

// TestPollHTTPClientTimeout: a timeout of the caller's http.Client is an empty poll too.
func TestPollHTTPClientTimeout(t *testing.T) {
	block := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(ts.Close)
	t.Cleanup(func() { close(block) })
	c, err := New(WithBaseURL(ts.URL), WithHTTPClient(&http.Client{Timeout: 50 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	c.sess = newSessionState(1, "p", "v", "s", time.Now())
	if evs, err := c.Poll(context.Background()); err != nil || evs != nil {
		t.Errorf("Poll = %v, %v; want an empty poll", evs, err)
	}
	// Elsewhere a timeout is an HTTP failure.
	if _, err := c.OnlineBuddies(context.Background()); !errors.Is(err, ErrHTTP) {
		t.Errorf("OnlineBuddies = %v, want ErrHTTP", err)
	}
}
