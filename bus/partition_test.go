package bus_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/schema"
)

// storedSubjects returns the subjects stream holds messages under, with
// their counts.
func storedSubjects(t *testing.T, ctx context.Context, js jetstream.JetStream, stream string) map[string]uint64 {
	t.Helper()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects
}

// publishOut publishes subjects (each once) into the outbound stream.
func publishOut(t *testing.T, ctx context.Context, js jetstream.JetStream, subjects ...string) {
	t.Helper()
	for _, subj := range subjects {
		if _, err := js.Publish(ctx, subj, []byte(`{}`)); err != nil {
			t.Fatalf("publish %s: %v", subj, err)
		}
	}
}

// checkPartitioned checks what the server does with the transform: the
// target subjects are stored under <prefix>.outp.<n>.<kind>.<key>, n below
// parts and the same for one target every time; the serial subjects and
// longer ones are stored as published.
func checkPartitioned(t *testing.T, ctx context.Context, js jetstream.JetStream, s schema.Subjects, parts int) {
	t.Helper()
	st, err := js.Stream(ctx, s.StreamOut())
	if err != nil {
		t.Fatal(err)
	}
	if got := bus.OutPartitions(s, st.CachedInfo().Config); got != parts {
		t.Fatalf("OutPartitions of the stream = %d, want %d", got, parts)
	}
	if err := st.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	var targets []string
	for g := range 64 {
		subj, err := s.OutTo(schema.KindGroup, schema.Target{Group: int64(1000 + g)})
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, subj)
	}
	publishOut(t, ctx, js, targets...)
	publishOut(t, ctx, js, targets[0], s.Out(schema.KindGroup), s.Out(schema.KindFriend)+".1.2")
	got := storedSubjects(t, ctx, js, s.StreamOut())
	if got[s.Out(schema.KindGroup)] != 1 || got[s.Out(schema.KindFriend)+".1.2"] != 1 {
		t.Errorf("the serial subject and a longer one are not stored as published: %v", got)
	}
	used := map[int]bool{}
	for subj, n := range got {
		o, err := s.ParseOutSubject(subj)
		if o.Partition < 0 {
			continue
		}
		if err != nil || o.Partition >= parts || o.Kind != schema.KindGroup {
			t.Errorf("stored subject %s: %+v, %v", subj, o, err)
		}
		if want := uint64(1); o.Key == "1000" {
			want = 2 // published twice, both in the same partition
			if n != want {
				t.Errorf("%s holds %d, want %d", subj, n, want)
			}
		}
		used[o.Partition] = true
	}
	if len(used) < min(parts, 2) {
		t.Errorf("64 targets went to %d partitions of %d", len(used), parts)
	}
	if stored := len(got); stored != 64+2 {
		t.Errorf("%d subjects stored, want 66: %v", stored, got)
	}
}

func TestOutPartitions(t *testing.T) {
	js := startJS(t)
	ctx := testenv.Context(t)
	s, _ := schema.NewSubjects("acct-1.qq")
	if err := bus.EnsureStreams(ctx, js, s, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	checkPartitioned(t, ctx, js, s, bus.DefaultOutPartitions)
	// Results stay on <prefix>.result.<kind>: no transform there.
	if _, err := js.Publish(ctx, s.Result(schema.KindGroup), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if got := storedSubjects(t, ctx, js, s.StreamResult()); got[s.Result(schema.KindGroup)] != 1 {
		t.Errorf("result stream holds %v", got)
	}

	for _, bad := range []int{-2, bus.MaxOutPartitions + 1} {
		if err := bus.EnsureStreams(ctx, js, s, bus.StreamOptions{OutPartitions: bad}); err == nil {
			t.Errorf("EnsureStreams accepted OutPartitions %d", bad)
		}
	}
}

// TestOutPartitionsUpdate: a queue set up by an older bridge (no transform)
// gets it from EnsureStreams; the requests it held keep their subjects (the
// serial consumer takes them), the new ones are partitioned. The count can
// change, and -1 takes the transform away.
func TestOutPartitionsUpdate(t *testing.T) {
	js := startJS(t)
	ctx := testenv.Context(t)
	s, _ := schema.NewSubjects("qq")
	old := bus.StreamConfigs(s, bus.StreamOptions{})[1]
	old.SubjectTransform = nil
	if _, err := js.CreateStream(ctx, old); err != nil {
		t.Fatal(err)
	}
	before, _ := s.OutTo(schema.KindGroup, schema.Target{Group: 5})
	publishOut(t, ctx, js, before)
	if err := bus.EnsureStreams(ctx, js, s, bus.StreamOptions{}); err != nil {
		t.Fatalf("EnsureStreams over the old stream: %v", err)
	}
	if got := storedSubjects(t, ctx, js, s.StreamOut()); got[before] != 1 {
		t.Errorf("the request queued before the update: stored %v, want it under %s", got, before)
	}
	checkPartitioned(t, ctx, js, s, bus.DefaultOutPartitions)
	if err := bus.EnsureStreams(ctx, js, s, bus.StreamOptions{OutPartitions: 3}); err != nil {
		t.Fatal(err)
	}
	checkPartitioned(t, ctx, js, s, 3)
	if err := bus.EnsureStreams(ctx, js, s, bus.StreamOptions{OutPartitions: -1}); err != nil {
		t.Fatal(err)
	}
	st, _ := js.Stream(ctx, s.StreamOut())
	if c := st.CachedInfo().Config; c.SubjectTransform != nil || bus.OutPartitions(s, c) != 0 {
		t.Errorf("OutPartitions -1 left transform %+v", c.SubjectTransform)
	}
	publishOut(t, ctx, js, before)
	if got := storedSubjects(t, ctx, js, s.StreamOut()); got[before] != 1 {
		t.Errorf("without partitions: stored %v, want the request under %s", got, before)
	}
}

// TestOutPartitionsR3: the transform works on a replicated stream, created
// by two replicas at once.
func TestOutPartitionsR3(t *testing.T) {
	c := testenv.NewCluster(t, 3)
	c.StartAll()
	s, _ := schema.NewSubjects("qq")
	ctx := testenv.Context(t)
	var js jetstream.JetStream
	errs := make(chan error, 2)
	for i := range 2 {
		js = testenv.JetStream(t, testenv.Connect(t, c.URL(i)))
		go func() {
			_, err := bus.Setup(ctx, js, bus.SetupConfig{Subjects: s, Replicas: 3})
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("Setup: %v", err)
		}
	}
	js = testenv.JetStream(t, testenv.Connect(t, c.URL(2)))
	st, err := js.Stream(ctx, s.StreamOut())
	if err != nil {
		t.Fatal(err)
	}
	if r := st.CachedInfo().Config.Replicas; r != 3 {
		t.Fatalf("replicas %d, want 3", r)
	}
	checkPartitioned(t, ctx, js, s, bus.DefaultOutPartitions)
}
