package testenv

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qqbridge/qqbridge/schema"
)

// Recorder keeps every message of a subscription, in order, for the waits
// below. Subscribe before the messages are published.
type Recorder struct {
	t    testing.TB
	subj string
	mu   sync.Mutex
	msgs []*nats.Msg
	more chan struct{} // closed and replaced at each message
}

// Record subscribes nc to subject (wildcards allowed) and records every
// message until the test ends. It flushes, so that the subscription is in
// place when it returns.
func Record(t testing.TB, nc *nats.Conn, subject string) *Recorder {
	t.Helper()
	r := &Recorder{t: t, subj: subject, more: make(chan struct{})}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		r.mu.Lock()
		r.msgs = append(r.msgs, m)
		close(r.more)
		r.more = make(chan struct{})
		r.mu.Unlock()
	})
	if err != nil {
		t.Fatalf("testenv: subscribe %s: %v", subject, err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("testenv: flush: %v", err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return r
}

// Len returns the number of messages so far.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// Msgs returns the messages so far.
func (r *Recorder) Msgs() []*nats.Msg {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*nats.Msg(nil), r.msgs...)
}

// Count returns how many messages so far match.
func (r *Recorder) Count(match func(*nats.Msg) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if match(m) {
			n++
		}
	}
	return n
}

// WaitFrom waits for the first message at index ≥ from that matches and
// returns its index and the message; what names it in the failure.
func (r *Recorder) WaitFrom(from int, what string, match func(*nats.Msg) bool) (int, *nats.Msg) {
	r.t.Helper()
	deadline := time.After(WaitTimeout)
	for {
		r.mu.Lock()
		for i := from; i < len(r.msgs); i++ {
			if match(r.msgs[i]) {
				m := r.msgs[i]
				r.mu.Unlock()
				return i, m
			}
		}
		more := r.more
		r.mu.Unlock()
		select {
		case <-more:
		case <-deadline:
			r.t.Fatalf("testenv: never saw %s on %s; saw:%s", what, r.subj, r.dump())
		}
	}
}

// Wait waits for a message that matches (from the first one recorded).
func (r *Recorder) Wait(what string, match func(*nats.Msg) bool) *nats.Msg {
	r.t.Helper()
	_, m := r.WaitFrom(0, what, match)
	return m
}

// WaitN waits until n messages (or more) match and returns the first n.
func (r *Recorder) WaitN(n int, what string, match func(*nats.Msg) bool) []*nats.Msg {
	r.t.Helper()
	var out []*nats.Msg
	from := 0
	for len(out) < n {
		i, m := r.WaitFrom(from, fmt.Sprintf("%s (%d of %d)", what, len(out)+1, n), match)
		out = append(out, m)
		from = i + 1
	}
	return out
}

func (r *Recorder) dump() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.msgs) == 0 {
		return " nothing"
	}
	var b strings.Builder
	for _, m := range r.msgs {
		data := m.Data
		if len(data) > 300 {
			data = data[:300]
		}
		fmt.Fprintf(&b, "\n  %s %s", m.Subject, data)
	}
	return b.String()
}

// Any matches every message.
func Any(*nats.Msg) bool { return true }

// IsState matches a session state message of state (schema.StateOnline, …)
// on s.SessionState(), in either codec.
func IsState(s schema.Subjects, state schema.State) func(*nats.Msg) bool {
	return func(m *nats.Msg) bool {
		st, ok := DecodeState(s, m)
		return ok && st.State == state
	}
}

// DecodeState decodes a session state message on s.SessionState().
func DecodeState(s schema.Subjects, m *nats.Msg) (schema.SessionState, bool) {
	var st schema.SessionState
	if m.Subject != s.SessionState() {
		return st, false
	}
	err := schema.Decode(schema.HeaderValue(m.Header, schema.HeaderContentType), m.Data, &st)
	return st, err == nil
}

// WaitState waits (on a Recorder of s.SessionState() or a wider subject) for
// the first state message of state at index ≥ from, and returns its index
// and the state.
func WaitState(r *Recorder, s schema.Subjects, from int, state schema.State) (int, schema.SessionState) {
	r.t.Helper()
	i, m := r.WaitFrom(from, "session state "+string(state), IsState(s, state))
	st, _ := DecodeState(s, m)
	return i, st
}

// States returns the states of the state messages recorded from index from.
func States(r *Recorder, s schema.Subjects, from int) []schema.State {
	var out []schema.State
	for i, m := range r.Msgs() {
		if i < from {
			continue
		}
		if st, ok := DecodeState(s, m); ok {
			out = append(out, st.State)
		}
	}
	return out
}

// IsEvent matches an inbound event (any codec) on subject whose text is
// text; subject "" matches any subject.
func IsEvent(subject, text string) func(*nats.Msg) bool {
	return func(m *nats.Msg) bool {
		if subject != "" && m.Subject != subject {
			return false
		}
		ev, err := schema.DecodeEvent(m.Header, m.Data)
		return err == nil && ev.Text == text
	}
}

// IsResult matches a send result (on <prefix>.result.<kind>) whose id is
// id.
func IsResult(s schema.Subjects, id string) func(*nats.Msg) bool {
	head := strings.TrimSuffix(s.ResultWildcard(), ">")
	return func(m *nats.Msg) bool {
		if !strings.HasPrefix(m.Subject, head) {
			return false
		}
		r, ok := DecodeResult(m)
		return ok && r.ID == id
	}
}

// DecodeResult decodes a send result message.
func DecodeResult(m *nats.Msg) (schema.Result, bool) {
	var r schema.Result
	err := schema.Decode(schema.HeaderValue(m.Header, schema.HeaderContentType), m.Data, &r)
	return r, err == nil
}

// Eventually polls cond every 20ms until it holds, failing the test after
// WaitTimeout with what.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("testenv: gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
