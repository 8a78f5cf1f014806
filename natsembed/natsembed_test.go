package natsembed_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/natsembed"
)

func TestStart(t *testing.T) {
	srv, err := natsembed.Start(natsembed.Options{DataDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if u := srv.ClientURL(); !strings.HasPrefix(u, "nats://127.0.0.1:") || strings.HasSuffix(u, ":4222") {
		t.Errorf("ClientURL = %q, want a random port on 127.0.0.1", u)
	}
	if !srv.JetStreamEnabled() {
		t.Error("JetStream is not enabled")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Errorf("AccountInfo: %v", err)
	}
}

func TestStartRejects(t *testing.T) {
	cases := []struct {
		name string
		opts natsembed.Options
	}{
		{"no data dir", natsembed.Options{Port: -1}},
		{"bad port", natsembed.Options{DataDir: t.TempDir(), Port: -5}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, err := natsembed.Start(c.opts)
			if err == nil {
				srv.Shutdown()
				t.Fatal("Start succeeded")
			}
		})
	}
}

func ExampleStart() {
	dir, err := os.MkdirTemp("", "qqbridge-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	srv, err := natsembed.Start(natsembed.Options{DataDir: dir, Port: -1})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	fmt.Println(srv.JetStreamEnabled())
	// Output: true
}
