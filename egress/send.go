package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

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
	// inProgress, when set, is called at every heartbeat (msg.InProgress).
	inProgress func()
	claim      atomic.Pointer[claim]
}

// Send validates req as a request of kind and sends it: the one pipeline of
// the consumer and the API. A request with an id is sent at most once per id
// (across replicas and restarts, for 24 hours): a repeat gets the first
// outcome. It returns when the outcome is known, or when ctx ends first — the
// result is then rate_limited or session_unavailable and the parts not sent
// yet are sent by a later request with the same id.
func (e *Egress) Send(ctx context.Context, kind schema.Kind, req *schema.Request) schema.Result {
	if err := req.Validate(kind); err != nil {
		id := ""
		if req != nil {
			id = req.ID
		}
		return invalidResult(id, kind, err)
	}
	j := &job{kind: kind, req: req, resultID: req.ID}
	if req.ID != "" {
		j.key = idKey(req.ID)
	}
	res, _ := e.run(ctx, j)
	return res
}

// invalidResult is the invalid_request outcome of err.
func invalidResult(id string, kind schema.Kind, err error) schema.Result {
	return failed(id, kind, schema.CodeInvalidRequest, err.Error(), 0, 0)
}

func failed(id string, kind schema.Kind, code schema.ErrorCode, msg string, retcode, parts int) schema.Result {
	return schema.Result{V: schema.Version, ID: id, Kind: kind, Parts: parts,
		Error: &schema.ResultError{Code: code, Message: msg, Retcode: retcode}}
}

// run takes the request's idempotency claim, sends what is left of it and
// records the outcome.
func (e *Egress) run(ctx context.Context, j *job) (schema.Result, status) {
	parts := qqclient.Split(clientSegments(j.req))
	stop := e.keepAlive(j)
	defer stop()

	start := 0
	var c *claim
	if j.key != "" {
		var prior *schema.Result
		var err error
		c, prior, err = e.acquire(ctx, j.key, len(parts), func(rec record) schema.Result {
			return failed(j.resultID, j.kind, schema.CodeMaybeSent, fmt.Sprintf(
				"an earlier attempt at this request stopped while sending (%d of %d parts confirmed); not resent", rec.PartsSent, len(parts)),
				0, rec.PartsSent)
		})
		if err != nil {
			return failed(j.resultID, j.kind, schema.CodeSessionUnavailable, "stopped before the request could be taken: "+err.Error(), 0, 0), statusInterrupted
		}
		if prior != nil {
			e.log.Info().Str("key", j.key).Str("id", j.resultID).Msg("request seen before; answering its recorded outcome")
			return *prior, statusFinal
		}
		j.claim.Store(c)
		start = c.partsSent()
	}
	res, st := e.deliver(ctx, j, parts, start, c)
	if c != nil {
		// The outcome is recorded even when ctx has ended.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err := c.finish(fctx, res, st != statusFinal)
		cancel()
		if err != nil && !errors.Is(err, errLost) {
			e.log.Warn().Err(err).Str("key", j.key).Msg("could not record the outcome")
		}
	}
	return res, st
}

// keepAlive calls j.inProgress and touches j's claim at every heartbeat until
// stop is called.
func (e *Egress) keepAlive(j *job) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
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
				ctx, cancel := context.WithTimeout(context.Background(), e.heartbeat)
				if err := c.touch(ctx); err != nil && !errors.Is(err, errLost) {
					e.log.Debug().Err(err).Str("key", j.key).Msg("could not touch the idempotency record")
				}
				cancel()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
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

// failure classifies an error of a send or a resolution.
type failure int

const (
	failRate      failure = iota // QQ said too fast: back off, retry
	failSession                  // session gone: report, wait for the next, retry
	failOffline                  // no session yet: wait for one, retry
	failTransport                // the request did not reach QQ: back off, retry
	failMaybe                    // QQ may have delivered it: never resend
	failQQ                       // QQ refused it: final
)

