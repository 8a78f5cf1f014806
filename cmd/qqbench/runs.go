package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/egress"
	"github.com/qqbridge/qqbridge/ingress"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

// runTimeout bounds one run.
const runTimeout = 2 * time.Minute

// errTimeout: a run did not finish within runTimeout.
var errTimeout = errors.New("bench: run timed out")

// IngressBridge has the simulator answer one poll with n group messages and
// returns the time from the items being queued (the held poll then answers)
// to the last of them acknowledged in QQ_IN, the bridge's ingress polling and publishing. The
// messages it published are kept for the baselines (Published).
func (e *Env) IngressBridge(ctx context.Context, n int) (time.Duration, error) {
	if err := e.resetStreams(ctx); err != nil {
		return 0, err
	}
	st := e.Sim.State()
	items := make([]json.RawMessage, n)
	for i := range items {
		e.msgID++
		items[i] = e.groupItem(st, e.msgID)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	poller := &firstAnswer{c: e.Client}
	ing, err := ingress.New(ingress.Config{
		Client: poller, Terms: e.session(rctx), Dir: e.Dir, JS: e.JS, Subjects: e.Subjects, Log: e.Log,
		MaxPayload: int(e.NC.MaxPayload()),
	})
	if err != nil {
		return 0, err
	}
	held := st.Counters["polls_held"]
	done := make(chan error, 1)
	go func() { done <- ing.Run(rctx) }()
	defer func() { cancel(); <-done }()
	if err := waitFor(ctx, func() bool { return e.Sim.State().Counters["polls_held"] > held }); err != nil {
		return 0, fmt.Errorf("bench: ingress never polled: %w", err)
	}
	// The simulator checks the items as they are queued: not the bridge's
	// time. The held poll is answered from then on.
	if err := e.Sim.Inject(items); err != nil {
		return 0, err
	}
	start := time.Now()
	if err := waitFor(ctx, func() bool {
		s := ing.Stats()
		return s.Published+s.Duplicates >= uint64(n)
	}); err != nil {
		return 0, fmt.Errorf("bench: %d of %d published: %w", ing.Stats().Published, n, err)
	}
	took := time.Since(start)
	if at, ok := poller.at(); ok {
		e.LastDecoded = at.Sub(start)
		e.LastAnswered = e.answers.lastAnswer().Sub(start)
	}
	return took, nil
}

// firstAnswer is a Poller that notes when the first poll with events
// returned (the answer received and decoded).
type firstAnswer struct {
	c    *qqclient.Client
	mu   sync.Mutex
	when time.Time
}

func (p *firstAnswer) Poll(ctx context.Context) ([]qqclient.Event, error) {
	evs, err := p.c.Poll(ctx)
	if len(evs) > 0 {
		now := time.Now()
		p.mu.Lock()
		if p.when.IsZero() {
			p.when = now
		}
		p.mu.Unlock()
	}
	return evs, err
}

func (p *firstAnswer) at() (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.when, !p.when.IsZero()
}

// Published returns the messages of QQ_IN (the last IngressBridge run's),
// subjects, headers and data, for the baselines to publish again.
func (e *Env) Published(ctx context.Context) ([]*nats.Msg, error) {
	st, err := e.JS.Stream(ctx, e.Subjects.StreamIn())
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, err
	}
	var out []*nats.Msg
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			return nil, err
		}
		out = append(out, &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
	}
	return out, nil
}

// IngressAsync publishes msgs (with their Nats-Msg-Id) into an empty QQ_IN
// with PublishMsgAsync, at most window unacknowledged, and returns the time
// until every one is acknowledged: what JetStream allows.
func (e *Env) IngressAsync(ctx context.Context, msgs []*nats.Msg, window int) (time.Duration, error) {
	if err := e.resetStreams(ctx); err != nil {
		return 0, err
	}
	js, err := jetstream.New(e.NC, jetstream.WithPublishAsyncMaxPending(window))
	if err != nil {
		return 0, err
	}
	start := time.Now()
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		f, err := js.PublishMsgAsync(copyMsg(m))
		if err != nil {
			return 0, err
		}
		futures = append(futures, f)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(runTimeout):
		return 0, errTimeout
	}
	took := time.Since(start)
	for _, f := range futures {
		select {
		case err := <-f.Err():
			return 0, err
		default:
		}
	}
	return took, nil
}

