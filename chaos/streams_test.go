//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// streamChange is a change of one stream's cluster state: its leader and
// how each replica stands, or why the state could not be read.
type streamChange struct {
	at     time.Time
	stream string
	state  string
}

// watchStreams records, every 500 ms, the cluster state of every stream
// (the bridges' streams and buckets) at each change, for the report: which
// node leads, which replicas are current, offline or behind.
func (s *suite) watchStreams(ctx context.Context) {
	last := map[string]string{}
	for ctx.Err() == nil {
		for name, state := range s.streamStates(ctx) {
			if last[name] == state {
				continue
			}
			last[name] = state
			s.mu.Lock()
			s.streams = append(s.streams, streamChange{at: time.Now(), stream: name, state: state})
			s.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// streamStates reads the cluster state of every stream. A stream whose
// state cannot be read is "unreadable: <error>"; when the names cannot be
// listed, the result has the one entry "*".
func (s *suite) streamStates(ctx context.Context) map[string]string {
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	names := s.js.StreamNames(lctx)
	var all []string
	for n := range names.Name() {
		all = append(all, n)
	}
	if err := names.Err(); err != nil && len(all) == 0 {
		return map[string]string{"*": "names unreadable: " + err.Error()}
	}
	out := map[string]string{}
	for _, n := range all {
		if n == "PROBE" {
			continue
		}
		ictx, cancel := context.WithTimeout(ctx, time.Second)
		info, err := s.js.Stream(ictx, n)
		var si *jetstream.StreamInfo
		if err == nil {
			si, err = info.Info(ictx)
		}
		cancel()
		if err != nil {
			out[n] = "unreadable: " + err.Error()
			continue
		}
		out[n] = clusterState(si)
	}
	return out
}

// clusterState says who leads and how the other replicas stand.
func clusterState(si *jetstream.StreamInfo) string {
	c := si.Cluster
	if c == nil {
		return "no cluster info"
	}
	leader := c.Leader
	if leader == "" {
		leader = "NONE"
	}
	var peers []string
	for _, p := range c.Replicas {
		st := "current"
		switch {
		case p.Offline:
			st = "offline"
		case !p.Current:
			st = "behind"
		}
		peers = append(peers, p.Name+" "+st)
	}
	sort.Strings(peers)
	return fmt.Sprintf("leader %s; %s", leader, strings.Join(peers, ", "))
}

// writeStreams writes the stream changes for the report: every stream's
// state at the start of traffic, then each change.
func (s *suite) writeStreams(w func(string, ...any)) {
	w("")
	w("stream cluster state over time (leader; other replicas):")
	for _, c := range s.streams {
		at := c.at.Sub(s.t0).Round(100 * time.Millisecond)
		w("  +%-8s %-18s %s", at, c.stream, c.state)
	}
}
