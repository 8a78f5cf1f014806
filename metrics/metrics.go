// Package metrics defines qqbridge's Prometheus metrics and serves them on
// /metrics in the standard exposition format.
//
// Every metric is named qqbridge_… and carries the label prefix: the subject
// prefix of the QQ account it is about. A *Metrics is the metrics of one
// account. A bridge serving one account can use New; a bridge serving many
// (bridge run --accounts) keeps a Set, which hands out one *Metrics per
// account and serves them all on one /metrics, each account's series told
// apart by their prefix, the names and the other labels the same as with one
// account. Registries are never the process-wide default one, so two bridges in
// one process (tests, the demo) do not collide. All methods are safe for
// concurrent use and do nothing on a nil *Metrics, so a component can hold an
// optional one.
//
// No label value is ever a secret: labels are the prefix, a kind (friend,
// group, discuss, sess, …), a result code, an outcome, a state, a consumer
// name — all from small fixed sets.
package metrics

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Poll outcomes (PollDone).
const (
	PollEvents = "events" // the poll returned one or more items
	PollEmpty  = "empty"  // held and answered empty (retcode 102) or timed out
	PollError  = "error"  // a transport or protocol error; the poll is retried
	PollLost   = "lost"   // the session is gone (retcode 103/121, kicked): a re-login follows
)

// Send results that are not a schema error code (Sent).
const (
	CodeOK = "ok" // sent; a result code otherwise (schema.ErrorCode: unknown_target, qq_error, maybe_sent, …)
)

// States are the session states pre-registered for qqbridge_session_state, so
// each of their series exists (at 0) from the start and an alert on
// qqbridge_session_state{state="online"} == 0 works before the first login.
var States = []string{"awaiting_scan", "scanned", "qr_expired", "online", "reconnecting", "session_lost", "kicked", "stopped"}

// Metrics is the set of qqbridge metrics of one account (one prefix).
type Metrics struct {
	reg        *prometheus.Registry
	unregister func() // takes every series of this account out of reg (Set.Remove)

	mu     sync.Mutex
	states []string // every state that has a qqbridge_session_state series

	// What Summary reports, kept beside the Prometheus series.
	sendsOK, sendsFailed atomic.Uint64
	lastEvent, lastSend  atomic.Int64 // Unix nanoseconds; 0: none yet

	polls            *prometheus.CounterVec
	published        *prometheus.CounterVec
	duplicates       *prometheus.CounterVec
	echoes           *prometheus.CounterVec
	publishRetries   prometheus.Counter
	publishDuration  prometheus.Histogram
	sends            *prometheus.CounterVec
	sendDuration     *prometheus.HistogramVec
	pacingWait       prometheus.Histogram
	state            *prometheus.GaugeVec
	leader           prometheus.Gauge
	qrCodes          prometheus.Counter
	directorySize    *prometheus.GaugeVec
	directoryRefresh *prometheus.HistogramVec
	consumerPending  *prometheus.GaugeVec
}

// New makes the metrics of the bridge with this subject prefix on a new
// registry, together with the Go runtime and process collectors.
func New(prefix string) *Metrics {
	reg := prometheus.NewRegistry()
	registerRuntime(reg)
	return newMetrics(prefix, reg)
}

