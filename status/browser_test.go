//go:build browser

// The browser test runs with -tags browser (CI installs Chromium and runs it):
// plain `go test ./...` needs no browser on a new machine.

package status_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	_ "image/png"
	"io"
	"net/http"
	"net/http/httptest"
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
