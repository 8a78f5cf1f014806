// Package api serves the synchronous API of the bridge: the NATS micro
// service schema.ServiceName ("qqbridge") under <prefix>.api., in queue group
// QueueGroup so that the replicas of one bridge share the requests.
//
//	send.friend|group|discuss|sess       a Request (JSON or msgpack by Content-Type) → its Result
//	contacts.friends|groups|discussions  → []schema.Contact / []schema.GroupRef / []schema.DiscussRef
//	contacts.members                     {"group":<number>} or {"gid":<gid>} → []schema.Contact
//	session.state                        → schema.SessionState
//	session.login                        {"force":bool} → schema.SessionState once a new QR login started
//
// What it needs of others is narrow: a Sender (egress) for the sends,
// Contacts (the directory) for the lists, a Session (the session manager)
// for the state and login requests.
//
// A send carries the caller's deadline (header Qq-Deadline, RFC 3339): the
// bridge starts no part of it after that instant and answers at once, error
// code 408, what was sent by then (nothing, usually). Without the header the
// deadline is Config.Timeout after arrival.
//
// Each request is handled on the goroutine micro gives it and answered
// before the handler returns, so that micro's statistics are true: errors
// (answers made with micro's error reply) are counted, and the processing
// time is the time to the answer. Requests to one endpoint are therefore
// handled one at a time, in arrival order, per replica; sends are paced per
// account anyway, across every replica when egress has a shared Pacer
// (package pace), as the bridge does.
//
// contacts.members answers a group's members in QQ's order (uin, nick,
// card, and the QQ number when the directory knows it without asking QQ:
// zero for the others); a malformed request is answered 400
// invalid_request, a group the current login does not have (an unknown
// number, a gid of an older login) 404 unknown_target, a list that could
// not be had 503 session_unavailable.
//
// The files: api.go (Config, New, Start), send.go (the send endpoints and
// the deadline), session.go (state and login), members.go (group members),
// reply.go (answers and error codes), file.go (file offers).
package api
