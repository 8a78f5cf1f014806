package main

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"strings"
)

// errNotQR is returned by qrModules for an image in which no QR code was found.
var errNotQR = errors.New("no QR code in the image")

// qrModules reads the module grid of a QR code image: true is a dark module. It
// finds the top-left finder pattern (seven modules wide) to learn the module size,
// then samples the centre of every module inside the dark pixels' bounding box.
// It needs an upright, unrotated code such as ptqrshow's.
func qrModules(img image.Image) ([][]bool, error) {
	b := img.Bounds()
	dark := func(x, y int) bool {
		g := color.GrayModel.Convert(img.At(x, y)).(color.Gray)
		_, _, _, a := img.At(x, y).RGBA()
		return a > 0x7fff && g.Y < 128
	}
	minX, minY, maxX, maxY := b.Max.X, b.Max.Y, b.Min.X-1, b.Min.Y-1
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if dark(x, y) {
				minX, maxX = min(minX, x), max(maxX, x)
				minY, maxY = min(minY, y), max(maxY, y)
			}
		}
	}
	if maxX < minX {
		return nil, errNotQR
	}
	// The top-left finder starts at (minX, minY): its first row is 7 dark modules.
	run := 0
	for x := minX; x <= maxX && dark(x, minY); x++ {
		run++
	}
	module := float64(run) / 7
	if module < 1 {
		return nil, errNotQR
	}
	n := int(float64(maxX-minX+1)/module + 0.5)
	if n < 21 || n > 177 || int(float64(maxY-minY+1)/module+0.5) != n {
		return nil, errNotQR
	}
	grid := make([][]bool, n)
	for r := range grid {
		grid[r] = make([]bool, n)
		for c := range grid[r] {
			x := minX + int((float64(c)+0.5)*module)
			y := minY + int((float64(r)+0.5)*module)
			grid[r][c] = dark(x, y)
		}
	}
	return grid, nil
}

// qrQuiet is the number of light modules drawn around the code.
const qrQuiet = 2

// drawQR draws a module grid with Unicode half blocks, two module rows per text
// line. Light modules are drawn as blocks and dark ones as spaces, so that the code
// reads right on a terminal with a dark background (the usual case): a phone sees
// dark modules on a light field.
func drawQR(grid [][]bool) string {
	n := len(grid)
	size := n + 2*qrQuiet
	light := func(r, c int) bool {
		r, c = r-qrQuiet, c-qrQuiet
		if r < 0 || c < 0 || r >= n || c >= n {
			return true
		}
		return !grid[r][c]
	}
	var sb strings.Builder
	for r := 0; r < size; r += 2 {
		for c := 0; c < size; c++ {
			top := light(r, c)
			bottom := r+1 < size && light(r+1, c)
			switch {
			case top && bottom:
				sb.WriteRune('█')
			case top:
				sb.WriteRune('▀')
			case bottom:
				sb.WriteRune('▄')
			default:
				sb.WriteByte(' ')
			}
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}

// renderQR decodes a QR code PNG and draws it for a terminal.
func renderQR(pngBytes []byte) (string, error) {
	img, err := png.Decode(bytes.NewReader(pngBytes))
	if err != nil {
		return "", fmt.Errorf("QR image: %w", err)
	}
	grid, err := qrModules(img)
	if err != nil {
		return "", fmt.Errorf("QR image: %w", err)
	}
	return drawQR(grid), nil
}
