package onebot

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

const maxBodyBytes = 1 << 20

// ServeHTTP serves the forward transports on one listener: a WebSocket
// upgrade on "/" (universal), "/api" or "/event"; anything else is the
// HTTP API, "/<action>" by GET (query) or POST (JSON or form body, query
// too). With an access token, a request without one is answered 401 and one
// with a wrong one 403. A request a browser makes for a page of another site
// is refused 403 whatever its token: an action has effects even by GET (an
// <img> tag could otherwise send a QQ message through a local gateway).
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if crossSite(r) {
		writeJSON(w, http.StatusForbidden, failed(RetForbidden, "cross-site request refused"))
		return
	}
	if st := g.authorize(r); st != 0 {
		writeJSON(w, st, failed(map[int]int{http.StatusUnauthorized: RetUnauthorized, http.StatusForbidden: RetForbidden}[st], http.StatusText(st)))
		return
	}
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		switch strings.TrimSuffix(r.URL.Path, "/") {
		case "":
			g.acceptWS(w, r, roleUniversal)
		case "/api":
			g.acceptWS(w, r, roleAPI)
		case "/event":
			g.acceptWS(w, r, roleEvent)
		default:
			http.NotFound(w, r)
		}
		return
	}
	action := strings.Trim(r.URL.Path, "/")
	if action == "" || strings.Contains(action, "/") {
		writeJSON(w, http.StatusNotFound, failed(RetNotFound, "no action: POST /<action>, e.g. /send_private_msg"))
		return
	}
	params, st, msg := readParams(r)
	if st != http.StatusOK {
		writeJSON(w, st, failed(RetBadRequest, msg))
		return
	}
	resp := g.Call(r.Context(), action, params, nil)
	code := http.StatusOK
	if resp.Retcode == RetNotFound && !Supported(action) {
		code = http.StatusNotFound
	}
	writeJSON(w, code, resp)
}

// readParams reads an HTTP API call's parameters: the query, and for POST
// the JSON object or the form in the body (which win over the query). A
// body of another type is 406, one that does not parse 400.
func readParams(r *http.Request) (Params, int, string) {
	p := ParamsFromValues(r.URL.Query())
	switch r.Method {
	case http.MethodGet:
		return p, http.StatusOK, ""
	case http.MethodPost:
	default:
		return nil, http.StatusMethodNotAllowed, "use GET or POST"
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return nil, http.StatusBadRequest, "cannot read the body"
	}
	if len(body) > maxBodyBytes {
		return nil, http.StatusRequestEntityTooLarge, "body larger than 1 MiB"
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return p, http.StatusOK, ""
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/json", "":
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, http.StatusBadRequest, "the body is not a JSON object"
		}
		for k, v := range m {
			p[k] = v
		}
	case "application/x-www-form-urlencoded":
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, http.StatusBadRequest, "the form does not parse"
		}
		for k, val := range ParamsFromValues(v) {
			p[k] = val
		}
	default:
		return nil, http.StatusNotAcceptable, "Content-Type " + strconv.Quote(truncate(mt, 64)) + ": want application/json or application/x-www-form-urlencoded"
	}
	return p, http.StatusOK, ""
}

// crossSite reports whether r comes from a web page of another site: a
// browser's Sec-Fetch-Site other than same-origin or none, or an Origin that
// a browser writes (http or https, or "null") naming another host. An Origin
// no browser would send is not taken as one: some bot SDKs send junk there
// (cq-websocket sends "[object Object]").
func crossSite(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return true
	}
	o := r.Header.Get("Origin")
	if o == "null" {
		return true
	}
	if o == "" {
		return false
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false
	}
	return !strings.EqualFold(u.Host, r.Host)
}

// authorize returns 0 when r may pass, 401 when it has no token and one is
// required, 403 when its token is wrong. The token comes as
// "Authorization: Bearer <token>" (or "Token <token>", which some clients
// send) or as ?access_token=.
func (g *Gateway) authorize(r *http.Request) int {
	if g.cfg.AccessToken == "" {
		return 0
	}
	tok := ""
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, _ := strings.Cut(h, " ")
		if strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "Token") {
			tok = strings.TrimSpace(rest)
		} else {
			tok = strings.TrimSpace(h)
		}
	} else if q := r.URL.Query().Get("access_token"); q != "" {
		tok = q
	}
	if tok == "" {
		return http.StatusUnauthorized
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(g.cfg.AccessToken)) != 1 {
		return http.StatusForbidden
	}
	return 0
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := marshalNoEscape(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"status":"failed","retcode":105,"data":null}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// Sign returns the X-Signature of body for secret: "sha1=" and the hex
// HMAC-SHA1.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha1.New, []byte(secret))
	m.Write(body)
	return "sha1=" + hex.EncodeToString(m.Sum(nil))
}

// post sends one event to an HTTP POST URL and honours a quick operation in
// the reply (a JSON object; 204 or an empty body means none).
func (g *Gateway) post(ctx context.Context, u string, o *Out) error {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.PostTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(o.JSON))
	if err != nil {
		return fmt.Errorf("onebot: post %s: %w", redactURL(u), err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Self-ID", strconv.FormatInt(g.SelfID(), 10))
	req.Header.Set("User-Agent", "qqbridge-onebot/"+g.cfg.Version)
	if g.cfg.Secret != "" {
		req.Header.Set("X-Signature", Sign(g.cfg.Secret, o.JSON))
	}
	resp, err := g.http.Do(req)
	if err != nil {
		return fmt.Errorf("onebot: post to %s failed", redactURL(u))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("onebot: post to %s: HTTP %d", redactURL(u), resp.StatusCode)
	}
	if o.ob == nil || o.ob.PostType != PostMessage || len(bytes.TrimSpace(body)) == 0 || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	var op quickOp
	if err := json.Unmarshal(body, &op); err != nil {
		g.log.Info().Str("url", redactURL(u)).Msg("the reply to a push is not a quick operation object; ignored")
		return nil
	}
	// The request id is derived from the event, so a redelivered event does
	// not send its quick reply twice.
	sum := sha256.Sum256([]byte("quick:" + o.Event.ID))
	id := "onebot-quick-" + hex.EncodeToString(sum[:12])
	ob := o.ob
	name := ""
	if ob.Sender != nil {
		name = pick(ob.Sender.Card, ob.Sender.Nickname)
	}
	r := g.quickReply(ctx, id, ob.MessageType, ob.UserID, ob.GroupID, ob.DiscussID, ob.SubType == "group", name, op)
	if r.Status != "ok" {
		g.log.Info().Int("retcode", r.Retcode).Str("reason", r.Msg).Msg("quick operation failed")
	}
	return nil
}

// redactURL drops the query and user info of a URL for logs and errors.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	p.RawQuery, p.User, p.Fragment = "", nil, ""
	return p.String()
}
