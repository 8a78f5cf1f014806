package qqsim

import (
	"testing"
	"time"
)

// BenchmarkSayPoll measures the delivery path: a message said, then one poll2 over
// HTTP that takes it at once (the message is pending, so the poll is not held).
func BenchmarkSayPoll(b *testing.B) {
	cfg := testConfig()
	cfg.PollHold = time.Second
	sim, c := newSim(b, cfg)
	c.login(sim)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sim.Say(Say{Kind: "group", From: 123456, Group: 987654, Text: "bench <msg>", Faces: []int{14}}); err != nil {
			b.Fatal(err)
		}
		if rc := retcode(b, c.poll()); rc != 0 {
			b.Fatalf("poll2: retcode %d", rc)
		}
	}
}
