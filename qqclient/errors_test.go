package qqclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		retcode int
		want    error
	}{
		{103, ErrSessionLost}, {121, ErrSessionLost}, {100, ErrSessionLost}, {109, ErrSessionLost},
		{110, ErrSessionLost}, {100000, ErrSessionLost},
		{1000003, ErrRateLimited},
		{100001, ErrBadRequest}, {1000000, ErrBadRequest}, {1000001, ErrBadRequest},
		{1202, ErrMaybeSent},
		{6, ErrProtocol}, {120, ErrProtocol},
	}
	for _, tt := range tests {
		err := retcodeError("send_qun_msg2", tt.retcode)
		if !errors.Is(err, tt.want) {
			t.Errorf("retcode %d: %v is not %v", tt.retcode, err, tt.want)
		}
		var re *RetcodeError
		if !errors.As(err, &re) || re.Retcode != tt.retcode || re.Op != "send_qun_msg2" {
			t.Errorf("retcode %d: %#v", tt.retcode, err)
		}
		if !strings.Contains(err.Error(), fmt.Sprint(tt.retcode)) {
			t.Errorf("retcode %d missing from %q", tt.retcode, err)
		}
	}
	if errors.Is(retcodeError("x", 1202), ErrSessionLost) {
		t.Error("1202 must not be session lost")
	}
}

func TestHTTPErrorIs(t *testing.T) {
	err := error(&HTTPError{Op: "poll2", StatusCode: 500})
	if !errors.Is(err, ErrHTTP) || errors.Is(err, ErrProtocol) {
		t.Errorf("%v", err)
	}
	err = &HTTPError{Op: "poll2", Cause: context.DeadlineExceeded}
	if !errors.Is(err, ErrHTTP) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%v", err)
	}
}

// TestTransportErrorHasNoSecrets checks that a *url.Error from net/http (which holds the full
// URL, credentials in its query) is stripped.
func TestTransportErrorHasNoSecrets(t *testing.T) {
	c, err := New(WithBaseURL("http://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	const ptwebqq, vfwebqq, psid = "PTWEBQQSECRET", "VFWEBQQSECRET", "PSESSIONSECRET"
	c.sess = newSessionState(1, ptwebqq, vfwebqq, psid, time.Now())
	c.cookies.set(cookieKey{"127.0.0.1", "skey"}, "SKEYSECRET")
	ue := &url.Error{Op: "Get", URL: "http://127.0.0.1:1/channel/get_online_buddies2?vfwebqq=" + vfwebqq + "&psessionid=" + psid,
		Err: fmt.Errorf("dial tcp: refused while sending ptwebqq=%s skey=SKEYSECRET", ptwebqq)}
	got := c.transportError(context.Background(), "get_online_buddies2", ue)
	for _, s := range []string{ptwebqq, vfwebqq, psid, "SKEYSECRET"} {
		if strings.Contains(got.Error(), s) {
			t.Errorf("error %q contains a secret", got)
		}
	}
	if !errors.Is(got, ErrHTTP) {
		t.Errorf("not ErrHTTP: %v", got)
	}
	// A real failed request (nothing listens on port 1).
	_, err = c.OnlineBuddies(context.Background())
	if !errors.Is(err, ErrHTTP) {
		t.Fatalf("err = %v, want ErrHTTP", err)
	}
	for _, s := range []string{ptwebqq, vfwebqq, psid, "SKEYSECRET", "psessionid="} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains %q", err, s)
		}
	}
}

func TestSessionFormatRedacts(t *testing.T) {
	s := &Session{
		UIN: 931996776, PtWebQQ: "PTW-SECRET", VFWebQQ: "VF-SECRET", PSessionID: "PS-SECRET",
		Cookies: []SavedCookie{{URL: "http://qq.com/", Name: "skey", Value: "SKEY-SECRET"}},
	}
	outs := []string{
		fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q", s, s, s, s, s), s.String(), s.GoString(),
		fmt.Sprintf("%v %+v %#v", s.Cookies, s.Cookies[0], s.Cookies[0]),
		fmt.Sprintf("%v", *s), fmt.Sprintf("%+v", []*Session{s}),
	}
	for _, o := range outs {
		for _, secret := range []string{"PTW-SECRET", "VF-SECRET", "PS-SECRET", "SKEY-SECRET"} {
			if strings.Contains(o, secret) {
				t.Errorf("%q leaks %s", o, secret)
			}
		}
	}
	if !strings.Contains(fmt.Sprint(s), "931996776") {
		t.Errorf("uin missing from %q", fmt.Sprint(s))
	}
	// JSON keeps the secrets (for saving).
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Session
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.PtWebQQ != "PTW-SECRET" || back.PSessionID != "PS-SECRET" || back.Cookies[0].Value != "SKEY-SECRET" {
		t.Errorf("JSON round trip lost secrets: %s", b)
	}
}

