// Command qqbench measures qqbridge's hot paths side by side with baselines
// that do the same work without the bridge: ingress against raw JetStream
// publishes of the same messages, egress against a plain loop of the same
// sends to the same simulator, two egress replicas against one. It alternates
// the bridge and its baselines in one process, all on the loopback with an
// embedded nats-server and the simulator, and prints the medians and ratios
// as a Markdown table (docs/performance.md).
//
//	go run ./cmd/qqbench [-reps 7] [-events 5000] [-requests 2000] [-in-flight 16] [-contacts 10000]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
)

func main() {
	var cfg Config
	flag.IntVar(&cfg.Reps, "reps", 7, "repetitions of each measurement (alternating; medians reported)")
	flag.IntVar(&cfg.Events, "events", 5000, "group messages in the ingress runs' poll answer")
	flag.IntVar(&cfg.Requests, "requests", 2000, "queued send requests of the egress runs")
	flag.IntVar(&cfg.Window, "window", 256, "unacknowledged publishes of the async baseline")
	flag.IntVar(&cfg.InFlight, "in-flight", 16, "egress InFlight of the in-flight rows")
	flag.IntVar(&cfg.Contacts, "contacts", 10000, "friends of the directory row")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if _, err := Run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "qqbench:", err)
		os.Exit(1)
	}
}
