package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/internal/retry"
	"github.com/qqbridge/qqbridge/live"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

// DefaultJournalMaxAge is how long a journalled poll answer is kept: well
// inside the inbound stream's de-duplication window (bus.DefaultDuplicates,
// 20 minutes), so that a replayed event that was published already is
// always recognised as a repeat.
const DefaultJournalMaxAge = 10 * time.Minute

// Journal keeps each non-empty poll answer in JetStream from the moment it
// is received until all its events are published: one acknowledged publish
// of the answer's items (as poll2 returned them) on
// <prefix>.journal.<account> before they are normalised, and a delete once
// the batch is in the inbound stream. A replica that becomes leader first
// replays the answers left in the journal — those of a replica that died
// while it published them — so that what QQ handed to a process that died
// is lost only when the process died before the journal acknowledged it.
// The events' ids are deterministic, so the events of a replayed answer
// that were published already are dropped by the stream (Nats-Msg-Id).
type Journal struct {
	js      jetstream.JetStream
	stream  string
	subject string // <prefix>.journal
	timeout time.Duration
}

// JournalStream returns the name of the journal's stream: the inbound
// stream's name with "_JOURNAL" ("QQ_IN_JOURNAL").
func JournalStream(s schema.Subjects) string { return s.StreamIn() + "_JOURNAL" }

// JournalSubject returns the subject of the journal of account.
func JournalSubject(s schema.Subjects, account int64) string {
	return s.Prefix() + ".journal." + strconv.FormatInt(account, 10)
}

