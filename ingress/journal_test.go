package ingress

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/qqsim"
)

// startJournalled runs an Ingress with a journal until the test ends.
func (h *harness) startJournalled(j *Journal) *Ingress {
	h.t.Helper()
	return h.startWith(func(c *Config) { c.Journal = j })
}

// journalLen is the number of entries in the journal's stream.
func (h *harness) journalLen() uint64 {
	h.t.Helper()
	ctx := h.ctx()
	st, err := h.js.Stream(ctx, JournalStream(h.subjects))
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	return info.State.Msgs
}

// newJournal makes the journal of h's account (one replica).
func (h *harness) newJournal() *Journal {
	h.t.Helper()
	j, err := NewJournal(h.ctx(), h.js, h.subjects, 1)
	if err != nil {
		h.t.Fatal(err)
	}
	return j
}

// deadLeaderPolled says n group messages ("<text> <k>") and polls them, as
// a leader that dies before publishing them does; it returns their msg_ids
// and the poll's items.
func (h *harness) deadLeaderPolled(n int, text string) ([]int64, []qqclient.Event) {
	h.t.Helper()
	var ids []int64
	for k := range n {
		ids = append(ids, h.say(qqsim.Say{Kind: "group", From: testenv.Alice, Group: testenv.DevChat, Text: fmt.Sprintf("%s %d", text, k)}))
	}
	return ids, mustPoll(h.t, h, len(ids))
}

// TestJournalReplaysWhatADeadLeaderPolled: a leader polled a batch and
// journalled it, then died before publishing it (the poll answer is gone
// from QQ). The next Ingress replays the batch at the start of its term:
// every event is in the stream once, and the journal is empty.
func TestJournalReplaysWhatADeadLeaderPolled(t *testing.T) {
	h := newHarness(t)
	ctx := h.ctx()
	j := h.newJournal()
	// The dead leader: one poll, journalled, never published.
	ids, evs := h.deadLeaderPolled(5, "journalled")
	if seqs := j.record(ctx, testenv.Self, evs, h.log); len(seqs) == 0 {
		t.Fatal("not journalled")
	}
	if n := h.journalLen(); n != 1 {
		t.Fatalf("journal holds %d entries, want 1", n)
	}

	ing := h.startJournalled(j)
	for _, id := range ids {
		h.waitMsgID(id)
	}
	testenv.Eventually(t, "the journal is empty", func() bool { return h.journalLen() == 0 })
	seen := map[int64]int{}
	for _, m := range h.stream() {
		seen[m.Event.MsgID]++
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("msg_id %d stored %d times", id, seen[id])
		}
	}
	if st := ing.Stats(); st.Replayed != uint64(len(ids)) {
		t.Errorf("Replayed %d, want %d", st.Replayed, len(ids))
	}
}

// TestJournalEmptyAfterPublish: in normal operation each answer is
// journalled and deleted once published; a replay of an answer whose events
// were published already adds nothing to the stream.
func TestJournalEmptyAfterPublish(t *testing.T) {
	h := newHarness(t)
	ctx := h.ctx()
	j := h.newJournal()
	h.startJournalled(j)
	id := h.say(qqsim.Say{Kind: "friend", From: testenv.Alice, Text: "hello"})
	h.waitMsgID(id)
	testenv.Eventually(t, "the journal is empty", func() bool { return h.journalLen() == 0 })
	h.stop()

	// A dead leader's entry is replayed at the next term (a new event); the
	// same entry again (its delete was lost) adds nothing: the stream drops
	// the repeat.
	before := len(h.stream())
	id2 := h.say(qqsim.Say{Kind: "friend", From: testenv.Alice, Text: "again"})
	evs := mustPoll(t, h, 1)
	if seqs := j.record(ctx, testenv.Self, evs, h.log); len(seqs) == 0 {
		t.Fatal("not journalled")
	}
	ing := h.startJournalled(j)
	h.waitMsgID(id2)
	testenv.Eventually(t, "the journal is empty", func() bool { return h.journalLen() == 0 })
	if seqs := j.record(ctx, testenv.Self, evs, h.log); len(seqs) == 0 {
		t.Fatal("not journalled")
	}
	h.sess.endTerm() // the running term does not replay; the next one does
	testenv.Eventually(t, "the journal is empty again", func() bool { return h.journalLen() == 0 })
	if got := len(h.stream()); got != before+1 {
		t.Errorf("the stream grew by %d, want 1 (the second replay only repeats)", got-before)
	}
	if r := ing.Stats().Replayed; r != 2 {
		t.Errorf("Replayed %d, want 2", r)
	}
}

