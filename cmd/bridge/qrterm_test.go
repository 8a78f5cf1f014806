package main

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/qqsim"
)

// simQR fetches a real QR code PNG from a simulator, as the bridge does.
func simQR(t *testing.T) []byte {
	t.Helper()
	sim, err := qqsim.New(qqsim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	c, err := qqclient.New(qqclient.WithBaseURL(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	qr, err := c.FetchQR(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return qr.PNG
}

// decodeQRImage reads the text of a QR code image.
func decodeQRImage(t *testing.T, img image.Image) string {
	t.Helper()
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

// rasterize turns drawn half-block text back into an image as a phone camera would
// see it: block = light, space = dark, each character one module wide and two tall,
// scaled up.
func rasterize(t *testing.T, drawn string) image.Image {
	t.Helper()
	lines := strings.Split(strings.TrimRight(drawn, "\n"), "\n")
	const scale = 6
	width := len([]rune(lines[0]))
	img := image.NewGray(image.Rect(0, 0, width*scale, 2*len(lines)*scale))
	for r, line := range lines {
		runes := []rune(line)
		if len(runes) != width {
			t.Fatalf("line %d is %d wide, line 0 is %d", r, len(runes), width)
		}
		for c, ch := range runes {
			var top, bottom bool
			switch ch {
			case '█':
				top, bottom = true, true
			case '▀':
				top = true
			case '▄':
				bottom = true
			case ' ':
			default:
				t.Fatalf("unexpected character %q", ch)
			}
			for dy := range 2 * scale {
				light := top
				if dy >= scale {
					light = bottom
				}
				v := uint8(0)
				if light {
					v = 255
				}
				for dx := range scale {
					img.SetGray(c*scale+dx, (2*r)*scale+dy, color.Gray{Y: v})
				}
			}
		}
	}
	return img
}

func TestRenderQRScans(t *testing.T) {
	pngBytes := simQR(t)
	img, err := png.Decode(bytes.NewReader(pngBytes))
	if err != nil {
		t.Fatal(err)
	}
	want := decodeQRImage(t, img)
	if !strings.HasPrefix(want, "https://") {
		t.Fatalf("the simulator's QR says %q", want)
	}

	grid, err := qrModules(img)
	if err != nil {
		t.Fatal(err)
	}
	n := len(grid)
	if (n-21)%4 != 0 {
		t.Fatalf("grid of %d modules is not a QR version size", n)
	}
	// The three finder patterns: a dark 7×7 ring around a light ring around a dark 3×3.
	for _, corner := range [][2]int{{0, 0}, {0, n - 7}, {n - 7, 0}} {
		for r := range 7 {
			for c := range 7 {
				ring := min(r, c, 6-r, 6-c)
				if want := ring != 1; grid[corner[0]+r][corner[1]+c] != want {
					t.Fatalf("finder at %v: module (%d,%d) dark=%v", corner, r, c, !want)
				}
			}
		}
	}

	drawn, err := renderQR(pngBytes)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(drawn, "\n"), "\n")
	if size := n + 2*qrQuiet; len(lines) != (size+1)/2 {
		t.Errorf("%d lines for %d module rows", len(lines), size)
	}
	if got := decodeQRImage(t, rasterize(t, drawn)); got != want {
		t.Errorf("the drawn QR scans as %q, want %q", got, want)
	}
}

func TestRenderQRRejects(t *testing.T) {
	blank := image.NewGray(image.Rect(0, 0, 50, 50))
	for i := range blank.Pix {
		blank.Pix[i] = 255
	}
	var blankPNG bytes.Buffer
	if err := png.Encode(&blankPNG, blank); err != nil {
		t.Fatal(err)
	}
	dot := image.NewGray(image.Rect(0, 0, 50, 50))
	for i := range dot.Pix {
		dot.Pix[i] = 255
	}
	dot.SetGray(10, 10, color.Gray{})
	var dotPNG bytes.Buffer
	if err := png.Encode(&dotPNG, dot); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"not a PNG":   []byte("GIF89a"),
		"empty":       nil,
		"blank image": blankPNG.Bytes(),
		"one dot":     dotPNG.Bytes(),
	} {
		if _, err := renderQR(data); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