// registerRuntime adds the Go runtime and process collectors to reg.
func registerRuntime(reg *prometheus.Registry) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// newMetrics registers the qqbridge series of the account prefix in reg.
func newMetrics(prefix string, reg *prometheus.Registry) *Metrics {
	r := prometheus.WrapRegistererWith(prometheus.Labels{"prefix": prefix}, reg)

	latency := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	m := &Metrics{
		reg: reg,
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qqbridge_polls_total",
			Help: "Long polls (poll2) finished, by outcome: events, empty, error, lost.",
		}, []string{"outcome"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qqbridge_events_published_total",
			Help: "Inbound events published to JetStream and acknowledged as new, by kind.",
		}, []string{"kind"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qqbridge_events_duplicate_total",
			Help: "Inbound events the stream acknowledged as duplicates (same Nats-Msg-Id), by kind.",
		}, []string{"kind"}),
		echoes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qqbridge_events_echo_total",
			Help: "The account's own messages that came back through poll2 and were not published, by kind.",
		}, []string{"kind"}),
		publishRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qqbridge_publish_retries_total",
			Help: "Publishes of inbound events that failed and were retried (polling waits meanwhile).",
		}),
		publishDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "qqbridge_publish_duration_seconds",
			Help:    "Time from publishing an inbound event to its JetStream acknowledgement.",
			Buckets: latency,
		}),
		sends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qqbridge_sends_total",
			Help: "Send requests finished, by kind and result code (ok, or the result's error code).",
		}, []string{"kind", "code"}),
		sendDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "qqbridge_send_duration_seconds",
			Help:    "Time to carry out one send request (all its parts, pacing included), by kind.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"kind"}),
		pacingWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "qqbridge_send_pacing_wait_seconds",
			Help:    "Time a send part waited for the rate limiter (--rate, --burst).",
			Buckets: []float64{0, .01, .05, .1, .25, .5, 1, 2, 5, 10},
		}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "qqbridge_session_state",
			Help: "The session state this replica knows: 1 for the current state, 0 for the others.",
		}, []string{"state"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "qqbridge_leader",
			Help: "1 while this replica holds the leadership lease (it logs in and polls), else 0.",
		}),
		qrCodes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qqbridge_qr_codes_total",
			Help: "QR codes published for a login.",
		}),
		directorySize: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "qqbridge_directory_entries",
			Help: "Contacts in the directory after the last refresh, by kind: friend, group, discuss.",
		}, []string{"kind"}),
		directoryRefresh: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "qqbridge_directory_refresh_duration_seconds",
			Help:    "Time of one directory refresh (friends, groups, discussions), by outcome: ok or error.",
			Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"outcome"}),
		consumerPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "qqbridge_consumer_pending",
			Help: "Messages not yet delivered to the bridge's JetStream consumer, by consumer.",
		}, []string{"consumer"}),
	}
	cs := []prometheus.Collector{m.polls, m.published, m.duplicates, m.echoes, m.publishRetries, m.publishDuration,
		m.sends, m.sendDuration, m.pacingWait, m.state, m.leader, m.qrCodes, m.directorySize,
		m.directoryRefresh, m.consumerPending}
	r.MustRegister(cs...)
	m.unregister = func() {
		for _, c := range cs {
			r.Unregister(c)
		}
	}
	m.states = slices.Clone(States)
	for _, s := range States {
		m.state.WithLabelValues(s)
	}
	for _, o := range []string{PollEvents, PollEmpty, PollError, PollLost} {
		m.polls.WithLabelValues(o)
	}
	return m
}

// Handler serves the metrics in the Prometheus exposition format (text, or
// OpenMetrics when the scraper asks for it).
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, EnableOpenMetrics: true})
}

// Registry is the registry of these metrics, for a caller that adds its own
// collectors or gathers in a test. For a *Metrics of a Set it is the Set's
// registry, holding every account's series.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// PollDone counts one finished long poll with its outcome (PollEvents,
// PollEmpty, PollError, PollLost).
func (m *Metrics) PollDone(outcome string) {
	if m == nil {
		return
	}
	m.polls.WithLabelValues(outcome).Inc()
}

// Published counts one inbound event of this kind newly stored by the stream
// and observes how long its publish took to be acknowledged.
func (m *Metrics) Published(kind string, took time.Duration) {
	if m == nil {
		return
	}
	m.published.WithLabelValues(kind).Inc()
	m.publishDuration.Observe(took.Seconds())
	m.lastEvent.Store(time.Now().UnixNano())
}

// Duplicate counts one inbound event the stream acknowledged as a duplicate
// and observes how long its publish took.
func (m *Metrics) Duplicate(kind string, took time.Duration) {
	if m == nil {
		return
	}
	m.duplicates.WithLabelValues(kind).Inc()
	m.publishDuration.Observe(took.Seconds())
}

// Echo counts one of the account's own messages seen in a poll and not published.
func (m *Metrics) Echo(kind string) {
	if m == nil {
		return
	}
	m.echoes.WithLabelValues(kind).Inc()
}

// PublishRetry counts one failed publish of an inbound event that will be retried.
func (m *Metrics) PublishRetry() {
	if m == nil {
		return
	}
	m.publishRetries.Inc()
}

// Sent counts one finished send request of this kind (friend, group, discuss,
// sess) with its result code (CodeOK or the result's error code) and how long
// it took.
func (m *Metrics) Sent(kind, code string, took time.Duration) {
	if m == nil {
		return
	}
	m.sends.WithLabelValues(kind, code).Inc()
	m.sendDuration.WithLabelValues(kind).Observe(took.Seconds())
	if code == CodeOK {
		m.sendsOK.Add(1)
	} else {
		m.sendsFailed.Add(1)
	}
	m.lastSend.Store(time.Now().UnixNano())
}

// PacingWait observes how long one send part waited for the rate limiter.
func (m *Metrics) PacingWait(d time.Duration) {
	if m == nil {
		return
	}
	m.pacingWait.Observe(d.Seconds())
}

// SetState makes state the current session state (1) and every other one 0.
func (m *Metrics) SetState(state string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !slices.Contains(m.states, state) {
		m.states = append(m.states, state) // a state not in States gets its series too
	}
	for _, s := range m.states {
		v := 0.0
		if s == state {
			v = 1
		}
		m.state.WithLabelValues(s).Set(v)
	}
}

