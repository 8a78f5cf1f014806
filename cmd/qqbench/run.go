package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qqbridge/qqbridge/egress"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/qqsim"
)

// Config sizes a Run.
type Config struct {
	Reps     int // repetitions of each measurement, alternating (default 7)
	Events   int // poll items of the ingress runs (default 5000)
	Requests int // send requests of the egress runs (default 2000)
	Window   int // the async baseline's window (default 256)
	InFlight int // egress Config.InFlight per replica of the default rows (default egress.DefaultInFlight)
	Contacts int // friends of the directory row (default 10000)
	// SendLatency is how long the simulator holds each send's answer in the
	// egress rows "with a send latency" (default 10 ms; QQ's own sends take
	// longer), which send LatencyRequests requests (default 300).
	SendLatency     time.Duration
	LatencyRequests int
	// IngressOnly runs the ingress rows, the decode row and the latency
	// only (no egress, no directory).
	IngressOnly bool
}

func (c *Config) defaults() {
	if c.Reps <= 0 {
		c.Reps = 7
	}
	if c.Events <= 0 {
		c.Events = 5000
	}
	if c.Requests <= 0 {
		c.Requests = 2000
	}
	if c.Window <= 0 {
		c.Window = 256
	}
	if c.InFlight <= 0 {
		c.InFlight = egress.DefaultInFlight
	}
	if c.Contacts <= 0 {
		c.Contacts = 10000
	}
	if c.SendLatency <= 0 {
		c.SendLatency = 10 * time.Millisecond
	}
	if c.LatencyRequests <= 0 {
		c.LatencyRequests = 300
	}
}

// Row is one line of the report: a measurement of the bridge and its
// baseline, both medians, and their ratio (bridge / baseline, in throughput:
// above 1 the bridge is faster).
type Row struct {
	Path     string
	Unit     string
	Bridge   float64
	Baseline string
	Base     float64
	Ratio    float64
}

