package main

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/schema"
)

// demoConfig is the configuration of `bridge demo`.
type demoConfig struct {
	Codec      schema.Codec
	NATSListen string        // the embedded nats-server's host:port
	SimListen  string        // the embedded simulator's host:port
	ScanAfter  time.Duration // how long the QR is shown before the scripted scan
	Every      time.Duration // how often a contact says something after the first round trip
	LogLevel   zerolog.Level
}

// parseDemoFlags reads the flags of `bridge demo`.
func (c *cli) parseDemoFlags(args []string) (demoConfig, error) {
	dc := demoConfig{}
	f := c.newFlagSet("demo", "bridge demo [flags]",
		"Starts everything in one process: an embedded nats-server with JetStream (store in a\n"+
			"temporary directory), an embedded SmartQQ simulator, and the bridge. It shows the QR\n"+
			"code, scans it as a phone would, then has contacts talk and a little echo consumer\n"+
			"answer through qq.out.* and the qq.api.send.* API, printing every message on qq.> as it\n"+
			"flows. The NATS and simulator URLs are printed: `bridge tail --nats …` and curl work\n"+
			"against them while it runs. Ctrl-C stops it (exit 0).")
	var format, level string
	f.fs.StringVar(&format, "format", "json", "encoding of published events: json or msgpack")
	f.fs.StringVar(&dc.NATSListen, "nats-listen", "127.0.0.1:0", "`host:port` of the embedded nats-server (port 0: any free port)")
	f.fs.StringVar(&dc.SimListen, "sim-listen", "127.0.0.1:0", "`host:port` of the embedded simulator (port 0: any free port)")
	f.fs.DurationVar(&dc.ScanAfter, "scan-after", 2*time.Second, "how long the QR code is shown before the scripted scan")
	f.fs.DurationVar(&dc.Every, "every", 5*time.Second, "how often a contact says something once the bridge is online")
	f.fs.StringVar(&level, "log-level", "warn", "log `level` of the bridge's own logs (stderr)")
	pos, err := f.parse(args)
	if err != nil {
		return dc, err
	}
	if err := f.noArgs(pos); err != nil {
		return dc, err
	}
	var ok bool
	if dc.Codec, ok = formatCodec(format); !ok {
		return dc, f.badf("format", "%q: want json or msgpack", format)
	}
	if err := f.checkHostPort("nats-listen", dc.NATSListen); err != nil {
		return dc, err
	}
	if err := f.checkHostPort("sim-listen", dc.SimListen); err != nil {
		return dc, err
	}
	if dc.ScanAfter < 0 {
		return dc, f.badf("scan-after", "must not be negative, got %v", dc.ScanAfter)
	}
	if err := f.checkPositive("every", dc.Every); err != nil {
		return dc, err
	}
	if dc.LogLevel, err = parseLogLevel(level); err != nil {
		return dc, f.badf("log-level", "%v", err)
	}
	return dc, nil
}

// runDemo is `bridge demo`.
func (c *cli) runDemo(ctx context.Context, args []string) error {
	if _, err := c.parseDemoFlags(args); err != nil {
		return err
	}
	return errors.New("demo: not wired yet")
}
