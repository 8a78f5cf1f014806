package ingress

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/schema"
)

// A message too large for one NATS message (data and headers above
// Config.MaxPayload) is published in parts: copies of the event, each with a
// contiguous piece of the segments (a long text segment is cut between two
// characters), the text of that piece, Part and Parts set, and the id
// ID + schema.PartSuffix(Part, Parts). The parts' segments in order are the
// message's segments, and their texts in order its text. When the stream
// refuses a part for its size anyway (a stream max_msg_size below the
// server's max payload), the message is split again into parts of half the
// size, down to minPartBytes. An event that is not a message and does not fit
// (a huge raw value) is published without its raw value, with Truncated set.

// minPartBytes is the smallest size parts are made for.
const minPartBytes = 8 << 10

// faceWeight is what a face segment counts for when segments are shared out
// among parts (about its encoded size in segments and in text).
const faceWeight = 32

// errTooLarge: the server or the stream refused a message for its size.
var errTooLarge = errors.New("ingress: message too large for the server or the stream")

// publishEvent publishes e on subject, in parts when it does not fit in one
// message, each message by the retry loop (publish). It returns an error only
// when ctx ended first.
func (i *Ingress) publishEvent(ctx context.Context, e *schema.Event, subject string, log zerolog.Logger) error {
	limit := i.cfg.MaxPayload
	for {
		msgs, ok := i.encodeAt(e, subject, limit, log)
		if !ok {
			return nil
		}
		var err error
		for _, msg := range msgs {
			if err = i.publish(ctx, msg, log); err != nil {
				break
			}
		}
		if !errors.Is(err, errTooLarge) {
			return err
		}
		if limit <= minPartBytes {
			i.dropped.Add(1)
			log.Error().Err(err).Str("subject", subject).Str("event_id", e.ID).
				Msg("event can never be published (too large even in the smallest parts), dropped")
			return nil
		}
		limit = max(limit/2, minPartBytes)
		log.Warn().Err(err).Str("event_id", e.ID).Int("max_bytes", limit).Msg("message refused for its size; splitting into smaller parts")
	}
}

// encodeEvent encodes e into the messages that publish it at the server's
// limit (Config.MaxPayload), or nil when it cannot be published (logged and
// counted dropped).
func (i *Ingress) encodeEvent(e *schema.Event, subject string, log zerolog.Logger) []*nats.Msg {
	msgs, _ := i.encodeAt(e, subject, i.cfg.MaxPayload, log)
	return msgs
}

// encodeAt encodes e into messages of at most limit bytes: one, or parts; an
// event that is not a message and does not fit loses its raw value
// (Truncated). ok is false when e cannot be published at all (logged and
// counted dropped).
func (i *Ingress) encodeAt(e *schema.Event, subject string, limit int, log zerolog.Logger) (msgs []*nats.Msg, ok bool) {
	for {
		msgs, err := i.encodeParts(e, subject, limit)
		if errors.Is(err, errTooLarge) && len(e.Raw) > 0 {
			log.Warn().Str("event_id", e.ID).Int("raw_bytes", len(e.Raw)).
				Msg("event too large for a message; published without its raw value (truncated)")
			e.Raw, e.Truncated = nil, true
			i.truncated.Add(1)
			continue
		}
		if errors.Is(err, errTooLarge) {
			i.dropped.Add(1)
			log.Error().Err(err).Str("subject", subject).Str("event_id", e.ID).
				Msg("event can never be published (too large, and nothing to split or leave out), dropped")
			return nil, false
		}
		if err != nil {
			i.dropped.Add(1)
			log.Error().Err(err).Str("event_id", e.ID).Msg("event not encodable, dropped")
			return nil, false
		}
		if len(msgs) > 1 && limit == i.cfg.MaxPayload {
			i.split.Add(1)
			log.Info().Str("event_id", e.ID).Int("parts", len(msgs)).Int("max_bytes", limit).
				Msg("event too large for one message; published in parts")
		}
		return msgs, true
	}
}

