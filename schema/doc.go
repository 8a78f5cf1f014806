// Package schema holds the messages that qqbridge exchanges over NATS: the
// inbound event envelope, the outbound send request and its result, the
// session state and QR messages, the subjects they travel on, and the codecs
// (JSON and msgpack) that carry them.
//
// A consumer imports schema alone to decode events and to build requests; the
// package depends on nothing but the standard library and msgpack, and knows
// nothing of NATS or of the QQ protocol. Header maps are plain
// map[string][]string values, which convert to and from nats.Header without a
// copy.
//
// The reference for consumers is docs/events.md in the repository.
package schema

// Version is the schema version carried in the "v" field of events, requests
// and results. It changes only when a message changes incompatibly; adding a
// field does not change it.
const Version = 1
