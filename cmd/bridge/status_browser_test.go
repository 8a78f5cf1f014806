//go:build browser

// The running bridge's status page in headless Chromium; runs with -tags
// browser (CI installs Chromium), so plain `go test ./...` needs no browser.

package main

import (
	"fmt"
	_ "image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/schema"
)

func mustReadQR(t *testing.T, what string, png []byte) string {
	t.Helper()
	text, err := testenv.ReadQR(t, png)
	if err != nil {
		t.Fatalf("no QR code readable in %s: %v", what, err)
	}
	return text
}

// The real bridge's status page in a real browser: while the bridge waits for
// a scan, the page on its --http listener shows the QR code the bridge
// published (on <prefix>.session.qr and under the session bucket's qr key),
// readable from a screenshot; the phone scans and confirms through qqsim's
// control API, and the page drops the code and turns online by itself.
func TestBrowserBridgeStatusPage(t *testing.T) {
	ctx := testenv.Browser(t)

	sim := testenv.StartSim(t, testenv.SimConfig())
	cfg := testConfig(t, sim.URL)
	rb := wireBridge(t, cfg)
	s := cfg.Subjects
	nc := testenv.Connect(t, rb.b.NATSURL())
	rec := testenv.Record(t, nc, s.Prefix()+".>")
	rb.start(t)
	isQR := func(m *nats.Msg) bool { return m.Subject == s.SessionQR() }
	rec.WaitFrom(0, "a QR code", isQR)
	rec.WaitFrom(0, "state awaiting_scan", testenv.IsState(s, schema.StateAwaitingScan))

	// 1. the page shows the code, readable from a screenshot
	err := chromedp.Do(ctx,
		chromedp.Navigate("http://"+rb.b.HTTPAddr()+"/"),
		chromedp.WaitReady(chromedp.CSS(`body[data-state="awaiting_scan"]`)),
		chromedp.WaitVisible(chromedp.ID("qr")),
		chromedp.Poll[chromedp.Void](`document.getElementById("qr").dataset.shown === document.getElementById("qr").getAttribute("src")`),
	)
	if err != nil {
		t.Fatalf("the bridge's page with a QR code: %v", err)
	}
	onPage := mustReadQR(t, "the screenshot of the page", testenv.Screenshot(t, ctx, "bridge-1-awaiting-scan"))

	// ... and it is the code the bridge published last, on the subject and in the bucket
	var published *nats.Msg
	for _, m := range rec.Msgs() {
		if isQR(m) {
			published = m
		}
	}
	qr, err := decodeQR(published)
	if err != nil {
		t.Fatalf("the QR message: %v", err)
	}
	if got := mustReadQR(t, "the published QR message", qr.PNG); got != onPage {
		t.Fatalf("the page shows %q, the bridge published %q on %s", onPage, got, s.SessionQR())
	}
	kv, err := testenv.JetStream(t, nc).KeyValue(testenv.Context(t), s.SessionBucket())
	if err != nil {
		t.Fatal(err)
	}
	ent, err := kv.Get(testenv.Context(t), schema.SessionKeyQR)
	if err != nil {
		t.Fatalf("%s %s: %v", s.SessionBucket(), schema.SessionKeyQR, err)
	}
	var kept schema.QR
	if err := cfg.Codec.Unmarshal(ent.Value(), &kept); err != nil {
		t.Fatalf("the QR kept in the bucket: %v", err)
	}
	if got := mustReadQR(t, "the QR kept in the bucket", kept.PNG); got != onPage {
		t.Fatalf("the page shows %q, the bucket keeps %q", onPage, got)
	}

	// 2. the phone scans it: the page says scanned and the code is gone
	sim.Control.Scan()
	rec.WaitFrom(0, "state scanned", testenv.IsState(s, schema.StateScanned))
	err = chromedp.Do(ctx,
		chromedp.WaitReady(chromedp.CSS(`body[data-state="scanned"]`)),
		chromedp.WaitNotVisible(chromedp.ID("qr-box")),
	)
	if err != nil {
		t.Fatalf("the page did not follow the scan: %v", err)
	}

	// 3. the phone confirms: the bridge logs in and the page turns online
	sim.Control.Confirm()
	rec.WaitFrom(0, "state online", testenv.IsState(s, schema.StateOnline))
	err = chromedp.Do(ctx,
		chromedp.WaitReady(chromedp.CSS(`body[data-state="online"]`)),
		chromedp.WaitNotVisible(chromedp.ID("qr-box")),
	)
	if err != nil {
		t.Fatalf("the page did not turn online: %v", err)
	}
	stateText, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.ID("state")))
	if err != nil {
		t.Fatal(err)
	}
	account, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.ID("account")))
	if err != nil {
		t.Fatal(err)
	}
	if stateText != string(schema.StateOnline) || account != strconv.FormatInt(testenv.Self, 10) {
		t.Fatalf("online page: state %q, account %q (want %d)", stateText, account, testenv.Self)
	}
	if text, err := testenv.ReadQR(t, testenv.Screenshot(t, ctx, "bridge-2-online")); err == nil {
		t.Fatalf("a QR code (%q) is still on the online page", text)
	}
}

