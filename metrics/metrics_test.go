package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/qqbridge/qqbridge/metrics"
)

func TestCountersAndGauges(t *testing.T) {
	m := metrics.New("acct1")
	m.PollDone(metrics.PollEvents)
	m.PollDone(metrics.PollEmpty)
	m.PollDone(metrics.PollEmpty)
	m.Published("group", 3*time.Millisecond)
	m.Published("group", 4*time.Millisecond)
	m.Published("friend", time.Millisecond)
	m.Duplicate("group", time.Millisecond)
	m.Echo("group")
	m.PublishRetry()
	m.Sent("group", metrics.CodeOK, 1200*time.Millisecond)
	m.Sent("friend", "unknown_target", 10*time.Millisecond)
	m.PacingWait(900 * time.Millisecond)
	m.SetState("awaiting_scan")
	m.SetState("online")
	m.SetLeader(true)
	m.QRIssued()
	m.QRIssued()
	m.DirectoryRefreshed(2*time.Second, nil, 5, 3, 1)
	m.DirectoryRefreshed(time.Second, errors.New("boom"), 0, 0, 0) // sizes keep the last good refresh
	m.SetConsumerPending("bridge-egress", 7)

	want := `
# HELP qqbridge_polls_total Long polls (poll2) finished, by outcome: events, empty, error, lost.
# TYPE qqbridge_polls_total counter
qqbridge_polls_total{outcome="empty",prefix="acct1"} 2
qqbridge_polls_total{outcome="error",prefix="acct1"} 0
qqbridge_polls_total{outcome="events",prefix="acct1"} 1
qqbridge_polls_total{outcome="lost",prefix="acct1"} 0
# HELP qqbridge_events_published_total Inbound events published to JetStream and acknowledged as new, by kind.
# TYPE qqbridge_events_published_total counter
qqbridge_events_published_total{kind="friend",prefix="acct1"} 1
qqbridge_events_published_total{kind="group",prefix="acct1"} 2
# HELP qqbridge_events_duplicate_total Inbound events the stream acknowledged as duplicates (same Nats-Msg-Id), by kind.
# TYPE qqbridge_events_duplicate_total counter
qqbridge_events_duplicate_total{kind="group",prefix="acct1"} 1
# HELP qqbridge_events_echo_total The account's own messages that came back through poll2 and were not published, by kind.
# TYPE qqbridge_events_echo_total counter
qqbridge_events_echo_total{kind="group",prefix="acct1"} 1
# HELP qqbridge_publish_retries_total Publishes of inbound events that failed and were retried (polling waits meanwhile).
# TYPE qqbridge_publish_retries_total counter
qqbridge_publish_retries_total{prefix="acct1"} 1
# HELP qqbridge_sends_total Send requests finished, by kind and result code (ok, or the result's error code).
# TYPE qqbridge_sends_total counter
qqbridge_sends_total{code="ok",kind="group",prefix="acct1"} 1
qqbridge_sends_total{code="unknown_target",kind="friend",prefix="acct1"} 1
# HELP qqbridge_session_state The session state this replica knows: 1 for the current state, 0 for the others.
# TYPE qqbridge_session_state gauge
qqbridge_session_state{prefix="acct1",state="awaiting_scan"} 0
qqbridge_session_state{prefix="acct1",state="kicked"} 0
qqbridge_session_state{prefix="acct1",state="online"} 1
qqbridge_session_state{prefix="acct1",state="qr_expired"} 0
qqbridge_session_state{prefix="acct1",state="reconnecting"} 0
qqbridge_session_state{prefix="acct1",state="scanned"} 0
qqbridge_session_state{prefix="acct1",state="session_lost"} 0
qqbridge_session_state{prefix="acct1",state="stopped"} 0
# HELP qqbridge_leader 1 while this replica holds the leadership lease (it logs in and polls), else 0.
# TYPE qqbridge_leader gauge
qqbridge_leader{prefix="acct1"} 1
# HELP qqbridge_qr_codes_total QR codes published for a login.
# TYPE qqbridge_qr_codes_total counter
qqbridge_qr_codes_total{prefix="acct1"} 2
# HELP qqbridge_directory_entries Contacts in the directory after the last refresh, by kind: friend, group, discuss.
# TYPE qqbridge_directory_entries gauge
qqbridge_directory_entries{kind="discuss",prefix="acct1"} 1
qqbridge_directory_entries{kind="friend",prefix="acct1"} 5
qqbridge_directory_entries{kind="group",prefix="acct1"} 3
# HELP qqbridge_consumer_pending Messages not yet delivered to the bridge's JetStream consumer, by consumer.
# TYPE qqbridge_consumer_pending gauge
qqbridge_consumer_pending{consumer="bridge-egress",prefix="acct1"} 7
`
	names := []string{"qqbridge_polls_total", "qqbridge_events_published_total", "qqbridge_events_duplicate_total",
		"qqbridge_events_echo_total", "qqbridge_publish_retries_total", "qqbridge_sends_total", "qqbridge_session_state",
		"qqbridge_leader", "qqbridge_qr_codes_total", "qqbridge_directory_entries", "qqbridge_consumer_pending"}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}

	hists := map[string]int{
		"qqbridge_publish_duration_seconds":           1, // one series …
		"qqbridge_send_duration_seconds":              2, // per kind
		"qqbridge_send_pacing_wait_seconds":           1,
		"qqbridge_directory_refresh_duration_seconds": 2, // ok and error
	}
	for name, series := range hists {
		if n, err := testutil.GatherAndCount(m.Registry(), name); err != nil || n != series {
			t.Errorf("%s: %d series, err %v; want %d", name, n, err, series)
		}
	}
}

