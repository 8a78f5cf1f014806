package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/qqbridge/qqbridge/directory"
	"github.com/qqbridge/qqbridge/internal/retry"
	"github.com/qqbridge/qqbridge/live"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

// try is one attempt at sending j's next part: what the steps found so far.
type try struct {
	sess   live.Session
	target qqclient.Target
}

// step does one thing of an attempt; a fault stops the attempt.
type step func(ctx context.Context, j *job, t *try) *fault

// steps are the steps of one attempt at a part, in order.
func (e *Egress) steps() []step {
	return []step{e.awaitSession, e.resolveTarget, e.pace, e.sendPart, e.recordProgress}
}

func runSteps(ctx context.Context, j *job, t *try, steps []step) *fault {
	for _, s := range steps {
		if f := s(ctx, j, t); f != nil {
			return f
		}
	}
	return nil
}

// action is what becomes of a request after a fault.
type action int

const (
	actRetry action = iota // transient: back off, try the part again while the retry window lasts
	actStop                // ctx ended: hand the request back, its progress recorded
	actEnd                 // final: answer code
)

// fault is why an attempt stopped. code is the outcome's code: final for
// actEnd, the one to give up with for actRetry and actStop.
type fault struct {
	act     action
	code    schema.ErrorCode
	msg     string
	retcode int
}

func retryFault(code schema.ErrorCode, format string, args ...any) *fault {
	return &fault{act: actRetry, code: code, msg: fmt.Sprintf(format, args...)}
}

func stopFault(ctx context.Context) *fault {
	return &fault{act: actStop, code: schema.CodeSessionUnavailable, msg: stopReason(ctx)}
}

func endFault(code schema.ErrorCode, retcode int, format string, args ...any) *fault {
	return &fault{act: actEnd, code: code, msg: fmt.Sprintf(format, args...), retcode: retcode}
}

// awaitSession waits for a live session, within ctx and the retry window.
func (e *Egress) awaitSession(ctx context.Context, j *job, t *try) *fault {
	wctx, cancel := context.WithDeadline(ctx, j.giveUp)
	defer cancel()
	s, err := e.cfg.Sessions.Await(wctx)
	switch {
	case ctx.Err() != nil:
		return stopFault(ctx)
	case err != nil:
		return retryFault(schema.CodeSessionUnavailable, "no QQ session")
	}
	t.sess = s
	return nil
}

// resolveTarget asks the directory for the target's numbers in the current
// login. Only directory.ErrUnknownTarget ends the request; anything else is
// retried.
func (e *Egress) resolveTarget(ctx context.Context, j *job, t *try) *fault {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(t.sess.Context(), cancel)()
	target, err := e.cfg.Dir.Resolve(rctx, j.kind, j.req.To)
	switch {
	case err == nil:
		t.target = target
		return nil
	case errors.Is(err, directory.ErrUnknownTarget):
		return endFault(schema.CodeUnknownTarget, 0, "%s", err)
	case ctx.Err() != nil:
		return stopFault(ctx)
	case errors.Is(err, qqclient.ErrSessionLost):
		t.sess.Lost(err)
		return retryFault(schema.CodeSessionUnavailable, "the session was lost while resolving the target")
	case errors.Is(err, qqclient.ErrRateLimited):
		return retryFault(schema.CodeRateLimited, "rate limited while resolving the target")
	case t.sess.Err() != nil:
		return retryFault(schema.CodeSessionUnavailable, "the session ended while resolving the target")
	}
	e.log.Warn().Err(err).Str("kind", string(j.kind)).Str("id", j.resultID).Msg("resolving the target failed; retrying")
	return retryFault(schema.CodeSessionUnavailable, "the target could not be resolved: %v", err)
}

// pace waits for the account's turn. When ctx ends first, the turn is given
// back.
func (e *Egress) pace(ctx context.Context, _ *job, t *try) *fault {
	if p := e.cfg.Pacer; p != nil {
		d, err := p.Wait(ctx, t.sess.Account)
		if err != nil {
			if ctx.Err() == nil { // never: a Pacer fails only when ctx ends
				return retryFault(schema.CodeRateLimited, "pacing: %v", err)
			}
			return stopFault(ctx)
		}
		e.cfg.Metrics.PacingWait(d)
		return nil
	}
	r := e.pacer(t.sess.Account).Reserve()
	d := r.Delay()
	if err := retry.Sleep(ctx, d); err != nil {
		r.Cancel()
		return stopFault(ctx)
	}
	e.cfg.Metrics.PacingWait(d)
	return nil
}

