package session_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/live"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
	"github.com/qqbridge/qqbridge/session"
)

func TestQRLogin(t *testing.T) {
	cases := []struct {
		name     string
		format   schema.Codec
		qrFormat session.QRFormat
	}{
		{"png qr, json states", schema.JSON(), session.QRFormatPNG},
		{"json qr", schema.JSON(), session.QRFormatCodec},
		{"msgpack qr and states", schema.Msgpack(), session.QRFormatCodec},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, qqsim.Config{})
			r := e.start(session.Config{Format: c.format, QRFormat: c.qrFormat})

			e.expectStates(schema.StateAwaitingScan)
			msg := e.nextQR()
			simPNG := e.pngs.last()
			if len(simPNG) == 0 {
				t.Fatal("the simulator served no QR image")
			}
			var published schema.QR
			switch c.qrFormat {
			case session.QRFormatPNG:
				if ct := msg.Header.Get("Content-Type"); ct != session.ContentTypePNG {
					t.Errorf("QR Content-Type = %q, want image/png", ct)
				}
				published.PNG = msg.Data
				exp, err := time.Parse(time.RFC3339, msg.Header.Get(session.HeaderExpiresAt))
				if err != nil {
					t.Fatalf("expires_at header: %v", err)
				}
				published.ExpiresAt = exp
			default:
				if ct := msg.Header.Get("Content-Type"); ct != c.format.ContentType() {
					t.Errorf("QR Content-Type = %q, want %q", ct, c.format.ContentType())
				}
				if err := c.format.Unmarshal(msg.Data, &published); err != nil {
					t.Fatalf("QR event: %v", err)
				}
			}
			if !bytes.Equal(published.PNG, simPNG) {
				t.Errorf("published QR (%d bytes) is not the simulator's image (%d bytes)", len(published.PNG), len(simPNG))
			}
			if !published.ExpiresAt.After(time.Now()) {
				t.Errorf("expires_at %v is not in the future (QR TTL 120s)", published.ExpiresAt)
			}

			// The bucket has the latest QR and state for late consumers.
			ent, err := e.kv.Get(e.ctx(), schema.SessionKeyQR)
			if err != nil {
				t.Fatalf("KV qr: %v", err)
			}
			var kept schema.QR
			if err := c.format.Unmarshal(ent.Value(), &kept); err != nil {
				t.Fatalf("KV qr: %v", err)
			}
			if !bytes.Equal(kept.PNG, simPNG) || !kept.ExpiresAt.Equal(published.ExpiresAt) {
				t.Errorf("KV qr differs from the QR event")
			}
			if st := e.kvState(c.format); st.State != schema.StateAwaitingScan {
				t.Errorf("KV state = %q, want awaiting_scan", st.State)
			}

			e.scan()
			o := r.waitOnline(t)
			self := e.sim.WorldView().Self.QQ
			if o.Account != self || o.Gen != 1 {
				t.Errorf("online = %+v, want account %d gen 1", o, self)
			}
			if !r.m.IsLeader() {
				t.Error("the only replica does not lead")
			}
			st := e.kvState(c.format)
			if st.State != schema.StateOnline || st.Account != self {
				t.Errorf("KV state = %+v, want online for %d", st, self)
			}
			if got := r.m.State(); got.State != schema.StateOnline {
				t.Errorf("State() = %q, want online", got.State)
			}
			// Saved in clear (no key), and resumable.
			ent, err = e.kv.Get(e.ctx(), session.KeySession)
			if err != nil {
				t.Fatalf("KV session: %v", err)
			}
			saved, err := session.DecodeSaved(ent.Value(), nil)
			if err != nil {
				t.Fatalf("saved session: %v", err)
			}
			live, _ := r.client.Session()
			if saved.UIN != self || saved.PSessionID != live.PSessionID {
				t.Error("the saved session is not the live one")
			}
			e.noStateEvent()
		})
	}
}

// TestLogsHoldNoSecrets runs a login and a re-login and looks for every
// credential in the logs.
func TestLogsHoldNoSecrets(t *testing.T) {
	e := newEnv(t, qqsim.Config{})
	r := e.start(session.Config{})
	e.expectStates(schema.StateAwaitingScan)
	e.scan()
	o := r.waitOnline(t)
	first, _ := r.client.Session()
	e.sim.ExpireSession()
	_, err := r.pollUntilGone(t)
	r.m.Reports().Lost(o.Gen, err)
	e.skipTo(schema.StateOnline)
	second, _ := r.client.Session()
	r.stop()

	logs := e.logs.String()
	if !strings.Contains(logs, `"account":`) {
		t.Error("logs carry no account field")
	}
	for _, s := range []*qqclient.Session{first, second} {
		secrets := []string{s.PtWebQQ, s.VFWebQQ, s.PSessionID}
		for _, c := range s.Cookies {
			secrets = append(secrets, c.Value)
		}
		for _, secret := range secrets {
			if len(secret) >= 6 && strings.Contains(logs, secret) {
				t.Errorf("a secret of %d bytes appears in the logs", len(secret))
			}
		}
	}
}

