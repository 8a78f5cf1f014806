//go:build browser

// The browser test runs with -tags browser (CI installs Chromium and runs it):
// plain `go test ./...` needs no browser on a new machine.

package status_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	_ "image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/status"
)

// fetchQR asks qqsim for a new QR code as the login page would, and returns
// the PNG and the text it encodes.
func fetchQR(t *testing.T, base string) ([]byte, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/ptqrshow?appid=501004106&e=0&l=M&s=5&d=72&v=4&t=0.1", nil)
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")
	req.Header.Set("Referer", qqsim.RefererPTLogin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	png, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("ptqrshow: %d %s", resp.StatusCode, png)
	}
	return png, decodeQR(t, png)
}

func decodeQR(t *testing.T, png []byte) string {
	t.Helper()
	text, err := testenv.ReadQR(t, png)
	if err != nil {
		t.Fatalf("no QR code readable: %v", err)
	}
	return text
}

// simControl calls qqsim's control API over HTTP, as a person with curl would.
func simControl(t *testing.T, base, method, path string) []byte {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, body)
	}
	return body
}

// The status page in a real browser: it shows qqsim's QR code (decoded from a
// screenshot), swaps it by itself for the next one, and once the phone scanned
// and confirmed (through qqsim's control API) and the source says online, it
// turns online and the code disappears — all without a reload. A reason full
// of markup is shown as text and runs nothing.
func TestBrowserShowsQRAndTurnsOnline(t *testing.T) {
	ctx := testenv.Browser(t)

	sim, err := qqsim.New(qqsim.Config{PollHold: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	simSrv := httptest.NewServer(sim)
	t.Cleanup(simSrv.Close)
	t.Cleanup(sim.Close)

	const evil = `<img src=x onerror="document.title='pwned'">`
	png1, text1 := fetchQR(t, simSrv.URL)
	src := &source{}
	src.set(func(s *status.Snapshot) {
		*s = status.Snapshot{
			Prefix: "qq", State: "awaiting_scan", Reason: evil, Since: time.Now(),
			Replica: "bridge-0", Leader: "bridge-0", NATS: "CONNECTED",
			QR: png1, QRExpires: time.Now().Add(2 * time.Minute),
			Counters: []status.Counter{{Name: "QR codes issued", Value: 1}},
		}
	})
	page := httptest.NewServer(status.New(src))
	t.Cleanup(page.Close)

	// 1. the page shows the QR code, readable from a screenshot
	err = chromedp.Do(ctx,
		chromedp.Navigate(page.URL+"/"),
		chromedp.WaitReady(chromedp.CSS(`body[data-state="awaiting_scan"]`)),
		chromedp.WaitVisible(chromedp.ID("qr")),
		chromedp.Poll[chromedp.Void](`document.getElementById("qr").dataset.shown === document.getElementById("qr").getAttribute("src")`),
	)
	if err != nil {
		t.Fatalf("page with a QR code: %v", err)
	}
	reason, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.ID("reason")))
	if err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	if got := decodeQR(t, testenv.Screenshot(t, ctx, "1-awaiting-scan")); got != text1 {
		t.Fatalf("QR on the page reads %q, qqsim's code is %q", got, text1)
	}
	if reason != evil || strings.Contains(title, "pwned") {
		t.Fatalf("reason shown as %q, title %q: markup was not kept as text", reason, title)
	}
	injected, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#reason *").length`))
	if err != nil || injected != 0 {
		t.Fatalf("elements inside #reason: %d (%v)", injected, err)
	}

	// 2. a new code is published: the image follows by itself
	png2, text2 := fetchQR(t, simSrv.URL)
	if text2 == text1 {
		t.Fatal("qqsim gave the same QR code twice")
	}
	firstSrc, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("qr").getAttribute("src")`))
	if err != nil {
		t.Fatal(err)
	}
	src.set(func(s *status.Snapshot) {
		s.QR, s.QRExpires = png2, time.Now().Add(2*time.Minute)
		s.Counters = []status.Counter{{Name: "QR codes issued", Value: 2}}
	})
	err = chromedp.Do(ctx,
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`(() => { const i = document.getElementById("qr");
			return i.getAttribute("src") !== %s && i.dataset.shown === i.getAttribute("src"); })()`, strconv.Quote(firstSrc))),
	)
	if err != nil {
		t.Fatalf("page did not load the new QR code: %v", err)
	}
	if got := decodeQR(t, testenv.Screenshot(t, ctx, "2-new-qr")); got != text2 {
		t.Fatalf("after a new code the page reads %q, want %q", got, text2)
	}

	// 3. the phone scans what the page shows and confirms (qqsim's control API)
	simControl(t, simSrv.URL, http.MethodPost, "/_sim/qr/scan")
	simControl(t, simSrv.URL, http.MethodPost, "/_sim/qr/confirm")
	var st qqsim.State
	if err := json.Unmarshal(simControl(t, simSrv.URL, http.MethodGet, "/_sim/state"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Login != "qr_confirmed" {
		t.Fatalf("qqsim login state %q after scan and confirm", st.Login)
	}

	// 4. the bridge would now log in: the source says online, the page follows
	src.set(func(s *status.Snapshot) {
		s.State, s.Reason, s.Since, s.Account, s.QR, s.QRExpires = "online", "logged in", time.Now(), st.SelfQQ, nil, time.Time{}
		s.Counters = []status.Counter{{Name: "QR codes issued", Value: 2}, {Name: "events published", Value: 0}}
	})
	err = chromedp.Do(ctx,
		chromedp.WaitReady(chromedp.CSS(`body[data-state="online"]`)),
		chromedp.WaitNotVisible(chromedp.ID("qr-box")),
	)
	if err != nil {
		t.Fatalf("page did not turn online: %v", err)
	}
	stateText, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.ID("state")))
	if err != nil {
		t.Fatal(err)
	}
	account, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.ID("account")))
	if err != nil {
		t.Fatal(err)
	}
	if stateText != "online" || account != strconv.FormatInt(st.SelfQQ, 10) {
		t.Fatalf("online page: state %q, account %q (want %d)", stateText, account, st.SelfQQ)
	}
	shot := testenv.Screenshot(t, ctx, "3-online")
	img, _, err := image.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatal(err)
	}
	bmp, _ := gozxing.NewBinaryBitmapFromImage(img)
	if res, err := qrcode.NewQRCodeReader().Decode(bmp, nil); err == nil {
		t.Fatalf("a QR code (%q) is still on the online page", res.GetText())
	}
}

// elementShot is a screenshot of the first element matching the CSS
// selector, kept as <name>.png under $STATUS_SCREENSHOTS when that is set.
func elementShot(t *testing.T, ctx context.Context, sel, name string) []byte {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("screenshot of %s: %v", sel, err)
	}
	if dir := os.Getenv("STATUS_SCREENSHOTS"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return png
}

// evalString evaluates a JavaScript expression on the page.
func evalString(t *testing.T, ctx context.Context, js string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return s
}

// The page of a bridge serving several accounts, in a real browser: one
// section per account, each with its own state, heading and QR code (acct2's
// code, read from a screenshot of its section, is qqsim's); the first section
// keeps the single-account page's ids. When acct2 logs in its section turns
// online by itself; when acct1 is removed its section goes and the first
// section shows acct2; an account added appears with its own code.
func TestBrowserManyAccounts(t *testing.T) {
	ctx := testenv.Browser(t)
	sim, err := qqsim.New(qqsim.Config{PollHold: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	simSrv := httptest.NewServer(sim)
	t.Cleanup(simSrv.Close)
	t.Cleanup(sim.Close)

	const evil = `<b id="injected">not bold</b>`
	png, text := fetchQR(t, simSrv.URL)
	acct1 := status.AccountSnapshot{Prefix: "acct1", State: "online", Account: 111, Leader: "bridge-0", Since: time.Now(),
		LastEvent: time.Now(), Counters: []status.Counter{{Name: "events published", Value: 7}}}
	acct2 := status.AccountSnapshot{Prefix: "acct2", State: "awaiting_scan", Reason: evil, Leader: "bridge-1",
		QR: png, QRExpires: time.Now().Add(2 * time.Minute), Counters: []status.Counter{{Name: "QR codes issued", Value: 1}}}
	src := &source{}
	src.set(func(s *status.Snapshot) {
		*s = status.Snapshot{Replica: "bridge-0", NATS: "CONNECTED", Accounts: []status.AccountSnapshot{acct1, acct2}}
	})
	page := httptest.NewServer(status.New(src))
	t.Cleanup(page.Close)

	const img2 = `document.querySelector('article[data-prefix="acct2"] img')`
	err = chromedp.Do(ctx,
		chromedp.Navigate(page.URL+"/"),
		chromedp.WaitReady(chromedp.CSS(`article[data-prefix="acct2"][data-state="awaiting_scan"]`)),
		chromedp.Poll[chromedp.Void](img2+`.dataset.shown === `+img2+`.getAttribute("src")`),
	)
	if err != nil {
		t.Fatalf("page with two accounts: %v", err)
	}
	if n := evalString(t, ctx, `String(document.querySelectorAll("article.account").length)`); n != "2" {
		t.Fatalf("%s sections, want 2", n)
	}
	checks := map[string]string{
		`document.querySelector("article.account").dataset.prefix`: "acct1",
		`document.getElementById("state").textContent`:             "online",
		`document.getElementById("account").textContent`:           "111",
		`String(document.getElementById("qr-box").hidden)`:         "true",
		`document.getElementById("prefix").textContent`:            "2 accounts",
		`document.title`:              "qqbridge: 2 accounts, 1 online",
		`document.body.dataset.state`: "online",
		`[...document.querySelectorAll(".account-name")].map(h => h.hidden ? "" : h.textContent).join(",")`: "acct1,acct2",
		`String(document.querySelectorAll('article[data-prefix="acct2"] [id]').length)`:                     "0",
		`document.querySelector('article[data-prefix="acct2"] [data-f="reason"]').textContent`:              evil,
		`String(document.getElementById("injected") === null)`:                                              "true",
		`document.querySelector('article[data-prefix="acct2"] [data-f="leader"]').textContent`:              "bridge-1",
		`document.getElementById("leader").textContent`:                                                     "bridge-0 (this replica)",
		`document.getElementById("replica").textContent`:                                                    "bridge-0",
	}
	for js, want := range checks {
		if got := evalString(t, ctx, js); got != want {
			t.Errorf("%s = %q, want %q", js, got, want)
		}
	}
	testenv.Screenshot(t, ctx, "many-1-top")
	if got := decodeQR(t, elementShot(t, ctx, `article[data-prefix="acct2"]`, "many-2-acct2-awaiting-scan")); got != text {
		t.Fatalf("acct2's section reads %q, qqsim's code is %q", got, text)
	}

	// acct2 logs in: its section turns online, its code goes.
	simControl(t, simSrv.URL, http.MethodPost, "/_sim/qr/scan")
	simControl(t, simSrv.URL, http.MethodPost, "/_sim/qr/confirm")
	acct2.State, acct2.Reason, acct2.Account, acct2.QR, acct2.QRExpires = "online", "logged in", 222, nil, time.Time{}
	src.set(func(s *status.Snapshot) { s.Accounts = []status.AccountSnapshot{acct1, acct2} })
	err = chromedp.Do(ctx,
		chromedp.WaitReady(chromedp.CSS(`article[data-prefix="acct2"][data-state="online"]`)),
		chromedp.WaitNotVisible(chromedp.CSS(`article[data-prefix="acct2"] .qr-box`)),
	)
	if err != nil {
		t.Fatalf("acct2's section did not turn online: %v", err)
	}
	if got := evalString(t, ctx, `document.title`); got != "qqbridge: 2 accounts, 2 online" {
		t.Errorf("title %q", got)
	}

	// acct1 removed: its section goes, the first one shows acct2 alone.
	src.set(func(s *status.Snapshot) { s.Accounts = []status.AccountSnapshot{acct2} })
	err = chromedp.Do(ctx,
		chromedp.Poll[chromedp.Void](`document.querySelectorAll("article.account").length === 1 && document.getElementById("account").textContent === "222"`),
	)
	if err != nil {
		t.Fatalf("the page did not drop acct1: %v", err)
	}
	for js, want := range map[string]string{
		`document.querySelector("article.account").dataset.prefix`: "acct2",
		`document.getElementById("prefix").textContent`:            "acct2",
		`String(document.querySelector(".account-name").hidden)`:   "true",
		`document.title`: "qqbridge acct2: online",
	} {
		if got := evalString(t, ctx, js); got != want {
			t.Errorf("after acct1's removal %s = %q, want %q", js, got, want)
		}
	}

	// acct3 added, awaiting its scan: a section of its own with its code.
	png3, text3 := fetchQR(t, simSrv.URL)
	acct3 := status.AccountSnapshot{Prefix: "acct3", State: "awaiting_scan", QR: png3, QRExpires: time.Now().Add(2 * time.Minute)}
	src.set(func(s *status.Snapshot) { s.Accounts = []status.AccountSnapshot{acct2, acct3} })
	const img3 = `document.querySelector('article[data-prefix="acct3"] img')`
	err = chromedp.Do(ctx,
		chromedp.WaitReady(chromedp.CSS(`article[data-prefix="acct3"][data-state="awaiting_scan"]`)),
		chromedp.Poll[chromedp.Void](img3+` && `+img3+`.dataset.shown === `+img3+`.getAttribute("src")`),
	)
	if err != nil {
		t.Fatalf("acct3's section: %v", err)
	}
	if got := decodeQR(t, elementShot(t, ctx, `article[data-prefix="acct3"]`, "many-3-acct3-added")); got != text3 {
		t.Fatalf("acct3's section reads %q, want %q", got, text3)
	}
}
