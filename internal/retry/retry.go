// Package retry is the bridge's one way to wait between attempts: an endless
// exponential back-off with a bounded wait (on cenkalti/backoff/v4), and a
// sleep that ends early with its context.
package retry

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Backoff returns an exponential back-off that starts at initial, grows by
// half again at each NextBackOff (with the library's ±50% jitter) up to max,
// and never gives up (NextBackOff never returns backoff.Stop). Reset it after
// a success. initial is raised to 1ms and max to initial when smaller.
func Backoff(initial, max time.Duration) *backoff.ExponentialBackOff {
	initial = maxDur(initial, time.Millisecond)
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(initial),
		backoff.WithMaxInterval(maxDur(max, initial)),
		backoff.WithMaxElapsedTime(0),
	)
}

// Sleep waits d, or less when ctx ends first; it returns ctx's error then,
// else nil. A d of zero or less returns at once (ctx's error, if any).
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}
