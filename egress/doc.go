// Package egress sends the messages that other services ask for: it consumes
// the send requests of stream QQ_OUT (subjects <prefix>.out.friend|group|
// discuss|sess, work-queue retention, shared by the replicas through one
// durable consumer), validates them, resolves their targets to the current
// login's numbers, paces the sends per account, splits long text into QQ
// messages and sends them one after another; the outcome of each request is
// published on <prefix>.result.<kind> (stream <PREFIX>_RESULT). Send runs
// the same pipeline for the synchronous API (package api).
//
// What egress needs of others is narrow: a live.Source for the sessions to
// send in, a Resolver (the directory) for the targets, a Sender (the client)
// for the parts. The files: egress.go (Config, New, Send), pipeline.go (the
// layers of a request: heartbeat, claim, deliver), steps.go (the steps of one
// attempt at a part and what their failures mean), record.go (idempotency
// records and claims), consumer.go (the stream consumer and the results).
//
// Guarantees:
//   - Order: with Config.InFlight 1 (the default) requests are sent one at
//     a time in stream order, across replicas; with InFlight n above 1 up to
//     n requests are worked on at once by the one replica the consumer is
//     pinned to, and requests to one target (as written in the request:
//     to.group and to.gid are different targets) are sent one after another
//     in stream order. A request that meets a transient failure (QQ rate
//     limit, session reconnecting, contact lists that cannot be loaded) is
//     retried in place with backoff, its message kept in progress, so
//     nothing to its target overtakes it. After Config.RetryFor without
//     progress it is answered rate_limited or session_unavailable. One
//     limit of InFlight above 1: when the pinned replica dies, the
//     requests it held are redelivered after AckWait (10 s), and a newer
//     request to the same target that the next replica took meanwhile may
//     have gone first; with InFlight 1 nothing is delivered before them.
//   - At most once: a request with an id is sent at most once per id, across
//     replicas and restarts, for the life of its record in the SentKV bucket
//     (24 h); a repeat is answered with the first outcome. A request without
//     an id is tracked by its stream sequence, so a redelivery after a crash
//     is recognised. Progress is recorded per part: a retry continues with the
//     next part, never resends an earlier one. A send that was in flight when
//     its worker died is answered maybe_sent, never resent; so is QQ's 1202.
//   - Failover: a request held by a replica that dies is redelivered at
//     most Config.AckWait (10 s) after the death and taken up at once by
//     another: sent, or answered maybe_sent when its claim shows it was
//     being sent (the claim, untouched since the death, is stale by then:
//     StaleAfter defaults to AckWait). A live sender, however slow, keeps
//     its message in progress and its claim fresh every AckWait/3.
//   - Targets of the current login only: a session number (uin, gid, did) is
//     sent to only when the current login's contacts hold it. unknown_target
//     is a finding of the directory (directory.ErrUnknownTarget), never a
//     guess from a failed lookup, which is retried.
//   - Bad input never blocks the queue: a request that cannot be decoded or
//     validated is answered invalid_request, an unknown target
//     unknown_target, and the message is terminated.
package egress
