package onebot

import (
	"net/http/httptest"
	"testing"
)

func TestCrossSite(t *testing.T) {
	for _, c := range []struct {
		headers map[string]string
		want    bool
	}{
		{nil, false},
		{map[string]string{"Origin": "http://gw:6700"}, false},
		{map[string]string{"Origin": "http://evil.example"}, true},
		{map[string]string{"Origin": "https://gw.evil:6700"}, true},
		{map[string]string{"Origin": "null"}, true},
		{map[string]string{"Origin": "[object Object]"}, false},
		{map[string]string{"Sec-Fetch-Site": "cross-site"}, true},
		{map[string]string{"Sec-Fetch-Site": "same-site"}, true},
		{map[string]string{"Sec-Fetch-Site": "same-origin"}, false},
		{map[string]string{"Sec-Fetch-Site": "none"}, false},
	} {
		r := httptest.NewRequest("GET", "http://gw:6700/get_status", nil)
		for k, v := range c.headers {
			r.Header.Set(k, v)
		}
		if got := crossSite(r); got != c.want {
			t.Errorf("%v: crossSite = %v, want %v", c.headers, got, c.want)
		}
	}
}

func TestAuthorize(t *testing.T) {
	g := &Gateway{cfg: Config{AccessToken: "tok"}}
	for _, c := range []struct {
		auth, query string
		want        int
	}{
		{"", "", 401},
		{"Bearer tok", "", 0},
		{"Token tok", "", 0},
		{"bearer tok", "", 0},
		{"Bearer nope", "", 403},
		{"", "tok", 0},
		{"", "nope", 403},
		{"Bearer nope", "tok", 403},
	} {
		r := httptest.NewRequest("GET", "http://gw/get_status?access_token="+c.query, nil)
		if c.query == "" {
			r = httptest.NewRequest("GET", "http://gw/get_status", nil)
		}
		if c.auth != "" {
			r.Header.Set("Authorization", c.auth)
		}
		if got := g.authorize(r); got != c.want {
			t.Errorf("auth %q query %q: %d, want %d", c.auth, c.query, got, c.want)
		}
	}
}
