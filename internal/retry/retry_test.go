package retry

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
)

func TestBackoffIsBoundedAndEndless(t *testing.T) {
	tests := []struct {
		name         string
		initial, max time.Duration
		wantMax      time.Duration
	}{
		{"normal", 10 * time.Millisecond, 80 * time.Millisecond, 80 * time.Millisecond},
		{"max below initial", 50 * time.Millisecond, time.Millisecond, 50 * time.Millisecond},
		{"zero initial", 0, 0, time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := Backoff(tt.initial, tt.max)
			var last time.Duration
			for range 200 {
				d := b.NextBackOff()
				if d == backoff.Stop {
					t.Fatal("the back-off gave up")
				}
				// the library's jitter is at most ±50% of the current interval
				if d > tt.wantMax+tt.wantMax/2 {
					t.Fatalf("wait %v above the bound %v (+50%% jitter)", d, tt.wantMax)
				}
				last = d
			}
			if last < tt.wantMax/2 {
				t.Errorf("after 200 attempts the wait is %v, want about %v", last, tt.wantMax)
			}
			b.Reset()
			if d := b.NextBackOff(); d > max(tt.initial, time.Millisecond)*3/2 {
				t.Errorf("after Reset the wait is %v, want about %v", d, tt.initial)
			}
		})
	}
}

func TestSleep(t *testing.T) {
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Errorf("Sleep: %v", err)
	}
	if err := Sleep(context.Background(), 0); err != nil {
		t.Errorf("Sleep(0): %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep with an ended context: %v, want context.Canceled", err)
	}
	if err := Sleep(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep(0) with an ended context: %v, want context.Canceled", err)
	}
}