// IngressSync publishes msgs one by one, each waiting for its ack.
func (e *Env) IngressSync(ctx context.Context, msgs []*nats.Msg) (time.Duration, error) {
	if err := e.resetStreams(ctx); err != nil {
		return 0, err
	}
	start := time.Now()
	for _, m := range msgs {
		if _, err := e.JS.PublishMsg(ctx, copyMsg(m)); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

func copyMsg(m *nats.Msg) *nats.Msg {
	return &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}
}

// EgressOptions tunes an egress run.
type EgressOptions struct {
	// Replicas is the number of Egress instances sharing the consumers (default 1).
	Replicas int
	// Serial publishes the requests on the serial subject qq.out.group
	// instead of their target subjects qq.out.group.<number>.
	Serial bool
	// Configure, when set, changes each replica's Config before New.
	Configure func(*egress.Config)
}

// EgressBridge queues n group requests on their target subjects
// qq.out.group.<number> (on qq.out.group with o.Serial), each with its own
// id, the targets round robin over Targets groups, then starts the replicas
// and returns the time until every request is answered on qq.result.group.
// Pacing is off (a rate far above what is sent).
func (e *Env) EgressBridge(ctx context.Context, n int, o EgressOptions) (time.Duration, error) {
	if err := e.resetStreams(ctx); err != nil {
		return 0, err
	}
	kv, err := bus.SentKV(ctx, e.JS, e.Subjects, 1)
	if err != nil {
		return 0, err
	}
	for i := range n {
		e.reqID++
		req := schema.Request{ID: "bench-" + strconv.FormatInt(e.reqID, 10),
			To: schema.Target{Group: int64(firstGroup + i%Targets)}, Text: "bench " + strconv.Itoa(i)}
		data, _ := json.Marshal(req)
		subject := e.Subjects.Out(schema.KindGroup)
		if !o.Serial {
			if subject, err = e.Subjects.OutTo(schema.KindGroup, req.To); err != nil {
				return 0, err
			}
		}
		if _, err := e.JS.PublishAsync(subject, data); err != nil {
			return 0, err
		}
	}
	select {
	case <-e.JS.PublishAsyncComplete():
	case <-time.After(runTimeout):
		return 0, errTimeout
	}
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	sessions := e.session(rctx)
	start := time.Now()
	for range max(o.Replicas, 1) {
		cfg := egress.Config{
			Client: e.Client, Sessions: sessions, Dir: e.Dir, JS: e.JS, SentKV: kv, Subjects: e.Subjects, Log: e.Log,
			Rate: 1e9, Burst: 1 << 30,
		}
		if o.Configure != nil {
			o.Configure(&cfg)
		}
		eg, err := egress.New(cfg)
		if err != nil {
			return 0, err
		}
		wg.Go(func() { _ = eg.Run(rctx) })
	}
	if err := waitEvery(ctx, 2*time.Millisecond, func() bool {
		m, err := e.streamMsgs(ctx, e.Subjects.StreamResult())
		return err == nil && m >= uint64(n)
	}); err != nil {
		m, _ := e.streamMsgs(ctx, e.Subjects.StreamResult())
		return 0, fmt.Errorf("bench: %d of %d answered: %w", m, n, err)
	}
	return time.Since(start), nil
}

// EgressBaseline sends n parts to the same groups in a plain loop of the
// client's SendPart (one send_qun_msg2 request each), nothing else.
func (e *Env) EgressBaseline(ctx context.Context, n int) (time.Duration, error) {
	targets := make([]qqclient.Target, Targets)
	for g := range targets {
		t, err := e.Dir.Resolve(ctx, schema.KindGroup, schema.Target{Group: int64(firstGroup + g)})
		if err != nil {
			return 0, err
		}
		targets[g] = t
	}
	start := time.Now()
	for i := range n {
		if err := e.Client.SendPart(ctx, targets[i%Targets], []qqclient.Segment{qqclient.TextSegment("bench " + strconv.Itoa(i))}); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// waitFor polls cond every 200µs until it holds, ctx ends or runTimeout passes.
func waitFor(ctx context.Context, cond func() bool) error {
	return waitEvery(ctx, 200*time.Microsecond, cond)
}

// waitEvery polls cond every period (a request to NATS each time costs the
// measured code CPU: not too often).
func waitEvery(ctx context.Context, every time.Duration, cond func() bool) error {
	deadline := time.Now().Add(runTimeout)
	for !cond() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return errTimeout
		}
		time.Sleep(every)
	}
	return nil
}
