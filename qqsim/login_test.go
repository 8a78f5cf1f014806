package qqsim

import (
	"bytes"
	"errors"
	"image/png"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
)

func TestHashes(t *testing.T) {
	hashes := []struct {
		uin     int64
		ptwebqq string
		want    string
	}{
		{931996776, "f7d6a4b8c2e1a9d3f5b7c0e2a4d6f8b1c3e5a7d9f0b2c4e6a8d0f1b3c5e7a9d2", "057204CE076B0023"},
		{2318067912, "abcdef0123456789", "00CF00695FA75983"},
	}
	for _, h := range hashes {
		if got := Hash(h.uin, h.ptwebqq); got != h.want {
			t.Errorf("Hash(%d, %q) = %s, want %s", h.uin, h.ptwebqq, got, h.want)
		}
	}
	tokens := []struct {
		qrsig string
		want  int64
	}{
		{"8f9a2b7c", 1711877670},
		{"2d3a3c0b1cbe9b8c1e5f7c2f4b", 1443727868},
		{"", 0},
	}
	for _, tk := range tokens {
		if got := Hash33(tk.qrsig); got != tk.want {
			t.Errorf("Hash33(%q) = %d, want %d", tk.qrsig, got, tk.want)
		}
	}
}

// decodeQR reads the text of a QR code PNG.
func decodeQR(t *testing.T, b []byte) string {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("QR code does not decode: %v", err)
	}
	return res.GetText()
}

// TestLoginStepByStep does the login as a curl user would, checking every answer.
func TestLoginStepByStep(t *testing.T) {
	sim, c := newSim(t, testConfig())
	if st := sim.State(); st.Login != "no_qr" {
		t.Fatalf("state before the QR: %s", st.Login)
	}

	// 1. ptqrshow: a decodable QR code and the qrsig cookie.
	text := decodeQR(t, c.qrShow())
	if !strings.HasPrefix(text, "https://w.qq.com/login?k=") {
		t.Errorf("QR text %q", text)
	}
	if c.qrsig() == "" {
		t.Fatal("empty qrsig")
	}

	// 2. ptqrlogin: 66, scan → 67, confirm → 0 with the check_sig URL and the nick.
	if code, _ := c.qrLogin(); code != "66" {
		t.Fatalf("before the scan: %s", code)
	}
	if err := sim.ScanQR(); err != nil {
		t.Fatal(err)
	}
	if st := sim.State(); st.Login != "qr_scanned" {
		t.Errorf("state after scan: %s", st.Login)
	}
	if code, _ := c.qrLogin(); code != "67" {
		t.Fatalf("after the scan: %s", code)
	}
	if err := sim.ConfirmQR(); err != nil {
		t.Fatal(err)
	}
	_, b := c.request(http.MethodGet, "/ptqrlogin", url.Values{"ptqrtoken": {strconv.FormatInt(Hash33(c.qrsig()), 10)}}, nil)
	m := ptuiCBRe.FindStringSubmatch(string(b))
	if m == nil || m[1] != "0" || m[3] != "登录成功！" || m[4] != "qqbridge" {
		t.Fatalf("after the confirmation: %s", b)
	}
	checkSig, err := url.Parse(m[2])
	if err != nil || checkSig.Path != "/check_sig" || "http://"+checkSig.Host != c.base || checkSig.Query().Get("uin") != "931996776" {
		t.Fatalf("check_sig URL %q does not point at the simulator", m[2])
	}

	// 3. check_sig: 302 and the five cookies.
	resp, _ := c.request(http.MethodGet, checkSig.Path, checkSig.Query(), nil)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("check_sig: HTTP %d", resp.StatusCode)
	}
	for _, name := range []string{"ptwebqq", "skey", "p_skey", "uin", "pt4_token"} {
		if c.cookie(name) == "" {
			t.Errorf("check_sig set no %s cookie", name)
		}
	}
	if got := c.cookie("uin"); got != "o0931996776" {
		t.Errorf("uin cookie %q", got)
	}
	// The check_sig URL works once.
	if resp, _ := c.request(http.MethodGet, checkSig.Path, checkSig.Query(), nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("check_sig twice: HTTP %d", resp.StatusCode)
	}
	c.ptwebqq = c.cookie("ptwebqq")

	// 4 and 5. getvfwebqq and login2.
	res := c.cookieLogin()
	if num(t, res["uin"]) != 931996776 || res["status"] != "online" || c.psessionid == "" {
		t.Fatalf("login2 result %v", res)
	}
	decoy, _ := res["vfwebqq"].(string)
	if decoy == "" || decoy == c.vfwebqq {
		t.Fatalf("login2's vfwebqq should be present and not the one to use")
	}
	if st := sim.State(); st.Login != "online" || st.UIN != 931996776 {
		t.Errorf("state after login2: %+v", st)
	}

	// 6. poll2 before get_online_buddies2 answers 103; after it the poll holds (102).
	if rc := retcode(t, c.poll()); rc != 103 {
		t.Errorf("poll before get_online_buddies2: retcode %d, want 103", rc)
	}
	q := c.sessQuery()
	q.Set("vfwebqq", decoy)
	if rc := retcode(t, c.api(http.MethodGet, "/channel/get_online_buddies2", q, nil)); rc != 100001 {
		t.Errorf("get_online_buddies2 with login2's vfwebqq: retcode %d, want 100001", rc)
	}
	ob := c.onlineBuddies()
	if retcode(t, ob) != 0 || len(arr(t, ob["result"])) != 3 { // nobody of the default world is offline
		t.Errorf("get_online_buddies2: %v", ob)
	}
	if rc := retcode(t, c.poll()); rc != 102 {
		t.Errorf("empty poll: retcode %d, want 102", rc)
	}
}