func TestStateUnknownAndLeaderOff(t *testing.T) {
	m := metrics.New("qq")
	m.SetState("something_new")
	m.SetState("online")
	m.SetLeader(true)
	m.SetLeader(false)
	want := `
# HELP qqbridge_leader 1 while this replica holds the leadership lease (it logs in and polls), else 0.
# TYPE qqbridge_leader gauge
qqbridge_leader{prefix="qq"} 0
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "qqbridge_leader"); err != nil {
		t.Fatal(err)
	}
	wantState := `
# HELP qqbridge_session_state The session state this replica knows: 1 for the current state, 0 for the others.
# TYPE qqbridge_session_state gauge
qqbridge_session_state{prefix="qq",state="awaiting_scan"} 0
qqbridge_session_state{prefix="qq",state="kicked"} 0
qqbridge_session_state{prefix="qq",state="online"} 1
qqbridge_session_state{prefix="qq",state="qr_expired"} 0
qqbridge_session_state{prefix="qq",state="reconnecting"} 0
qqbridge_session_state{prefix="qq",state="scanned"} 0
qqbridge_session_state{prefix="qq",state="session_lost"} 0
qqbridge_session_state{prefix="qq",state="something_new"} 0
qqbridge_session_state{prefix="qq",state="stopped"} 0
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(wantState), "qqbridge_session_state"); err != nil {
		t.Fatal(err)
	}
}

// Two bridges in one process have separate registries: nothing is shared.
func TestSeparateRegistries(t *testing.T) {
	a, b := metrics.New("a"), metrics.New("b")
	a.QRIssued()
	if got := counterOf(t, b); got != 0 {
		t.Fatalf("b saw a's QR: %v", got)
	}
}

func counterOf(t *testing.T, m *metrics.Metrics) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "qqbridge_qr_codes_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no qqbridge_qr_codes_total")
	return 0
}

func TestHandlerServesExposition(t *testing.T) {
	m := metrics.New("qq")
	m.Sent("group", metrics.CodeOK, time.Second)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, want := range []string{
		`qqbridge_sends_total{code="ok",kind="group",prefix="qq"} 1`,
		`qqbridge_send_duration_seconds_bucket{kind="group",prefix="qq",le="1"} 1`,
		"go_goroutines ",
		"process_start_time_seconds ",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("no %q in:\n%s", want, body)
		}
	}
}

// A nil *Metrics is a valid no-op, so a component can hold an optional one.
func TestNilIsNoOp(t *testing.T) {
	var m *metrics.Metrics
	m.PollDone(metrics.PollError)
	m.Published("group", time.Second)
	m.Duplicate("group", time.Second)
	m.Echo("group")
	m.PublishRetry()
	m.Sent("group", metrics.CodeOK, time.Second)
	m.PacingWait(time.Second)
	m.SetState("online")
	m.SetLeader(true)
	m.QRIssued()
	m.DirectoryRefreshed(time.Second, nil, 1, 1, 1)
	m.SetConsumerPending("c", 1)
	if m.Registry() != nil {
		t.Fatal("nil Metrics has a registry")
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("nil handler: %d", rec.Code)
	}
}

