package testenv_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/qqsim"
)

// TestNATSRestartKeepsURLAndStore: a restarted server listens where it did
// and still has its streams; a testenv connection rides it out.
func TestNATSRestartKeepsURLAndStore(t *testing.T) {
	n := testenv.StartNATS(t)
	url := n.URL()
	nc, js := n.Connect()
	ctx := testenv.Context(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "KEEP", Subjects: []string{"keep.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "keep.1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	n.Restart()
	if n.URL() != url {
		t.Errorf("URL after Restart = %s, want %s", n.URL(), url)
	}
	testenv.Eventually(t, "the connection back", nc.IsConnected)
	// JetStream answers a little after the connection is back (the server
	// recovers its streams first): ask again, each try with its own bound.
	var st jetstream.Stream
	testenv.Eventually(t, "the stream after Restart", func() bool {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		var err error
		st, err = js.Stream(c, "KEEP")
		return err == nil
	})
	if info, err := st.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Errorf("stream after Restart: %+v %v, want 1 message", info, err)
	}
}

func TestRecorderWaitN(t *testing.T) {
	n := testenv.StartNATS(t)
	nc, _ := n.Connect()
	r := testenv.Record(t, nc, "rec.>")
	for _, s := range []string{"rec.a", "rec.b", "rec.a", "other"} {
		if err := nc.Publish(s, nil); err != nil {
			t.Fatal(err)
		}
	}
	got := r.WaitN(2, "rec.a", func(m *nats.Msg) bool { return m.Subject == "rec.a" })
	if len(got) != 2 || got[0].Subject != "rec.a" || got[1].Subject != "rec.a" {
		t.Errorf("WaitN = %v", got)
	}
	testenv.Eventually(t, "three messages", func() bool { return r.Len() == 3 })
}

// TestSimControl drives the simulator only through its HTTP control API.
func TestSimControl(t *testing.T) {
	sim := testenv.StartSim(t, testenv.SimConfig())
	c := sim.Control
	if st := c.State(); st.Login != "no_qr" || st.SelfQQ != testenv.Self {
		t.Errorf("state %+v, want no_qr of %d", st, testenv.Self)
	}
	if id := c.Say(qqsim.Say{Kind: "group", From: testenv.Alice, Group: testenv.DevChat, Text: "hi"}); id == 0 {
		t.Error("Say returned msg_id 0")
	}
	if got := c.Sent(); len(got) != 0 {
		t.Errorf("Sent = %v, want nothing", got)
	}
	if got := c.SentTexts("group", testenv.DevChat); len(got) != 0 {
		t.Errorf("SentTexts = %q, want nothing", got)
	}
	// A QR code exists once a client fetched one: scan answers 409 before.
	resp, err := http.Post(sim.URL+"/_sim/qr/scan", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("scan without a QR code: HTTP %d, want 409", resp.StatusCode)
	}
}

// TestClusterElects: a three-node cluster started at once elects a meta
// leader.
func TestClusterElects(t *testing.T) {
	c := testenv.NewCluster(t, 3)
	c.StartAll()
	testenv.Eventually(t, "a meta leader", c.HasMetaLeader)
}
