package bus_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/schema"
)

// waits collects the waits of one Setup and says when the first came.
type waits struct {
	mu    sync.Mutex
	all   []bus.Wait
	first chan struct{}
}

func newWaits() *waits { return &waits{first: make(chan struct{})} }

func (w *waits) on(x bus.Wait) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.all) == 0 {
		close(w.first)
	}
	w.all = append(w.all, x)
}

func (w *waits) list() []bus.Wait {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]bus.Wait(nil), w.all...)
}

func setupConfig(s schema.Subjects, replicas int, w *waits, log *testenv.LogBuffer) bus.SetupConfig {
	return bus.SetupConfig{
		Subjects: s, Replicas: replicas, LeaderTTL: 2 * time.Second,
		MaxBackoff: time.Second,
		Log:        zerolog.New(log).With().Timestamp().Logger(),
		OnWait:     w.on,
	}
}

// checkSetUp checks that every stream and bucket exists with the replicas.
func checkSetUp(t *testing.T, js jetstream.JetStream, s schema.Subjects, b bus.Buckets, replicas int) {
	t.Helper()
	ctx := testenv.Context(t)
	for _, name := range []string{s.StreamIn(), s.StreamOut(), s.StreamResult()} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Errorf("stream %s: %v", name, err)
			continue
		}
		if r := st.CachedInfo().Config.Replicas; r != replicas {
			t.Errorf("stream %s has %d replicas, want %d", name, r, replicas)
		}
	}
	for _, kv := range []jetstream.KeyValue{b.Session, b.Sent, b.Leader} {
		if kv == nil {
			t.Errorf("a bucket is missing: %+v", b)
			continue
		}
		if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
			t.Errorf("put into %s: %v", kv.Bucket(), err)
		}
	}
}

// TestSetupFreshCluster is defect 12: two replicas start together against a
// three-node cluster that has just started (a new Kubernetes deployment) and
// has no meta leader yet. Both set-ups must wait for JetStream and succeed.
func TestSetupFreshCluster(t *testing.T) {
	c := testenv.NewCluster(t, 3)
	c.StartAll()
	if c.HasMetaLeader() {
		t.Log("the cluster elected its meta leader before the set-up started")
	}
	s, _ := schema.NewSubjects("qq")
	ctx := testenv.Context(t)
	log := &testenv.LogBuffer{}
	type out struct {
		b   bus.Buckets
		err error
	}
	outs := make([]out, 2)
	var wg sync.WaitGroup
	for i := range outs {
		nc := testenv.Connect(t, c.URL(i))
		js := testenv.JetStream(t, nc)
		wg.Go(func() {
			outs[i].b, outs[i].err = bus.Setup(ctx, js, setupConfig(s, 3, newWaits(), log))
		})
	}
	wg.Wait()
	for i, o := range outs {
		if o.err != nil {
			t.Fatalf("replica %d: Setup: %v\nlog:\n%s", i+1, o.err, log)
		}
	}
	if l := log.String(); l != "" {
		t.Logf("the set-up waited:\n%s", l)
	}
	checkSetUp(t, testenv.JetStream(t, testenv.Connect(t, c.URL(2))), s, outs[0].b, 3)
}

// TestSetupWaitsForQuorum starts the set-up of two replicas against one node
// of a three-node cluster: no meta leader can be elected until a second node
// is up. The other nodes start once both set-ups have said that they wait; then
// both succeed.
func TestSetupWaitsForQuorum(t *testing.T) {
	c := testenv.NewCluster(t, 3)
	c.Start(0)
	s, _ := schema.NewSubjects("acct-1.qq")
	ctx := testenv.Context(t)
	log := &testenv.LogBuffer{}
	ws := []*waits{newWaits(), newWaits()}
	errs := make([]error, 2)
	bks := make([]bus.Buckets, 2)
	var wg sync.WaitGroup
	for i, w := range ws {
		js := testenv.JetStream(t, testenv.Connect(t, c.URL(0)))
		wg.Go(func() { bks[i], errs[i] = bus.Setup(ctx, js, setupConfig(s, 3, w, log)) })
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	for i, w := range ws {
		select {
		case <-w.first:
		case <-allDone:
			t.Fatalf("replica %d never waited for JetStream; Setup: %v\nlog:\n%s", i+1, errs[i], log)
		}
	}
	if c.HasMetaLeader() {
		t.Fatal("a meta leader with one node of three")
	}
	c.Start(1)
	c.Start(2)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: Setup: %v\nlog:\n%s", i+1, err, log)
		}
	}
	for i, w := range ws {
		for _, x := range w.list() {
			if x.Reason == "" || x.Err == nil || x.RetryIn <= 0 {
				t.Errorf("replica %d: wait %+v lacks a reason, error or retry", i+1, x)
			}
		}
	}
	if !strings.Contains(log.String(), "waiting for JetStream: ") {
		t.Errorf("the log never said it was waiting for JetStream:\n%s", log)
	}
	checkSetUp(t, testenv.JetStream(t, testenv.Connect(t, c.URL(2))), s, bks[1], 3)
}

