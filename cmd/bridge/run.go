package main

import (
	"context"
	"fmt"
)

// runBridge is `bridge run`.
func (c *cli) runBridge(ctx context.Context, args []string) error {
	cfg, err := c.parseRunFlags(args)
	if err != nil {
		return err
	}
	log := newLogger(c.stderr, cfg.LogLevel, cfg.LogFormat, c.isTerminal)
	b, err := wire(ctx, cfg, log)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while connecting
		}
		return fmt.Errorf("run: %w", err)
	}
	ev := log.Info().Str("nats", b.NATSURL())
	if cfg.AccountsFile != "" {
		ev = ev.Str("accounts", cfg.AccountsFile).Int("count", len(b.specs))
	} else {
		ev = ev.Str("prefix", cfg.Subjects.Prefix())
	}
	ev.Msg("bridge running")
	return b.Run(ctx)
}