// Run runs every measurement cfg.Reps times, the bridge and its baselines
// alternating within each repetition, and writes the table to w.
func Run(ctx context.Context, cfg Config, w io.Writer) ([]Row, error) {
	cfg.defaults()
	e, err := NewEnv(ctx)
	if err != nil {
		return nil, err
	}
	defer e.Close()

	// Ingress: the bridge first, once, for the messages the baselines publish.
	if _, err := e.IngressBridge(ctx, cfg.Events); err != nil {
		return nil, err
	}
	msgs, err := e.Published(ctx)
	if err != nil {
		return nil, err
	}
	rate := func(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }
	var inBridge, inArrived, inAsync, inSync, outBase, outN, outN2, out1, out12, outSerial []float64
	var latBase, latN, latN2 []float64
	inFlight := func(n int) func(*egress.Config) { return func(c *egress.Config) { c.InFlight = n } }
	// The egress runs of each repetition, in order, and where their rates go.
	egressRuns := []struct {
		o   EgressOptions
		out *[]float64
	}{
		{EgressOptions{Replicas: 1, Configure: inFlight(cfg.InFlight)}, &outN},
		{EgressOptions{Replicas: 2, Configure: inFlight(cfg.InFlight)}, &outN2},
		{EgressOptions{Replicas: 1, Configure: inFlight(1)}, &out1},
		{EgressOptions{Replicas: 2, Configure: inFlight(1)}, &out12},
		{EgressOptions{Replicas: 1, Serial: true, Configure: inFlight(cfg.InFlight)}, &outSerial},
	}
	for rep := range cfg.Reps {
		d, err := e.IngressBridge(ctx, cfg.Events)
		if err != nil {
			return nil, err
		}
		inBridge = append(inBridge, rate(cfg.Events, d))
		inArrived = append(inArrived, rate(cfg.Events, d-e.LastAnswered))
		if d, err = e.IngressAsync(ctx, msgs, cfg.Window); err != nil {
			return nil, err
		}
		inAsync = append(inAsync, rate(len(msgs), d))
		if d, err = e.IngressSync(ctx, msgs); err != nil {
			return nil, err
		}
		inSync = append(inSync, rate(len(msgs), d))
		if cfg.IngressOnly {
			fmt.Fprintf(os.Stderr, "rep %d/%d done\n", rep+1, cfg.Reps)
			continue
		}
		if d, err = e.EgressBaseline(ctx, cfg.Requests); err != nil {
			return nil, err
		}
		outBase = append(outBase, rate(cfg.Requests, d))
		for _, r := range egressRuns {
			if d, err = e.EgressBridge(ctx, cfg.Requests, r.o); err != nil {
				return nil, err
			}
			*r.out = append(*r.out, rate(cfg.Requests, d))
		}
		// The same with a send latency: where the sends, not the CPU, bound
		// the run.
		e.Sim.SetChaos(qqsim.Chaos{SendLatencyMS: int(cfg.SendLatency / time.Millisecond)})
		if d, err = e.EgressBaseline(ctx, cfg.LatencyRequests); err != nil {
			return nil, err
		}
		latBase = append(latBase, rate(cfg.LatencyRequests, d))
		for _, r := range []struct {
			replicas int
			out      *[]float64
		}{{1, &latN}, {2, &latN2}} {
			if d, err = e.EgressBridge(ctx, cfg.LatencyRequests, EgressOptions{Replicas: r.replicas, Configure: inFlight(cfg.InFlight)}); err != nil {
				return nil, err
			}
			*r.out = append(*r.out, rate(cfg.LatencyRequests, d))
		}
		e.Sim.SetChaos(qqsim.Chaos{})
		fmt.Fprintf(os.Stderr, "rep %d/%d done\n", rep+1, cfg.Reps)
	}
	ib, iarr, ia, is := median(inBridge), median(inArrived), median(inAsync), median(inSync)
	obase, on, on2, o1, o12, oser := median(outBase), median(outN), median(outN2), median(out1), median(out12), median(outSerial)
	lbase, ln, ln2 := median(latBase), median(latN), median(latN2)
	lat, err := e.IngressLatency(ctx, 1000, 5*time.Second)
	if err != nil {
		return nil, err
	}
	var big, small Online
	if !cfg.IngressOnly {
		if big, err = StartOnline(ctx, cfg.Contacts); err != nil {
			return nil, err
		}
		if small, err = StartOnline(ctx, 10); err != nil {
			return nil, err
		}
	}
	rows := []Row{
		{Path: fmt.Sprintf("ingress, a poll answer of %d group messages → acked in QQ_IN", cfg.Events), Unit: "ev/s",
			Bridge: ib, Baseline: fmt.Sprintf("raw PublishMsgAsync, window %d, same messages and Nats-Msg-Id", cfg.Window), Base: ia, Ratio: ib / ia},
		{Path: "same", Unit: "ev/s", Bridge: ib, Baseline: "raw sync PublishMsg one by one", Base: is, Ratio: ib / is},
		{Path: "same, timed from the poll answer's arrival (without the simulator's 20 ms settling wait and its encoding)", Unit: "ev/s",
			Bridge: iarr, Baseline: fmt.Sprintf("raw PublishMsgAsync, window %d", cfg.Window), Base: ia, Ratio: iarr / ia},
		{Path: fmt.Sprintf("egress, %d queued requests on qq.out.group.<number> (%d groups) → answered (pacing off), InFlight %d", cfg.Requests, Targets, cfg.InFlight), Unit: "req/s",
			Bridge: on, Baseline: "a plain loop of SendPart (send_qun_msg2) to the same qqsim", Base: obase, Ratio: on / obase},
		{Path: fmt.Sprintf("egress, InFlight %d, 2 replicas", cfg.InFlight), Unit: "req/s", Bridge: on2, Baseline: "1 replica", Base: on, Ratio: on2 / on},
		{Path: "egress, InFlight 1", Unit: "req/s", Bridge: o1, Baseline: "the plain SendPart loop", Base: obase, Ratio: o1 / obase},
		{Path: "egress, InFlight 1, 2 replicas", Unit: "req/s", Bridge: o12, Baseline: "1 replica", Base: o1, Ratio: o12 / o1},
		{Path: "egress, the same requests on the serial subject qq.out.group", Unit: "req/s",
			Bridge: oser, Baseline: "the plain SendPart loop", Base: obase, Ratio: oser / obase},
		{Path: fmt.Sprintf("egress, %d requests, qqsim answering each send after %v, InFlight %d", cfg.LatencyRequests, cfg.SendLatency, cfg.InFlight), Unit: "req/s",
			Bridge: ln, Baseline: "the plain SendPart loop, same latency", Base: lbase, Ratio: ln / lbase},
		{Path: fmt.Sprintf("same, InFlight %d, 2 replicas", cfg.InFlight), Unit: "req/s", Bridge: ln2, Baseline: "1 replica", Base: ln, Ratio: ln2 / ln},
	}
	if cfg.IngressOnly {
		rows = rows[:3]
	}
	rows = append(rows, micro()...)
	writeTable(w, cfg, rows)
	fmt.Fprintf(w, "\ningress added latency at 1,000 events/s (poll answer decoded → core NATS subscriber), %d events: p50 %v, p99 %v\n",
		lat.Events, lat.P50.Round(10*time.Microsecond), lat.P99.Round(10*time.Microsecond))
	if !cfg.IngressOnly {
		fmt.Fprintf(w, "start → online (session Manager, QR scanned at once) with %d friends: %v (10 friends: %v); the directory, loaded in the background, held them all after %v (10: %v)\n",
			cfg.Contacts, big.Online.Round(time.Millisecond), small.Online.Round(time.Millisecond),
			big.Lists.Round(time.Millisecond), small.Lists.Round(time.Millisecond))
	}
	fmt.Fprintf(w, "\npeak RSS of this process (bridge parts, embedded NATS, qqsim): %s\n", peakRSS())
	return rows, nil
}