func TestSavedSessionRestored(t *testing.T) {
	key := session.DeriveKey("correct horse battery staple")
	e := newEnv(t, qqsim.Config{})
	r1 := e.start(session.Config{Key: key})
	e.expectStates(schema.StateAwaitingScan)
	e.scan()
	o1 := r1.waitOnline(t)
	live, _ := r1.client.Session()
	r1.stop()
	e.expectStates(schema.StateStopped)

	ent, err := e.kv.Get(e.ctx(), session.KeySession)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{live.PSessionID, live.PtWebQQ, live.VFWebQQ} {
		if bytes.Contains(ent.Value(), []byte(secret)) {
			t.Fatal("the saved session holds a secret in clear")
		}
	}
	if _, err := session.DecodeSaved(ent.Value(), nil); !errors.Is(err, session.ErrNoKey) {
		t.Errorf("DecodeSaved without a key: %v, want ErrNoKey", err)
	}

	qrBefore, loginsBefore := e.counter("ptqrshow"), e.counter("logins")
	r2 := e.start(session.Config{Key: key})
	e.expectStates(schema.StateReconnecting, schema.StateOnline)
	o2 := r2.waitOnline(t)
	if o2.Account != o1.Account || o2.Gen != 1 {
		t.Errorf("restored %+v, want account %d gen 1", o2, o1.Account)
	}
	resumed, _ := r2.client.Session()
	if resumed.PSessionID != live.PSessionID {
		t.Error("the second manager did not resume the saved session")
	}
	if n := e.counter("ptqrshow"); n != qrBefore {
		t.Errorf("%d new QR codes fetched, want none", n-qrBefore)
	}
	if n := e.counter("logins"); n != loginsBefore {
		t.Errorf("%d new login2 calls, want none", n-loginsBefore)
	}
	if len(e.qrs) != 1 {
		t.Errorf("%d QR events in all, want the first login's only", len(e.qrs))
	}
}

func TestWrongKeyFallsBackToQRLogin(t *testing.T) {
	e := newEnv(t, qqsim.Config{})
	r1 := e.start(session.Config{Key: session.DeriveKey("first key")})
	e.expectStates(schema.StateAwaitingScan)
	e.scan()
	r1.waitOnline(t)
	r1.stop()
	e.expectStates(schema.StateStopped)

	r2 := e.start(session.Config{Key: session.DeriveKey("second key")})
	e.expectStates(schema.StateAwaitingScan)
	if !strings.Contains(e.logs.String(), "saved session cannot be decrypted with this key") {
		t.Error("the log does not say the key is wrong")
	}
	e.scan()
	if o := r2.waitOnline(t); o.Gen != 1 {
		t.Errorf("gen %d after the new login, want 1", o.Gen)
	}
	// The new login is saved under the new key.
	ent, err := e.kv.Get(e.ctx(), session.KeySession)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := session.DecodeSaved(ent.Value(), session.DeriveKey("second key")); err != nil {
		t.Errorf("saved session under the new key: %v", err)
	}
}

func TestSessionLostRelogsInWithCookies(t *testing.T) {
	e := newEnv(t, qqsim.Config{})
	r := e.start(session.Config{})
	e.expectStates(schema.StateAwaitingScan)
	e.scan()
	o1 := r.waitOnline(t)
	before, _ := r.client.Session()
	qrBefore := e.counter("ptqrshow")

	term, err := r.m.LeaderTerms().Await(e.ctx())
	pollCtx := term.Context()
	if err != nil {
		t.Fatal(err)
	}

	e.sim.ExpireSession()
	_, err = r.pollUntilGone(t)
	if err == nil {
		t.Fatal("no lost session")
	}
	r.m.Reports().Lost(o1.Gen-1, err) // an older generation: ignored
	if pollCtx.Err() != nil {
		t.Error("a report of an older generation ended the poll context")
	}
	r.m.Reports().Lost(o1.Gen, err)
	if pollCtx.Err() == nil {
		t.Error("the poll context of the lost generation lives on")
	}
	r.m.Reports().Lost(o1.Gen, err) // once per generation
	e.expectStates(schema.StateReconnecting, schema.StateOnline)
	o2 := r.waitOnline(t)
	if o2.Gen != o1.Gen+1 || o2.Account != o1.Account {
		t.Errorf("after re-login %+v, want gen %d", o2, o1.Gen+1)
	}
	if n := e.counter("ptqrshow"); n != qrBefore {
		t.Errorf("re-login fetched %d QR codes, want none", n-qrBefore)
	}
	after, _ := r.client.Session()
	if after.PSessionID == before.PSessionID {
		t.Error("the session did not change")
	}
	// The new session works and is the saved one.
	if _, err := r.client.Poll(e.ctx()); err != nil {
		t.Errorf("poll on the new session: %v", err)
	}
	ent, _ := e.kv.Get(e.ctx(), session.KeySession)
	if saved, err := session.DecodeSaved(ent.Value(), nil); err != nil || saved.PSessionID != after.PSessionID {
		t.Errorf("the new session was not saved (%v)", err)
	}
	e.noStateEvent()
}