// SetLeader records whether this replica holds the leadership lease.
func (m *Metrics) SetLeader(leader bool) {
	if m == nil {
		return
	}
	if leader {
		m.leader.Set(1)
	} else {
		m.leader.Set(0)
	}
}

// QRIssued counts one QR code published for a login.
func (m *Metrics) QRIssued() {
	if m == nil {
		return
	}
	m.qrCodes.Inc()
}

// DirectoryRefreshed records one directory refresh: how long it took, whether
// it failed, and on success the number of friends, groups and discussions.
func (m *Metrics) DirectoryRefreshed(took time.Duration, err error, friends, groups, discussions int) {
	if m == nil {
		return
	}
	if err != nil {
		m.directoryRefresh.WithLabelValues("error").Observe(took.Seconds())
		return
	}
	m.directoryRefresh.WithLabelValues("ok").Observe(took.Seconds())
	m.directorySize.WithLabelValues("friend").Set(float64(friends))
	m.directorySize.WithLabelValues("group").Set(float64(groups))
	m.directorySize.WithLabelValues("discuss").Set(float64(discussions))
}

// SetConsumerPending records how many messages wait for the named JetStream
// consumer (jetstream.MsgMetadata.NumPending of the last message fetched, or
// ConsumerInfo.NumPending).
func (m *Metrics) SetConsumerPending(consumer string, pending uint64) {
	if m == nil {
		return
	}
	m.consumerPending.WithLabelValues(consumer).Set(float64(pending))
}

// WatchConsumerPending sets qqbridge_consumer_pending{consumer} from pending
// every interval until ctx ends (pending is e.g. a closure over
// jetstream.Consumer.Info returning NumPending). A failed call keeps the last
// value. It returns when ctx ends; run it in a goroutine.
func (m *Metrics) WatchConsumerPending(ctx context.Context, consumer string, every time.Duration, pending func(context.Context) (uint64, error)) {
	if m == nil || every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := pending(ctx); err == nil {
			m.SetConsumerPending(consumer, n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Summary is what a status page shows of an account's metrics on this
// replica.
type Summary struct {
	SendsOK     uint64    // send requests finished ok
	SendsFailed uint64    // send requests finished with an error code
	LastEvent   time.Time // when an inbound event was last stored as new; zero: none yet
	LastSend    time.Time // when a send request last finished; zero: none yet
}

// Summary returns the account's summary; the zero Summary for a nil *Metrics.
func (m *Metrics) Summary() Summary {
	if m == nil {
		return Summary{}
	}
	s := Summary{SendsOK: m.sendsOK.Load(), SendsFailed: m.sendsFailed.Load()}
	if n := m.lastEvent.Load(); n != 0 {
		s.LastEvent = time.Unix(0, n)
	}
	if n := m.lastSend.Load(); n != 0 {
		s.LastSend = time.Unix(0, n)
	}
	return s
}

// Set is the metrics of a bridge that serves several accounts: one registry
// with the Go runtime and process collectors, and one *Metrics per account
// registered in it under the account's prefix, all served by Handler.
// Account adds an account, Remove takes one away with all its series (an
// account removed from the accounts file while the bridge runs). Safe for
// concurrent use.
type Set struct {
	reg     *prometheus.Registry
	handler http.Handler

	mu       sync.Mutex
	accounts map[string]*Metrics
	order    []string // prefixes in the order added
}

// NewSet makes a Set with no account yet.
func NewSet() *Set {
	reg := prometheus.NewRegistry()
	registerRuntime(reg)
	return &Set{
		reg:      reg,
		handler:  promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true}),
		accounts: map[string]*Metrics{},
	}
}

// Account returns the metrics of the account with this prefix, making them
// (every series at its start value) the first time.
func (s *Set) Account(prefix string) *Metrics {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.accounts[prefix]; ok {
		return m
	}
	m := newMetrics(prefix, s.reg)
	s.accounts[prefix] = m
	s.order = append(s.order, prefix)
	return m
}

// Remove unregisters the account's series: /metrics no longer shows them. A
// component still holding its *Metrics may go on calling it; that changes
// nothing served. Account(prefix) afterwards starts afresh, at zero.
func (s *Set) Remove(prefix string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.accounts[prefix]
	if !ok {
		return
	}
	m.unregister()
	delete(s.accounts, prefix)
	s.order = slices.DeleteFunc(s.order, func(p string) bool { return p == prefix })
}

// Prefixes returns the accounts of the Set, in the order they were added.
func (s *Set) Prefixes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.order)
}

// Registry is the registry of every account's series and the runtime's.
func (s *Set) Registry() *prometheus.Registry {
	if s == nil {
		return nil
	}
	return s.reg
}

// Handler serves every account's metrics in the Prometheus exposition
// format (text, or OpenMetrics when the scraper asks for it).
func (s *Set) Handler() http.Handler {
	if s == nil {
		return http.NotFoundHandler()
	}
	return s.handler
}