// NewJournal creates or updates the journal's stream (file storage,
// replicas as given, entries kept DefaultJournalMaxAge) and returns the
// journal.
func NewJournal(ctx context.Context, js jetstream.JetStream, s schema.Subjects, replicas int) (*Journal, error) {
	if replicas < 1 {
		replicas = 1
	}
	cfg := jetstream.StreamConfig{
		Name:        JournalStream(s),
		Description: "qqbridge poll answers not yet published (ingress journal)",
		Subjects:    []string{s.Prefix() + ".journal.>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		MaxAge:      DefaultJournalMaxAge,
		Discard:     jetstream.DiscardOld,
	}
	b := retry.Backoff(200*time.Millisecond, 5*time.Second)
	for {
		_, err := js.CreateOrUpdateStream(ctx, cfg)
		if err == nil {
			return &Journal{js: js, stream: cfg.Name, subject: s.Prefix() + ".journal", timeout: DefaultPublishTimeout}, nil
		}
		if retry.Sleep(ctx, b.NextBackOff()) != nil {
			return nil, fmt.Errorf("ingress: journal stream %s: %w", cfg.Name, err)
		}
	}
}

// items is the wire form of a batch: poll2's result items, each
// {"poll_type":…,"value":…} with the value's bytes as received (Raw, JSON by
// qqclient's contract), or the item itself when it had no poll_type. A
// replay decodes the same values, so that the events made from them get the
// same ids (a hash id is made from those bytes).
func items(evs []qqclient.Event) ([]byte, error) {
	n := 2
	for _, ev := range evs {
		n += itemSize(ev)
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for k, ev := range evs {
		if k > 0 {
			b = append(b, ',')
		}
		raw := []byte(ev.Raw)
		if len(raw) == 0 {
			raw = []byte("null")
		}
		if ev.Type == "" { // an item without poll_type: Raw is the whole item
			b = append(b, raw...)
			continue
		}
		b = append(b, `{"poll_type":`...)
		if t := string(ev.Type); plainJSONString(t) {
			b = append(append(append(b, '"'), t...), '"')
		} else {
			q, err := json.Marshal(t)
			if err != nil {
				return nil, err
			}
			b = append(b, q...)
		}
		b = append(b, `,"value":`...)
		b = append(b, raw...)
		b = append(b, '}')
	}
	return append(b, ']'), nil
}

// plainJSONString reports whether s is written in JSON as it is, quoted:
// printable ASCII without '"' and '\\'.
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// entryHeadroom is what an entry leaves of the server's maximum payload
// for the message's headers and the subject.
const entryHeadroom = 4 << 10

// record journals a batch of account and returns the sequences of its
// entries in the journal's stream: one entry, or several in order when the
// answer does not fit in one message (each entry is replayed as a batch of
// its own). Each publish is retried until acknowledged or ctx ends. When an
// entry cannot be journalled (ctx ended, an item larger than a message),
// the entries before it are returned, and the rest of the batch is
// published unjournalled.
func (j *Journal) record(ctx context.Context, account int64, evs []qqclient.Event, log zerolog.Logger) []uint64 {
	subject := j.subject + "." + strconv.FormatInt(account, 10)
	limit := j.maxEntry()
	var seqs []uint64
	for start := 0; start < len(evs); {
		end, size := start, 2
		for end < len(evs) && (end == start || size+itemSize(evs[end]) <= limit) {
			size += itemSize(evs[end])
			end++
		}
		data, err := items(evs[start:end])
		if err == nil && len(data) > limit {
			err = fmt.Errorf("%w: item %d alone is %d bytes", nats.ErrMaxPayload, start, len(data))
		}
		if err != nil {
			log.Warn().Err(err).Int("items", len(evs)-start).Msg("poll answer not journalled from here; publishing the rest unjournalled")
			return seqs
		}
		seq := j.publish(ctx, subject, data)
		if seq == 0 {
			log.Warn().Int("items", len(evs)-start).Msg("poll answer not journalled from here (stopping); publishing the rest unjournalled")
			return seqs
		}
		seqs = append(seqs, seq)
		start = end
	}
	return seqs
}

// publish stores one entry, retrying until acknowledged or ctx ends (0
// then).
func (j *Journal) publish(ctx context.Context, subject string, data []byte) uint64 {
	b := retry.Backoff(50*time.Millisecond, time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, j.timeout)
		ack, err := j.js.Publish(actx, subject, data)
		cancel()
		if err == nil {
			return ack.Sequence
		}
		if errors.Is(err, nats.ErrMaxPayload) || retry.Sleep(ctx, b.NextBackOff()) != nil {
			return 0
		}
	}
}

// maxEntry is the largest entry the journal writes: the server's maximum
// payload (1 MiB when not known) less entryHeadroom.
func (j *Journal) maxEntry() int {
	max := int64(1 << 20)
	if nc := j.js.Conn(); nc != nil && nc.MaxPayload() > 0 {
		max = nc.MaxPayload()
	}
	return int(max) - entryHeadroom
}

// itemSize is at least the bytes items writes for ev, its comma included.
func itemSize(ev qqclient.Event) int {
	n := max(len(ev.Raw), len("null")) + 1
	if ev.Type != "" {
		n += len(`{"poll_type":"","value":}`) + 6*len(ev.Type) // every byte escaped at worst
	}
	return n
}

// done deletes the journal entries of a batch whose events are all
// published. A delete that fails leaves the entry for the next leader, whose
// replay publishes only repeats.
func (j *Journal) done(ctx context.Context, seqs []uint64, log zerolog.Logger) {
	if len(seqs) == 0 {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), j.timeout)
	defer cancel()
	st, err := j.js.Stream(dctx, j.stream)
	if err != nil {
		log.Warn().Err(err).Uints64("journal_seq", seqs).Msg("journal entries not deleted; the next leader replays them (repeats only)")
		return
	}
	for _, seq := range seqs {
		if err := st.DeleteMsg(dctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			log.Warn().Err(err).Uint64("journal_seq", seq).Msg("journal entry not deleted; the next leader replays it (repeats only)")
		}
	}
}