// classify tells what a SendPart error means for the pipeline.
func classify(err error) failure {
	var rc *qqclient.RetcodeError
	var he *qqclient.HTTPError
	switch {
	case errors.Is(err, qqclient.ErrMaybeSent):
		return failMaybe
	case errors.Is(err, qqclient.ErrRateLimited):
		return failRate
	case errors.Is(err, qqclient.ErrSessionLost):
		return failSession
	case errors.Is(err, qqclient.ErrNotLoggedIn):
		return failOffline
	case errors.As(err, &rc):
		return failQQ
	case errors.As(err, &he):
		switch he.StatusCode {
		case 502, 503, 504: // a gateway answered: QQ never saw it
			return failTransport
		case 0:
			if isDialError(err) {
				return failTransport
			}
			return failMaybe // the request may have left: timeout, reset
		}
		return failQQ
	case errors.Is(err, qqclient.ErrProtocol):
		return failMaybe // an answer nobody understands: it may have been sent
	}
	return failQQ
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// transientResolve reports whether a resolver error is worth retrying (as
// opposed to an unknown target).
func transientResolve(err error) bool {
	return errors.Is(err, qqclient.ErrSessionLost) || errors.Is(err, qqclient.ErrRateLimited) ||
		errors.Is(err, qqclient.ErrHTTP) || errors.Is(err, qqclient.ErrNotLoggedIn)
}

// unknownTargetError is a target the directory does not know; its text is
// the result's message.
type unknownTargetError struct{ msg string }

func (e *unknownTargetError) Error() string { return e.msg }

func unknownTarget(format string, args ...any) error {
	return &unknownTargetError{msg: fmt.Sprintf(format, args...)}
}

// resolve turns the request's target into the current session's numbers.
func (e *Egress) resolve(ctx context.Context, kind schema.Kind, to schema.Target) (qqclient.Target, error) {
	dir := e.cfg.Dir
	var t qqclient.Target
	var err error
	switch kind {
	case schema.KindFriend:
		t.Kind = qqclient.TargetFriend
		t.UIN, err = e.lookup("to.qq", to.UIN, to.QQ, func() (int64, error) { return dir.FriendUIN(ctx, to.QQ) })
	case schema.KindGroup:
		t.Kind = qqclient.TargetGroup
		t.UIN, err = e.lookup("to.group", to.GID, to.Group, func() (int64, error) { return dir.GroupGID(ctx, to.Group) })
	case schema.KindDiscuss:
		t.Kind, t.UIN = qqclient.TargetDiscuss, to.DID
	case schema.KindSess:
		t.Kind = qqclient.TargetSess
		t.GroupUIN, err = e.lookup("to.group", to.GID, to.Group, func() (int64, error) { return dir.GroupGID(ctx, to.Group) })
		if err == nil {
			t.UIN, err = e.lookup("to.qq", to.UIN, to.QQ, func() (int64, error) { return dir.MemberUIN(ctx, t.GroupUIN, to.QQ) })
		}
	default:
		err = unknownTarget("kind %q cannot be sent to", kind)
	}
	return t, err
}

// lookup returns the session number of one role of a target: the one given
// (session), else the stable number resolved by find.
func (e *Egress) lookup(field string, session, stable int64, find func() (int64, error)) (int64, error) {
	if session != 0 {
		return session, nil
	}
	if e.cfg.Dir == nil {
		return 0, unknownTarget("%s %d: no directory to resolve stable numbers", field, stable)
	}
	n, err := find()
	if err != nil {
		return 0, targetError(field, stable, err)
	}
	return n, nil
}

// targetError wraps a resolver error: transient ones as they are, the rest as
// an unknownTargetError.
func targetError(field string, n int64, err error) error {
	if transientResolve(err) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return unknownTarget("%s %d: %v", field, n, err)
}

// deliver sends parts[start:], pacing each, retrying transient failures in
// place (never letting a later request overtake), and returns the outcome.
func (e *Egress) deliver(ctx context.Context, j *job, parts [][]qqclient.Segment, start int, c *claim) (schema.Result, status) {
	total := len(parts)
	sent := start
	log := e.log.With().Str("kind", string(j.kind)).Str("id", j.resultID).Logger()
	bo := e.newBackoff()
	giveUp := time.Now().Add(e.cfg.RetryFor)
	last := failOffline // the latest transient failure, for the give-up code

	// retryable builds the outcome of giving up (or of ctx ending).
	retryable := func(st status, why string) (schema.Result, status) {
		code := schema.CodeSessionUnavailable
		if last == failRate {
			code = schema.CodeRateLimited
		}
		msg := fmt.Sprintf("%s; %d of %d parts sent", why, sent, total)
		if j.req.ID != "" && sent > 0 {
			msg += "; the same request (same id) again sends the rest"
		}
		return failed(j.resultID, j.kind, code, msg, 0, sent), st
	}
	// wait runs fn under ctx bounded by the give-up time; it tells whether
	// ctx ended (interrupted) or the give-up time passed (gaveUp).
	wait := func(fn func(context.Context) error) (interrupted, gaveUp bool) {
		wctx, cancel := context.WithDeadline(ctx, giveUp)
		defer cancel()
		if err := fn(wctx); err != nil {
			if ctx.Err() != nil {
				return true, false
			}
			return false, true
		}
		return false, false
	}
	const stopping = "the request ended (timed out, or the bridge is stopping) before it was sent"
	const gaveUpWhy = "gave up retrying"
	// retryAfter backs off after the transient failure err; stop is true
	// when the request must end instead of trying again.
	retryAfter := func(err error) (res schema.Result, st status, stop bool) {
		d := bo.NextBackOff()
		in, g := wait(func(ctx context.Context) error { return sleepCtx(ctx, d) })
		switch {
		case in:
			res, st = retryable(statusInterrupted, stopping)
			return res, st, true
		case g:
			res, st = retryable(statusRetryable, gaveUpWhy+" ("+err.Error()+")")
			return res, st, true
		}
		return res, st, false
	}

	for sent < total {
		var on Online
		if in, g := wait(func(ctx context.Context) (err error) { on, err = e.cfg.Session.WaitOnline(ctx); return err }); in || g {
			if in {
				return retryable(statusInterrupted, stopping)
			}
			last = failOffline
			return retryable(statusRetryable, gaveUpWhy+": no QQ session")
		}
		target, err := e.resolve(ctx, j.kind, j.req.To)
		var unknown *unknownTargetError
		if errors.As(err, &unknown) {
			return failed(j.resultID, j.kind, schema.CodeUnknownTarget, err.Error(), 0, sent), statusFinal
		}
		if err != nil {
			if ctx.Err() != nil {
				return retryable(statusInterrupted, stopping)
			}
			log.Warn().Err(err).Msg("resolving the target failed; retrying")
			last = failOffline
			if errors.Is(err, qqclient.ErrRateLimited) {
				last = failRate
			}
			if errors.Is(err, qqclient.ErrSessionLost) {
				e.cfg.Session.ReportLost(on.Gen, err)
			}
			if res, st, stop := retryAfter(err); stop {
				return res, st
			}
			continue
		}
		pacer := e.pacer(on.Account)
		if err := pacer.Wait(ctx); err != nil {
			return retryable(statusInterrupted, stopping)
		}
		// The part itself is not cut short by ctx: a send interrupted in
		// flight could not be told from a sent one.
		sctx := context.WithoutCancel(ctx)
		err = e.cfg.Client.SendPart(sctx, target, parts[sent])
		if err == nil {
			sent++
			bo.Reset()
			giveUp = time.Now().Add(e.cfg.RetryFor)
			if c != nil {
				pctx, cancel := context.WithTimeout(sctx, 5*time.Second)
				perr := c.progress(pctx, sent)
				cancel()
				if errors.Is(perr, errLost) {
					log.Warn().Int("parts_sent", sent).Msg("another worker took this request over; stopping")
					return failed(j.resultID, j.kind, schema.CodeMaybeSent,
						fmt.Sprintf("another worker took the request over after %d of %d parts; not continued", sent, total), 0, sent), statusFinal
				}
				if perr != nil {
					log.Warn().Err(perr).Msg("could not record progress")
				}
			}
			continue
		}
		switch f := classify(err); f {
		case failMaybe:
			log.Warn().Err(err).Int("part", sent+1).Int("parts", total).Msg("message maybe sent; not resending")
			return failed(j.resultID, j.kind, schema.CodeMaybeSent, fmt.Sprintf(
				"part %d of %d may or may not have been delivered (%s); not resent", sent+1, total, err), retcodeOf(err), sent), statusFinal
		case failQQ:
			log.Warn().Err(err).Int("part", sent+1).Msg("QQ refused the message")
			return failed(j.resultID, j.kind, schema.CodeQQError, fmt.Sprintf(
				"part %d of %d: %s", sent+1, total, err), retcodeOf(err), sent), statusFinal
		default:
			last = f
			if f == failSession {
				e.cfg.Session.ReportLost(on.Gen, err)
			}
			log.Info().Err(err).Int("part", sent+1).Msg("transient send failure; retrying")
			if res, st, stop := retryAfter(err); stop {
				return res, st
			}
		}
	}
	return schema.Result{V: schema.Version, ID: j.resultID, Kind: j.kind, OK: true, Parts: total}, statusFinal
}

// retcodeOf returns the retcode an error carries, or 0.
func retcodeOf(err error) int {
	var rc *qqclient.RetcodeError
	if errors.As(err, &rc) {
		return rc.Retcode
	}
	return 0
}