// micro measures the per-item decode against a typed unmarshal.
func micro() []Row {
	item := []byte(`{"poll_type":"group_message","value":{"msg_id":50873,"msg_id2":1,"msg_type":43,"from_uin":2890,` +
		`"group_code":2890,"send_uin":4711,"seq":51,"to_uin":931996776,"time":1450687625,"content":[["font",` +
		`{"name":"微软雅黑","size":10,"style":[0,0,0],"color":"000000"}],"好啊 ",["face",14]]}}`)
	type typed struct {
		PollType string `json:"poll_type"`
		Value    struct {
			MsgID     int64             `json:"msg_id"`
			MsgID2    int64             `json:"msg_id2"`
			MsgType   int               `json:"msg_type"`
			FromUIN   int64             `json:"from_uin"`
			GroupCode int64             `json:"group_code"`
			SendUIN   int64             `json:"send_uin"`
			Seq       int64             `json:"seq"`
			ToUIN     int64             `json:"to_uin"`
			Time      int64             `json:"time"`
			Content   []json.RawMessage `json:"content"`
		} `json:"value"`
	}
	dec := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if ev := qqclient.DecodeEvent(item); ev.Err != nil {
				b.Fatal(ev.Err)
			}
		}
	})
	base := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var t typed
			if err := json.Unmarshal(item, &t); err != nil {
				b.Fatal(err)
			}
		}
	})
	ns := func(r testing.BenchmarkResult) float64 { return float64(r.NsPerOp()) / 1000 }
	return []Row{{
		Path: fmt.Sprintf("qqclient poll decode per item (%d allocs)", dec.AllocsPerOp()), Unit: "µs",
		Bridge: ns(dec), Baseline: fmt.Sprintf("one typed json.Unmarshal of the same item (%d allocs)", base.AllocsPerOp()),
		Base: ns(base), Ratio: ns(base) / ns(dec),
	}}
}

func writeTable(w io.Writer, cfg Config, rows []Row) {
	fmt.Fprintf(w, "medians of %d alternating repetitions; ratio = bridge / baseline in throughput (1 = as fast)\n\n", cfg.Reps)
	fmt.Fprintln(w, "| path | bridge | baseline | ratio |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s %s | %s: %s %s | %.2f |\n", r.Path, num(r.Bridge), r.Unit, r.Baseline, num(r.Base), r.Unit, r.Ratio)
	}
}

func num(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.1fk", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// peakRSS is VmHWM of /proc/self/status, or "unknown".
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
