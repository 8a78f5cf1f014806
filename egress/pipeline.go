package egress

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qqbridge/qqbridge/internal/retry"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

// The pipeline works one request to its outcome, in layers (middleware
// around a handler, outermost first):
//
//	heartbeat  keeps the stream message in progress and the claim fresh
//	claim      takes the idempotency claim (or answers the recorded outcome)
//	           and records the outcome
//	deliver    sends the parts one by one, retrying transient faults
//
// and deliver makes each attempt at a part in steps (steps.go):
//
//	await session → resolve target → pace → send part → record progress
//
// A step that cannot go on returns a *fault saying what becomes of the
// request: retried after a backoff, handed back (ctx ended), or finished.

// status says what became of a job.
type status int

const (
	// statusFinal: the outcome is final (sent, maybe sent, refused).
	statusFinal status = iota
	// statusRetryable: given up on a transient failure (rate_limited,
	// session_unavailable); the request may be sent again.
	statusRetryable
	// statusInterrupted: ctx ended first; the parts sent are recorded and the
	// request may be taken up again.
	statusInterrupted
)

// job is one request on its way through the pipeline.
type job struct {
	kind     schema.Kind
	req      *schema.Request
	resultID string // Result.ID: the request id, or "seq:<n>"
	key      string // idempotency record key; "" = none
	parts    [][]qqclient.Segment
	// inProgress, when set, is called at every heartbeat (msg.InProgress).
	inProgress func()
	// report, when set, publishes the outcome (the consumer's result); the
	// claim layer runs it alongside the record's final write, which it
	// waits for too. It is not called for an interrupted request.
	report    func(ctx context.Context, res schema.Result) error
	reportErr error // report's error
	reported  bool  // report was run
	claim     atomic.Pointer[claim]

	sent   int       // parts sent so far, by earlier attempts included
	giveUp time.Time // when the current retry window closes
}

func newJob(kind schema.Kind, req *schema.Request, resultID, key string) *job {
	return &job{kind: kind, req: req, resultID: resultID, key: key, parts: qqclient.Split(clientSegments(req))}
}

// handler works a job to its outcome.
type handler func(ctx context.Context, j *job) (schema.Result, status)

// middleware wraps a handler with one concern.
type middleware func(next handler) handler

// chain wraps h in mws, the first outermost.
func chain(h handler, mws ...middleware) handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

func (e *Egress) newPipeline() handler {
	return chain(e.deliver, e.withHeartbeat, e.withClaim)
}

// withHeartbeat calls j.inProgress and touches j's claim at every heartbeat
// while next runs.
func (e *Egress) withHeartbeat(next handler) handler {
	return func(ctx context.Context, j *job) (schema.Result, status) {
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			t := time.NewTicker(e.heartbeat)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
				}
				if j.inProgress != nil {
					j.inProgress()
				}
				if c := j.claim.Load(); c != nil {
					tctx, cancel := context.WithTimeout(context.Background(), e.heartbeat)
					if err := c.touch(tctx); err != nil && !errors.Is(err, errLost) {
						e.log.Debug().Err(err).Str("key", j.key).Msg("could not touch the idempotency record")
					}
					cancel()
				}
			}
		})
		defer func() { close(done); wg.Wait() }()
		return next(ctx, j)
	}
}