func TestWatchConsumerPending(t *testing.T) {
	m := metrics.New("qq")
	ctx, cancel := context.WithCancel(context.Background())
	values := make(chan uint64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.WatchConsumerPending(ctx, "bridge-egress", time.Millisecond, func(ctx context.Context) (uint64, error) {
			select {
			case n, ok := <-values:
				if !ok {
					return 0, errors.New("consumer gone")
				}
				return n, nil
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		})
	}()
	values <- 5
	values <- 9 // the second call begins only after the first value was set
	values <- 9
	close(values) // errors from now on: the last value stays
	gauge := func() float64 {
		mfs, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "qqbridge_consumer_pending" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return -1
	}
	cancel()
	<-done
	if got := gauge(); got != 9 {
		t.Fatalf("pending %v, want 9", got)
	}
}

// A Set serves the series of several accounts on one registry, each under
// its own prefix with the names and labels of a single account; the runtime
// series come once. Remove takes an account's series away for good: a
// component still holding its *Metrics changes nothing served, and the
// account added again starts at zero.
func TestSetPerAccountSeries(t *testing.T) {
	set := metrics.NewSet()
	a1, a2 := set.Account("acct1"), set.Account("acct2")
	if set.Account("acct1") != a1 {
		t.Fatal("Account made a second *Metrics for acct1")
	}
	a1.Sent("group", metrics.CodeOK, time.Second)
	a1.SetLeader(true)
	a2.Sent("group", "qq_error", time.Second)
	a2.Sent("group", "qq_error", time.Second)
	a2.SetState("online")

	want := `
# HELP qqbridge_sends_total Send requests finished, by kind and result code (ok, or the result's error code).
# TYPE qqbridge_sends_total counter
qqbridge_sends_total{code="ok",kind="group",prefix="acct1"} 1
qqbridge_sends_total{code="qq_error",kind="group",prefix="acct2"} 2
# HELP qqbridge_leader 1 while this replica holds the leadership lease (it logs in and polls), else 0.
# TYPE qqbridge_leader gauge
qqbridge_leader{prefix="acct1"} 1
qqbridge_leader{prefix="acct2"} 0
`
	if err := testutil.GatherAndCompare(set.Registry(), strings.NewReader(want), "qqbridge_sends_total", "qqbridge_leader"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(set.Registry(), "qqbridge_session_state"); err != nil || n != 2*len(metrics.States) {
		t.Fatalf("qqbridge_session_state: %d series (%v), want %d", n, err, 2*len(metrics.States))
	}
	if got := strings.Join(set.Prefixes(), ","); got != "acct1,acct2" {
		t.Fatalf("prefixes %s", got)
	}

	srv := httptest.NewServer(set.Handler())
	defer srv.Close()
	scrape := func() string {
		t.Helper()
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		return string(body)
	}
	body := scrape()
	if strings.Count(body, "\ngo_goroutines ") != 1 || !strings.Contains(body, `qqbridge_session_state{prefix="acct2",state="online"} 1`) {
		t.Fatalf("exposition:\n%s", body)
	}

	set.Remove("acct2")
	a2.Sent("group", "qq_error", time.Second) // a component that has not stopped yet
	a2.SetLeader(true)
	body = scrape()
	if strings.Contains(body, `prefix="acct2"`) {
		t.Fatalf("acct2's series served after Remove:\n%s", body)
	}
	if !strings.Contains(body, `qqbridge_sends_total{code="ok",kind="group",prefix="acct1"} 1`) {
		t.Fatalf("acct1's series lost with acct2's:\n%s", body)
	}
	if got := strings.Join(set.Prefixes(), ","); got != "acct1" {
		t.Fatalf("prefixes after Remove: %s", got)
	}
	set.Remove("acct2") // twice: nothing
	again := set.Account("acct2")
	if again == a2 {
		t.Fatal("the removed *Metrics came back")
	}
	if n, err := testutil.GatherAndCount(set.Registry(), "qqbridge_sends_total"); err != nil || n != 1 {
		t.Fatalf("qqbridge_sends_total after re-adding acct2: %d series (%v), want acct1's only", n, err)
	}
	if !strings.Contains(scrape(), `qqbridge_leader{prefix="acct2"} 0`) {
		t.Fatal("re-added acct2 has no fresh leader series")
	}
}

// Summary counts finished sends by outcome and remembers the last event and
// send; a nil *Metrics gives the zero Summary.
func TestSummary(t *testing.T) {
	m := metrics.New("qq")
	if s := m.Summary(); s != (metrics.Summary{}) {
		t.Fatalf("fresh summary %+v", s)
	}
	before := time.Now()
	m.Published("group", time.Millisecond)
	m.Duplicate("group", time.Millisecond) // not a new event
	m.Sent("group", metrics.CodeOK, time.Millisecond)
	m.Sent("group", metrics.CodeOK, time.Millisecond)
	m.Sent("friend", "unknown_target", time.Millisecond)
	s := m.Summary()
	if s.SendsOK != 2 || s.SendsFailed != 1 || s.LastEvent.Before(before) || s.LastSend.Before(before) {
		t.Fatalf("summary %+v", s)
	}
	var none *metrics.Metrics
	if s := none.Summary(); s != (metrics.Summary{}) {
		t.Fatalf("nil summary %+v", s)
	}
	var noSet *metrics.Set
	rec := httptest.NewRecorder()
	noSet.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("nil Set handler: %d", rec.Code)
	}
}
