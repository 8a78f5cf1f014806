package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qqbridge/qqbridge/ingress"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

// timedPoller notes when each polled message came out of the client.
type timedPoller struct {
	c  *qqclient.Client
	mu sync.Mutex
	at map[int64]time.Time // msg_id → when its poll returned
}

func (p *timedPoller) Poll(ctx context.Context) ([]qqclient.Event, error) {
	evs, err := p.c.Poll(ctx)
	now := time.Now()
	p.mu.Lock()
	for _, ev := range evs {
		if ev.Message != nil {
			p.at[ev.Message.MsgID] = now
		}
	}
	p.mu.Unlock()
	return evs, err
}

// Latency is the added latency of ingress: from a poll answer decoded by the
// client to the event at a core NATS subscriber of qq.in.>.
type Latency struct {
	Events   int
	P50, P99 time.Duration
}

// IngressLatency has the simulator deliver perSecond group messages a second
// (a hundred polls a second, as many as the simulator's answers allow) for d and measures Latency.
func (e *Env) IngressLatency(ctx context.Context, perSecond int, d time.Duration) (Latency, error) {
	if err := e.resetStreams(ctx); err != nil {
		return Latency{}, err
	}
	p := &timedPoller{c: e.Client, at: map[int64]time.Time{}}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ing, err := ingress.New(ingress.Config{
		Client: p, Terms: e.session(rctx), Dir: e.Dir, JS: e.JS, Subjects: e.Subjects, Log: e.Log,
		MaxPayload: int(e.NC.MaxPayload()),
	})
	if err != nil {
		return Latency{}, err
	}
	msgs := make(chan *nats.Msg, 1<<16)
	sub, err := e.NC.ChanSubscribe(e.Subjects.InWildcard(), msgs)
	if err != nil {
		return Latency{}, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	var lat []time.Duration
	var latMu sync.Mutex
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-rctx.Done():
				return
			case m := <-msgs:
				now := time.Now()
				id := m.Header.Get(schema.HeaderMsgID)
				n, err := strconv.ParseInt(id[strings.LastIndexByte(id, ':')+1:], 10, 64)
				if err != nil {
					continue
				}
				p.mu.Lock()
				at, ok := p.at[n]
				p.mu.Unlock()
				if ok {
					latMu.Lock()
					lat = append(lat, now.Sub(at))
					latMu.Unlock()
				}
			}
		}
	})
	done := make(chan error, 1)
	go func() { done <- ing.Run(rctx) }()
	st := e.Sim.State()
	per := max(perSecond/100, 1)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	sent := 0
	for end := time.Now().Add(d); time.Now().Before(end); {
		<-tick.C
		items := make([]json.RawMessage, per)
		for k := range items {
			e.msgID++
			items[k] = e.groupItem(st, e.msgID)
		}
		if err := e.Sim.Inject(items); err != nil {
			return Latency{}, err
		}
		sent += per
	}
	_ = waitFor(ctx, func() bool {
		latMu.Lock()
		defer latMu.Unlock()
		return len(lat) >= sent
	})
	cancel()
	<-done
	wg.Wait()
	if len(lat) == 0 {
		return Latency{}, fmt.Errorf("bench: no event reached the subscriber")
	}
	slices.Sort(lat)
	return Latency{Events: len(lat), P50: lat[len(lat)/2], P99: lat[len(lat)*99/100]}, nil
}
