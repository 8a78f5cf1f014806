package qqsim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RecordedRequest is one line of Config.Record: a request as the client sent it, with
// every value the simulator issued replaced by a placeholder, and what it was answered.
// Lines are written when the answer is done (so a held poll comes after the control
// call that ended it). GET requests of the control API are not recorded.
//
// Placeholders: {qrsig} {ptqrtoken} (of the QR code shown then), {old_qrsig}, {ptsigx},
// {ptwebqq} {skey} {p_skey} {pt4_token} {vfwebqq} {psessionid} {hash} {hash_empty}
// {group_sig}, and the session numbers by their stable number: {uin:QQ} {gid:GROUP}
// {gcode:GROUP} {did:ID}. A replay fills them with the values of its own run.
type RecordedRequest struct {
	Seq     int               `json:"seq"`
	At      float64           `json:"at"` // seconds since the first recorded request
	Method  string            `json:"method"`
	Host    string            `json:"host"` // the Host the client addressed
	Path    string            `json:"path"`
	Query   string            `json:"query,omitempty"`  // raw query, as sent
	Header  map[string]string `json:"header,omitempty"` // but Cookie, Host and the transport's own
	Cookies []RecordedCookie  `json:"cookies,omitempty"`
	Body    string            `json:"body,omitempty"` // the raw body (a form or control JSON)
	Status  int               `json:"status"`
	// Code is the answer's retcode (errCode when it has none; the first ptuiCB
	// argument for ptqrlogin), when it has one.
	Code *int64 `json:"code,omitempty"`
}

// RecordedCookie is one cookie of a recorded request, in the order sent.
type RecordedCookie struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// recorder writes RecordedRequest lines.
type recorder struct {
	mu    sync.Mutex
	w     io.Writer
	seq   int
	start time.Time
}

// transportHeaders are headers the HTTP stack adds, not the client.
var transportHeaders = map[string]bool{
	"Cookie": true, "Content-Length": true, "Accept-Encoding": true, "Connection": true, "Host": true,
}

// captureWriter keeps the status and the start of the body of an answer.
type captureWriter struct {
	http.ResponseWriter
	status int
	head   bytes.Buffer
}

func (c *captureWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if n := 4096 - c.head.Len(); n > 0 {
		c.head.Write(b[:min(n, len(b))])
	}
	return c.ResponseWriter.Write(b)
}

// Flush lets a held poll flush as before.
func (c *captureWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// serveRecorded serves r and records it.
func (s *Server) serveRecorded(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	_ = r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	cw := &captureWriter{ResponseWriter: w}
	s.serve(cw, r)
	if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/_sim/") {
		return // looking at the simulator changes nothing: not recorded
	}

	rec := RecordedRequest{
		Method: r.Method, Host: r.Host, Path: r.URL.Path, Status: cw.status,
		Header: map[string]string{},
	}
	if rec.Status == 0 {
		rec.Status = http.StatusOK
	}
	s.mu.Lock()
	t := s.templaterLocked()
	s.mu.Unlock()
	rec.Query = t.apply(r.URL.RawQuery)
	for k, vs := range r.Header {
		if !transportHeaders[k] && len(vs) > 0 {
			rec.Header[k] = t.apply(strings.Join(vs, ", "))
		}
	}
	for _, ck := range r.Cookies() {
		rec.Cookies = append(rec.Cookies, RecordedCookie{Name: ck.Name, Value: t.apply(ck.Value)})
	}
	rec.Body = t.apply(string(body))
	rec.Code = answerCode(r.URL.Path, cw.head.Bytes())

	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	now := time.Now()
	if s.rec.seq == 0 {
		s.rec.start = now
	}
	s.rec.seq++
	rec.Seq = s.rec.seq
	rec.At = float64(now.Sub(s.rec.start).Milliseconds()) / 1000
	line, err := json.Marshal(rec)
	if err != nil {
		return
	}
	_, _ = s.rec.w.Write(append(line, '\n'))
}