// encodeParts encodes e as one message, or, when that is larger than limit
// and e has segments, as parts of at most limit bytes each. An event without
// segments that does not fit is errTooLarge.
func (i *Ingress) encodeParts(e *schema.Event, subject string, limit int) ([]*nats.Msg, error) {
	one, size, err := i.encodeMsg(e, subject)
	if err != nil {
		return nil, err
	}
	if size <= limit {
		return one.list[:], nil
	}
	if len(e.Segments) == 0 {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", errTooLarge, size, limit)
	}
	n := size/(limit*3/4) + 1
	for range 12 {
		msgs := make([]*nats.Msg, 0, n)
		fits := true
		for _, p := range splitEvent(e, n) {
			msg, size, err := i.encodeMsg(p, subject)
			if err != nil {
				return nil, err
			}
			if size > limit {
				fits = false
				break
			}
			msgs = append(msgs, &msg.msg)
		}
		if fits {
			return msgs, nil
		}
		n *= 2
	}
	return nil, fmt.Errorf("ingress: event %s does not fit in parts of %d bytes", e.ID, limit)
}

// oneMsg is a message and a list of it, allocated together.
type oneMsg struct {
	msg  nats.Msg
	list [1]*nats.Msg
}

// encodeMsg encodes e into a message on subject and returns it with its size
// as the server counts it (data and headers).
func (i *Ingress) encodeMsg(e *schema.Event, subject string) (*oneMsg, int, error) {
	data, hdr, err := i.enc.Encode(e)
	if err != nil {
		return nil, 0, err
	}
	size := len(data) + len("NATS/1.0\r\n\r\n")
	for k, vs := range hdr {
		for _, v := range vs {
			size += len(k) + len(": \r\n") + len(v)
		}
	}
	m := &oneMsg{msg: nats.Msg{Subject: subject, Header: nats.Header(hdr), Data: data}}
	m.list[0] = &m.msg
	return m, size, nil
}

// splitEvent returns the parts of e for n pieces of its segments (about as
// many parts: a face is never cut).
func splitEvent(e *schema.Event, n int) []*schema.Event {
	pieces := splitSegments(e.Segments, n)
	parts := make([]*schema.Event, len(pieces))
	for k, segs := range pieces {
		p := *e
		p.ID = e.ID + schema.PartSuffix(k+1, len(pieces))
		p.Segments = segs
		p.Text = plainText(segs)
		p.Part, p.Parts = k+1, len(pieces)
		if k > 0 {
			p.Raw = nil
		}
		parts[k] = &p
	}
	return parts
}

// splitSegments shares segs out in order among about n pieces of about the
// same weight (text bytes; faceWeight a face), cutting text segments between
// two characters.
func splitSegments(segs []schema.Segment, n int) [][]schema.Segment {
	total := 0
	for _, s := range segs {
		total += weight(s)
	}
	chunk := max((total+n-1)/max(n, 1), 1)
	var pieces [][]schema.Segment
	var cur []schema.Segment
	room := chunk
	flush := func() {
		if len(cur) > 0 {
			pieces = append(pieces, cur)
		}
		cur, room = nil, chunk
	}
	for _, s := range segs {
		if s.Type != schema.SegmentText {
			if room < faceWeight && len(cur) > 0 {
				flush()
			}
			cur = append(cur, s)
			room -= faceWeight
			continue
		}
		t := s.Text
		for len(t) > room {
			cut := room
			for cut > 0 && !utf8.RuneStart(t[cut]) {
				cut--
			}
			if cut == 0 && len(cur) == 0 { // room for less than a character: take one
				_, cut = utf8.DecodeRuneInString(t)
			}
			if cut > 0 {
				cur = append(cur, schema.TextSegment(t[:cut]))
				t = t[cut:]
			}
			flush()
		}
		if len(t) > 0 || s.Text == "" {
			cur = append(cur, schema.TextSegment(t))
			room -= len(t)
		}
	}
	flush()
	return pieces
}

func weight(s schema.Segment) int {
	if s.Type == schema.SegmentText {
		return len(s.Text)
	}
	return faceWeight
}

// tooLarge reports whether a publish error says the message is larger than
// the server or the stream allows: splitting it may help, waiting cannot.
func tooLarge(err error) bool {
	if errors.Is(err, nats.ErrMaxPayload) {
		return true
	}
	var api *jetstream.APIError
	return errors.As(err, &api) && api.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum
}
