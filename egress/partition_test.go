package egress

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
)

// countingSender is the real client, counting the parts a replica sends
// and how many it had in flight at most.
type countingSender struct {
	Sender

	mu        sync.Mutex
	sent, cur int
	most      int
}

func (c *countingSender) SendPart(ctx context.Context, t qqclient.Target, segs []qqclient.Segment) error {
	c.mu.Lock()
	c.cur++
	c.most = max(c.most, c.cur)
	c.mu.Unlock()
	err := c.Sender.SendPart(ctx, t, segs)
	c.mu.Lock()
	c.cur--
	c.sent++
	c.mu.Unlock()
	return err
}

func (c *countingSender) counts() (sent, most int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent, c.most
}

// replica starts another Egress on the env's connection with its own
// counting sender and InFlight.
func (e *env) replica(inFlight int) *countingSender {
	e.t.Helper()
	cfg := e.cfg
	c := &countingSender{Sender: e.cfg.Client}
	cfg.Client, cfg.InFlight = c, inFlight
	e.run(e.newEgress(cfg))
	return c
}

// publishTo publishes req for kind on its target subject (OutTo).
func (e *env) publishTo(kind schema.Kind, req schema.Request, msgID string) uint64 {
	e.t.Helper()
	subj, err := e.subj.OutTo(kind, req.To)
	if err != nil {
		e.t.Fatalf("OutTo(%s, %+v): %v", kind, req.To, err)
	}
	return e.publish(subj, mustJSON(e.t, req), "", msgID)
}

type target struct {
	kind schema.Kind
	to   schema.Target
}

// targets are many different targets of the simulator's world: by stable
// number and by session number, which are different targets (and keys).
func (e *env) targets() []target {
	st := e.sim.State()
	return []target{
		{schema.KindFriend, schema.Target{QQ: testenv.Alice}},
		{schema.KindFriend, schema.Target{QQ: testenv.Bob}},
		{schema.KindFriend, schema.Target{QQ: testenv.Hey}},
		{schema.KindFriend, schema.Target{UIN: st.Friends[testenv.Alice]}},
		{schema.KindFriend, schema.Target{UIN: st.Friends[testenv.Bob]}},
		{schema.KindFriend, schema.Target{UIN: st.Friends[testenv.Hey]}},
		{schema.KindGroup, schema.Target{Group: testenv.DevChat}},
		{schema.KindGroup, schema.Target{Group: testenv.Hiking}},
		{schema.KindGroup, schema.Target{GID: st.Groups[testenv.DevChat]}},
		{schema.KindGroup, schema.Target{GID: st.Groups[testenv.Hiking]}},
		{schema.KindDiscuss, schema.Target{DID: st.Discussions[testenv.Lunch]}},
		{schema.KindSess, schema.Target{QQ: testenv.Carol, Group: testenv.DevChat}},
		{schema.KindSess, schema.Target{QQ: testenv.Dave, Group: testenv.Hiking}},
		{schema.KindSess, schema.Target{QQ: testenv.Carol, GID: st.Groups[testenv.DevChat]}},
	}
}

// checkOrder checks that every target received its messages ("t<j> m<i>")
// once each, in the order i.
func checkOrder(t *testing.T, sent []qqsim.SentRecord, targets, perTarget int) {
	t.Helper()
	got := map[string][]int{}
	for _, s := range sent {
		label, num, ok := strings.Cut(s.Text, " m")
		i, err := strconv.Atoi(num)
		if !ok || err != nil {
			t.Fatalf("unexpected message %q", s.Text)
		}
		got[label] = append(got[label], i)
	}
	for j := range targets {
		label := fmt.Sprintf("t%d", j)
		seq := got[label]
		if len(seq) != perTarget || !sort.IntsAreSorted(seq) {
			t.Errorf("target %s received %v, want 0..%d in order", label, seq, perTarget-1)
			continue
		}
		for i, n := range seq {
			if n != i {
				t.Errorf("target %s received %v, want 0..%d each once", label, seq, perTarget-1)
				break
			}
		}
	}
}

