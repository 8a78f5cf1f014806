package qqsim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestReplayRecordings replays, in order, what real SmartQQ clients sent to cmd/qqsim
// in its default profile (testdata/recordings, made by scripts/realclient with
// --record), against a simulator in the default profile: the same methods, paths,
// queries, headers and bodies, with the values of this run in place of the
// placeholders, and the cookies from a cookie jar that lives through the replay as the
// client's did. Every answer must have the recorded status and code, the login must
// succeed and the replies must be sent.
func TestReplayRecordings(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "recordings", "*.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recordings: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".jsonl"), func(t *testing.T) { replay(t, f) })
	}
}

// readRecording reads a recording, skipping comment lines (starting with #).
func readRecording(t *testing.T, path string) []RecordedRequest {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []RecordedRequest
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		var r RecordedRequest
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		t.Fatalf("%s: empty", path)
	}
	return out
}

var placeholder = regexp.MustCompile(`\{[a-z_0-9]+(:[0-9]+)?\}`)

// fill replaces the placeholders of v by the simulator's current values; escape
// query-escapes them (for a query or a form).
func fill(t *testing.T, sim *Server, v string, escape bool) string {
	t.Helper()
	sim.mu.Lock()
	defer sim.mu.Unlock()
	return placeholder.ReplaceAllStringFunc(v, func(p string) string {
		val, ok := sim.placeholderLocked(p)
		if !ok {
			t.Fatalf("placeholder %s has no value now", p)
		}
		if escape {
			return url.QueryEscape(val)
		}
		return val
	})
}

// placeholderLocked is the current value of a placeholder of RecordedRequest.
func (s *Server) placeholderLocked(p string) (string, bool) {
	name, arg, _ := strings.Cut(strings.Trim(p, "{}"), ":")
	q, cr, sess := s.qr, s.creds, s.sess
	n, _ := strconv.ParseInt(arg, 10, 64)
	str := func(v int64, ok bool) (string, bool) { return strconv.FormatInt(v, 10), ok }
	switch {
	case name == "qrsig" && q != nil:
		return q.sig, true
	case name == "ptqrtoken" && q != nil:
		return strconv.FormatInt(Hash33(q.sig), 10), true
	case name == "ptsigx" && q != nil:
		return q.ptsigx, true
	case name == "ptwebqq" && cr != nil:
		return cr.ptwebqq, true
	case name == "ptwebqq" && q != nil:
		return q.ptwebqq, true
	case name == "skey" && cr != nil:
		return cr.skey, true
	case name == "skey" && q != nil:
		return q.skey, true
	case name == "p_skey" && cr != nil:
		return cr.pskey, true
	case name == "pt4_token" && cr != nil:
		return cr.pt4token, true
	case name == "vfwebqq" && sess != nil:
		return sess.vfwebqq, true
	case name == "vfwebqq" && cr != nil && cr.vfwebqq != "":
		return cr.vfwebqq, true
	case name == "psessionid" && sess != nil:
		return sess.id, true
	case name == "hash" && cr != nil:
		return Hash(s.world.Self.QQ, cr.ptwebqq), true
	case name == "hash_empty":
		return Hash(s.world.Self.QQ, ""), true
	case name == "uin" && sess != nil:
		v, ok := sess.num.uin[n]
		return str(v, ok)
	case name == "gid" && sess != nil:
		v, ok := sess.num.gid[n]
		return str(v, ok)
	case name == "gcode" && sess != nil:
		v, ok := sess.num.code[n]
		return str(v, ok)
	case name == "did" && sess != nil:
		v, ok := sess.num.did[n]
		return str(v, ok)
	}
	return "", false
}

func replay(t *testing.T, path string) {
	recs := readRecording(t, path)
	cfg := Config{QRTTL: 300 * time.Second, PollHold: 300 * time.Millisecond, Echo: true} // the default profile
	sim, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	t.Cleanup(sim.Close)
	simAddr := ts.Listener.Addr().String()

	// The client addressed the real host names; here they all lead to the simulator,
	// on loopback, and the jar keeps the cookies by those names as the client's did.
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	hc := &http.Client{
		Jar:     jar,
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(addr)
			if host != "qq.com" && !strings.HasSuffix(host, ".qq.com") && addr != simAddr {
				return nil, fmt.Errorf("replay: refusing %s", addr)
			}
			return dialer.DialContext(ctx, network, simAddr)
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	for _, rec := range recs {
		control := strings.HasPrefix(rec.Path, "/_sim/")
		u := "http://" + rec.Host + rec.Path
		if control {
			u = ts.URL + rec.Path
		}
		if rec.Query != "" {
			u += "?" + fill(t, sim, rec.Query, true)
		}
		var body io.Reader
		if rec.Body != "" {
			body = strings.NewReader(fill(t, sim, rec.Body, !control))
		}
		req, err := http.NewRequest(rec.Method, u, body)
		if err != nil {
			t.Fatalf("#%d: %v", rec.Seq, err)
		}
		for k, v := range rec.Header {
			req.Header.Set(k, fill(t, sim, v, false))
		}
		// Cookies: the jar's, checked against what the client sent; the cookies the
		// client made up itself (no placeholder, not in the jar) are sent as recorded.
		inJar := map[string]bool{}
		for _, ck := range jar.Cookies(req.URL) {
			inJar[ck.Name] = true
		}
		for _, ck := range rec.Cookies {
			switch {
			case inJar[ck.Name]:
			case placeholder.MatchString(ck.Value) && pages[rec.Path] == "":
				t.Errorf("#%d %s: the client sent cookie %s, the jar has none", rec.Seq, rec.Path, ck.Name)
			default:
				// Made up by the client, or (requests following check_sig's redirect)
				// sent to a page beyond the cookie's domain: as the client sent it.
				req.AddCookie(&http.Cookie{Name: ck.Name, Value: fill(t, sim, ck.Value, false)})
			}
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("#%d %s: %v", rec.Seq, rec.Path, err)
		}
		head, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		code := answerCode(rec.Path, head)

		if rec.Path == "/channel/poll2" {
			// What a poll brings depends on timing; it must not be refused.
			if (resp.StatusCode != 200 && resp.StatusCode != 504) || (code != nil && *code != 0) {
				t.Errorf("#%d poll2: HTTP %d, code %v: %s", rec.Seq, resp.StatusCode, deref(code), head)
			}
			continue
		}
		if resp.StatusCode != rec.Status || deref(code) != deref(rec.Code) {
			t.Errorf("#%d %s %s: HTTP %d code %v, recorded HTTP %d code %v: %.200s",
				rec.Seq, rec.Method, rec.Path, resp.StatusCode, deref(code), rec.Status, deref(rec.Code), head)
		}
	}

	if st := sim.State(); st.Login != "online" {
		t.Errorf("after the replay: login %s, want online", st.Login)
	}
	// Every reply the client sent in the recording was sent again.
	var want []string
	for _, rec := range recs {
		if strings.HasPrefix(rec.Path, "/channel/send_") {
			want = append(want, strings.TrimPrefix(rec.Path, "/channel/"))
		}
	}
	sent := sim.Sent()
	if len(sent) != len(want) || len(sent) == 0 {
		t.Fatalf("sent %d messages, the recording has %d sends", len(sent), len(want))
	}
	for _, r := range sent {
		if !strings.HasPrefix(r.Text, "pong ") {
			t.Errorf("sent %+v, want a pong", r)
		}
	}
}

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}
