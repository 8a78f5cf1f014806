package qqsim

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// get follows a 302 Location of the simulator with the client's cookies.
func (c *tclient) getLocation(t *testing.T, loc string) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.hc.Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestPictures(t *testing.T) {
	sim, c := newSim(t, testConfig())
	c.login(sim)
	if _, err := sim.Say(Say{Kind: "friend", From: 123456, Text: "look", Pictures: []string{"cat.png"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Say(Say{Kind: "group", From: 3524125, Group: 987654, Pictures: []string{"dog.jpg"}}); err != nil {
		t.Fatal(err)
	}
	items := c.pollItems()
	for len(items) < 2 {
		items = append(items, c.pollItems()...)
	}
	friend := obj(t, items[0]["value"])
	cont := arr(t, friend["content"])
	if len(cont) != 3 || cont[1] != "look" {
		t.Fatalf("friend content = %v", cont)
	}
	off := arr(t, cont[2])
	offv := obj(t, off[1])
	path, _ := offv["file_path"].(string)
	if off[0] != "offpic" || num(t, offv["success"]) != 1 || len(path) < 30 || path[0] != '/' {
		t.Fatalf("offpic item = %v", off)
	}
	grp := arr(t, obj(t, items[1]["value"])["content"])
	cf := arr(t, grp[1])
	cfv := obj(t, cf[1])
	if cf[0] != "cface" || cfv["name"] == "" || num(t, cfv["file_id"]) == 0 || cfv["key"] == "" || cfv["server"] == "" {
		t.Fatalf("cface item = %v", cf)
	}

	q := url.Values{"file_path": {path}, "f_uin": {friend["from_uin"].(interface{ String() string }).String()},
		"clientid": {"53999199"}, "psessionid": {c.psessionid}}
	resp, _ := c.request(http.MethodGet, "/channel/get_offpic2", q, nil)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("get_offpic2: HTTP %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	resp, b := c.getLocation(t, loc)
	if resp.StatusCode != 200 || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("picture: HTTP %d %q", resp.StatusCode, b[:min(8, len(b))])
	}
	if resp, _ := c.getLocation(t, loc); resp.StatusCode != http.StatusNotFound {
		t.Errorf("second download: HTTP %d, want 404", resp.StatusCode)
	}
	// Seed 002's path on w.qq.com works too; the wrong sender does not.
	if resp, _ := c.request(http.MethodGet, "/d/channel/get_offpic2", q, nil, setHeader("Referer", RefererD1)); resp.StatusCode != http.StatusFound {
		t.Errorf("/d/channel/get_offpic2: HTTP %d", resp.StatusCode)
	}
	q.Set("f_uin", strconv.FormatInt(sim.State().Friends[3524125], 10))
	if rc := retcode(t, c.api(http.MethodGet, "/channel/get_offpic2", q, nil)); rc != 100001 {
		t.Errorf("wrong f_uin: %d", rc)
	}
	tr := sim.Transfers()
	if len(tr) != 3 || tr[0].Action != "fetched" || tr[1].Action != "downloaded" || tr[2].Action != "fetched" ||
		tr[0].Name != "cat.png" || tr[0].From != 123456 {
		t.Errorf("transfers = %+v", tr)
	}
}

func TestFileOffers(t *testing.T) {
	cfg := testConfig()
	cfg.FileTTL = time.Hour
	sim, c := newSim(t, cfg)
	c.login(sim)
	lcid, err := sim.OfferFile(FileOffer{From: 123456, Name: "qt.png", Text: "bytes of qt"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.OfferFile(FileOffer{From: 2468024, Name: "x"}); err == nil {
		t.Error("an offer from a non-friend was accepted")
	}
	items := c.pollItems()
	v := obj(t, items[0]["value"])
	if items[0]["poll_type"] != "file_message" || v["mode"] != "recv" || v["name"] != "qt.png" || num(t, v["session_id"]) != lcid ||
		num(t, v["from_uin"]) != sim.State().Friends[123456] {
		t.Fatalf("file_message = %v", items[0])
	}
	fq := url.Values{"lcid": {strconv.FormatInt(lcid, 10)}, "guid": {"qt.png"}, "to": {strconv.FormatInt(sim.State().Friends[123456], 10)},
		"psessionid": {c.psessionid}, "count": {"1"}, "time": {"1"}, "clientid": {"53999199"}}
	resp, _ := c.request(http.MethodGet, "/channel/get_file2", fq, nil)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("get_file2: HTTP %d", resp.StatusCode)
	}
	if resp, b := c.getLocation(t, resp.Header.Get("Location")); resp.StatusCode != 200 || string(b) != "bytes of qt" {
		t.Fatalf("file: HTTP %d %q", resp.StatusCode, b)
	}
	// Taken: a second answer is too late.
	if m := c.api(http.MethodGet, "/channel/get_file2", fq, nil); retcode(t, m) != 102 {
		t.Errorf("get_file2 again: %v, want 102", m)
	}

	lcid2, _ := sim.OfferFile(FileOffer{From: 123456, Name: "b.txt"})
	rq := url.Values{"to": fq["to"], "lcid": {strconv.FormatInt(lcid2, 10)}, "psessionid": {c.psessionid}, "clientid": {"53999199"}, "t": {"1"}}
	if m := c.api(http.MethodGet, "/channel/refuse_file2", rq, nil); retcode(t, m) != 0 || m["result"] != "ok" {
		t.Errorf("refuse_file2: %v", m)
	}
	rq.Set("lcid", "1")
	if rc := retcode(t, c.api(http.MethodGet, "/channel/refuse_file2", rq, nil)); rc != 100001 {
		t.Errorf("unknown lcid: %d", rc)
	}
	actions := ""
	for _, tr := range sim.Transfers() {
		actions += tr.Action + " "
	}
	if actions != "fetched downloaded expired refused " {
		t.Errorf("transfers: %s", actions)
	}
}

func TestFileOfferExpires(t *testing.T) {
	cfg := testConfig()
	cfg.FileTTL = time.Millisecond
	sim, c := newSim(t, cfg)
	c.login(sim)
	lcid, err := sim.OfferFile(FileOffer{From: 123456, Name: "late.zip"})
	if err != nil {
		t.Fatal(err)
	}
	c.pollItems()
	time.Sleep(5 * time.Millisecond) // past the offer's life
	q := url.Values{"lcid": {strconv.FormatInt(lcid, 10)}, "to": {strconv.FormatInt(sim.State().Friends[123456], 10)},
		"psessionid": {c.psessionid}, "clientid": {"53999199"}}
	if m := c.api(http.MethodGet, "/channel/refuse_file2", q, nil); retcode(t, m) != 102 {
		t.Errorf("refuse_file2 of an expired offer: %v, want 102", m)
	}
	q.Set("guid", "late.zip")
	if m := c.api(http.MethodGet, "/channel/get_file2", q, nil); retcode(t, m) != 102 {
		t.Errorf("get_file2 of an expired offer: %v, want 102", m)
	}
}
