package main

import (
	"context"
	"errors"
)

// runBridge is `bridge run`; it is wired once the bridge packages land.
func (c *cli) runBridge(ctx context.Context, args []string) error {
	if _, err := c.parseRunFlags(args); err != nil {
		return err
	}
	return errors.New("run: not wired yet")
}

// runDemo is `bridge demo`; it is wired once the bridge packages land.
func (c *cli) runDemo(ctx context.Context, args []string) error {
	if _, err := c.parseDemoFlags(args); err != nil {
		return err
	}
	return errors.New("demo: not wired yet")
}
