package ingress

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/metrics"
	"github.com/qqbridge/qqbridge/qqclient"
)

// windowItems returns n group and friend messages with msg_ids from first
// on, alternating between the two groups and a friend (three
// conversations).
func (h *harness) windowItems(first int64, n int) []string {
	st := h.sim.State()
	dev := strconv.FormatInt(st.Groups[testenv.DevChat], 10)
	hike := strconv.FormatInt(st.Groups[testenv.Hiking], 10)
	al := strconv.FormatInt(st.Friends[testenv.Alice], 10)
	bo := strconv.FormatInt(st.Friends[testenv.Bob], 10)
	items := make([]string, n)
	for k := range items {
		id := strconv.FormatInt(first+int64(k), 10)
		switch k % 3 {
		case 0:
			items[k] = `{"poll_type":"group_message","value":{"msg_id":` + id + `,"msg_id2":1,"msg_type":43,"from_uin":` + dev +
				`,"group_code":` + dev + `,"send_uin":` + al + `,"seq":1,"to_uin":931996776,"time":1450687625,"content":[["font",{"name":"x","size":10,"style":[0,0,0],"color":"000000"}],"dev ` + id + `"]}}`
		case 1:
			items[k] = `{"poll_type":"group_message","value":{"msg_id":` + id + `,"msg_id2":1,"msg_type":43,"from_uin":` + hike +
				`,"group_code":` + hike + `,"send_uin":` + bo + `,"seq":1,"to_uin":931996776,"time":1450687625,"content":[["font",{"name":"x","size":10,"style":[0,0,0],"color":"000000"}],"hike ` + id + `"]}}`
		default:
			items[k] = `{"poll_type":"message","value":{"msg_id":` + id + `,"msg_id2":1,"msg_type":9,"from_uin":` + al +
				`,"to_uin":931996776,"time":1450686775,"content":[["font",{"name":"x","size":10,"style":[0,0,0],"color":"000000"}],"dm ` + id + `"]}}`
		}
	}
	return items
}

// checkOnceInOrder checks that msg_ids first … first+n-1 are each in msgs
// exactly once, in that order overall (and so in each conversation).
func checkOnceInOrder(t *testing.T, msgs []received, first int64, n int) {
	t.Helper()
	seen := map[int64]int{}
	prev := map[string]int64{}
	var last int64
	for _, m := range msgs {
		id := m.Event.MsgID
		if id < first || id >= first+int64(n) {
			continue
		}
		seen[id]++
		if id < last {
			t.Errorf("msg_id %d after %d", id, last)
		}
		if p := prev[m.Subject]; id < p {
			t.Errorf("on %s msg_id %d after %d", m.Subject, id, p)
		}
		last, prev[m.Subject] = id, id
	}
	for k := range n {
		if c := seen[first+int64(k)]; c != 1 {
			t.Fatalf("msg_id %d in the stream %d times, want once", first+int64(k), c)
		}
	}
}

// TestWindowNATSDownMidBatch stops NATS while a large batch is being
// published through a small window, and starts it again on the same store:
// every event arrives exactly once, in order overall and per conversation.
func TestWindowNATSDownMidBatch(t *testing.T) {
	h := newHarness(t)
	ing := h.startWith(func(c *Config) { c.Window = 8 })
	testenv.Eventually(t, "the first poll", func() bool { return h.sim.State().Counters["polls_held"] > 0 })
	const first, n = 700000, 3000
	h.inject(h.windowItems(first, n)...)
	testenv.Eventually(t, "some of the batch published", func() bool { return ing.Stats().Published >= 100 })
	h.nats.Stop()
	if p := ing.Stats().Published; p >= n {
		t.Fatalf("the whole batch (%d) was published before NATS stopped: nothing tested", p)
	}
	testenv.Eventually(t, "failed publishes", func() bool { return ing.Stats().Retries >= 2 })
	h.nats.Restart()
	msgs := h.waitMsgID(first + n - 1)
	checkOnceInOrder(t, h.stream(), first, n)
	if len(msgs) != n {
		t.Errorf("the stream holds %d messages, want %d", len(msgs), n)
	}
}

// TestWindowInterleaved publishes a batch of three interleaved
// conversations through the default window, twice (the second time every
// event is a duplicate the stream recognises): each once, in order.
func TestWindowInterleaved(t *testing.T) {
	h := newHarness(t)
	m := metrics.New("qq")
	ing := h.startWith(func(c *Config) { c.Metrics = m })
	testenv.Eventually(t, "the first poll", func() bool { return h.sim.State().Counters["polls_held"] > 0 })
	const first, n = 800000, 600
	items := h.windowItems(first, n)
	h.inject(items...)
	h.waitMsgID(first + n - 1)
	h.stop()

	ing2 := h.start(nil) // a fresh recent set: the repeats go to the stream
	testenv.Eventually(t, "the new poller", func() bool { return ing2.Stats().Polls > 0 })
	h.inject(items...)
	testenv.Eventually(t, "the repeats answered", func() bool { return ing2.Stats().Duplicates+ing2.Stats().Published >= n })
	checkOnceInOrder(t, h.stream(), first, n)
	if s := ing2.Stats(); s.Duplicates != n || s.Published != 0 {
		t.Errorf("second run %+v: want %d duplicates, nothing new", s, n)
	}
	if s := ing.Stats(); s.Published != n {
		t.Errorf("first run %+v: want %d published", s, n)
	}
	if got := counter(t, m.Registry(), "qqbridge_events_published_total"); got != n {
		t.Errorf("qqbridge_events_published_total = %v, want %d", got, n)
	}
	if got := counter(t, m.Registry(), "qqbridge_polls_total"); got < 1 {
		t.Errorf("qqbridge_polls_total = %v, want at least 1", got)
	}
}

// counter sums the values of the counter family name in reg.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// TestBatchUnfinishedIsAnError: a batch that cannot be published (NATS
// down) and whose ctx ends is reported unfinished once the shutdown grace
// is over — also when the preparing of its items ran ahead of the
// publishes — and nothing of it is counted published.
func TestBatchUnfinishedIsAnError(t *testing.T) {
	h := newHarness(t)
	ing, err := New(Config{
		Client: h.c, Terms: h.sess, Dir: h.dir, JS: h.js, Subjects: h.subjects, Log: h.log,
		PublishTimeout: 100 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, ShutdownGrace: 300 * time.Millisecond,
		Window: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	var evs []qqclient.Event
	for _, it := range h.windowItems(900000, 50) {
		evs = append(evs, qqclient.DecodeEvent([]byte(it)))
	}
	s, err := h.sess.Await(h.ctx())
	if err != nil {
		t.Fatal(err)
	}
	h.nats.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = ing.publishBatch(ctx, s, evs, h.log)
	if err == nil || !strings.Contains(err.Error(), "of 50 items not published") {
		t.Fatalf("publishBatch = %v, want 50 items not published", err)
	}
	if st := ing.Stats(); st.Published != 0 || st.Retries == 0 {
		t.Errorf("stats %+v: want no publish and some retries", st)
	}
}