// answerCode reads the code of an answer: ptuiCB's first argument, or the retcode
// (errCode) of a JSON object.
func answerCode(path string, head []byte) *int64 {
	if i := bytes.Index(head, []byte("ptuiCB('")); i >= 0 {
		rest := head[i+len("ptuiCB('"):]
		if j := bytes.IndexByte(rest, '\''); j > 0 {
			if n, err := strconv.ParseInt(string(rest[:j]), 10, 64); err == nil {
				return &n
			}
		}
		return nil
	}
	var m struct {
		Retcode *int64 `json:"retcode"`
		ErrCode *int64 `json:"errCode"`
	}
	if json.Unmarshal(head, &m) != nil {
		return nil
	}
	if m.Retcode != nil {
		return m.Retcode
	}
	return m.ErrCode
}

// templater replaces issued values by placeholders and fills placeholders back.
type templater struct {
	secrets []secretName      // longest first
	numbers map[string]string // decimal session number → placeholder
}

type secretName struct{ value, name string }

// templaterLocked collects every value the simulator has issued so far.
func (s *Server) templaterLocked() *templater {
	t := &templater{numbers: map[string]string{}}
	add := func(v, name string) {
		if len(v) >= 4 {
			t.secrets = append(t.secrets, secretName{v, name})
		}
	}
	if q := s.qr; q != nil {
		add(q.sig, "{qrsig}")
		add(strconv.FormatInt(Hash33(q.sig), 10), "{ptqrtoken}")
		add(q.ptsigx, "{ptsigx}")
		add(q.skey, "{skey}")
		add(q.ptwebqq, "{ptwebqq}")
	}
	for sig := range s.oldQR {
		add(sig, "{old_qrsig}")
	}
	for _, cr := range s.credsBy {
		add(cr.ptwebqq, "{ptwebqq}")
		add(cr.skey, "{skey}")
		add(cr.pskey, "{p_skey}")
		add(cr.pt4token, "{pt4_token}")
		add(cr.vfwebqq, "{vfwebqq}")
		add(Hash(s.world.Self.QQ, cr.ptwebqq), "{hash}")
	}
	add(Hash(s.world.Self.QQ, ""), "{hash_empty}")
	for id, sess := range s.sessBy {
		add(id, "{psessionid}")
		add(sess.vfwebqq, "{vfwebqq}")
		for sig := range sess.sigs {
			add(sig, "{group_sig}")
		}
	}
	if sess := s.sess; sess != nil {
		n := sess.num
		for qq, u := range n.uin {
			t.numbers[strconv.FormatInt(u, 10)] = "{uin:" + strconv.FormatInt(qq, 10) + "}"
		}
		for g, v := range n.gid {
			t.numbers[strconv.FormatInt(v, 10)] = "{gid:" + strconv.FormatInt(g, 10) + "}"
		}
		for g, v := range n.code {
			t.numbers[strconv.FormatInt(v, 10)] = "{gcode:" + strconv.FormatInt(g, 10) + "}"
		}
		for d, v := range n.did {
			t.numbers[strconv.FormatInt(v, 10)] = "{did:" + strconv.FormatInt(d, 10) + "}"
		}
	}
	// Escaped forms (skey's @ in a query) too.
	for _, sn := range t.secrets {
		if e := url.QueryEscape(sn.value); e != sn.value {
			t.secrets = append(t.secrets, secretName{e, sn.name})
		}
	}
	sort.SliceStable(t.secrets, func(i, j int) bool { return len(t.secrets[i].value) > len(t.secrets[j].value) })
	return t
}

var digitRun = regexp.MustCompile(`[0-9]+`)

// apply replaces the issued values in v by their placeholders.
func (t *templater) apply(v string) string {
	for _, sn := range t.secrets {
		if strings.Contains(v, sn.value) {
			v = strings.ReplaceAll(v, sn.value, sn.name)
		}
	}
	if len(t.numbers) == 0 {
		return v
	}
	return digitRun.ReplaceAllStringFunc(v, func(d string) string {
		if p, ok := t.numbers[d]; ok {
			return p
		}
		return d
	})
}