func TestParsePtuiCB(t *testing.T) {
	sc := bufio.NewScanner(bytes.NewReader(readTestdata(t, "ptqrlogin.txt")))
	n := 0
	for sc.Scan() {
		want, answer, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			continue
		}
		n++
		args, err := parsePtuiCB(answer)
		if err != nil {
			t.Errorf("%s: %v", answer, err)
			continue
		}
		if len(args) < 4 {
			t.Errorf("%s: %d args", answer, len(args))
		}
		st, sigURL, err := qrState(args)
		if err != nil || st.String() != want {
			t.Errorf("%s: state %v, %v; want %s", answer, st, err, want)
		}
		if (want == "confirmed") != strings.Contains(sigURL, "/check_sig?") {
			t.Errorf("%s: check_sig URL %q", answer, sigURL)
		}
	}
	if n != 7 {
		t.Fatalf("%d answers read", n)
	}
	for _, bad := range []string{"", "ptuiCB(", "ptuiCB('66", "ptuiCB(66)", "ptuiCB()", "hello"} {
		if _, err := parsePtuiCB(bad); !errors.Is(err, ErrProtocol) {
			t.Errorf("%q: err = %v, want ErrProtocol", bad, err)
		}
	}
	for _, bad := range [][]string{{"x"}, {"0", "0", "", "0"}, {"66", "0", "", "0", "ftp:/check_sig?x"}, {"7"}} {
		if _, _, err := qrState(bad); !errors.Is(err, ErrProtocol) {
			t.Errorf("qrState(%q): err = %v, want ErrProtocol", bad, err)
		}
	}
	args, err := parsePtuiCB(`ptuiCB('0','0','a\'b',"c")`)
	if err != nil || args[2] != "a'b" || args[3] != "c" {
		t.Errorf("escapes: %q %v", args, err)
	}
}

func TestOptionsValidate(t *testing.T) {
	bad := []Option{
		WithBaseURL("ftp://x"), WithBaseURL("not a url"), WithBaseURL("http://x/?a=1"),
		WithHTTPClient(nil), WithPollTimeout(0), WithQRPollInterval(-time.Second),
		WithRequestTimeout(0), WithUserAgent(" "),
	}
	for i, o := range bad {
		if _, err := New(o); err == nil {
			t.Errorf("option %d accepted", i)
		}
	}
	c, err := New(WithBaseURL("http://127.0.0.1:8080/"), WithHTTPClient(&http.Client{}), WithPollTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.target(&call{host: hostD1, path: "/channel/poll2"}).String(); got != "http://127.0.0.1:8080/channel/poll2" {
		t.Errorf("target = %s", got)
	}
	d, _ := New()
	if got := d.target(&call{host: hostPtlogin, path: "/ptqrshow"}).String(); got != "https://ssl.ptlogin2.qq.com/ptqrshow" {
		t.Errorf("real target = %s", got)
	}
	if got := d.target(&call{host: hostS, path: "/api/getvfwebqq"}).String(); got != "http://s.web2.qq.com/api/getvfwebqq" {
		t.Errorf("real target = %s", got)
	}
}

func TestNotLoggedIn(t *testing.T) {
	c, err := New(WithBaseURL("http://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	checks := map[string]error{}
	_, checks["Poll"] = c.Poll(ctx)
	_, checks["Friends"] = c.Friends(ctx)
	checks["SendPart"] = c.SendPart(ctx, Target{Kind: TargetFriend, UIN: 1}, []Segment{TextSegment("x")})
	_, checks["CheckQR"] = c.CheckQR(ctx)
	_, checks["CompleteLogin"] = c.CompleteLogin(ctx)
	_, checks["Relogin"] = c.Relogin(ctx)
	for name, err := range checks {
		if !errors.Is(err, ErrNotLoggedIn) {
			t.Errorf("%s: err = %v, want ErrNotLoggedIn", name, err)
		}
	}
	if _, ok := c.Session(); ok {
		t.Error("Session() ok without login")
	}
}

func TestSendPartLocalChecks(t *testing.T) {
	c, err := New(WithBaseURL("http://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	c.sess = newSessionState(1, "p", "v", "s", time.Now())
	ctx := context.Background()
	long := []Segment{TextSegment(strings.Repeat("字", 241))} // 723 bytes
	if err := c.SendPart(ctx, Target{Kind: TargetFriend, UIN: 5}, long); !errors.Is(err, ErrTooLong) {
		t.Errorf("long: %v", err)
	}
	if err := c.SendPart(ctx, Target{Kind: TargetFriend, UIN: 5}, nil); !errors.Is(err, ErrBadRequest) {
		t.Errorf("empty: %v", err)
	}
	if err := c.SendPart(ctx, Target{Kind: "mail", UIN: 5}, long[:1]); !errors.Is(err, ErrBadRequest) {
		t.Errorf("kind: %v", err)
	}
	if err := c.SendPart(ctx, Target{Kind: TargetSess, UIN: 5}, []Segment{TextSegment("x")}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("sess without group: %v", err)
	}
}