func TestDeadCookiesNeedQR(t *testing.T) {
	e := newEnv(t, qqsim.Config{SessionTTL: 2 * time.Second})
	r := e.start(session.Config{})
	e.expectStates(schema.StateAwaitingScan)
	e.scan()
	o := r.waitOnline(t)

	_, err := r.pollUntilGone(t) // 103 once the cookies' TTL passed
	r.m.Reports().Lost(o.Gen, err)
	e.expectStates(schema.StateReconnecting, schema.StateSessionLost, schema.StateAwaitingScan)
	// The QR event is published before awaiting_scan, but on a subject of its
	// own: its subscriber may not have it yet.
	testenv.Eventually(t, "the new login's QR event", func() bool { return len(e.qrs) >= 2 })
	if n := len(e.qrs); n != 2 {
		t.Errorf("%d QR events, want 2", n)
	}
	e.scan()
	if o2 := r.waitOnline(t); o2.Gen != o.Gen+1 {
		t.Errorf("gen %d after the QR login, want %d", o2.Gen, o.Gen+1)
	}
}

func TestKickedWaitsForLoginRequest(t *testing.T) {
	e := newEnv(t, qqsim.Config{})
	r := e.start(session.Config{})
	e.expectStates(schema.StateAwaitingScan)
	e.scan()
	o := r.waitOnline(t)

	e.sim.Kick()
	kick, _ := r.pollUntilGone(t)
	if kick == nil {
		t.Fatal("no kick_message")
	}
	r.m.Reports().Kicked(o.Gen, kick.Reason)
	e.expectStates(schema.StateKicked)
	// A loss reported after the kick (the ingress's next poll) must not
	// start a re-login either.
	r.m.Reports().Lost(o.Gen, qqclient.ErrSessionLost)

	qr, logins := e.counter("ptqrshow"), e.counter("logins")
	time.Sleep(300 * time.Millisecond) // room for a wrong re-login to show
	if got := r.m.State().State; got != schema.StateKicked {
		t.Errorf("state %q after the kick, want kicked", got)
	}
	if e.counter("ptqrshow") != qr || e.counter("logins") != logins {
		t.Error("a login started after the kick without a request")
	}
	e.noStateEvent()

	// A restart keeps the kick: no login until asked.
	r.stop()
	r2 := e.start(session.Config{})
	eventually(t, "the new manager leads", r2.m.IsLeader)
	time.Sleep(300 * time.Millisecond)
	if e.counter("ptqrshow") != qr || e.counter("logins") != logins {
		t.Error("a restarted manager logged in after a kick")
	}
	e.noStateEvent()

	if err := r2.m.RequestLogin(e.ctx(), false); err != nil {
		t.Fatalf("RequestLogin: %v", err)
	}
	e.expectStates(schema.StateAwaitingScan)
	e.scan()
	if o2 := r2.waitOnline(t); o2.Account != o.Account {
		t.Errorf("online as %d, want %d", o2.Account, o.Account)
	}
}

func TestQRExpiryIsBounded(t *testing.T) {
	e := newEnv(t, qqsim.Config{})
	r := e.start(session.Config{MaxQRExpired: 2})
	for i := range 2 {
		e.expectStates(schema.StateAwaitingScan)
		if err := e.sim.ExpireQR(); err != nil {
			t.Fatalf("ExpireQR #%d: %v", i+1, err)
		}
		e.expectStates(schema.StateQRExpired)
	}
	st := e.nextState()
	if st.State != schema.StateStopped || !strings.Contains(st.Reason, "login request") {
		t.Fatalf("after 2 expired QR codes: %q (%s), want stopped until a login request", st.State, st.Reason)
	}
	shown := e.counter("ptqrshow")
	if shown != 2 {
		t.Errorf("%d QR codes shown, want 2", shown)
	}
	time.Sleep(300 * time.Millisecond) // room for a wrong third QR code to show
	if e.counter("ptqrshow") != shown {
		t.Error("a QR code was shown after the limit")
	}

	if err := r.m.RequestLogin(e.ctx(), false); err != nil {
		t.Fatal(err)
	}
	e.expectStates(schema.StateAwaitingScan)
	e.scan()
	r.waitOnline(t)
}