// TestSetupWaitsForJetStream runs the set-up against a server whose JetStream
// comes later: it waits (saying why) and succeeds once JetStream is on.
func TestSetupWaitsForJetStream(t *testing.T) {
	n := testenv.StartNATSWith(t, testenv.NATSOptions{NoJetStream: true})
	_, js := n.Connect()
	s, _ := schema.NewSubjects("qq")
	ctx := testenv.Context(t)
	w, log := newWaits(), &testenv.LogBuffer{}
	done := make(chan error, 1)
	var b bus.Buckets
	go func() {
		var err error
		b, err = bus.Setup(ctx, js, setupConfig(s, 1, w, log))
		done <- err
	}()
	select {
	case <-w.first:
	case err := <-done:
		t.Fatalf("Setup returned %v without waiting for JetStream", err)
	}
	if r := w.list()[0].Reason; !strings.Contains(r, "no JetStream") || !strings.Contains(r, bus.ErrJetStreamDisabled.Error()) {
		t.Errorf("wait reason %q does not say that JetStream is not enabled on the server", r)
	}
	n.EnableJetStream()
	if err := <-done; err != nil {
		t.Fatalf("Setup: %v\nlog:\n%s", err, log)
	}
	checkSetUp(t, js, s, b, 1)
}

// TestSetupStopsWithContext: while it waits, the end of ctx ends Setup with
// ctx's error (not ErrSetup).
func TestSetupStopsWithContext(t *testing.T) {
	n := testenv.StartNATSWith(t, testenv.NATSOptions{NoJetStream: true})
	_, js := n.Connect()
	s, _ := schema.NewSubjects("qq")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := newWaits()
	done := make(chan error, 1)
	go func() {
		_, err := bus.Setup(ctx, js, setupConfig(s, 1, w, &testenv.LogBuffer{}))
		done <- err
	}()
	select {
	case <-w.first:
	case err := <-done:
		t.Fatalf("Setup returned %v without waiting for JetStream", err)
	}
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) || errors.Is(err, bus.ErrSetup) {
		t.Fatalf("Setup after cancel: %v, want context.Canceled and not ErrSetup", err)
	}
}

// TestSetupRefuses: an error that waiting cannot cure (another stream owns
// the subjects) is returned at once, wrapping ErrSetup, without a wait.
func TestSetupRefuses(t *testing.T) {
	js := startJS(t)
	ctx := testenv.Context(t)
	s, _ := schema.NewSubjects("qq")
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SQUATTER", Subjects: []string{s.InWildcard()}}); err != nil {
		t.Fatal(err)
	}
	w := newWaits()
	_, err := bus.Setup(ctx, js, setupConfig(s, 1, w, &testenv.LogBuffer{}))
	if !errors.Is(err, bus.ErrSetup) {
		t.Fatalf("Setup: %v, want ErrSetup", err)
	}
	if !strings.Contains(err.Error(), s.StreamIn()) {
		t.Errorf("error %q does not name the stream", err)
	}
	if n := len(w.list()); n != 0 {
		t.Errorf("Setup waited %d times for an error that waiting cannot cure", n)
	}
}

func TestSetupRejectsShortLeaderTTL(t *testing.T) {
	js := startJS(t)
	s, _ := schema.NewSubjects("qq")
	cfg := setupConfig(s, 1, newWaits(), &testenv.LogBuffer{})
	cfg.LeaderTTL = 100 * time.Millisecond
	if _, err := bus.Setup(testenv.Context(t), js, cfg); !errors.Is(err, bus.ErrSetup) {
		t.Fatalf("Setup with a leader TTL of 100ms: %v, want ErrSetup", err)
	}
}

// TestWhileNotReady: an attempt that JetStream did not answer in time is
// tried again until one succeeds; another error ends the waiting at once.
func TestWhileNotReady(t *testing.T) {
	ctx := testenv.Context(t)
	n := 0
	err := bus.WhileNotReady(ctx, zerolog.Nop(), "test", func(context.Context) error {
		if n++; n < 3 {
			return context.DeadlineExceeded
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Errorf("err %v after %d attempts; want nil after 3", err, n)
	}
	refused := errors.New("refused")
	n = 0
	err = bus.WhileNotReady(ctx, zerolog.Nop(), "test", func(context.Context) error { n++; return refused })
	if !errors.Is(err, refused) || n != 1 {
		t.Errorf("err %v after %d attempts; want refused after 1", err, n)
	}
}
