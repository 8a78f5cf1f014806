// Command replier is an example consumer of qqbridge, written only against
// the schema package and nats.go: it answers every QQ message with "收到" and
// the message's text.
//
// Run as many instances as you like (replicas of a Kubernetes Deployment):
// they share one durable JetStream consumer (--durable), so the server hands
// each event to one instance, and an event an instance took but did not
// acknowledge (it died) goes to another after --ack-wait. Each reply's id,
// and so its Nats-Msg-Id, is derived from the event's: a redelivered event
// gives the same reply, which the stream drops, and QQ gets it once.
//
//	go run ./examples/replier --nats nats://127.0.0.1:4222
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/schema"
)

func main() {
	url := flag.String("nats", nats.DefaultURL, "NATS server URLs, comma-separated")
	prefix := flag.String("prefix", schema.DefaultPrefix, "the bridge's subject prefix")
	durable := flag.String("durable", "replier", "name of the durable consumer every instance shares")
	ackWait := flag.Duration("ack-wait", 30*time.Second, "how long an event may stay unacknowledged before another instance gets it")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := start(*url, *prefix, *durable, *ackWait, log); err != nil {
		fmt.Fprintln(os.Stderr, "replier:", err)
		os.Exit(1)
	}
}

func start(url, prefix, durable string, ackWait time.Duration, log *slog.Logger) error {
	s, err := schema.NewSubjects(prefix)
	if err != nil {
		return fmt.Errorf("--prefix: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	nc, err := nats.Connect(url, nats.Name("replier"), nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	defer nc.Drain()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	log.Info("answering messages", "stream", s.StreamIn(), "durable", durable)
	return run(ctx, js, config{Subjects: s, Durable: durable, AckWait: ackWait, Log: log})
}