// pending returns the journalled batches of account, oldest first, with
// their sequences.
func (j *Journal) pending(ctx context.Context, account int64) ([]uint64, [][]qqclient.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := j.js.Stream(ctx, j.stream)
	if err != nil {
		return nil, nil, err
	}
	subject := j.subject + "." + strconv.FormatInt(account, 10)
	count := func() (uint64, error) {
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
		if err != nil {
			return 0, err
		}
		var n uint64
		for _, c := range info.State.Subjects {
			n += c
		}
		return n, nil
	}
	n, err := count()
	if err != nil {
		return nil, nil, err
	}
	if n == 0 {
		return nil, nil, nil
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return nil, nil, err
	}
	var seqs []uint64
	var batches [][]qqclient.Event
	for uint64(len(seqs)) < n {
		m, err := c.Next(jetstream.FetchMaxWait(2 * time.Second))
		if err != nil {
			if errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoMessages) {
				// Deleted meanwhile, or not delivered in time: only the
				// first may end the read.
				if left, cerr := count(); cerr == nil && left <= uint64(len(seqs)) {
					break
				}
				return seqs, batches, fmt.Errorf("journal: %d of %d entries read: %w", len(seqs), n, err)
			}
			return seqs, batches, err
		}
		md, err := m.Metadata()
		if err != nil {
			return seqs, batches, err
		}
		evs, err := qqclient.DecodeEvents(m.Data())
		if err != nil {
			evs = nil // not an array, never written by record: replayed as nothing, then deleted
		}
		seqs = append(seqs, md.Sequence.Stream)
		batches = append(batches, evs)
		if md.NumPending == 0 {
			break
		}
	}
	return seqs, batches, nil
}

// journalRetryFor is how long a term's first replay is tried again before
// the first poll; after that it is tried again before each poll.
const journalRetryFor = 15 * time.Second

// replayJournalFirst replays the journal when a term begins, before the
// first poll, trying again for journalRetryFor when the journal cannot be
// read (the journal's stream without a leader for a moment): the replayed
// answers come before anything polled later. It reports whether the replay
// is done; when it is not, pollSession tries again before each poll, so
// that nothing journalled is left behind while the term lasts.
func (i *Ingress) replayJournalFirst(ctx context.Context, s live.Session, log zerolog.Logger) bool {
	b := retry.Backoff(200*time.Millisecond, 2*time.Second)
	for end := time.Now().Add(journalRetryFor); ; {
		if i.replayJournal(ctx, s, log) {
			return true
		}
		if time.Now().After(end) || retry.Sleep(s.Context(), b.NextBackOff()) != nil || ctx.Err() != nil {
			return false
		}
	}
}

// replayJournal publishes the journalled batches of s's account, then
// deletes them, and reports whether it read the journal and published all
// it held (true without a journal).
func (i *Ingress) replayJournal(ctx context.Context, s live.Session, log zerolog.Logger) bool {
	j := i.cfg.Journal
	if j == nil {
		return true
	}
	seqs, batches, err := j.pending(s.Context(), s.Account)
	if err != nil {
		if s.Err() == nil && ctx.Err() == nil {
			log.Warn().Err(err).Int("read", len(batches)).Msg("journal not read; trying again before the next poll")
		}
		return false
	}
	for k, evs := range batches {
		before := i.published.Load()
		if err := i.publishBatch(ctx, s, evs, log); err != nil {
			log.Warn().Err(err).Msg("journal replay stopped")
			return false
		}
		j.done(ctx, seqs[k:k+1], log)
		i.replayed.Add(uint64(len(evs)))
		log.Info().Int("items", len(evs)).Uint64("new", i.published.Load()-before).Uint64("journal_seq", seqs[k]).
			Msg("replayed a poll answer a previous leader journalled and did not finish")
	}
	return true
}

// journalRecord journals a batch before it is published and returns its
// entries (none: not journalled).
func (i *Ingress) journalRecord(ctx context.Context, s live.Session, evs []qqclient.Event, log zerolog.Logger) []uint64 {
	if i.cfg.Journal == nil || len(evs) == 0 {
		return nil
	}
	return i.cfg.Journal.record(ctx, s.Account, evs, log)
}

// journalDone forgets a batch once it is published.
func (i *Ingress) journalDone(ctx context.Context, seqs []uint64, log zerolog.Logger) {
	if i.cfg.Journal != nil {
		i.cfg.Journal.done(ctx, seqs, log)
	}
}
