package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/internal/testenv"
)

// testConfig is a bridge configuration for tests: embedded NATS on a random port,
// store in a temporary directory, the simulator as QQ, short durations.
func testConfig(t *testing.T, simURL string) config {
	t.Helper()
	cfg := defaultConfig()
	cfg.NATSListen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.QQEndpoint = simURL
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.QRPollInterval = 50 * time.Millisecond
	cfg.PollTimeout = 5 * time.Second
	cfg.PollMinHold = 50 * time.Millisecond // the simulator holds an empty poll 200ms
	cfg.StateDebounce = -1                  // every state published, as the tests expect
	cfg.LeaderTTL = time.Second
	cfg.Rate = 50
	cfg.Burst = 10
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.AccountsReload = 100 * time.Millisecond
	cfg.LogLevel = zerolog.DebugLevel
	cfg.LogFormat = logJSON
	return cfg
}

// runningBridge is a bridge running in the background of a test.
type runningBridge struct {
	b      *Bridge
	logs   *testenv.LogBuffer
	cancel context.CancelFunc
	done   chan error
	stop   sync.Once
	err    error
}

// wireBridge wires cfg; start runs it. A test subscribes in between, so that it
// sees every message the bridge publishes.
func wireBridge(t *testing.T, cfg config) *runningBridge {
	t.Helper()
	logs := &testenv.LogBuffer{}
	b, err := wire(context.Background(), cfg, newLogger(logs, cfg.LogLevel, logJSON, false))
	if err != nil {
		t.Fatal(err)
	}
	return &runningBridge{b: b, logs: logs, done: make(chan error, 1)}
}

// start runs the bridge until the test ends (or stopBridge).
func (rb *runningBridge) start(t *testing.T) *runningBridge {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rb.cancel = cancel
	go func() { rb.done <- rb.b.Run(ctx) }()
	t.Cleanup(func() { rb.stopBridge(t) })
	return rb
}

// startBridge wires cfg and runs it at once.
func startBridge(t *testing.T, cfg config) *runningBridge {
	t.Helper()
	return wireBridge(t, cfg).start(t)
}

// stopBridge cancels the bridge's context and returns Run's error.
func (rb *runningBridge) stopBridge(t *testing.T) error {
	t.Helper()
	rb.stop.Do(func() {
		rb.cancel()
		select {
		case rb.err = <-rb.done:
		case <-time.After(testenv.WaitTimeout):
			t.Errorf("the bridge did not stop")
		}
	})
	return rb.err
}

// getJSON fetches url and decodes its JSON body into v, returning the status.
func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("%s: %v: %s", url, err, body)
	}
	return resp.StatusCode
}
