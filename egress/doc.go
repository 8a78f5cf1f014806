// Package egress sends the messages that other services ask for: it consumes
// the send requests of stream QQ_OUT (subjects <prefix>.out.friend|group|
// discuss|sess, work-queue retention, shared by the replicas through one
// durable consumer), validates them, resolves stable targets to the current
// session's numbers, paces the sends per account, splits long text into QQ
// messages and sends them one after another; the outcome of each request is
// published on <prefix>.result.<kind> (stream <PREFIX>_RESULT). The same
// pipeline serves the synchronous NATS micro service "qqbridge" under
// <prefix>.api. (Egress.Service): sends with the outcome as the reply, the
// contact lists, the session state and login requests.
//
// Guarantees:
//   - Order: requests are sent one at a time in stream order; a request that
//     meets a transient failure (QQ rate limit, session reconnecting) is
//     retried in place with backoff, its message kept in progress, so nothing
//     overtakes it. After Config.RetryFor without progress it is answered
//     rate_limited or session_unavailable.
//   - At most once: a request with an id is sent at most once per id, across
//     replicas and restarts, for the life of its record in the SentKV bucket
//     (24 h); a repeat is answered with the first outcome. A request without
//     an id is tracked by its stream sequence, so a redelivery after a crash
//     is recognised. Progress is recorded per part: a retry continues with the
//     next part, never resends an earlier one. A send that was in flight when
//     its worker died is answered maybe_sent, never resent; so is QQ's 1202.
//   - Bad input never blocks the queue: a request that cannot be decoded or
//     validated is answered invalid_request, an unknown target
//     unknown_target, and the message is terminated.
package egress
