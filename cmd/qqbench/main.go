// Command qqbench measures qqbridge's hot paths side by side with baselines
// that do the same work without the bridge: ingress against raw JetStream
// publishes of the same messages, egress against a plain loop of the same
// sends to the same simulator, two egress replicas against one. It alternates
// the bridge and its baselines in one process, all on the loopback with an
// embedded nats-server and the simulator, and prints the medians and ratios
// as a Markdown table (docs/performance.md).
//
//	go run ./cmd/qqbench [-reps 7] [-events 5000] [-requests 2000] [-in-flight 4] [-contacts 10000]
//
// With -rss it runs `bridge run` instead, as a process of its own with its
// embedded nats-server, feeds it group messages through the simulator and
// reports its peak resident set (rss.go):
//
//	go run ./cmd/qqbench -rss [-rss-rate 5000] [-rss-for 30s] [-bridge /tmp/bridge] [-bridge-env GOMEMLIMIT=48MiB,GODEBUG=gctrace=1]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/qqbridge/qqbridge/egress"
)

func main() {
	var cfg Config
	var rss RSSConfig
	var rssMode, bridgeLogs bool
	var bridgeEnv string
	flag.IntVar(&cfg.Reps, "reps", 7, "repetitions of each measurement (alternating; medians reported)")
	flag.IntVar(&cfg.Events, "events", 5000, "group messages in the ingress runs' poll answer")
	flag.IntVar(&cfg.Requests, "requests", 2000, "queued send requests of the egress runs")
	flag.IntVar(&cfg.Window, "window", 256, "unacknowledged publishes of the async baseline")
	flag.IntVar(&cfg.InFlight, "in-flight", egress.DefaultInFlight, "egress InFlight per replica of the default egress rows (the others use 1)")
	flag.IntVar(&cfg.Contacts, "contacts", 10000, "friends of the directory row")
	flag.BoolVar(&cfg.IngressOnly, "ingress-only", false, "run the ingress rows, the decode row and the latency only")
	flag.BoolVar(&rssMode, "rss", false, "run `bridge run` as a process with its embedded NATS under a steady load and report its peak RSS (nothing else)")
	flag.IntVar(&rss.Rate, "rss-rate", 5000, "group messages a second of the -rss run")
	flag.DurationVar(&rss.Duration, "rss-for", 30e9, "how long the -rss run feeds messages")
	flag.StringVar(&rss.Bridge, "bridge", "", "the bridge binary of the -rss run; empty: go build ./cmd/bridge into a temporary directory")
	flag.StringVar(&bridgeEnv, "bridge-env", "", "more environment of the -rss bridge, comma-separated (GOMEMLIMIT=48MiB,GOGC=50,GODEBUG=gctrace=1)")
	flag.BoolVar(&bridgeLogs, "bridge-logs", false, "copy the -rss bridge's output to stderr")
	flag.BoolVar(&rss.ExternalNATS, "rss-external-nats", false, "the -rss bridge uses a nats-server in this process (--nats) instead of its embedded one")
	flag.StringVar(&rss.Heap, "rss-heap", "", "write the -rss bridge's heap profile (taken once every message is stored) to this file")
	flag.DurationVar(&rss.Duplicates, "rss-duplicates", 0, "an experiment: set the inbound stream's de-duplication window of the -rss run (0: the bridge's)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if rssMode {
		if bridgeEnv != "" {
			rss.Env = strings.Split(bridgeEnv, ",")
		}
		if bridgeLogs {
			rss.Log = os.Stderr
		}
		r, err := RunRSS(ctx, rss)
		if err != nil {
			fmt.Fprintln(os.Stderr, "qqbench:", err)
			os.Exit(1)
		}
		WriteRSS(os.Stdout, rss, r)
		return
	}
	if _, err := Run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "qqbench:", err)
		os.Exit(1)
	}
}