// TestJournalReadAgain: when a term begins the journal cannot be read (its
// stream is gone for a moment: no leader, a node restarting). The replay is
// tried again until the journal is back; then the dead leader's answer is
// published, and an entry that is not a poll answer is deleted instead of
// holding the replay up.
func TestJournalReadAgain(t *testing.T) {
	h := newHarness(t)
	ctx := h.ctx()
	j := h.newJournal()
	ids, evs := h.deadLeaderPolled(3, "read again")
	if err := h.js.DeleteStream(ctx, JournalStream(h.subjects)); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.LogBuffer{}
	log := zerolog.New(io.MultiWriter(zerolog.NewTestWriter(t), logs)).Level(zerolog.WarnLevel)
	ing := h.startWith(func(c *Config) { c.Journal, c.Log = j, log })
	logs.WaitFor(t, "journal not read")

	// The journal is back, with the dead leader's entry and a foreign one.
	h.newJournal()
	if _, err := h.js.Publish(ctx, JournalSubject(h.subjects, testenv.Self), []byte("not a poll answer")); err != nil {
		t.Fatal(err)
	}
	if seqs := j.record(ctx, testenv.Self, evs, h.log); len(seqs) == 0 {
		t.Fatal("not journalled")
	}
	for _, id := range ids {
		h.waitMsgID(id)
	}
	testenv.Eventually(t, "the journal is empty", func() bool { return h.journalLen() == 0 })
	if r := ing.Stats().Replayed; r != uint64(len(ids)) {
		t.Errorf("Replayed %d, want %d", r, len(ids))
	}
}

// TestJournalSplitsALargeAnswer: an answer larger than one NATS message is
// journalled in several entries, in order, and a new leader replays them
// all: every event once, in order.
func TestJournalSplitsALargeAnswer(t *testing.T) {
	h := newHarness(t)
	ctx := h.ctx()
	j := h.newJournal()
	const first, n = 900000, 5000
	answer := "[" + strings.Join(h.windowItems(first, n), ",") + "]"
	if len(answer) <= int(h.nc.MaxPayload()) {
		t.Fatalf("the answer (%d bytes) fits in one message (%d): nothing tested", len(answer), h.nc.MaxPayload())
	}
	evs, err := qqclient.DecodeEvents([]byte(answer))
	if err != nil {
		t.Fatal(err)
	}
	seqs := j.record(ctx, testenv.Self, evs, h.log)
	if len(seqs) < 2 {
		t.Fatalf("journalled in %d entries, want several", len(seqs))
	}
	if got := h.journalLen(); got != uint64(len(seqs)) {
		t.Fatalf("the journal holds %d entries, record returned %d", got, len(seqs))
	}
	ing := h.startJournalled(j)
	h.waitMsgID(first + n - 1)
	checkOnceInOrder(t, h.stream(), first, n)
	testenv.Eventually(t, "the journal is empty", func() bool { return h.journalLen() == 0 })
	if r := ing.Stats().Replayed; r != n {
		t.Errorf("Replayed %d, want %d", r, n)
	}
}

// mustPoll polls until n message items came (the simulator may split them).
func mustPoll(t testing.TB, h *harness, n int) (evs []qqclient.Event) {
	t.Helper()
	deadline := time.Now().Add(testenv.WaitTimeout)
	for len(evs) < n {
		if time.Now().After(deadline) {
			t.Fatalf("polled %d items, want %d", len(evs), n)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, err := h.c.Poll(ctx)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
		evs = append(evs, got...)
	}
	return evs
}

// TestJournalItemsDecodeAlike: a journal entry decodes to the events it was
// written from, Raw byte for byte (so that hash ids repeat), for items of
// every kind, malformed ones and odd poll types.
func TestJournalItemsDecodeAlike(t *testing.T) {
	evs, _ := testdataEvents(t)
	evs = append(evs,
		qqclient.DecodeEvent([]byte(`{"poll_type":"a\"b\\c\u0001<é>","value":{"x": [1, 2 ] }}`)),
		qqclient.DecodeEvent([]byte(`{"value":{"no":"type"}}`)),
		qqclient.DecodeEvent([]byte(`{"poll_type":"buddies_status_change","value":{ "uin" : 1, "status":"online" }}`)))
	data, err := items(evs)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(data) {
		t.Fatalf("entry is not JSON: %s", data)
	}
	back, err := qqclient.DecodeEvents(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(evs) {
		t.Fatalf("%d events back, want %d", len(back), len(evs))
	}
	for k := range evs {
		a, b := evs[k], back[k]
		if a.Type != b.Type || !bytes.Equal(a.Raw, b.Raw) || !reflect.DeepEqual(a.Message, b.Message) ||
			!reflect.DeepEqual(a.Status, b.Status) || !reflect.DeepEqual(a.Kick, b.Kick) || (a.Err == nil) != (b.Err == nil) {
			t.Errorf("item %d:\n got %+v\nwant %+v", k, b, a)
		}
	}
}

// BenchmarkJournalItems is the journal entry of a 5,000-message answer.
func BenchmarkJournalItems(b *testing.B) {
	ev, _ := benchGroupEvent(b)
	evs := make([]qqclient.Event, 5000)
	for k := range evs {
		evs[k] = ev
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := items(evs); err != nil {
			b.Fatal(err)
		}
	}
}
