package ingress

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/rs/zerolog"
)

// JetStream's atomic batch publish headers (nats-server 2.12 and later).
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
)

// atomicBatchMax is the most messages in one atomic batch (the server
// takes up to 1,000 by default and stages them in memory until the
// commit).
const atomicBatchMax = 500

// publishAtomic publishes the messages of b from message from on into a
// replicated stream in atomic batches of up to atomicBatchMax messages: the
// batch's messages without waiting, the last one committing it and answered
// with one ack. The stream stores all of a batch, in order and with nothing
// of another publisher's between them, or none of it; so the order holds
// without Nats-Expected-Last-Msg-Id (which a clustered stream cannot take,
// see publishWindow). A batch that is refused (a message in it stored
// before: the stream refuses the whole batch), or whose commit is not
// answered within PublishTimeout (stored or not), is published again one
// message at a time, each acknowledged; the stream answers what it holds as
// a duplicate. It returns how many messages from from on were stored before
// the first that was not.
func (i *Ingress) publishAtomic(ctx context.Context, b *batch, from int, log zerolog.Logger) int {
	next := from
	for ctx.Err() == nil {
		start := next
		for next-start < atomicBatchMax {
			if _, ok := b.at(next); !ok {
				break
			}
			next++
		}
		if next == start {
			break
		}
		started := time.Now()
		if i.commitAtomic(ctx, b, start, next, log) {
			i.atomicBatches.Add(1)
			took := time.Since(started)
			for k := start; k < next; k++ {
				if !i.acked(ctx, b, k, false, took) {
					return k - from
				}
			}
			continue
		}
		for k := start; k < next; k++ {
			h := b.out[k].msg.Header
			delete(h, hdrBatchID)
			delete(h, hdrBatchSeq)
			delete(h, hdrBatchCommit)
		}
		if n := i.publishUpTo(ctx, b, start, next, log); start+n < next {
			return start + n - from
		}
	}
	return next - from
}

// commitAtomic publishes messages start to end (not including) of b as one
// atomic batch and reports whether the commit was acknowledged.
func (i *Ingress) commitAtomic(ctx context.Context, b *batch, start, end int, log zerolog.Logger) bool {
	id := nuid.Next()
	for k := start; k < end; k++ {
		m := b.out[k].msg
		delete(m.Header, jetstream.ExpectedLastMsgIDHeader)
		m.Header[hdrBatchID] = []string{id}
		m.Header[hdrBatchSeq] = []string{strconv.Itoa(k - start + 1)}
		if k == end-1 {
			m.Header[hdrBatchCommit] = []string{"1"}
			break
		}
		if err := i.batchConn.PublishMsg(m); err != nil {
			log.Debug().Err(err).Msg("atomic batch not sent; publishing its messages one at a time")
			return false
		}
	}
	actx, cancel := context.WithTimeout(ctx, i.cfg.PublishTimeout)
	defer cancel()
	last := b.out[end-1].msg
	ack, err := i.cfg.JS.PublishMsg(actx, last)
	if err == nil && ack.Sequence == 0 {
		err = errNoSequence
	}
	if err != nil {
		i.retries.Add(1)
		i.metrics.PublishRetry()
		log.Debug().Err(err).Int("messages", end-start).Msg("atomic batch not acknowledged; publishing its messages one at a time")
		return false
	}
	return true
}

// errNoSequence: an ack without a sequence, never a stored batch.
var errNoSequence = errors.New("ingress: the atomic batch's ack has no sequence")
