package egress

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// The retry helpers of the package; kept minimal (an exponential backoff
// bounded by Config and a sleep that ctx cuts short).

// newBackoff returns the retry backoff of Config.
func (e *Egress) newBackoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = e.cfg.RetryInitial
	b.MaxInterval = e.cfg.RetryMax
	b.MaxElapsedTime = 0
	b.Reset()
	return b
}

// sleepCtx waits d or until ctx is done (then it returns ctx's error).
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