// TestPartitionsOrderAcrossReplicas sends requests to many targets on their
// target subjects through two replicas sharing the partition consumers,
// while the simulator rate-limits now and then (requests retried in place):
// each target receives its requests once, in the order published; both
// replicas work, neither more than its InFlight at once.
func TestPartitionsOrderAcrossReplicas(t *testing.T) {
	e := newEnv(t)
	const inFlight = 2
	a, b := e.replica(inFlight), e.replica(inFlight)
	e.sim.SetChaos(qqsim.Chaos{RateLimitPerS: 40, SendLatencyMS: 5})
	targets := e.targets()
	const perTarget = 8
	for i := range perTarget {
		for j, tg := range targets {
			e.publishTo(tg.kind, schema.Request{To: tg.to, Text: fmt.Sprintf("t%d m%d", j, i)}, "")
		}
	}
	n := perTarget * len(targets)
	for range n {
		if subject, res := e.result(); !res.OK {
			t.Fatalf("result on %s: %+v (error %+v), want ok", subject, res, res.Error)
		}
	}
	e.noMoreResults()
	checkOrder(t, e.sent(), len(targets), perTarget)
	sa, ma := a.counts()
	sb, mb := b.counts()
	t.Logf("replica a sent %d (at most %d at once), b %d (%d)", sa, ma, sb, mb)
	if sa == 0 || sb == 0 {
		t.Errorf("replica a sent %d, b %d: want both to work", sa, sb)
	}
	if ma > inFlight || mb > inFlight {
		t.Errorf("at most %d and %d sends at once, InFlight is %d", ma, mb, inFlight)
	}
	if c := e.sim.State().Counters; c["send_qun_msg2"]+c["send_buddy_msg2"]+c["send_discu_msg2"]+c["send_sess_msg2"] <= int64(n) {
		t.Logf("counters %v: the rate limit was never hit", c)
	}
}

// TestInFlightPerReplica: one replica works up to its InFlight requests at
// once (slow sends to many targets), never more; the results of the target
// subjects are on <prefix>.result.<kind>.
func TestInFlightPerReplica(t *testing.T) {
	for _, inFlight := range []int{1, 3} {
		t.Run(fmt.Sprintf("InFlight %d", inFlight), func(t *testing.T) {
			e := newEnv(t)
			c := e.replica(inFlight)
			e.sim.SetChaos(qqsim.Chaos{SendLatencyMS: 100})
			targets := e.targets()
			for j, tg := range targets {
				e.publishTo(tg.kind, schema.Request{To: tg.to, Text: fmt.Sprintf("t%d m0", j)}, "")
			}
			for range targets {
				subject, res := e.result()
				if !res.OK {
					t.Fatalf("result %+v (error %+v), want ok", res, res.Error)
				}
				if want := e.subj.Result(res.Kind); subject != want {
					t.Errorf("result on %s, want %s", subject, want)
				}
			}
			checkOrder(t, e.sent(), len(targets), 1)
			if _, most := c.counts(); most != inFlight {
				t.Errorf("at most %d sends at once, want InFlight %d (14 targets, slow sends)", most, inFlight)
			}
		})
	}
}

// TestSameIDAcrossPartitions: one id on two targets (two partitions, or one)
// and twice on the first, worked by two replicas: sent once; every request
// is answered with that one outcome.
func TestSameIDAcrossPartitions(t *testing.T) {
	e := newEnv(t)
	e.replica(4)
	e.replica(4)
	e.sim.SetChaos(qqsim.Chaos{SendLatencyMS: 50})
	targets := e.targets()
	for i, tg := range []target{targets[0], targets[7], targets[0], targets[10]} {
		e.publishTo(tg.kind, schema.Request{ID: "once", To: tg.to, Text: "only once"}, fmt.Sprintf("msg-%d", i))
	}
	var first *schema.Result
	for range 4 {
		_, res := e.result()
		if res.ID != "once" {
			t.Fatalf("result %+v, want id once", res)
		}
		if first == nil {
			first = &res
		} else if res.OK != first.OK || res.Parts != first.Parts {
			t.Errorf("result %+v, the first was %+v", res, *first)
		}
	}
	if sent := e.sent(); len(sent) != 1 {
		t.Fatalf("simulator received %d messages for one id, want 1: %+v", len(sent), sent)
	}
	e.noMoreResults()
}

// TestPartitionFailover: the replica working a request of a partition dies
// mid-send; the request is redelivered after AckWait and answered maybe_sent
// by the other replica, and the next request to the same target, queued
// behind it, is sent after it (never before: the partition has one request
// out at a time), while other targets' requests went on meanwhile.
func TestPartitionFailover(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Config) { c.AckWait = time.Second }))
	killDying := e.startDyingReplica(t)
	alice := schema.Target{QQ: testenv.Alice}
	e.sim.SetChaos(qqsim.Chaos{SendLatencyMS: int(time.Hour / time.Millisecond)})
	e.publishTo(schema.KindFriend, schema.Request{ID: "held", To: alice, Text: "held"}, "")
	testenv.Eventually(t, "the first send at the simulator", func() bool { return len(e.sent()) == 1 })
	e.publishTo(schema.KindFriend, schema.Request{ID: "behind", To: alice, Text: "behind"}, "")
	e.sim.SetChaos(qqsim.Chaos{})
	e.run(e.eg) // the replica that takes over
	// The death: its NATS connection goes, its send is cut short.
	killDying()
	// Another target goes on while the held request waits for its AckWait
	// (unless it shares alice's partition: then it waits behind too).
	other := schema.Target{Group: testenv.Hiking}
	e.publishTo(schema.KindGroup, schema.Request{ID: "other", To: other, Text: "other"}, "")

	var order []string
	got := map[string]schema.Result{}
	for range 3 {
		_, res := e.result()
		got[res.ID] = res
		order = append(order, res.ID)
	}
	if r := got["held"]; r.OK || r.Error == nil || r.Error.Code != schema.CodeMaybeSent {
		t.Errorf("held: result %+v (error %+v), want maybe_sent", r, r.Error)
	}
	for _, id := range []string{"behind", "other"} {
		if r := got[id]; !r.OK {
			t.Errorf("%s: result %+v (error %+v), want ok", id, r, r.Error)
		}
	}
	if strings.Index(strings.Join(order, " "), "held") > strings.Index(strings.Join(order, " "), "behind") {
		t.Errorf("results in the order %v: behind was answered before held", order)
	}
	var texts []string
	for _, s := range e.sent() {
		texts = append(texts, s.Text)
	}
	if strings.Join(texts, "|") != "held|other|behind" && strings.Join(texts, "|") != "held|behind|other" {
		t.Errorf("received %q, want held, then behind (other anywhere after held)", texts)
	}
	e.noMoreResults()
}

