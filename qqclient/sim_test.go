package qqclient_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/qqsim"
)

// Numbers of qqsim.DefaultWorld.
const (
	selfQQ   = testenv.Self
	aliceQQ  = testenv.Alice
	bobQQ    = testenv.Bob
	heyQQ    = testenv.Hey
	carolQQ  = testenv.Carol
	daveQQ   = testenv.Dave
	devGroup = testenv.DevChat
	hikeGrp  = testenv.Hiking
	lunchDID = testenv.Lunch
)

// simEnv is a simulator on a loopback listener and a client pointed at it.
type simEnv struct {
	t   *testing.T
	sim *testenv.Sim
}

// simConfig is the default test configuration: short hold, no rate limit.
func simConfig() qqsim.Config {
	return qqsim.Config{PollHold: 200 * time.Millisecond, QRTTL: 10 * time.Second, RateLimit: -1}
}

func newSimEnv(t *testing.T, cfg qqsim.Config) *simEnv {
	t.Helper()
	return &simEnv{t: t, sim: testenv.StartSim(t, cfg)}
}

// client makes a client of the simulator with short test timings.
func (e *simEnv) client(opts ...qqclient.Option) *qqclient.Client {
	e.t.Helper()
	base := []qqclient.Option{
		qqclient.WithBaseURL(e.sim.URL),
		qqclient.WithQRPollInterval(10 * time.Millisecond),
		qqclient.WithPollTimeout(5 * time.Second),
		qqclient.WithRequestTimeout(5 * time.Second),
	}
	c, err := qqclient.New(append(base, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// loginResult is what a LoginQR run ended with.
type loginResult struct {
	sess *qqclient.Session
	err  error
}

// startLogin runs LoginQR in the background and returns its events and result.
func startLogin(ctx context.Context, c *qqclient.Client) (<-chan qqclient.LoginEvent, <-chan loginResult) {
	events := make(chan qqclient.LoginEvent, 8)
	done := make(chan loginResult, 1)
	go func() {
		s, err := c.LoginQR(ctx, func(ev qqclient.LoginEvent) { events <- ev })
		close(events)
		done <- loginResult{s, err}
	}()
	return events, done
}

func nextEvent(t *testing.T, events <-chan qqclient.LoginEvent) qqclient.LoginEvent {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("LoginQR ended early")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no login event")
	}
	return qqclient.LoginEvent{}
}

// login runs a whole QR login, playing the phone when the client reports each step.
func (e *simEnv) login(ctx context.Context, c *qqclient.Client) *qqclient.Session {
	t := e.t
	t.Helper()
	events, done := startLogin(ctx, c)
	if ev := nextEvent(t, events); ev.Step != qqclient.LoginQRReady || ev.QR == nil || !bytes.HasPrefix(ev.QR.PNG, []byte("\x89PNG")) {
		t.Fatalf("first event = %+v, want LoginQRReady with a PNG", ev)
	}
	if err := e.sim.ScanQR(); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, events); ev.Step != qqclient.LoginScanned {
		t.Fatalf("second event = %v, want LoginScanned", ev.Step)
	}
	if err := e.sim.ConfirmQR(); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, events); ev.Step != qqclient.LoginConfirmed {
		t.Fatalf("third event = %v, want LoginConfirmed", ev.Step)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("LoginQR: %v", r.err)
	}
	for ev := range events {
		t.Fatalf("event after confirmation: %v", ev.Step)
	}
	return r.sess
}

// pollUntil polls until n events came (or the context ends).
func pollUntil(t *testing.T, ctx context.Context, c *qqclient.Client, n int) []qqclient.Event {
	t.Helper()
	var all []qqclient.Event
	for len(all) < n {
		evs, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("Poll after %d events: %v", len(all), err)
		}
		all = append(all, evs...)
	}
	return all
}

// checkNoSecrets fails when err's text holds a credential of s.
func checkNoSecrets(t *testing.T, err error, s *qqclient.Session) {
	t.Helper()
	if err == nil || s == nil {
		return
	}
	msg := err.Error()
	secrets := []string{s.PtWebQQ, s.VFWebQQ, s.PSessionID}
	for _, c := range s.Cookies {
		if len(c.Value) >= 6 {
			secrets = append(secrets, c.Value)
		}
	}
	for _, v := range secrets {
		if v != "" && strings.Contains(msg, v) {
			t.Errorf("error %q holds a secret", msg)
		}
	}
}

