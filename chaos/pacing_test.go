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
// replicas with --rate 2 --burst 1: a burst of sends through the qq.out work
// queue, then a burst through qq.api.send.group (the queue group spreads the
// requests over the replicas). It prints the rate QQ saw and the most sends
// in any second, for each; it asserts only that every send arrived once.
func TestChaosPacing(t *testing.T) {
	const rate, n = 2, 12
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
			"--qq-endpoint", simURL, "--http", hp, "--rate", fmt.Sprint(rate), "--burst", "1",
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
	ctx := context.Background()
	for i := range n {
		id := fmt.Sprintf("q%d", i)
		msg := &nats.Msg{Subject: subjectOut, Data: request(id), Header: nats.Header{}}
		msg.Header.Set("Content-Type", "application/json")
		msg.Header.Set(nats.MsgIdHdr, id)
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	waitSent := func(prefix string) map[string][]time.Time {
		var got map[string][]time.Time
		waitFor(120*time.Second, func() bool {
			got = sentTimes(simURL, prefix)
			return len(got) >= n
		})
		return got
	}
	queue := waitSent("pace-q")

	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("a%d", i)
			if _, err := nc.Request("qq.api.send.group", request(id), 90*time.Second); err != nil {
				t.Errorf("API send %s: %v", id, err)
			}
		})
	}
	wg.Wait()
	apiSent := waitSent("pace-a")

	var b strings.Builder
	fmt.Fprintf(&b, "\n== pacing: one account, 3 replicas, --rate %d --burst 1, %d sends each way\n", rate, n)
	for _, c := range []struct {
		name string
		got  map[string][]time.Time
	}{{"qq.out work queue", queue}, {"qq.api.send.group", apiSent}} {
		r, most, twice := pace(c.got)
		fmt.Fprintf(&b, "%-18s delivered %d, twice %d; %.2f sends/s overall, at most %d in any second\n", c.name, len(c.got), twice, r, most)
		if len(c.got) != n || twice != 0 {
			t.Errorf("%s: %d delivered, %d twice; want %d once each", c.name, len(c.got), twice, n)
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

// pace is the overall rate of the first copies, the most in any one-second
// window, and how many were sent more than once.
func pace(got map[string][]time.Time) (float64, int, int) {
	var ts []time.Time
	twice := 0
	for _, t := range got {
		ts = append(ts, t[0])
		if len(t) > 1 {
			twice++
		}
	}
	if len(ts) < 2 {
		return 0, len(ts), twice
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	most := 0
	for i := range ts {
		k := sort.Search(len(ts), func(j int) bool { return !ts[j].Before(ts[i].Add(time.Second)) })
		most = max(most, k-i)
	}
	return float64(len(ts)-1) / ts[len(ts)-1].Sub(ts[0]).Seconds(), most, twice
}