// sendPart sends the next part in the session's term. It is not started
// after ctx or the term ended; once started it is not cut short by ctx (a
// send interrupted in flight could not be told from a sent one), only by the
// end of the term.
func (e *Egress) sendPart(ctx context.Context, j *job, t *try) *fault {
	if ctx.Err() != nil {
		return stopFault(ctx)
	}
	if t.sess.Err() != nil { // a new session: the target must be resolved again
		return retryFault(schema.CodeSessionUnavailable, "the session ended before the send")
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	defer context.AfterFunc(t.sess.Context(), cancel)()
	err := e.cfg.Client.SendPart(sctx, t.target, j.parts[j.sent])
	if err == nil {
		j.sent++
		return nil
	}
	log := e.log.With().Str("kind", string(j.kind)).Str("id", j.resultID).Int("part", j.sent+1).Int("parts", len(j.parts)).Logger()
	switch classify(err) {
	case failMaybe:
		log.Warn().Err(err).Msg("message maybe sent; not resending")
		return endFault(schema.CodeMaybeSent, retcodeOf(err),
			"part %d of %d may or may not have been delivered (%s); not resent", j.sent+1, len(j.parts), err)
	case failQQ:
		log.Warn().Err(err).Msg("QQ refused the message")
		return endFault(schema.CodeQQError, retcodeOf(err), "part %d of %d: %s", j.sent+1, len(j.parts), err)
	case failRate:
		log.Info().Err(err).Msg("rate limited; retrying")
		return retryFault(schema.CodeRateLimited, "%s", err)
	case failSession:
		t.sess.Lost(err)
		log.Info().Err(err).Msg("session lost; retrying in the next")
		return retryFault(schema.CodeSessionUnavailable, "%s", err)
	default: // failOffline, failTransport
		log.Info().Err(err).Msg("transient send failure; retrying")
		return retryFault(schema.CodeSessionUnavailable, "%s", err)
	}
}

// recordProgress records the part just sent in the claim. Another worker
// that took the request over ends it (maybe_sent: the parts it may have sent
// are unknown here); a record that could not be written is left to the next
// write of the claim, which carries the same progress.
func (e *Egress) recordProgress(ctx context.Context, j *job, _ *try) *fault {
	c := j.claim.Load()
	if c == nil || j.sent == len(j.parts) {
		// After the last part the outcome is written next (finish): a
		// progress write would add a round trip and nothing else. A crash
		// in between is answered maybe_sent, as one during the send.
		return nil
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := c.progress(pctx, j.sent)
	switch {
	case errors.Is(err, errLost):
		e.log.Warn().Str("id", j.resultID).Int("parts_sent", j.sent).Msg("another worker took this request over; stopping")
		return endFault(schema.CodeMaybeSent, 0, "another worker took the request over after %d of %d parts; not continued", j.sent, len(j.parts))
	case err != nil:
		e.log.Warn().Err(err).Str("id", j.resultID).Msg("could not record progress")
	}
	return nil
}

// failure classifies an error of SendPart.
type failure int

const (
	failRate      failure = iota // QQ said too fast: back off, retry
	failSession                  // session gone: report, wait for the next, retry
	failOffline                  // no session yet: wait for one, retry
	failTransport                // the request did not reach QQ: back off, retry
	failMaybe                    // QQ may have delivered it: never resend
	failQQ                       // QQ (or the client, before sending) refused it: final
)

// classify tells what a SendPart error means. An error it does not know is
// failMaybe: the request may have left.
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
	case errors.As(err, &rc), errors.Is(err, qqclient.ErrBadRequest), errors.Is(err, qqclient.ErrTooLong):
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
	}
	return failMaybe // ErrProtocol (an answer nobody understands), a cancelled request, …
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// retcodeOf returns the retcode an error carries, or 0.
func retcodeOf(err error) int {
	var rc *qqclient.RetcodeError
	if errors.As(err, &rc) {
		return rc.Retcode
	}
	return 0
}
