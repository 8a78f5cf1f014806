package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/schema"
)

// TestDemo runs the demo to its first round trips both ways — a group message in,
// the echo out through qq.out.group; a private message in, the echo out through the
// API — and stops it by cancelling its context.
func TestDemo(t *testing.T) {
	for _, codec := range []schema.Codec{schema.JSON(), schema.Msgpack()} {
		t.Run(formatName(codec), func(t *testing.T) {
			out := &testenv.LogBuffer{}
			logs := &testenv.LogBuffer{}
			dc := demoConfig{Codec: codec, NATSListen: "127.0.0.1:0", SimListen: "127.0.0.1:0", ScanAfter: 10 * time.Millisecond, Every: 100 * time.Millisecond, LogLevel: zerolog.WarnLevel}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- demo(ctx, dc, out, newLogger(logs, dc.LogLevel, logJSON, false)) }()

			for _, want := range []string{
				"QR code to scan", "█",
				"state scanned",
				"state online (account 931996776)",
				"message.group in group Dev chat (987654) from Alice@dev (123456): 大家好!",
				"sent group echo-931996776:group:",
				`qqsim received a group message for 987654: "echo: 大家好!`,
				"message.friend from Bob (3524125): ping",
				"the API answered qq.api.send.friend: sent friend",
				`qqsim received a friend message for 3524125: "echo: ping"`,
				"message.friend from Bob (3524125): my cat:[image pending image/931996776:friend:",
				"media.stored from Bob (3524125): stored image/931996776:friend:",
			} {
				out.WaitFor(t, want)
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("demo: %v", err)
				}
			case <-time.After(testenv.WaitTimeout):
				t.Fatal("the demo did not stop")
			}
			out.WaitFor(t, "state stopped")
			out.WaitFor(t, "demo: stopped")
			if formatName(codec) == "msgpack" {
				out.WaitFor(t, "content-type=application/msgpack")
			}
			// The bridge's own work queues are not what a user watches.
			for _, internal := range []string{" qq.journal.", " qq.media.jobs"} {
				if strings.Contains(out.String(), internal) {
					t.Errorf("the demo printed the internal subject%s", internal)
				}
			}
		})
	}
}
