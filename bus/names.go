package bus

// Internal names the bridge's components share and schema does not publish
// (the public ones — streams, the session bucket, its keys "state" and "qr",
// the subjects — are schema.Subjects' and schema's). With SentBucket,
// LeaderBucket and LeaderKey they are every internal name of the bridge's
// NATS resources.
const (
	// SessionKeySaved is the key of the session bucket that holds the saved
	// login (encrypted with the session key when one is set).
	SessionKeySaved = "session"
	// SessionKeyLogin is the key of the session bucket through which a
	// follower replica forwards a login request to the leader.
	SessionKeyLogin = "login"
	// EgressConsumer is the durable name of the egress pull consumer on the
	// outbound stream (schema.Subjects.StreamOut), shared by every replica.
	EgressConsumer = "bridge-egress"
)
