package testenv

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// LogBuffer collects what a component or process writes (a log sink, a
// child's stdout and stderr); it is safe for concurrent writes and reads.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// WaitFor waits until the buffer contains s, failing the test with what it
// holds after WaitTimeout.
func (l *LogBuffer) WaitFor(t testing.TB, s string) {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for !strings.Contains(l.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("testenv: the output never contained %q:\n%s", s, l.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
