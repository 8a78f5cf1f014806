package main

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/qqbridge/qqbridge/acceptance"
	"github.com/qqbridge/qqbridge/internal/testenv"
)

// TestAcceptance runs the acceptance suite in in-process mode: the bridge is
// this binary's run function called in the test process (startInProcess),
// the simulator a qqsim on httptest. Process mode is in package acceptance.
func TestAcceptance(t *testing.T) {
	acceptance.Run(t, inProcess{})
}

// inProcess is the Env of in-process mode.
type inProcess struct{}

func (inProcess) StartSim(t *testing.T) string {
	t.Helper()
	return testenv.StartSim(t, testenv.SimConfig()).URL
}

func (inProcess) StartBridge(t *testing.T, args []string) acceptance.Bridge {
	t.Helper()
	return startInProcess(t, args)
}

// startInProcess runs the command line args as the binary would (the one
// call of run in this file; stdout and stderr are kept), until Stop or the
// end of the test. Stop is the end of run's context, as SIGTERM is for the
// process.
func startInProcess(t *testing.T, args []string) *inProcessBridge {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &inProcessBridge{cancel: cancel, out: &testenv.LogBuffer{}, done: make(chan struct{})}
	go func() {
		b.err = run(ctx, args, b.out, b.out)
		exitCode(b.err, b.out) // prints the error as main does
		close(b.done)
	}()
	t.Cleanup(func() { _ = b.Stop() })
	return b
}

// inProcessBridge is a bridge run by startInProcess.
type inProcessBridge struct {
	cancel context.CancelFunc
	out    *testenv.LogBuffer
	done   chan struct{}
	err    error
	once   sync.Once
}

func (b *inProcessBridge) Stop() error {
	b.once.Do(func() {
		b.cancel()
		select {
		case <-b.done:
		case <-time.After(testenv.WaitTimeout):
			b.err = errors.New("run did not return within 30s of the end of its context")
		}
	})
	return b.err
}

func (b *inProcessBridge) Logs() string { return b.out.String() }
