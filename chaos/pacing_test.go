//go:build chaos

package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestChaosPacing measures the pace of one account's sends across 3
// replicas with --rate 2 --burst 1: sends through the qq.out work queue
// (serial and target subjects) and through qq.api.send.group (the queue
// group spreads the requests over the replicas), all at once. It prints the
// rate QQ saw and the most sends in any second and any 10 s, for each path
// and both together, and fails when a send did not arrive exactly once or a
// window held more than the token bucket lets through (rate × window +
// burst).
func TestChaosPacing(t *testing.T) {
	const rate, burst, n = 2, 1, 16
	dir := t.TempDir()
	bridgeBin, simBin := buildBinaries(t, dir)
	cl := startCluster(t, 3)
	nc, err := nats.Connect(cl.urls(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	simPort := freePort(t)
	simURL := fmt.Sprintf("http://127.0.0.1:%d", simPort)
	sim := newProc(t, dir, "qqsim", simBin, "--listen", fmt.Sprintf("127.0.0.1:%d", simPort), "--rate-limit", "-1", "--echo=false")
	if err := sim.start(); err != nil {
		t.Fatal(err)
	}
	var health []string
	for i := range 3 {
		hp := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		health = append(health, "http://"+hp)
		p := newProc(t, dir, fmt.Sprintf("bridge%d", i+1), bridgeBin, "run", "--nats", cl.urls(), "--replicas", "3",
			"--qq-endpoint", simURL, "--http", hp, "--rate", fmt.Sprint(rate), "--burst", fmt.Sprint(burst),
			"--qr-poll-interval", "200ms", "--poll-timeout", "30s", "--log-format", "json")
		if err := p.start(); err != nil {
			t.Fatal(err)
		}
		if i == 0 && !waitFor(60*time.Second, func() bool { var st any; return getJSON(health[0]+"/healthz", &st) == 200 }) {
			t.Fatalf("bridge1 not healthy:\n%s", p.tail(2000))
		}
	}
	if !waitFor(60*time.Second, func() bool {
		var st struct{ Login string }
		return getJSON(simURL+"/_sim/state", &st) == 200 && st.Login == "qr_waiting"
	}) {
		t.Fatal("no QR code")
	}
	if err := postJSON(context.Background(), simURL+"/_sim/qr/confirm", struct{}{}, nil); err != nil {
		t.Fatal(err)
	}
	if !waitFor(60*time.Second, func() bool {
		for _, h := range health {
			var st struct {
				State string `json:"state"`
			}
			if getJSON(h+"/readyz", &st) != 200 || st.State != "online" {
				return false
			}
		}
		return true
	}) {
		t.Fatal("not all replicas online")
	}

	request := func(id string) []byte {
		b, _ := json.Marshal(map[string]any{"id": id, "to": map[string]any{"group": groupNo}, "text": "pace-" + id})
		return b
	}
	// Both paths at once: the durable requests (every other on the target
	// subject, worked by the partitions) and the API's, which the queue
	// group spreads over the replicas.
	ctx := context.Background()
	for i := range n {
		id := fmt.Sprintf("q%d", i)
		subject := subjectOut
		if i%2 == 1 {
			subject = subjectOutTo
		}
		msg := &nats.Msg{Subject: subject, Data: request(id), Header: nats.Header{}}
		msg.Header.Set("Content-Type", "application/json")
		msg.Header.Set(nats.MsgIdHdr, id)
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("a%d", i)
			if _, err := nc.Request("qq.api.send.group", request(id), 3*time.Minute); err != nil {
				t.Errorf("API send %s: %v", id, err)
			}
		})
	}
	wg.Wait()
	var all map[string][]time.Time
	waitFor(3*time.Minute, func() bool {
		all = sentTimes(simURL, "pace-")
		return len(all) >= 2*n
	})
	queue, apiSent := map[string][]time.Time{}, map[string][]time.Time{}
	for text, ts := range all {
		if strings.HasPrefix(text, "pace-q") {
			queue[text] = ts
		} else {
			apiSent[text] = ts
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\n== pacing: one account, 3 replicas, --rate %d --burst %d, %d sends each way at once\n", rate, burst, n)
	for _, c := range []struct {
		name string
		got  map[string][]time.Time
		want int
	}{{"qq.out work queue", queue, n}, {"qq.api.send.group", apiSent, n}, {"both", all, 2 * n}} {
		r, twice := pace(c.got)
		in1, in10 := most(c.got, time.Second), most(c.got, 10*time.Second)
		fmt.Fprintf(&b, "%-18s delivered %d, twice %d; %.2f sends/s overall, at most %d in any second (rate+burst %d), %d in any 10 s (rate×10+burst %d)\n",
			c.name, len(c.got), twice, r, in1, rate+burst, in10, rate*10+burst)
		if len(c.got) != c.want || twice != 0 {
			t.Errorf("%s: %d delivered, %d twice; want %d once each", c.name, len(c.got), twice, c.want)
		}
		// The account's pace, whatever path the sends took: a token bucket
		// lets at most rate×w+burst through in any window of w.
		if in1 > rate+burst || in10 > rate*10+burst {
			t.Errorf("%s: %d sends in one second, %d in 10 s; the pace allows %d and %d", c.name, in1, in10, rate+burst, rate*10+burst)
		}
	}
	t.Log(b.String())
}

// sentTimes reads qqsim's sent list: text → when each copy was sent.
func sentTimes(simURL, prefix string) map[string][]time.Time {
	var sent []struct {
		Text string    `json:"text"`
		Time time.Time `json:"time"`
	}
	getJSON(simURL+"/_sim/sent", &sent)
	out := map[string][]time.Time{}
	for _, r := range sent {
		if strings.HasPrefix(r.Text, prefix) {
			out[r.Text] = append(out[r.Text], r.Time)
		}
	}
	return out
}

// pace is the overall rate of the first copies and how many were sent more
// than once.
func pace(got map[string][]time.Time) (float64, int) {
	ts, twice := firsts(got)
	if len(ts) < 2 {
		return 0, twice
	}
	return float64(len(ts)-1) / ts[len(ts)-1].Sub(ts[0]).Seconds(), twice
}

// most is the most first copies in any window of w.
func most(got map[string][]time.Time, w time.Duration) int {
	ts, _ := firsts(got)
	k := 0
	for i := range ts {
		j := sort.Search(len(ts), func(j int) bool { return !ts[j].Before(ts[i].Add(w)) })
		k = max(k, j-i)
	}
	return k
}

// firsts returns the first copy's time of each send, in order, and how many
// were sent more than once.
func firsts(got map[string][]time.Time) ([]time.Time, int) {
	var ts []time.Time
	twice := 0
	for _, t := range got {
		ts = append(ts, t[0])
		if len(t) > 1 {
			twice++
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	return ts, twice
}