// withClaim takes the request's idempotency claim before next and records
// next's outcome after it. A request seen before is answered its recorded
// outcome, one whose earlier sender died mid-send maybe_sent; neither is
// sent again.
func (e *Egress) withClaim(next handler) handler {
	return func(ctx context.Context, j *job) (schema.Result, status) {
		if j.key == "" {
			return next(ctx, j)
		}
		total := len(j.parts)
		c, prior, err := e.acquire(ctx, j.key, total, func(rec record) schema.Result {
			return j.failed(schema.CodeMaybeSent, fmt.Sprintf(
				"an earlier attempt at this request stopped while sending (%d of %d parts confirmed); not resent", rec.PartsSent, total),
				0, rec.PartsSent)
		})
		if err != nil {
			return j.failed(schema.CodeSessionUnavailable, "not sent: stopped before the request could be taken ("+stopReason(ctx)+")", 0, 0), statusInterrupted
		}
		if prior != nil {
			e.log.Info().Str("key", j.key).Str("id", j.resultID).Msg("request seen before; answering its recorded outcome")
			return *prior, statusFinal
		}
		j.claim.Store(c)
		j.sent = c.partsSent()
		res, st := next(ctx, j)
		// The outcome is recorded even when ctx has ended; the result is
		// published at the same time (one round trip for both).
		var wg sync.WaitGroup
		if j.report != nil && st != statusInterrupted {
			wg.Go(func() { j.reportErr = j.report(ctx, res) })
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := c.finish(fctx, res, st != statusFinal); err != nil && !errors.Is(err, errLost) {
			e.log.Warn().Err(err).Str("key", j.key).Msg("could not record the outcome")
		}
		wg.Wait()
		j.reported = j.report != nil && st != statusInterrupted
		return res, st
	}
}

// deliver sends j's parts from j.sent on, each through the steps, retrying
// transient faults in place (never letting a later request overtake) until
// the retry window (Config.RetryFor, restarted after each part) closes.
func (e *Egress) deliver(ctx context.Context, j *job) (schema.Result, status) {
	bo := retry.Backoff(e.cfg.RetryInitial, e.cfg.RetryMax)
	j.giveUp = time.Now().Add(e.cfg.RetryFor)
	steps := e.steps()
	var last schema.ErrorCode // of the latest transient fault: the code to stop with
	for j.sent < len(j.parts) {
		var t try
		f := runSteps(ctx, j, &t, steps)
		if f == nil { // the part went out: a new retry window
			bo.Reset()
			j.giveUp, last = time.Now().Add(e.cfg.RetryFor), ""
			continue
		}
		switch f.act {
		case actEnd:
			return j.failed(f.code, f.msg, f.retcode, j.sent), statusFinal
		case actStop:
			if last != "" && f.code == schema.CodeSessionUnavailable {
				f.code = last
			}
			return j.notSent(f.code, f.msg), statusInterrupted
		}
		last = f.code
		wctx, cancel := context.WithDeadline(ctx, j.giveUp)
		err := retry.Sleep(wctx, bo.NextBackOff())
		cancel()
		switch {
		case ctx.Err() != nil:
			return j.notSent(f.code, stopReason(ctx)+" (after: "+f.msg+")"), statusInterrupted
		case err != nil:
			return j.notSent(f.code, "gave up retrying: "+f.msg), statusRetryable
		}
	}
	return schema.Result{V: schema.Version, ID: j.resultID, Kind: j.kind, OK: true, Parts: len(j.parts)}, statusFinal
}

// failed is a failed outcome of j with parts parts sent.
func (j *job) failed(code schema.ErrorCode, msg string, retcode, parts int) schema.Result {
	return failed(j.resultID, j.kind, code, msg, retcode, parts)
}

// notSent is the outcome of a request that stopped before its next part:
// a retryable code, why, and what was sent.
func (j *job) notSent(code schema.ErrorCode, why string) schema.Result {
	if j.sent == 0 {
		return j.failed(code, "not sent: "+why, 0, 0)
	}
	msg := fmt.Sprintf("%s; %d of %d parts sent", why, j.sent, len(j.parts))
	if j.req.ID != "" {
		msg += "; the same request (same id) again sends the rest"
	}
	return j.failed(code, msg, 0, j.sent)
}

// invalidResult is the invalid_request outcome of err.
func invalidResult(id string, kind schema.Kind, err error) schema.Result {
	return failed(id, kind, schema.CodeInvalidRequest, err.Error(), 0, 0)
}

func failed(id string, kind schema.Kind, code schema.ErrorCode, msg string, retcode, parts int) schema.Result {
	return schema.Result{V: schema.Version, ID: id, Kind: kind, Parts: parts,
		Error: &schema.ResultError{Code: code, Message: msg, Retcode: retcode}}
}

// stopReason says why ctx ended: its cause when one was given (the API's
// deadline says which), else whether it was cancelled or timed out.
func stopReason(ctx context.Context) string {
	switch cause := context.Cause(ctx); {
	case cause == nil:
		return "the request ended"
	case cause == context.Canceled:
		return "the bridge is stopping"
	case cause == context.DeadlineExceeded:
		return "the request's deadline passed"
	default:
		return cause.Error()
	}
}

// clientSegments converts the request's content to the client's segments.
func clientSegments(r *schema.Request) []qqclient.Segment {
	if r.Text != "" {
		return []qqclient.Segment{qqclient.TextSegment(r.Text)}
	}
	segs := make([]qqclient.Segment, 0, len(r.Segments))
	for _, s := range r.Segments {
		if s.Type == schema.SegmentFace {
			segs = append(segs, qqclient.FaceSegment(s.Face))
		} else {
			segs = append(segs, qqclient.TextSegment(s.Text))
		}
	}
	return segs
}