func TestQRExpiry(t *testing.T) {
	cfg := testConfig()
	cfg.QRTTL = 300 * cfg.PollHold / 200 // 300ms
	sim, c := newSim(t, cfg)
	c.qrShow()
	if code, _ := c.qrLogin(); code != "66" {
		t.Fatalf("fresh QR: %s", code)
	}
	eventually(t, "the QR code to expire", func() bool { code, _ := c.qrLogin(); return code == "65" })
	if st := sim.State(); st.Login != "qr_expired" {
		t.Errorf("state: %s", st.Login)
	}
	if err := sim.ScanQR(); !errors.Is(err, ErrQRExpired) {
		t.Errorf("ScanQR on an expired code: %v", err)
	}
	old := c.qrsig()
	c.qrShow()
	if code, _ := c.qrLogin(); code != "66" {
		t.Errorf("new QR: %s", code)
	}
	// The old code stays expired.
	q := url.Values{"ptqrtoken": {strconv.FormatInt(Hash33(old), 10)}}
	_, b := c.request(http.MethodGet, "/ptqrlogin", q, nil, setHeader("Cookie", "qrsig="+old))
	if !strings.HasPrefix(string(b), "ptuiCB('65'") {
		t.Errorf("old QR: %s", b)
	}
	// ExpireQR ends the new one at once.
	if err := sim.ExpireQR(); err != nil {
		t.Fatal(err)
	}
	if code, _ := c.qrLogin(); code != "65" {
		t.Errorf("after ExpireQR: %s", code)
	}
}

func TestQRControlErrors(t *testing.T) {
	sim, c := newSim(t, testConfig())
	for name, f := range map[string]func() error{"scan": sim.ScanQR, "confirm": sim.ConfirmQR, "expire": sim.ExpireQR} {
		if err := f(); !errors.Is(err, ErrNoQR) {
			t.Errorf("%s before any QR: %v, want ErrNoQR", name, err)
		}
	}
	c.qrShow()
	if err := sim.ScanQR(); err != nil {
		t.Fatal(err)
	}
	if err := sim.ScanQR(); !errors.Is(err, ErrQRState) {
		t.Errorf("second scan: %v, want ErrQRState", err)
	}
}