func TestSimLoginQR(t *testing.T) {
	e := newSimEnv(t, simConfig())
	c := e.client()
	ctx := testenv.Context(t)
	s := e.login(ctx, c)
	if s.UIN != selfQQ || s.PtWebQQ == "" || s.VFWebQQ == "" || s.PSessionID == "" || len(s.Cookies) < 5 {
		t.Fatalf("session = uin %d, %d cookies, empty values", s.UIN, len(s.Cookies))
	}
	if st := e.sim.State(); st.Login != "online" || st.UIN != selfQQ {
		t.Errorf("sim state = %s uin %d", st.Login, st.UIN)
	}
	// The vfwebqq is getvfwebqq's: the simulator refuses login2's, and this call takes it.
	if _, err := c.Friends(ctx); err != nil {
		t.Errorf("Friends after login: %v", err)
	}
	// get_online_buddies2 came after login2, so a poll is accepted (else 103).
	if _, err := e.sim.Say(qqsim.Say{Kind: "friend", From: aliceQQ, Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	if evs := pollUntil(t, ctx, c, 1); evs[0].Message == nil || evs[0].Message.Text() != "hi" {
		t.Errorf("first poll = %+v", evs)
	}
	got, ok := c.Session()
	if !ok || got.PSessionID != s.PSessionID {
		t.Error("Session() does not return the login's session")
	}
}

func TestSimLoginStepByStep(t *testing.T) {
	e := newSimEnv(t, simConfig())
	c := e.client()
	ctx := testenv.Context(t)
	qr, err := c.FetchQR(ctx)
	if err != nil || len(qr.PNG) == 0 {
		t.Fatalf("FetchQR: %v", err)
	}
	steps := []struct {
		phone func() error
		want  qqclient.QRStatus
	}{
		{nil, qqclient.QRWaiting},
		{e.sim.ScanQR, qqclient.QRScanned},
		{e.sim.ConfirmQR, qqclient.QRConfirmed},
	}
	for _, st := range steps {
		if st.phone != nil {
			if err := st.phone(); err != nil {
				t.Fatal(err)
			}
		}
		got, err := c.CheckQR(ctx)
		if err != nil || got != st.want {
			t.Fatalf("CheckQR = %v, %v; want %v", got, err, st.want)
		}
	}
	s, err := c.CompleteLogin(ctx)
	if err != nil || s.UIN != selfQQ {
		t.Fatalf("CompleteLogin = %v, %v", s, err)
	}
}

func TestSimLoginQRExpired(t *testing.T) {
	tests := []struct {
		name   string
		cfg    func(*qqsim.Config)
		expire bool
	}{
		{name: "expired by the phone side", expire: true},
		{name: "QR TTL", cfg: func(c *qqsim.Config) { c.QRTTL = 300 * time.Millisecond }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := simConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			e := newSimEnv(t, cfg)
			c := e.client()
			ctx := testenv.Context(t)
			events, done := startLogin(ctx, c)
			if ev := nextEvent(t, events); ev.Step != qqclient.LoginQRReady {
				t.Fatalf("first event %v", ev.Step)
			}
			if tt.expire {
				if err := e.sim.ExpireQR(); err != nil {
					t.Fatal(err)
				}
			}
			if ev := nextEvent(t, events); ev.Step != qqclient.LoginQRExpired {
				t.Fatalf("second event %v, want LoginQRExpired", ev.Step)
			}
			r := <-done
			if !errors.Is(r.err, qqclient.ErrQRExpired) || r.sess != nil {
				t.Fatalf("LoginQR = %v, %v; want ErrQRExpired", r.sess, r.err)
			}
			if tt.expire { // trying again works (with the short TTL a retry would race it)
				e.login(ctx, c)
			}
		})
	}
}

func TestSimContacts(t *testing.T) {
	e := newSimEnv(t, simConfig())
	c := e.client()
	ctx := testenv.Context(t)
	e.login(ctx, c)
	st := e.sim.State()
	uinOf := st.Friends

	friends, err := c.Friends(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byUIN := map[int64]qqclient.Friend{}
	for _, f := range friends {
		byUIN[f.UIN] = f
	}
	if len(friends) != 3 || byUIN[uinOf[aliceQQ]].Nick != "Alice" || byUIN[uinOf[aliceQQ]].MarkName != "爱丽丝" ||
		byUIN[uinOf[aliceQQ]].Category != 1 || byUIN[uinOf[heyQQ]].Category != 2 {
		t.Errorf("friends = %+v", friends)
	}

	online, err := c.OnlineBuddies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	status := map[int64]string{}
	for _, o := range online {
		status[o.UIN] = o.Status
	}
	if status[uinOf[bobQQ]] != "away" || status[uinOf[aliceQQ]] != "online" {
		t.Errorf("online = %+v", online)
	}

	info, err := c.FriendInfo(ctx, uinOf[aliceQQ])
	if err != nil || info.Nick != "Alice" || info.UIN != uinOf[aliceQQ] || info.Gender != "female" {
		t.Errorf("FriendInfo = %+v, %v", info, err)
	}
	self, err := c.SelfInfo(ctx)
	if err != nil || self.Account != selfQQ || self.Nick != "qqbridge" {
		t.Errorf("SelfInfo = %+v, %v", self, err)
	}
	qq, err := c.AccountOf(ctx, uinOf[bobQQ])
	if err != nil || qq != bobQQ {
		t.Errorf("AccountOf = %d, %v", qq, err)
	}

	groups, err := c.Groups(ctx)
	if err != nil || len(groups) != 2 {
		t.Fatalf("Groups = %+v, %v", groups, err)
	}
	var dev, hike qqclient.Group
	for _, g := range groups {
		switch g.GID {
		case st.Groups[devGroup]:
			dev = g
		case st.Groups[hikeGrp]:
			hike = g
		}
	}
	if dev.Name != "Dev chat" || dev.MarkName != "开发群" || dev.Code != st.GroupCodes[devGroup] || hike.Name != "周末爬山" {
		t.Errorf("groups = %+v", groups)
	}
	num, err := c.GroupNumber(ctx, dev.Code)
	if err != nil || num != devGroup {
		t.Errorf("GroupNumber = %d, %v", num, err)
	}
	gi, err := c.GroupInfo(ctx, dev.Code)
	if err != nil {
		t.Fatal(err)
	}
	cards := map[int64]string{}
	for _, m := range gi.Members {
		cards[m.UIN] = m.Card
	}
	if gi.Name != "Dev chat" || gi.Owner != uinOf[aliceQQ] || gi.GID != dev.GID ||
		cards[uinOf[aliceQQ]] != "Alice@dev" || cards[uinOf[carolQQ]] != "Carol (QA)" || cards[uinOf[bobQQ]] != "" ||
		len(gi.Members) != 4 {
		t.Errorf("GroupInfo = %+v", gi)
	}
	gi, err = c.GroupInfo(ctx, hike.Code) // nobody set a card: no "cards" in the answer
	if err != nil || len(gi.Members) != 4 {
		t.Fatalf("GroupInfo (no cards) = %+v, %v", gi, err)
	}
	for _, m := range gi.Members {
		if m.Card != "" || m.Nick == "" {
			t.Errorf("member without cards = %+v", m)
		}
	}

	discs, err := c.Discussions(ctx)
	if err != nil || len(discs) != 1 || discs[0].DID != st.Discussions[lunchDID] || discs[0].Name != "午饭吃什么" {
		t.Fatalf("Discussions = %+v, %v", discs, err)
	}
	di, err := c.DiscussInfo(ctx, discs[0].DID)
	if err != nil {
		t.Fatal(err)
	}
	ruin := map[int64]int64{}
	for _, m := range di.Members {
		ruin[m.UIN] = m.RUIN
	}
	if di.Name != "午饭吃什么" || len(di.Members) != 4 || ruin[uinOf[carolQQ]] != carolQQ {
		t.Errorf("DiscussInfo = %+v", di)
	}

	if err := c.SendPart(ctx, qqclient.Target{Kind: qqclient.TargetGroup, UIN: dev.GID}, []qqclient.Segment{qqclient.TextSegment("x")}); err != nil {
		t.Fatal(err)
	}
	recent, err := c.RecentList(ctx)
	if err != nil || len(recent) != 1 || recent[0].Type != 1 || recent[0].UIN != dev.GID {
		t.Errorf("RecentList = %+v, %v", recent, err)
	}
}

func TestSimPollKinds(t *testing.T) {
	e := newSimEnv(t, simConfig())
	c := e.client()
	ctx := testenv.Context(t)
	e.login(ctx, c)
	st := e.sim.State()

	says := []qqsim.Say{
		{Kind: "friend", From: aliceQQ, Text: `1 < 2 & "3" > \0`, Faces: []int{14}},
		{Kind: "group", From: carolQQ, Group: devGroup, Text: "群消息"},
		{Kind: "discuss", From: bobQQ, DID: lunchDID, Text: "午饭？", Faces: []int{0, 21}},
		{Kind: "sess", From: daveQQ, Group: hikeGrp, Text: "temp <chat>"},
	}
	for _, s := range says {
		if _, err := e.sim.Say(s); err != nil {
			t.Fatal(err)
		}
	}
	evs := pollUntil(t, ctx, c, len(says))
	if len(evs) != len(says) {
		t.Fatalf("%d events, want %d", len(evs), len(says))
	}
	wantTypes := []qqclient.PollType{qqclient.PollMessage, qqclient.PollGroupMessage, qqclient.PollDiscuMessage, qqclient.PollSessMessage}
	for i, ev := range evs {
		if ev.Type != wantTypes[i] || ev.Message == nil || ev.Err != nil {
			t.Fatalf("event %d = %+v", i, ev)
		}
		if ev.Message.Text() != says[i].Text {
			t.Errorf("event %d text %q, want %q", i, ev.Message.Text(), says[i].Text)
		}
		var faces []int
		for _, sg := range ev.Message.Segments {
			if sg.Type == qqclient.SegmentFace {
				faces = append(faces, sg.Face)
			}
		}
		if len(faces) != len(says[i].Faces) || (len(faces) > 0 && faces[0] != says[i].Faces[0]) {
			t.Errorf("event %d faces %v, want %v", i, faces, says[i].Faces)
		}
		if ev.Message.ToUIN != selfQQ || ev.Message.Time.IsZero() || ev.Message.MsgID == 0 {
			t.Errorf("event %d message = %+v", i, ev.Message)
		}
	}
	friend, group, discu, sess := evs[0].Message, evs[1].Message, evs[2].Message, evs[3].Message
	if friend.FromUIN != st.Friends[aliceQQ] {
		t.Errorf("friend from %d, want %d", friend.FromUIN, st.Friends[aliceQQ])
	}
	if group.FromUIN != st.Groups[devGroup] || group.GroupCode != st.Groups[devGroup] || group.SendUIN != st.Friends[carolQQ] {
		t.Errorf("group message = %+v", group)
	}
	if discu.DID != st.Discussions[lunchDID] || discu.FromUIN != discu.DID || discu.SendUIN != st.Friends[bobQQ] {
		t.Errorf("discu message = %+v", discu)
	}
	if sess.FromUIN != st.Friends[daveQQ] || sess.SessID != st.Groups[hikeGrp] || sess.SessRUIN != daveQQ {
		t.Errorf("sess message = %+v", sess)
	}

	// The other kinds, injected verbatim, with an unknown kind and a malformed item.
	items := []string{
		`{"poll_type":"buddies_status_change","value":{"uin":1234567890,"status":"busy","client_type":1}}`,
		`{"poll_type":"input_notify","value":{"msg_id":1,"msg_id2":2,"msg_type":121,"from_uin":1234567890,"to_uin":931996776,"reply_ip":1}}`,
		`{"poll_type":"file_message","value":{"msg_id":3,"from_uin":1234567890,"to_uin":931996776,"type":"file","name":"a.png"}}`,
		`{"poll_type":"tips","value":{"from_uin":10000,"type":"notice"}}`,
		`{"poll_type":"system_message","value":{"from_uin":1234567891,"type":"verify_required","account":42}}`,
		`{"poll_type":"sys_g_msg","value":{"from_uin":1234567892,"type":"group_request_join","gcode":1}}`,
		`{"poll_type":"brand_new_kind","value":{"x":1}}`,
		`{"poll_type":"message","value":{"msg_id":"x","content":{}}}`,
		`{"poll_type":"kick_message","value":{"msg_id":5,"msg_id2":6,"from_uin":10000,"to_uin":931996776,"msg_type":48,"reply_ip":0,"show_reason":1,"reason":"bye"}}`,
	}
	raws := make([]json.RawMessage, len(items))
	for i, it := range items {
		raws[i] = json.RawMessage(it)
	}
	if err := e.sim.Inject(raws); err != nil {
		t.Fatal(err)
	}
	evs = pollUntil(t, ctx, c, len(items))
	if len(evs) != len(items) {
		t.Fatalf("%d injected events, want %d", len(evs), len(items))
	}
	checks := []struct {
		ok   bool
		what string
	}{
		{evs[0].Status != nil && evs[0].Status.Status == "busy" && evs[0].Status.UIN == 1234567890, "buddies_status_change"},
		{evs[1].Input != nil && evs[1].Input.FromUIN == 1234567890, "input_notify"},
		{evs[2].Notice != nil && evs[2].Notice.Kind == "file" && evs[2].Type == qqclient.PollFileMessage, "file_message"},
		{evs[3].Notice != nil && evs[3].Notice.FromUIN == 10000 && evs[3].Type == qqclient.PollTips, "tips"},
		{evs[4].Notice != nil && evs[4].Notice.Kind == "verify_required", "system_message"},
		{evs[5].Notice != nil && evs[5].Notice.Kind == "group_request_join" && evs[5].Type == qqclient.PollSysGroupMessage, "sys_g_msg"},
		{evs[6].Type == "brand_new_kind" && evs[6].Err == nil && string(evs[6].Raw) == `{"x":1}`, "unknown kind kept"},
		{evs[7].Type == qqclient.PollMessage && evs[7].Message == nil && errors.Is(evs[7].Err, qqclient.ErrProtocol), "malformed item kept"},
		{evs[8].Kick != nil && evs[8].Kick.Reason == "bye", "kick_message"},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("%s: events = %+v", ch.what, evs)
		}
	}
}

// wantContent is the wire content string of text with the default font last.
func wantContent(t *testing.T, segs ...qqclient.Segment) string {
	t.Helper()
	s, err := qqclient.EncodeContent(segs, qqclient.DefaultFont())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSimSendKinds(t *testing.T) {
	e := newSimEnv(t, simConfig())
	c := e.client()
	ctx := testenv.Context(t)
	e.login(ctx, c)
	st := e.sim.State()

	// The sess target comes from a temporary chat message.
	if _, err := e.sim.Say(qqsim.Say{Kind: "sess", From: daveQQ, Group: hikeGrp, Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	in := pollUntil(t, ctx, c, 1)[0].Message

	segs := []qqclient.Segment{qqclient.TextSegment(`a<b> & "c"`), qqclient.FaceSegment(14), qqclient.TextSegment("尾")}
	sends := []struct {
		target     qqclient.Target
		kind       string
		wantTarget int64
		wantStable int64
	}{
		{qqclient.Target{Kind: qqclient.TargetFriend, UIN: st.Friends[aliceQQ]}, "friend", st.Friends[aliceQQ], aliceQQ},
		{qqclient.Target{Kind: qqclient.TargetGroup, UIN: st.Groups[devGroup]}, "group", st.Groups[devGroup], devGroup},
		{qqclient.Target{Kind: qqclient.TargetDiscuss, UIN: st.Discussions[lunchDID]}, "discuss", st.Discussions[lunchDID], lunchDID},
		{qqclient.Target{Kind: qqclient.TargetSess, UIN: in.FromUIN, GroupUIN: in.SessID}, "sess", st.Friends[daveQQ], daveQQ},
		{qqclient.Target{Kind: qqclient.TargetSess, UIN: in.FromUIN, GroupUIN: in.SessID}, "sess", st.Friends[daveQQ], daveQQ}, // cached group_sig
	}
	for _, s := range sends {
		if err := c.SendPart(ctx, s.target, segs); err != nil {
			t.Fatalf("SendPart %s: %v", s.kind, err)
		}
	}
	sent := e.sim.Sent()
	if len(sent) != len(sends) {
		t.Fatalf("%d sent records, want %d", len(sent), len(sends))
	}
	want := wantContent(t, segs...)
	for i, r := range sent {
		s := sends[i]
		if r.Kind != s.kind || r.Target != s.wantTarget || r.Stable != s.wantStable {
			t.Errorf("record %d = %s %d/%d, want %s %d/%d", i, r.Kind, r.Target, r.Stable, s.kind, s.wantTarget, s.wantStable)
		}
		if r.Content != want {
			t.Errorf("record %d content %s, want %s", i, r.Content, want)
		}
		if !strings.HasSuffix(r.Content, `["font",{"name":"宋体","size":10,"style":[0,0,0],"color":"000000"}]]`) {
			t.Errorf("record %d: font not last: %s", i, r.Content)
		}
		if r.Text != `a<b> & "c"[face 14]尾` {
			t.Errorf("record %d text %q", i, r.Text)
		}
		if i > 0 && r.MsgID != sent[i-1].MsgID+1 {
			t.Errorf("msg_id %d after %d, want +1", r.MsgID, sent[i-1].MsgID)
		}
	}
	if sent[0].MsgID < 1_000_000 {
		t.Errorf("msg_id %d is not a large number", sent[0].MsgID)
	}
	if n := e.sim.State().Counters["get_c2cmsg_sig2"]; n != 1 {
		t.Errorf("get_c2cmsg_sig2 called %d times, want 1 (cached)", n)
	}
}

func TestSimSendLongMessageSplit(t *testing.T) {
	e := newSimEnv(t, simConfig())
	c := e.client()
	ctx := testenv.Context(t)
	e.login(ctx, c)
	target := qqclient.Target{Kind: qqclient.TargetFriend, UIN: e.sim.State().Friends[bobQQ]}

	var b strings.Builder
	for i := 0; b.Len() < 1800; i++ {
		b.WriteString("消息 message ")
	}
	text := []rune(b.String())
	for len(text) < 2000 {
		text = append(text, 'x')
	}
	msg := string(text[:2000])

	parts := qqclient.Split([]qqclient.Segment{qqclient.TextSegment(msg)})
	if len(parts) < 2 {
		t.Fatalf("%d parts", len(parts))
	}
	// Whole, it is refused locally; the simulator would refuse it too (1000001).
	if err := c.SendPart(ctx, target, []qqclient.Segment{qqclient.TextSegment(msg)}); !errors.Is(err, qqclient.ErrTooLong) {
		t.Fatalf("whole message: %v, want ErrTooLong", err)
	}
	for i, p := range parts {
		if err := c.SendPart(ctx, target, p); err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
	}
	sent := e.sim.Sent()
	if len(sent) != len(parts) {
		t.Fatalf("%d records for %d parts", len(sent), len(parts))
	}
	var joined strings.Builder
	for i, r := range sent {
		if len(r.Text) > qqclient.MaxPartBytes {
			t.Errorf("part %d has %d bytes", i, len(r.Text))
		}
		joined.WriteString(r.Text)
	}
	if joined.String() != msg {
		t.Errorf("parts arrived joined as a different message")
	}
}

func TestSimSessionLostAndRelogin(t *testing.T) {
	e := newSimEnv(t, simConfig())
	c := e.client()
	ctx := testenv.Context(t)
	first := e.login(ctx, c)
	oldUIN := e.sim.State().Friends[aliceQQ]

	e.sim.ExpireSession()
	_, err := c.Poll(ctx)
	var re *qqclient.RetcodeError
	if !errors.Is(err, qqclient.ErrSessionLost) || !errors.As(err, &re) || re.Retcode != 103 || re.Op != "poll2" {
		t.Fatalf("Poll after ExpireSession = %v, want 103 session lost", err)
	}
	checkNoSecrets(t, err, first)
	if _, err := c.Friends(ctx); !errors.Is(err, qqclient.ErrSessionLost) {
		t.Errorf("Friends after ExpireSession = %v", err)
	}

	// The cookies live on: a new session without QR, with new session numbers.
	s, err := c.Relogin(ctx)
	if err != nil {
		t.Fatalf("Relogin: %v", err)
	}
	if s.PSessionID == first.PSessionID || s.UIN != selfQQ {
		t.Error("Relogin kept the old session")
	}
	if _, err := e.sim.Say(qqsim.Say{Kind: "friend", From: aliceQQ, Text: "again"}); err != nil {
		t.Fatal(err)
	}
	ev := pollUntil(t, ctx, c, 1)[0]
	if ev.Message == nil || ev.Message.Text() != "again" || ev.Message.FromUIN == oldUIN || ev.Message.FromUIN != e.sim.State().Friends[aliceQQ] {
		t.Errorf("after Relogin: %+v", ev.Message)
	}
}

func TestSimKick(t *testing.T) {
	e := newSimEnv(t, simConfig())
	c := e.client()
	ctx := testenv.Context(t)
	s := e.login(ctx, c)
	e.sim.Kick()
	evs, err := c.Poll(ctx)
	if err != nil || len(evs) != 1 || evs[0].Kick == nil || evs[0].Kick.Reason == "" {
		t.Fatalf("Poll after Kick = %+v, %v", evs, err)
	}
	_, err = c.Poll(ctx)
	var re *qqclient.RetcodeError
	if !errors.Is(err, qqclient.ErrSessionLost) || !errors.As(err, &re) || re.Retcode != 121 {
		t.Fatalf("second Poll = %v, want 121 session lost", err)
	}
	checkNoSecrets(t, err, s)
	// The cookies died too: only a QR login helps.
	if _, err := c.Relogin(ctx); !errors.Is(err, qqclient.ErrSessionLost) {
		t.Fatalf("Relogin after Kick = %v, want ErrSessionLost", err)
	}
	e.login(ctx, c)
}

func TestSimChaos(t *testing.T) {
	e := newSimEnv(t, simConfig())
	c := e.client()
	ctx := testenv.Context(t)
	s := e.login(ctx, c)
	friend := qqclient.Target{Kind: qqclient.TargetFriend, UIN: e.sim.State().Friends[aliceQQ]}
	hello := []qqclient.Segment{qqclient.TextSegment("hello")}

	t.Run("1202 maybe sent", func(t *testing.T) {
		e.sim.SetChaos(qqsim.Chaos{MaybeSentRate: 1})
		defer e.sim.SetChaos(qqsim.Chaos{})
		err := c.SendPart(ctx, friend, hello)
		var re *qqclient.RetcodeError
		if !errors.Is(err, qqclient.ErrMaybeSent) || !errors.As(err, &re) || re.Retcode != 1202 || re.Op != "send_buddy_msg2" {
			t.Fatalf("SendPart = %v, want 1202 maybe sent", err)
		}
		if errors.Is(err, qqclient.ErrSessionLost) || errors.Is(err, qqclient.ErrBadRequest) {
			t.Errorf("1202 also classified as %v", err)
		}
		checkNoSecrets(t, err, s)
	})
	t.Run("1000003 rate limited", func(t *testing.T) {
		e.sim.SetChaos(qqsim.Chaos{RateLimitPerS: 0.01})
		defer e.sim.SetChaos(qqsim.Chaos{})
		var err error
		for range 5 {
			if _, err = c.Friends(ctx); err != nil {
				break
			}
		}
		var re *qqclient.RetcodeError
		if !errors.Is(err, qqclient.ErrRateLimited) || !errors.As(err, &re) || re.Retcode != 1000003 {
			t.Fatalf("Friends under a rate limit = %v", err)
		}
		checkNoSecrets(t, err, s)
	})
	t.Run("HTTP 502", func(t *testing.T) {
		e.sim.SetChaos(qqsim.Chaos{HTTP502Rate: 1})
		defer e.sim.SetChaos(qqsim.Chaos{})
		evs, err := c.Poll(ctx)
		if err != nil || evs != nil {
			t.Errorf("Poll with 502 = %v, %v; want an empty poll", evs, err)
		}
		_, err = c.Friends(ctx)
		var he *qqclient.HTTPError
		if !errors.Is(err, qqclient.ErrHTTP) || !errors.As(err, &he) || he.StatusCode != 502 {
			t.Errorf("Friends with 502 = %v", err)
		}
		checkNoSecrets(t, err, s)
	})
	// Everything works again afterwards.
	if err := c.SendPart(ctx, friend, hello); err != nil {
		t.Fatal(err)
	}
}

func TestSimEmptyPolls(t *testing.T) {
	e := newSimEnv(t, simConfig())
	ctx := testenv.Context(t)
	c := e.client()
	e.login(ctx, c)
	t.Run("102 after the hold", func(t *testing.T) {
		evs, err := c.Poll(ctx)
		if err != nil || evs != nil {
			t.Errorf("Poll = %v, %v", evs, err)
		}
	})
	t.Run("client timeout", func(t *testing.T) {
		// A second client of the same session with a poll timeout shorter than the hold.
		s, _ := c.Session()
		short := e.client(qqclient.WithPollTimeout(50 * time.Millisecond))
		if err := short.Resume(ctx, s); err != nil {
			t.Fatal(err)
		}
		evs, err := short.Poll(ctx)
		if err != nil || evs != nil {
			t.Errorf("Poll = %v, %v; want an empty poll", evs, err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := c.Poll(cctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Poll with a cancelled context = %v", err)
		}
	})
}

func TestSimPtWebQQRenewed(t *testing.T) {
	e := newSimEnv(t, simConfig())
	c := e.client()
	ctx := testenv.Context(t)
	before := e.login(ctx, c)
	if err := e.sim.RenewPtWebQQ(); err != nil {
		t.Fatal(err)
	}
	evs, err := c.Poll(ctx)
	if err != nil || evs != nil {
		t.Fatalf("Poll answering 116 = %v, %v", evs, err)
	}
	after, _ := c.Session()
	if after.PtWebQQ == before.PtWebQQ || after.PtWebQQ == "" {
		t.Fatal("ptwebqq not replaced")
	}
	cookie := ""
	for _, ck := range after.Cookies {
		if ck.Name == "ptwebqq" {
			cookie = ck.Value
		}
	}
	if cookie != after.PtWebQQ {
		t.Error("ptwebqq cookie not replaced")
	}
	// The simulator accepts only the new value now (poll2 r, cookie, hash).
	if _, err := c.Friends(ctx); err != nil {
		t.Errorf("Friends after 116: %v", err)
	}
	if _, err := e.sim.Say(qqsim.Say{Kind: "friend", From: aliceQQ, Text: "still here"}); err != nil {
		t.Fatal(err)
	}
	if ev := pollUntil(t, ctx, c, 1)[0]; ev.Message == nil || ev.Message.Text() != "still here" {
		t.Errorf("poll after 116 = %+v", ev)
	}
}

func TestSimSaveResume(t *testing.T) {
	e := newSimEnv(t, simConfig())
	ctx := testenv.Context(t)
	c1 := e.client()
	e.login(ctx, c1)
	s, _ := c1.Session()
	saved, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}

	// A restart: a new client resumes from the saved bytes, no QR.
	var restored qqclient.Session
	if err := json.Unmarshal(saved, &restored); err != nil {
		t.Fatal(err)
	}
	c2 := e.client()
	if err := c2.Resume(ctx, &restored); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if _, err := e.sim.Say(qqsim.Say{Kind: "group", From: aliceQQ, Group: devGroup, Text: "resumed"}); err != nil {
		t.Fatal(err)
	}
	if ev := pollUntil(t, ctx, c2, 1)[0]; ev.Message == nil || ev.Message.Text() != "resumed" {
		t.Errorf("poll after Resume = %+v", ev)
	}
	if err := c2.SendPart(ctx, qqclient.Target{Kind: qqclient.TargetGroup, UIN: e.sim.State().Groups[devGroup]},
		[]qqclient.Segment{qqclient.TextSegment("back")}); err != nil {
		t.Errorf("SendPart after Resume: %v", err)
	}
	if n := e.sim.State().Counters["logins"]; n != 1 {
		t.Errorf("%d logins, want 1 (Resume must not log in)", n)
	}

	// The session dies: resuming it fails as session lost and logs the client out, but
	// the cookies still make a new session.
	e.sim.ExpireSession()
	c3 := e.client()
	err = c3.Resume(ctx, &restored)
	if !errors.Is(err, qqclient.ErrSessionLost) {
		t.Fatalf("Resume of an expired session = %v, want ErrSessionLost", err)
	}
	checkNoSecrets(t, err, &restored)
	if _, ok := c3.Session(); ok {
		t.Error("client still logged in after a failed Resume")
	}
	if _, err := c3.Poll(ctx); !errors.Is(err, qqclient.ErrNotLoggedIn) {
		t.Errorf("Poll after failed Resume = %v", err)
	}
	if _, err := c3.Relogin(ctx); err != nil {
		t.Errorf("Relogin with the saved cookies: %v", err)
	}
}

func TestSimResumeAfterCookiesExpired(t *testing.T) {
	cfg := simConfig()
	cfg.SessionTTL = 500 * time.Millisecond
	e := newSimEnv(t, cfg)
	ctx := testenv.Context(t)
	c := e.client()
	s := e.login(ctx, c)
	for e.sim.State().Login != "expired" {
		select {
		case <-ctx.Done():
			t.Fatal("session never expired")
		case <-time.After(50 * time.Millisecond):
		}
	}
	c2 := e.client()
	if err := c2.Resume(ctx, s); !errors.Is(err, qqclient.ErrSessionLost) {
		t.Fatalf("Resume = %v, want ErrSessionLost", err)
	}
	if _, err := c2.Relogin(ctx); !errors.Is(err, qqclient.ErrSessionLost) {
		t.Fatalf("Relogin = %v, want ErrSessionLost", err)
	}
}

func TestSimConcurrentUse(t *testing.T) {
	e := newSimEnv(t, simConfig())
	c := e.client()
	ctx := testenv.Context(t)
	e.login(ctx, c)
	st := e.sim.State()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 10 {
		wg.Go(func() {
			_, err := c.Friends(ctx)
			errs <- err
			errs <- c.SendPart(ctx, qqclient.Target{Kind: qqclient.TargetFriend, UIN: st.Friends[aliceQQ]},
				[]qqclient.Segment{qqclient.TextSegment(strings.Repeat("x", i+1))})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	ids := map[int64]bool{}
	for _, r := range e.sim.Sent() {
		if ids[r.MsgID] {
			t.Errorf("msg_id %d used twice", r.MsgID)
		}
		ids[r.MsgID] = true
	}
	if len(ids) != 10 {
		t.Errorf("%d distinct sends, want 10", len(ids))
	}
}

// simProfiles are the services the client must work against: each era qqsim plays,
// with and without the write-ups' strict header checks, seed 004's form of the QR
// confirmation, and each empty-poll form on its own. Each names its profile, so
// that the environment's era (testenv.SimEra) leaves it as it is.
var simProfiles = []struct {
	name string
	set  func(*qqsim.Config)
}{
	{"2018", func(c *qqsim.Config) { c.Profile = qqsim.Profile2018 }},
	{"2018 strict", func(c *qqsim.Config) { c.Profile = qqsim.Profile2018; c.Strict = true }},
	{"2015", func(c *qqsim.Config) { c.Profile = qqsim.Profile2015 }},
	{"2015 strict", func(c *qqsim.Config) { c.Profile = qqsim.Profile2015; c.Strict = true }},
	{"2015 seed-004 confirmation", func(c *qqsim.Config) { c.Profile = qqsim.Profile2015; c.SeedConfirm = true }},
	{"2018 seed-004 confirmation", func(c *qqsim.Config) { c.Profile = qqsim.Profile2018; c.SeedConfirm = true }},
	{"2018 empty polls 504", func(c *qqsim.Config) { c.Profile = qqsim.Profile2018; c.EmptyPoll = qqsim.EmptyPoll504 }},
	{"2018 empty polls retcode 0", func(c *qqsim.Config) { c.Profile = qqsim.Profile2018; c.EmptyPoll = qqsim.EmptyPollNoResult }},
	{"2018 empty polls errmsg error", func(c *qqsim.Config) { c.Profile = qqsim.Profile2018; c.EmptyPoll = qqsim.EmptyPollError }},
}

// TestSimProfiles runs the client's whole life against every profile: QR login,
// contacts, empty polls of the profile's forms, messages of each kind, sends of each
// kind (twice, so that both success forms of the 2018 profile come), and a re-login.
func TestSimProfiles(t *testing.T) {
	for _, p := range simProfiles {
		t.Run(p.name, func(t *testing.T) {
			cfg := simConfig()
			cfg.Echo = false
			p.set(&cfg)
			e := newSimEnv(t, cfg)
			c := e.client()
			ctx := testenv.Context(t)
			s := e.login(ctx, c)
			if s.UIN != selfQQ || s.PtWebQQ == "" {
				t.Fatalf("session uin %d", s.UIN)
			}
			// The cookies of ptqrlogin's success (2018) and of check_sig are all kept.
			names := map[string]bool{}
			for _, ck := range s.Cookies {
				names[ck.Name] = true
			}
			if !names["skey"] || !names["ptwebqq"] || !names["p_skey"] || names["superuin"] != (cfg.Profile != qqsim.Profile2015) {
				t.Errorf("session cookies %v", names)
			}

			friends, err := c.Friends(ctx)
			if err != nil || len(friends) != 3 {
				t.Fatalf("Friends = %d, %v", len(friends), err)
			}
			groups, err := c.Groups(ctx)
			if err != nil || len(groups) != 2 {
				t.Fatalf("Groups = %d, %v", len(groups), err)
			}
			if gi, err := c.GroupInfo(ctx, groups[0].Code); err != nil || len(gi.Members) == 0 {
				t.Fatalf("GroupInfo = %+v, %v", gi, err)
			}
			discs, err := c.Discussions(ctx)
			if err != nil || len(discs) != 1 {
				t.Fatalf("Discussions = %d, %v", len(discs), err)
			}

			// Empty polls, in whatever form the profile ends them, are empty polls.
			for i := 0; i < 4; i++ {
				evs, err := c.Poll(ctx)
				if err != nil || len(evs) != 0 {
					t.Fatalf("empty poll %d = %v, %v", i, evs, err)
				}
			}
			counters := e.sim.State().Counters
			if n := counters["polls_102"] + counters["polls_504"] + counters["polls_0"] + counters["polls_0_error"]; n < 4 {
				t.Errorf("the simulator counted %d empty polls, want 4", n)
			}

			for _, say := range []qqsim.Say{
				{Kind: "friend", From: aliceQQ, Text: "f"},
				{Kind: "group", From: bobQQ, Group: devGroup, Text: "g"},
				{Kind: "discuss", From: carolQQ, DID: lunchDID, Text: "d"},
			} {
				if _, err := e.sim.Say(say); err != nil {
					t.Fatal(err)
				}
			}
			var texts []string
			for _, ev := range pollUntil(t, ctx, c, 3) {
				if ev.Message == nil {
					t.Fatalf("event %+v", ev)
				}
				texts = append(texts, string(ev.Type)+":"+ev.Message.Text())
			}
			if strings.Join(texts, " ") != "message:f group_message:g discu_message:d" {
				t.Errorf("messages = %v", texts)
			}

			st := e.sim.State()
			targets := []qqclient.Target{
				{Kind: qqclient.TargetFriend, UIN: st.Friends[aliceQQ]},
				{Kind: qqclient.TargetGroup, UIN: st.Groups[devGroup]},
				{Kind: qqclient.TargetDiscuss, UIN: st.Discussions[lunchDID]},
			}
			for round := 0; round < 2; round++ {
				for _, tg := range targets {
					if err := c.SendPart(ctx, tg, []qqclient.Segment{qqclient.TextSegment("hi")}); err != nil {
						t.Fatalf("SendPart %s: %v", tg.Kind, err)
					}
				}
			}
			if n := len(e.sim.Sent()); n != 6 {
				t.Errorf("%d messages sent, want 6", n)
			}

			if _, err := c.Relogin(ctx); err != nil {
				t.Fatalf("Relogin: %v", err)
			}
			if _, err := c.Friends(ctx); err != nil {
				t.Errorf("Friends after Relogin: %v", err)
			}
		})
	}
}

// TestSimPicturesAndFiles: a friend's picture is decoded and fetched (get_offpic2 and its
// 302), a group picture is decoded, a file offer is taken (get_file2 and its 302) and
// another refused, in each era's profile; an expired offer is ErrOfferExpired.
func TestSimPicturesAndFiles(t *testing.T) {
	for _, p := range simProfiles[:4] {
		t.Run(p.name, func(t *testing.T) {
			cfg := simConfig()
			p.set(&cfg)
			e := newSimEnv(t, cfg)
			c := e.client()
			ctx := testenv.Context(t)
			e.login(ctx, c)
			if _, err := e.sim.Say(qqsim.Say{Kind: "friend", From: aliceQQ, Text: "cat", Pictures: []string{"cat.png"}}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.sim.Say(qqsim.Say{Kind: "group", From: bobQQ, Group: devGroup, Pictures: []string{"dog.jpg"}}); err != nil {
				t.Fatal(err)
			}
			evs := pollUntil(t, ctx, c, 2)
			fm, gm := evs[0].Message, evs[1].Message
			if fm == nil || len(fm.Pictures) != 1 || fm.Pictures[0].Kind != qqclient.PictureOffPic || fm.Pictures[0].Index != 1 {
				t.Fatalf("friend message = %+v", evs[0])
			}
			if gm == nil || len(gm.Pictures) != 1 || gm.Pictures[0].Kind != qqclient.PictureCFace || gm.Pictures[0].Name == "" || gm.Pictures[0].FileID == 0 {
				t.Fatalf("group message = %+v", evs[1])
			}
			png, err := c.Picture(ctx, fm.FromUIN, fm.Pictures[0].FilePath)
			if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
				t.Fatalf("Picture = %d bytes, %v", len(png), err)
			}
			if _, err := c.Picture(ctx, fm.FromUIN, "/no-such-picture"); !errors.Is(err, qqclient.ErrBadRequest) {
				t.Errorf("Picture of an unknown path: %v", err)
			}

			for _, name := range []string{"qt.png", "no.txt"} {
				if _, err := e.sim.OfferFile(qqsim.FileOffer{From: aliceQQ, Name: name, Text: "content of " + name}); err != nil {
					t.Fatal(err)
				}
			}
			evs = pollUntil(t, ctx, c, 2)
			var offers []qqclient.FileOffer
			for _, ev := range evs {
				if ev.Type != qqclient.PollFileMessage || ev.Notice == nil || ev.Notice.File == nil {
					t.Fatalf("event = %+v, want a file offer", ev)
				}
				offers = append(offers, *ev.Notice.File)
			}
			data, err := c.AcceptFile(ctx, offers[0])
			if err != nil || string(data) != "content of qt.png" {
				t.Fatalf("AcceptFile = %q, %v", data, err)
			}
			if err := c.RefuseFile(ctx, offers[1]); err != nil {
				t.Fatalf("RefuseFile: %v", err)
			}
			if _, err := c.AcceptFile(ctx, offers[0]); !errors.Is(err, qqclient.ErrOfferExpired) {
				t.Errorf("AcceptFile of a taken offer: %v, want ErrOfferExpired", err)
			}
			var actions []string
			for _, tr := range e.sim.Transfers() {
				actions = append(actions, tr.Kind+" "+tr.Action)
			}
			if strings.Join(actions, ", ") != "picture fetched, picture downloaded, file fetched, file downloaded, file refused, file expired" {
				t.Errorf("transfers = %v", actions)
			}
		})
	}
	t.Run("expired offer", func(t *testing.T) {
		cfg := simConfig()
		cfg.FileTTL = time.Millisecond
		e := newSimEnv(t, cfg)
		c := e.client()
		ctx := testenv.Context(t)
		e.login(ctx, c)
		if _, err := e.sim.OfferFile(qqsim.FileOffer{From: aliceQQ, Name: "late.zip"}); err != nil {
			t.Fatal(err)
		}
		offer := pollUntil(t, ctx, c, 1)[0].Notice.File
		time.Sleep(5 * time.Millisecond) // past the offer's life
		if err := c.RefuseFile(ctx, *offer); !errors.Is(err, qqclient.ErrOfferExpired) {
			t.Errorf("RefuseFile: %v, want ErrOfferExpired", err)
		}
		if _, err := c.AcceptFile(ctx, *offer); !errors.Is(err, qqclient.ErrOfferExpired) {
			t.Errorf("AcceptFile: %v, want ErrOfferExpired", err)
		}
	})
}