// The page of a bridge run with --accounts, in a real browser: a section per
// account, each showing the QR code that account published (read from a
// screenshot of the section); scanning acct2's code turns acct2's section
// online while acct1's keeps its code; acct1 removed from the accounts file
// leaves the page, which then shows acct2 alone in the first section.
func TestBrowserBridgeManyAccounts(t *testing.T) {
	ctx := testenv.Browser(t)
	sims := []*testenv.Sim{testenv.StartSim(t, testenv.SimConfig()), testenv.StartSim(t, testenv.SimConfig())}
	file := filepath.Join(t.TempDir(), "accounts.json")
	write := func(idx ...int) {
		t.Helper()
		var entries []string
		for _, i := range idx {
			entries = append(entries, fmt.Sprintf(`{"prefix":"acct%d","qq_endpoint":%q}`, i+1, sims[i].URL))
		}
		if err := os.WriteFile(file, []byte(`{"accounts":[`+strings.Join(entries, ",")+`]}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(0, 1)
	cfg := testConfig(t, "")
	cfg.AccountsFile = file
	rb := wireBridge(t, cfg)
	nc := testenv.Connect(t, rb.b.NATSURL())
	rec := testenv.Record(t, nc, ">")
	rb.start(t)
	subj := func(i int) schema.Subjects { s, _ := schema.NewSubjects(fmt.Sprintf("acct%d", i+1)); return s }
	for i := range sims {
		rec.WaitFrom(0, fmt.Sprintf("acct%d awaiting its scan", i+1), testenv.IsState(subj(i), schema.StateAwaitingScan))
	}
	section := func(i int) string { return fmt.Sprintf(`article[data-prefix="acct%d"]`, i+1) }
	img := func(i int) string {
		return fmt.Sprintf(`document.querySelector('article[data-prefix="acct%d"] img')`, i+1)
	}

	err := chromedp.Do(ctx,
		chromedp.Navigate("http://"+rb.b.HTTPAddr()+"/"),
		chromedp.WaitReady(chromedp.CSS(section(0)+`[data-state="awaiting_scan"]`)),
		chromedp.WaitReady(chromedp.CSS(section(1)+`[data-state="awaiting_scan"]`)),
		chromedp.Poll[chromedp.Void](img(0)+`.dataset.shown === `+img(0)+`.getAttribute("src") && `+
			img(1)+`.dataset.shown === `+img(1)+`.getAttribute("src")`),
	)
	if err != nil {
		t.Fatalf("the page with two accounts awaiting a scan: %v", err)
	}
	for i := range sims {
		shot, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(section(i))))
		if err != nil {
			t.Fatal(err)
		}
		onPage := mustReadQR(t, fmt.Sprintf("the screenshot of acct%d's section", i+1), shot)
		var published *nats.Msg
		for _, m := range rec.Msgs() {
			if m.Subject == subj(i).SessionQR() {
				published = m
			}
		}
		qr, err := decodeQR(published)
		if err != nil {
			t.Fatalf("acct%d's QR message: %v", i+1, err)
		}
		if got := mustReadQR(t, "the published QR message", qr.PNG); got != onPage {
			t.Fatalf("acct%d's section shows %q, the bridge published %q", i+1, onPage, got)
		}
	}

	// acct2 scanned and confirmed: its section turns online, acct1's keeps its code.
	sims[1].Control.ScanAndConfirm()
	rec.WaitFrom(0, "acct2 online", testenv.IsState(subj(1), schema.StateOnline))
	err = chromedp.Do(ctx,
		chromedp.WaitReady(chromedp.CSS(section(1)+`[data-state="online"]`)),
		chromedp.WaitNotVisible(chromedp.CSS(section(1)+` .qr-box`)),
		chromedp.WaitVisible(chromedp.CSS(section(0)+` .qr-box`)),
	)
	if err != nil {
		t.Fatalf("acct2's section did not turn online alone: %v", err)
	}

	// acct1 removed from the file: the page shows acct2 alone.
	write(1)
	err = chromedp.Do(ctx,
		chromedp.Poll[chromedp.Void](`document.querySelectorAll("article.account").length === 1 && `+
			`document.querySelector("article.account").dataset.prefix === "acct2"`),
	)
	if err != nil {
		t.Fatalf("the page did not drop acct1: %v", err)
	}
	state, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.ID("state")))
	if err != nil {
		t.Fatal(err)
	}
	account, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.ID("account")))
	if err != nil {
		t.Fatal(err)
	}
	if state != string(schema.StateOnline) || account != strconv.FormatInt(testenv.Self, 10) {
		t.Fatalf("the page after acct1's removal: state %q, account %q", state, account)
	}
	if text, err := testenv.ReadQR(t, testenv.Screenshot(t, ctx, "bridge-many-acct2-alone")); err == nil {
		t.Fatalf("a QR code (%q) is still on the page after acct1's removal", text)
	}
}
