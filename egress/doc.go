// Package egress sends the messages that other services ask for: it consumes
// the send requests of stream QQ_OUT (work-queue retention, shared by the
// replicas through durable consumers), validates them, resolves their targets
// to the current login's numbers, paces the sends per account, splits long
// text into QQ messages and sends them one after another; the outcome of each
// request is published on <prefix>.result.<kind> (stream <PREFIX>_RESULT).
// Send runs the same pipeline for the synchronous API (package api).
//
// Requests come on two forms of subject (schema.Subjects): the serial
// subjects <prefix>.out.friend|group|discuss|sess, worked one at a time in
// stream order through the consumer Config.Consumer, and the target subjects
// <prefix>.out.<kind>.<key> (Subjects.OutTo, key schema.TargetKey of the
// body's target), which the stream stores in partitions by kind and key
// (bus.StreamOptions.OutPartitions) and egress works through one consumer
// per partition, each one request at a time, the partitions at once. Every
// replica pulls from every consumer and works at most Config.InFlight
// requests at once, so a second replica adds its own. A request delivered to
// a replica whose InFlight requests are all busy waits there (kept in
// progress) for its turn while its partition waits too; at most
// partitions+1 requests are worked on at once however many replicas run, so
// give the queue at least replicas × InFlight partitions.
//
// What egress needs of others is narrow: a live.Source for the sessions to
// send in, a Resolver (the directory) for the targets, a Sender (the client)
// for the parts. The files: egress.go (Config, New, Send), pipeline.go (the
// layers of a request: heartbeat, claim, deliver), steps.go (the steps of one
// attempt at a part and what their failures mean), record.go (idempotency
// records and claims), consumer.go (the stream consumers and the results).
//
// Guarantees:
//   - Order: requests to one target (as written in the request: to.group
//     and to.gid are different targets) published on the same form of
//     subject are sent one after another in stream order, across replicas
//     and failovers: each consumer has one request out at a time
//     (MaxAckPending 1), so nothing behind a request is delivered before it
//     is answered, even when its replica dies (it is redelivered after
//     AckWait first). The serial subjects keep the order of all their
//     requests, whatever the target; a target subject keeps the order of its
//     target (and of the others that share its partition). Between the two
//     forms there is no order: a target's request on the serial subject may
//     overtake one on its target subject, and the other way round. A request
//     that meets a transient failure (QQ rate limit, session reconnecting,
//     contact lists that cannot be loaded) is retried in place with backoff,
//     its message kept in progress, so nothing behind it overtakes it. After
//     Config.RetryFor without progress it is answered rate_limited or
//     session_unavailable.
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
//     its message in progress and its claim fresh every AckWait/3; so does a
//     replica for a request that waits for one of its InFlight turns.
//   - Targets of the current login only: a session number (uin, gid, did) is
//     sent to only when the current login's contacts hold it. unknown_target
//     is a finding of the directory (directory.ErrUnknownTarget), never a
//     guess from a failed lookup, which is retried.
//   - Bad input never blocks the queue: a request that cannot be decoded or
//     validated — including a target subject whose key is not the body's
//     target, or a subject with more tokens — is answered invalid_request,
//     an unknown target unknown_target, and the message is terminated.
//   - Pace: every send, on any consumer of any replica and through Send,
//     waits for the account's turn (Config.Pacer, a pace.Limiter shared by
//     the replicas); InFlight and the partitions never make an account send
//     faster than its rate.
package egress
