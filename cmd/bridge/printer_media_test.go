package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/qqbridge/qqbridge/schema"
)

// TestPrinterMedia: bridge tail shows image segments, media.* follow-ups and
// file events (schema's golden files).
func TestPrinterMedia(t *testing.T) {
	for _, tc := range []struct {
		file, subject string
		want          []string
	}{
		{"image_pending.json", "qq.in.friend.123456", []string{"message.friend from Alice (123456): look[image pending image/931996776:friend:11/1]"}},
		{"media_stored.json", "qq.in.media.123456", []string{"media.stored from Alice (123456): stored image/931996776:friend:11/1 (1234 bytes image/png)"}},
		{"media_failed.json", "qq.in.media.123456", []string{"media.failed from Alice (123456): failed image/931996776:friend:11/2: too_large"}},
		{"file_offer.json", "qq.in.file.123456", []string{`file.offer from Alice (123456): "qt.png" offered; accept with qq.api.file.accept {"offer":"4242.3785096088.cXQucG5n"} before `}},
		{"file_received.json", "qq.in.file.uin3785096088", []string{`file.received from uin3785096088: "qt.png" stored as file/931996776/4242/qt.png (11 bytes text/plain; charset=utf-8)`}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("..", "..", "schema", "testdata", "events", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			p := &printer{w: &out, subjects: schema.Subjects{}}
			p.print(&nats.Msg{Subject: tc.subject, Data: bytes.TrimSpace(data)})
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output\n%s\nlacks %q", out.String(), w)
				}
			}
		})
	}
}
