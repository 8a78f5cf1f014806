package qqclient

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// SavedCookie is one cookie of a saved session. URL names the domain the cookie belongs to
// ("http://qq.com/"): it is sent to that host and its subdomains. Name and Value are the
// cookie's. Enough to put the cookie back into a jar.
type SavedCookie struct {
	URL   string `json:"url"`
	Name  string `json:"name"`
	Value string `json:"value"`
}

// String implements fmt.Stringer without the cookie's value.
func (c SavedCookie) String() string { return "cookie " + c.Name + "=[redacted]" }

// GoString implements fmt.GoStringer without the cookie's value.
func (c SavedCookie) GoString() string {
	return "qqclient.SavedCookie{Name:" + c.Name + ", [redacted]}"
}

// cookieKey identifies a stored cookie.
type cookieKey struct{ domain, name string }

// cookieStore is the client's cookie jar. The protocol needs few cookies, all with path "/",
// so the store keeps (domain, name) → value and sends a cookie to its domain and the
// domain's subdomains. Unlike net/http/cookiejar it can list its content for saving.
// It is not safe for concurrent use; the Client guards it.
type cookieStore struct {
	m     map[cookieKey]string
	order []cookieKey
}

func newCookieStore() *cookieStore { return &cookieStore{m: make(map[cookieKey]string)} }

// hostOf is the lower-case host of u without the port.
func hostOf(u *url.URL) string {
	h := u.Hostname()
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// absorb records the Set-Cookie headers of a response to a request for u.
func (s *cookieStore) absorb(u *url.URL, cookies []*http.Cookie) {
	host := hostOf(u)
	now := time.Now()
	for _, c := range cookies {
		if c.Name == "" {
			continue
		}
		domain := host
		if d := strings.ToLower(strings.TrimPrefix(c.Domain, ".")); d != "" && net.ParseIP(host) == nil {
			if host != d && !strings.HasSuffix(host, "."+d) {
				continue // a host may not set cookies for another domain
			}
			domain = d
		}
		k := cookieKey{domain, c.Name}
		if c.MaxAge < 0 || (!c.Expires.IsZero() && c.Expires.Before(now)) {
			s.delete(k)
			continue
		}
		s.set(k, c.Value)
	}
}

func (s *cookieStore) set(k cookieKey, v string) {
	if _, ok := s.m[k]; !ok {
		s.order = append(s.order, k)
	}
	s.m[k] = v
}

func (s *cookieStore) delete(k cookieKey) {
	if _, ok := s.m[k]; !ok {
		return
	}
	delete(s.m, k)
	for i, o := range s.order {
		if o == k {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
}

// matches reports whether a cookie of domain d is sent to host h.
func domainMatch(h, d string) bool { return h == d || strings.HasSuffix(h, "."+d) }

// header is the Cookie header value for a request to u ("" when none applies).
// When two domains hold a cookie of the same name, the more specific one wins.
func (s *cookieStore) header(u *url.URL) string {
	host := hostOf(u)
	best := make(map[string]cookieKey)
	var names []string
	for _, k := range s.order {
		if !domainMatch(host, k.domain) {
			continue
		}
		prev, ok := best[k.name]
		if !ok {
			names = append(names, k.name)
		}
		if !ok || len(k.domain) > len(prev.domain) {
			best[k.name] = k
		}
	}
	var b strings.Builder
	for _, n := range names {
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(n)
		b.WriteByte('=')
		b.WriteString(s.m[best[n]])
	}
	return b.String()
}

// get is the value of the named cookie visible to u.
func (s *cookieStore) get(u *url.URL, name string) (string, bool) {
	host := hostOf(u)
	var best cookieKey
	found := false
	for _, k := range s.order {
		if k.name == name && domainMatch(host, k.domain) && (!found || len(k.domain) > len(best.domain)) {
			best, found = k, true
		}
	}
	if !found {
		return "", false
	}
	return s.m[best], true
}

// replace sets the value of every stored cookie called name visible to u; with none, it
// adds one for u's host.
func (s *cookieStore) replace(u *url.URL, name, value string) {
	host := hostOf(u)
	done := false
	for _, k := range s.order {
		if k.name == name && domainMatch(host, k.domain) {
			s.m[k] = value
			done = true
		}
	}
	if !done {
		s.set(cookieKey{host, name}, value)
	}
}

// saved lists the cookies for a saved session.
func (s *cookieStore) saved() []SavedCookie {
	out := make([]SavedCookie, 0, len(s.order))
	for _, k := range s.order {
		out = append(out, SavedCookie{URL: "http://" + k.domain + "/", Name: k.name, Value: s.m[k]})
	}
	return out
}

// restore loads saved cookies.
func (s *cookieStore) restore(cs []SavedCookie) error {
	for _, c := range cs {
		u, err := url.Parse(c.URL)
		if err != nil || hostOf(u) == "" || c.Name == "" {
			return fmt.Errorf("%w: saved cookie %q has no valid URL or name", ErrBadRequest, c.Name)
		}
		s.set(cookieKey{hostOf(u), c.Name}, c.Value)
	}
	return nil
}