// TestUpgradeFromSerialQueue: a queue of an older bridge — no partitions,
// the consumer pinned with several in flight — holding requests on the
// serial subject and on a target subject (stored as published) is taken
// over: EnsureStreams adds the partitions, Run updates the consumer under
// its name, and every request is sent once, in order per target.
func TestUpgradeFromSerialQueue(t *testing.T) {
	e := newEnv(t, offline())
	ctx := testenv.Context(t)
	stream, err := e.js.Stream(ctx, e.subj.StreamOut())
	if err != nil {
		t.Fatal(err)
	}
	old := bus.StreamConfigs(e.subj, bus.StreamOptions{OutPartitions: -1})[1]
	if _, err := e.js.UpdateStream(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: DefaultConsumer, FilterSubject: e.subj.OutWildcard(), AckPolicy: jetstream.AckExplicitPolicy,
		MaxAckPending: 4, PriorityPolicy: jetstream.PriorityPolicyPinned, PriorityGroups: []string{"egress"},
		PinnedTTL: e.cfg.AckWait, AckWait: e.cfg.AckWait,
	}); err != nil {
		t.Fatal(err)
	}
	e.login()
	alice, devChat := schema.Target{QQ: testenv.Alice}, schema.Target{Group: testenv.DevChat}
	// Before the update: both stored as published, for the serial consumer.
	e.publishJSON(schema.KindFriend, schema.Request{To: alice, Text: "t0 m0"})
	e.publishTo(schema.KindFriend, schema.Request{To: alice, Text: "t0 m1"}, "")
	if err := bus.EnsureStreams(ctx, e.js, e.subj, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	// After: the target subject goes to a partition.
	e.publishTo(schema.KindGroup, schema.Request{To: devChat, Text: "t1 m0"}, "")
	e.publishTo(schema.KindGroup, schema.Request{To: devChat, Text: "t1 m1"}, "")
	e.run(e.eg)
	for range 4 {
		if _, res := e.result(); !res.OK {
			t.Fatalf("result %+v (error %+v), want ok", res, res.Error)
		}
	}
	e.noMoreResults()
	checkOrder(t, e.sent(), 2, 2)
	c, err := stream.Consumer(ctx, DefaultConsumer)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := c.CachedInfo().Config; cfg.MaxAckPending != 1 || cfg.PriorityPolicy != jetstream.PriorityPolicyNone {
		t.Errorf("serial consumer kept MaxAckPending %d, priority %v", cfg.MaxAckPending, cfg.PriorityPolicy)
	}
}

// TestLeftoverPartitionDrained: requests left in a partition beyond the
// stream's count (the count was lowered while they waited) are still sent.
func TestLeftoverPartitionDrained(t *testing.T) {
	e := newEnv(t)
	ctx := testenv.Context(t)
	var subjects []string
	for j, tg := range e.targets() {
		e.publishTo(tg.kind, schema.Request{To: tg.to, Text: fmt.Sprintf("t%d m0", j)}, "")
	}
	stream, _ := e.js.Stream(ctx, e.subj.StreamOut())
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		t.Fatal(err)
	}
	high := 0
	for s := range info.State.Subjects {
		subjects = append(subjects, s)
		if o, _ := e.subj.ParseOutSubject(s); o.Partition > high {
			high = o.Partition
		}
	}
	if high == 0 {
		t.Fatalf("every target in partition 0: %v", subjects)
	}
	if err := bus.EnsureStreams(ctx, e.js, e.subj, bus.StreamOptions{OutPartitions: 1}); err != nil {
		t.Fatal(err)
	}
	e.run(e.eg)
	for range e.targets() {
		if _, res := e.result(); !res.OK {
			t.Fatalf("result %+v (error %+v), want ok", res, res.Error)
		}
	}
	e.noMoreResults()
	checkOrder(t, e.sent(), len(e.targets()), 1)
}