func TestRequestLoginWhileOnline(t *testing.T) {
	e := newEnv(t, qqsim.Config{})
	r := e.start(session.Config{})
	e.expectStates(schema.StateAwaitingScan)
	e.scan()
	o := r.waitOnline(t)
	if err := r.m.RequestLogin(e.ctx(), true); err != nil {
		t.Fatal(err)
	}
	e.expectStates(schema.StateAwaitingScan)
	if !errors.Is(o.Err(), live.ErrTermEnded) {
		t.Errorf("the replaced session's term: %v, want ended", o.Err())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := r.m.Sessions().Await(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Sessions().Await during a requested login: %v, want to block", err)
	}
	e.scan()
	if o2 := r.waitOnline(t); o2.Gen != o.Gen+1 {
		t.Errorf("gen %d, want %d", o2.Gen, o.Gen+1)
	}
}

func TestReplicas(t *testing.T) {
	e := newEnv(t, qqsim.Config{})
	a := e.start(session.Config{ReplicaID: "a"})
	b := e.start(session.Config{ReplicaID: "b"})
	e.expectStates(schema.StateAwaitingScan)
	leader, follower := a, b
	if b.m.IsLeader() {
		leader, follower = b, a
	}
	if !leader.m.IsLeader() || follower.m.IsLeader() {
		t.Fatalf("leaders: a %v, b %v; want exactly one", a.m.IsLeader(), b.m.IsLeader())
	}
	e.scan()
	lo := leader.waitOnline(t)
	fo := follower.waitOnline(t)
	short, cancelShort := context.WithTimeout(context.Background(), 100*time.Millisecond)
	if s, err := follower.m.LeaderTerms().Await(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("LeaderTerms().Await on the follower: %+v, %v; want to block", s, err)
	}
	cancelShort()
	if fo.Account != lo.Account {
		t.Errorf("follower online as %d, leader as %d", fo.Account, lo.Account)
	}
	ls, _ := leader.client.Session()
	fs, _ := follower.client.Session()
	if fs.PSessionID != ls.PSessionID {
		t.Error("the follower does not use the leader's session")
	}
	if leader.m.IsLeader() == follower.m.IsLeader() {
		t.Error("both or neither lead")
	}
	eventually(t, "the follower sees the leader's state", func() bool {
		return follower.m.State().State == schema.StateOnline
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	wo, err := leader.m.LeaderTerms().Await(ctx)
	pollCtx := wo.Context()
	if err != nil || wo.Gen != lo.Gen {
		t.Fatalf("LeaderTerms().Await on the leader: %+v, %v", wo, err)
	}
	e.noStateEvent()

	// The leader stops: the follower takes over with the saved session.
	logins, qrs := e.counter("logins"), e.counter("ptqrshow")
	leader.stop()
	if pollCtx.Err() == nil {
		t.Error("the old leader's poll context lives on")
	}
	e.expectStates(schema.StateStopped, schema.StateReconnecting, schema.StateOnline)
	if !follower.m.IsLeader() {
		t.Error("the follower did not take over")
	}
	wo, err = follower.m.LeaderTerms().Await(ctx)
	if err != nil || wo.Gen <= fo.Gen {
		t.Errorf("the new leader: %+v, %v; want a generation after %d", wo, err, fo.Gen)
	}
	if e.counter("logins") != logins || e.counter("ptqrshow") != qrs {
		t.Error("the take-over logged in anew instead of resuming")
	}
	ns, _ := follower.client.Session()
	if ns.PSessionID != ls.PSessionID {
		t.Error("the new leader does not use the saved session")
	}
	if _, err := follower.client.Poll(ctx); err != nil {
		t.Errorf("the new leader's poll: %v", err)
	}
}

// TestFollowerFollowsRelogin: after the leader re-logs in, the follower
// resumes the new session.
func TestFollowerFollowsRelogin(t *testing.T) {
	e := newEnv(t, qqsim.Config{})
	a := e.start(session.Config{ReplicaID: "a"})
	eventually(t, "a leads", a.m.IsLeader)
	b := e.start(session.Config{ReplicaID: "b"})
	e.expectStates(schema.StateAwaitingScan)
	e.scan()
	lo := a.waitOnline(t)
	fo := b.waitOnline(t)

	e.sim.ExpireSession()
	_, err := a.pollUntilGone(t)
	a.m.Reports().Lost(lo.Gen, err)
	// The follower's own send fails too, and it reports it.
	b.m.Reports().Lost(fo.Gen, err)
	e.expectStates(schema.StateReconnecting, schema.StateOnline)
	ls, _ := a.client.Session()
	eventually(t, "the follower resumes the new session", func() bool {
		fs, ok := b.client.Session()
		return ok && fs.PSessionID == ls.PSessionID
	})
	if o := b.waitOnline(t); o.Gen <= fo.Gen {
		t.Errorf("follower gen %d, want above %d", o.Gen, fo.Gen)
	}
	if b.m.IsLeader() {
		t.Error("the follower leads")
	}
}

// TestLeaderDies cuts the leader's NATS connection: it can neither renew nor
// release the lease, which expires, and the follower takes over.
func TestLeaderDies(t *testing.T) {
	e := newEnv(t, qqsim.Config{})
	a := e.start(session.Config{ReplicaID: "a", LeaderTTL: 2 * time.Second})
	eventually(t, "a leads", a.m.IsLeader)
	b := e.start(session.Config{ReplicaID: "b", LeaderTTL: 2 * time.Second})
	e.expectStates(schema.StateAwaitingScan)
	e.scan()
	b.waitOnline(t)
	if b.m.IsLeader() {
		t.Fatal("b leads while a holds the lease")
	}

	a.nc.Close()
	e.expectStates(schema.StateReconnecting, schema.StateOnline)
	if !b.m.IsLeader() {
		t.Error("b did not take over")
	}
	eventually(t, "a steps down", func() bool { return !a.m.IsLeader() })
}

// TestFollowerForwardsLoginRequest asks a follower for a forced login: the
// leader shows a QR code.
func TestFollowerForwardsLoginRequest(t *testing.T) {
	e := newEnv(t, qqsim.Config{})
	a := e.start(session.Config{ReplicaID: "a"})
	eventually(t, "a leads", a.m.IsLeader)
	b := e.start(session.Config{ReplicaID: "b"})
	e.expectStates(schema.StateAwaitingScan)
	e.scan()
	b.waitOnline(t)
	if err := b.m.RequestLogin(e.ctx(), true); err != nil {
		t.Fatal(err)
	}
	e.expectStates(schema.StateAwaitingScan)
	if !a.m.IsLeader() {
		t.Error("a no longer leads")
	}
}

func TestRunTwice(t *testing.T) {
	e := newEnv(t, qqsim.Config{})
	r := e.start(session.Config{})
	e.expectStates(schema.StateAwaitingScan)
	if err := r.m.Run(e.ctx()); !errors.Is(err, session.ErrRunning) {
		t.Errorf("second Run: %v, want ErrRunning", err)
	}
}

func TestNewRejects(t *testing.T) {
	e := newEnv(t, qqsim.Config{})
	client, _ := qqclient.New(qqclient.WithBaseURL(e.url))
	kv := e.kv
	good := func() session.Config {
		return session.Config{Client: client, NC: e.nc, JS: e.js, KV: kv, Subjects: e.subj}
	}
	cases := []struct {
		name   string
		change func(*session.Config)
	}{
		{"no client", func(c *session.Config) { c.Client = nil }},
		{"no nats", func(c *session.Config) { c.NC = nil }},
		{"no jetstream", func(c *session.Config) { c.JS = nil }},
		{"no bucket", func(c *session.Config) { c.KV = nil }},
		{"short key", func(c *session.Config) { c.Key = []byte("sixteen bytes!!!") }},
		{"short lease", func(c *session.Config) { c.LeaderTTL = 100 * time.Millisecond }},
		{"qr format", func(c *session.Config) { c.QRFormat = "gif" }},
		{"negative limit", func(c *session.Config) { c.MaxQRExpired = -1 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := good()
			c.change(&cfg)
			if _, err := session.New(cfg); !errors.Is(err, session.ErrConfig) {
				t.Errorf("New: %v, want ErrConfig", err)
			}
		})
	}
	if _, err := session.New(good()); err != nil {
		t.Errorf("New with a good config: %v", err)
	}
	m, _ := session.New(good())
	if err := m.RequestLogin(e.ctx(), false); !errors.Is(err, session.ErrNotRunning) {
		t.Errorf("RequestLogin before Run: %v, want ErrNotRunning", err)
	}
}
