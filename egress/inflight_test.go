package egress

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/metrics"
	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
)

// TestInFlightOrderPerTarget sends requests to three targets, interleaved,
// on the serial subjects (<prefix>.out.<kind>) through two replicas with
// several requests in flight each, while the simulator rate-limits (so that
// requests are retried in place): every request is sent once and each
// target receives its requests in the order published (the serial consumer
// has one request out at a time, whatever InFlight). The target subjects
// are partition_test.go's.
func TestInFlightOrderPerTarget(t *testing.T) {
	m := metrics.New("qq")
	e := newEnv(t, withConfig(func(c *Config) { c.InFlight = 4; c.Metrics = m }))
	e.run(e.eg)
	e.run(e.newEgress(e.cfg))
	e.sim.SetChaos(qqsim.Chaos{RateLimitPerS: 10})
	targets := []schema.Target{{Group: testenv.DevChat}, {Group: testenv.Hiking}, {QQ: testenv.Alice}}
	kinds := []schema.Kind{schema.KindGroup, schema.KindGroup, schema.KindFriend}
	want := map[int64][]string{}
	const n = 45
	for i := range n {
		k := i % len(targets)
		text := fmt.Sprintf("message %d", i)
		e.publishJSON(kinds[k], schema.Request{To: targets[k], Text: text})
		stable := targets[k].Group + targets[k].QQ
		want[stable] = append(want[stable], text)
	}
	for range n {
		if _, res := e.result(); !res.OK {
			t.Fatalf("result %+v, want ok", res)
		}
	}
	e.noMoreResults()
	got := map[int64][]string{}
	for _, s := range e.sent() {
		got[s.Stable] = append(got[s.Stable], s.Text)
	}
	for stable, w := range want {
		if strings.Join(got[stable], "|") != strings.Join(w, "|") {
			t.Errorf("target %d received %q, want %q", stable, got[stable], w)
		}
	}
	if c := e.sim.State().Counters; c["send_qun_msg2"]+c["send_buddy_msg2"] <= n {
		t.Errorf("counters %v: the rate limit was never hit", c)
	}
	if c := sumCounter(t, m.Registry(), "qqbridge_sends_total"); c != n {
		t.Errorf("qqbridge_sends_total = %v, want %d", c, n)
	}
}

// sumCounter sums the values of the counter family name in reg.
func sumCounter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range fams {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
