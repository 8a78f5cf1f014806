package ingress

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
)

// TestMessageKinds says one message of each chat kind in the simulator and
// checks that each arrives once, on its subject, with ids, names, cards and
// segments, in both codecs.
func TestMessageKinds(t *testing.T) {
	for _, codec := range []schema.Codec{schema.JSON(), schema.Msgpack()} {
		t.Run(codec.ContentType(), func(t *testing.T) {
			h := newHarness(t)
			h.start(codec)
			st := h.sim.State()
			uin := func(qq int64) int64 { return st.Friends[qq] }
			did := st.Discussions[testenv.Lunch]

			tests := []struct {
				say     qqsim.Say
				subject string
				kind    schema.Kind
				typ     string
				from    schema.Contact
				group   *schema.GroupRef
				discuss *schema.DiscussRef
				sess    *schema.SessRef
			}{
				{
					say:     qqsim.Say{Kind: "friend", From: testenv.Alice, Text: "hello"},
					subject: "qq.in.friend.123456", kind: schema.KindFriend, typ: schema.TypeMessageFriend,
					from: schema.Contact{UIN: uin(testenv.Alice), QQ: testenv.Alice, Nick: "Alice"},
				},
				{
					say:     qqsim.Say{Kind: "group", From: testenv.Alice, Group: testenv.DevChat, Text: "hello group"},
					subject: "qq.in.group.987654", kind: schema.KindGroup, typ: schema.TypeMessageGroup,
					from:  schema.Contact{UIN: uin(testenv.Alice), QQ: testenv.Alice, Nick: "Alice", Card: "Alice@dev"},
					group: &schema.GroupRef{GID: st.Groups[testenv.DevChat], Number: testenv.DevChat, Name: "Dev chat"},
				},
				{
					say:     qqsim.Say{Kind: "group", From: testenv.Hey, Group: testenv.Hiking, Text: "爬山吗"},
					subject: "qq.in.group.55443322", kind: schema.KindGroup, typ: schema.TypeMessageGroup,
					from:  schema.Contact{UIN: uin(testenv.Hey), QQ: testenv.Hey, Nick: "Hey"},
					group: &schema.GroupRef{GID: st.Groups[testenv.Hiking], Number: testenv.Hiking, Name: "周末爬山"},
				},
				{
					say:     qqsim.Say{Kind: "discuss", From: testenv.Carol, DID: testenv.Lunch, Text: "noodles"},
					subject: "qq.in.discuss.did" + strconv.FormatInt(did, 10), kind: schema.KindDiscuss, typ: schema.TypeMessageDiscuss,
					from:    schema.Contact{UIN: uin(testenv.Carol), QQ: testenv.Carol, Nick: "Carol"},
					discuss: &schema.DiscussRef{DID: did, Name: "午饭吃什么"},
				},
				{
					say:     qqsim.Say{Kind: "sess", From: testenv.Carol, Group: testenv.DevChat, Text: "psst"},
					subject: "qq.in.sess.2468024", kind: schema.KindSess, typ: schema.TypeMessageSess,
					from: schema.Contact{UIN: uin(testenv.Carol), QQ: testenv.Carol, Nick: "Carol", Card: "Carol (QA)"},
					sess: &schema.SessRef{ViaGID: st.Groups[testenv.DevChat], ViaNumber: testenv.DevChat},
				},
			}
			for _, tc := range tests {
				t.Run(tc.say.Kind+"/"+tc.say.Text, func(t *testing.T) {
					msgID := h.say(tc.say)
					msgs := h.waitMsgID(msgID)
					got := msgs[len(msgs)-1]
					for _, m := range msgs[:len(msgs)-1] {
						if m.Event.MsgID == msgID {
							t.Fatalf("msg_id %d published twice", msgID)
						}
					}
					e := got.Event
					wantID := schema.EventID(testenv.Self, string(tc.kind), msgID)
					if got.Subject != tc.subject {
						t.Errorf("subject %q, want %q", got.Subject, tc.subject)
					}
					checkHeaders(t, got, wantID, codec.ContentType(), tc.typ)
					if e.ID != wantID || e.Type != tc.typ || e.Account != testenv.Self || e.V != schema.Version {
						t.Errorf("envelope id=%q type=%q account=%d v=%d, want %q %q %d %d", e.ID, e.Type, e.Account, e.V, wantID, tc.typ, testenv.Self, schema.Version)
					}
					if e.From == nil || *e.From != tc.from {
						t.Errorf("from %+v, want %+v", e.From, tc.from)
					}
					if !reflect.DeepEqual(e.Group, tc.group) || !reflect.DeepEqual(e.Discuss, tc.discuss) || !reflect.DeepEqual(e.Sess, tc.sess) {
						t.Errorf("group %+v discuss %+v sess %+v, want %+v %+v %+v", e.Group, e.Discuss, e.Sess, tc.group, tc.discuss, tc.sess)
					}
					wantSegs := []schema.Segment{schema.TextSegment(tc.say.Text)}
					if e.Text != tc.say.Text || !reflect.DeepEqual(e.Segments, wantSegs) || e.Picture {
						t.Errorf("text %q segments %+v picture %v, want %q %+v false", e.Text, e.Segments, e.Picture, tc.say.Text, wantSegs)
					}
				})
			}
			// The stream may hold the last event a moment before its ack
			// reaches ingress.
			testenv.Eventually(t, "the acks", func() bool { return h.ing.Stats().Published == uint64(len(tests)) })
			if s := h.ing.Stats(); s.Duplicates != 0 || s.Retries != 0 || s.Dropped != 0 {
				t.Errorf("stats: %+v, want %d published and nothing else", s, len(tests))
			}
		})
	}
}

// checkHeaders checks the Nats-Msg-Id, Content-Type and CloudEvents headers.
func checkHeaders(t *testing.T, m received, id, contentType, typ string) {
	t.Helper()
	for name, want := range map[string]string{
		"Nats-Msg-Id":    id,
		"Content-Type":   contentType,
		"ce-specversion": "1.0",
		"ce-id":          id,
		"ce-type":        "qq." + typ,
		"ce-source":      "qqbridge/" + strconv.FormatInt(testenv.Self, 10),
	} {
		if got := m.Header.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	if m.Header.Get("ce-time") == "" {
		t.Error("no ce-time header")
	}
}

func TestFacesAndEntities(t *testing.T) {
	h := newHarness(t)
	h.start(nil)
	msgID := h.say(qqsim.Say{Kind: "friend", From: testenv.Bob, Text: `a <b> & "c" \ d`, Faces: []int{14, 0}})
	msgs := h.waitMsgID(msgID)
	e := msgs[len(msgs)-1].Event
	wantSegs := []schema.Segment{schema.TextSegment(`a <b> & "c" \ d`), schema.FaceSegment(14), schema.FaceSegment(0)}
	if !reflect.DeepEqual(e.Segments, wantSegs) {
		t.Errorf("segments %+v, want %+v", e.Segments, wantSegs)
	}
	if want := `a <b> & "c" \ d/微笑/惊讶`; e.Text != want {
		t.Errorf("text %q, want %q", e.Text, want)
	}
	if msgs[len(msgs)-1].Subject != "qq.in.friend.3524125" {
		t.Errorf("subject %q", msgs[len(msgs)-1].Subject)
	}
}

func TestPictureOnly(t *testing.T) {
	h := newHarness(t)
	h.start(nil)
	msgID := h.say(qqsim.Say{Kind: "group", From: testenv.Bob, Group: testenv.DevChat}) // nothing but the font
	msgs := h.waitMsgID(msgID)
	e := msgs[len(msgs)-1].Event
	if !e.Picture || e.Text != "" || len(e.Segments) != 0 {
		t.Errorf("picture %v text %q segments %v, want a picture-only message", e.Picture, e.Text, e.Segments)
	}
	if e.From == nil || e.From.QQ != testenv.Bob || e.Group == nil || e.Group.Number != testenv.DevChat {
		t.Errorf("from %+v group %+v, want bob in dev chat", e.From, e.Group)
	}
}

func TestStatusAndInput(t *testing.T) {
	h := newHarness(t)
	h.start(nil)
	u := h.sim.State().Friends[testenv.Alice]
	us := strconv.FormatInt(u, 10)
	h.inject(
		`{"poll_type":"buddies_status_change","value":{"uin":`+us+`,"status":"busy","client_type":21}}`,
		`{"poll_type":"input_notify","value":{"msg_id":777001,"msg_id2":1,"msg_type":121,"from_uin":`+us+`,"to_uin":931996776,"reply_ip":1}}`,
	)
	msgs := h.waitMsgID(777001)
	if len(msgs) != 2 {
		t.Fatalf("stream: %s; want the status then the input event", describe(msgs))
	}
	st, in := msgs[0], msgs[1]
	if st.Subject != "qq.in.status.123456" || in.Subject != "qq.in.input.123456" {
		t.Errorf("subjects %q, %q; want qq.in.status.123456, qq.in.input.123456", st.Subject, in.Subject)
	}
	wantStatus := schema.Status{UIN: u, QQ: testenv.Alice, Status: "busy", ClientType: 21}
	if st.Event.Type != schema.TypeStatusBuddy || st.Event.Status == nil || *st.Event.Status != wantStatus {
		t.Errorf("status event %+v, want type %s status %+v", st.Event, schema.TypeStatusBuddy, wantStatus)
	}
	wantFrom := schema.Contact{UIN: u, QQ: testenv.Alice, Nick: "Alice"}
	if in.Event.Type != schema.TypeInputNotify || in.Event.From == nil || *in.Event.From != wantFrom ||
		in.Event.ID != schema.EventID(testenv.Self, "input", 777001) {
		t.Errorf("input event %+v from %+v, want from %+v", in.Event, in.Event.From, wantFrom)
	}
}

// TestSystemKinds injects notices and unknown kinds: each is published on
// qq.in.system.<kind> with the wire value.
func TestSystemKinds(t *testing.T) {
	h := newHarness(t)
	h.start(nil)
	tests := []struct {
		item, subject, value string
		msgID                int64
	}{
		{`{"poll_type":"tips","value":{"from_uin":10000,"type":2,"txt":"tip"}}`, "qq.in.system.tips", `{"from_uin":10000,"type":2,"txt":"tip"}`, 0},
		{`{"poll_type":"file_message","value":{"msg_id":880001,"from_uin":1,"type":"file","name":"qt.png"}}`, "qq.in.system.file_message", `{"msg_id":880001,"from_uin":1,"type":"file","name":"qt.png"}`, 880001},
		{`{"poll_type":"system_message","value":{"seq":4431,"type":"verify_required","account":123456,"msg":"hello"}}`, "qq.in.system.system_message", `{"seq":4431,"type":"verify_required","account":123456,"msg":"hello"}`, 0},
		{`{"poll_type":"sys_g_msg","value":{"msg_id":880002,"type":"group_request_join","t_gcode":987654,"msg":"let me in"}}`, "qq.in.system.sys_g_msg", `{"msg_id":880002,"type":"group_request_join","t_gcode":987654,"msg":"let me in"}`, 880002},
		{`{"poll_type":"shake_message","value":{"msg_id":880003,"from_uin":42}}`, "qq.in.system.shake_message", `{"msg_id":880003,"from_uin":42}`, 880003},
		{`{"poll_type":"future.kind","value":{"x":[1,2,{"y":"z"}]}}`, "qq.in.system.future_kind", `{"x":[1,2,{"y":"z"}]}`, 0},
	}
	for _, tc := range tests {
		h.inject(tc.item)
	}
	barrier := h.say(qqsim.Say{Kind: "friend", From: testenv.Alice, Text: "barrier"})
	msgs := h.waitMsgID(barrier)
	if len(msgs) != len(tests)+1 {
		t.Fatalf("stream: %s; want %d system events then the barrier", describe(msgs), len(tests))
	}
	for i, tc := range tests {
		m := msgs[i]
		kind := m.Subject[len("qq.in.system."):]
		if m.Subject != tc.subject || m.Event.Type != "system."+kind || m.Event.SystemKind != kind {
			t.Errorf("%s: subject %q type %q system_kind %q", tc.subject, m.Subject, m.Event.Type, m.Event.SystemKind)
		}
		if !jsonEqual(m.Event.Raw, []byte(tc.value)) {
			t.Errorf("%s: raw %s, want %s", tc.subject, m.Event.Raw, tc.value)
		}
		wantID := schema.HashEventID(testenv.Self, kind, []byte(tc.value))
		if tc.msgID != 0 {
			wantID = schema.EventID(testenv.Self, kind, tc.msgID)
		}
		if m.Event.ID != wantID || m.Header.Get("Nats-Msg-Id") != wantID {
			t.Errorf("%s: id %q / header %q, want %q", tc.subject, m.Event.ID, m.Header.Get("Nats-Msg-Id"), wantID)
		}
	}
}

// TestRepeatedMsgID injects the same item twice: one stream message. A new
// Ingress (an empty recent set, as after a restart) sees it again: the
// stream drops it by its Nats-Msg-Id.
func TestRepeatedMsgID(t *testing.T) {
	h := newHarness(t)
	ing := h.start(nil)
	us := strconv.FormatInt(h.sim.State().Friends[testenv.Alice], 10)
	item := `{"poll_type":"message","value":{"msg_id":990001,"msg_id2":1,"msg_type":9,"from_uin":` + us +
		`,"to_uin":931996776,"time":1450686775,"content":[["font",{"name":"宋体","size":10,"style":[0,0,0],"color":"000000"}],"twice"]}}`
	h.inject(item, item)
	barrier := h.say(qqsim.Say{Kind: "friend", From: testenv.Alice, Text: "barrier 1"})
	msgs := h.waitMsgID(barrier)
	if n := countMsgID(msgs, 990001); n != 1 {
		t.Fatalf("msg_id 990001 in the stream %d times, want 1: %s", n, describe(msgs))
	}
	if s := ing.Stats(); s.Repeats != 1 || s.Duplicates != 0 {
		t.Errorf("stats %+v: want the repeat skipped without a publish", s)
	}

	h.stop()
	ing2 := h.start(nil)
	// Only the newest poller of a session receives: wait until the new one
	// has polled once, so that the old poll (whose client went away) cannot
	// take the item.
	testenv.Eventually(t, "the new poller", func() bool { return ing2.Stats().Polls > 0 })
	h.inject(item)
	barrier = h.say(qqsim.Say{Kind: "friend", From: testenv.Alice, Text: "barrier 2"})
	msgs = h.waitMsgID(barrier)
	if n := countMsgID(msgs, 990001); n != 1 {
		t.Fatalf("after a restart msg_id 990001 in the stream %d times, want 1: %s", n, describe(msgs))
	}
	if s := ing2.Stats(); s.Duplicates != 1 {
		t.Errorf("stats %+v: want the stream to report one duplicate", s)
	}
}

func countMsgID(msgs []received, id int64) int {
	n := 0
	for _, m := range msgs {
		if m.Event.MsgID == id {
			n++
		}
	}
	return n
}

// TestEchoSuppressed sends through the client; the simulator echoes the
// sends back through poll2 as the real service did; nothing is published.
func TestEchoSuppressed(t *testing.T) {
	h := newHarness(t)
	ing := h.start(nil)
	st := h.sim.State()
	ctx := h.ctx()
	for _, tg := range []qqclient.Target{
		{Kind: qqclient.TargetFriend, UIN: st.Friends[testenv.Alice]},
		{Kind: qqclient.TargetGroup, UIN: st.Groups[testenv.DevChat]},
		{Kind: qqclient.TargetDiscuss, UIN: st.Discussions[testenv.Lunch]},
		{Kind: qqclient.TargetSess, UIN: st.Friends[testenv.Carol], GroupUIN: st.Groups[testenv.DevChat]},
	} {
		if err := h.c.SendPart(ctx, tg, []qqclient.Segment{qqclient.TextSegment("sent by the bridge")}); err != nil {
			t.Fatalf("SendPart(%+v): %v", tg, err)
		}
	}
	barrier := h.say(qqsim.Say{Kind: "friend", From: testenv.Bob, Text: "barrier"})
	msgs := h.waitMsgID(barrier)
	if len(msgs) != 1 {
		t.Fatalf("stream: %s; want only the barrier (echoes suppressed)", describe(msgs))
	}
	if s := ing.Stats(); s.Echoes != 4 {
		t.Errorf("stats %+v: want 4 echoes", s)
	}
}

// TestKick: a kick is published on qq.in.system.kick and reported to the
// session manager; polling stops.
func TestKick(t *testing.T) {
	h := newHarness(t)
	ing := h.start(nil)
	h.sim.Kick()
	msgs := h.waitFor(func(m received) bool { return m.Subject == "qq.in.system.kick" })
	e := msgs[len(msgs)-1].Event
	if e.Type != schema.TypeSystemKick || e.Kick == nil || e.Kick.Reason == "" || e.SystemKind != "kick" || len(e.Raw) == 0 {
		t.Errorf("kick event %+v", e)
	}
	testenv.Eventually(t, "the kick report", func() bool { _, k := h.sess.reports(); return len(k) == 1 })
	if _, kicked := h.sess.reports(); kicked[0] != e.Kick.Reason {
		t.Errorf("reported reason %q, want %q", kicked[0], e.Kick.Reason)
	}
	if s := ing.Stats(); s.Kicks != 1 || s.Lost != 0 {
		t.Errorf("stats %+v: want one kick, no lost session", s)
	}
}

// TestSessionLostAndRelogin: the session expires, ingress reports it, the
// session re-logs in with new session numbers, and messages keep arriving
// with the stable ids.
func TestSessionLostAndRelogin(t *testing.T) {
	h := newHarness(t)
	ing := h.start(nil)
	before := h.sim.State()
	first := h.say(qqsim.Say{Kind: "group", From: testenv.Alice, Group: testenv.DevChat, Text: "before"})
	h.waitMsgID(first)

	h.sim.ExpireSession()
	testenv.Eventually(t, "the re-login", func() bool {
		lost, _ := h.sess.reports()
		return len(lost) == 1 && h.sim.State().Login == "online"
	})
	after := h.sim.State()
	if after.Groups[testenv.DevChat] == before.Groups[testenv.DevChat] {
		t.Fatal("session numbers did not change")
	}
	second := h.say(qqsim.Say{Kind: "group", From: testenv.Alice, Group: testenv.DevChat, Text: "after"})
	msgs := h.waitMsgID(second)
	got := msgs[len(msgs)-1]
	if got.Subject != "qq.in.group.987654" {
		t.Errorf("subject after re-login %q, want qq.in.group.987654", got.Subject)
	}
	wantFrom := schema.Contact{UIN: after.Friends[testenv.Alice], QQ: testenv.Alice, Nick: "Alice", Card: "Alice@dev"}
	wantGroup := schema.GroupRef{GID: after.Groups[testenv.DevChat], Number: testenv.DevChat, Name: "Dev chat"}
	if *got.Event.From != wantFrom || *got.Event.Group != wantGroup {
		t.Errorf("after re-login from %+v group %+v, want %+v %+v", got.Event.From, got.Event.Group, wantFrom, wantGroup)
	}
	if lost, _ := h.sess.reports(); lost[0] != 1 {
		t.Errorf("lost reported for gen %d, want 1", lost[0])
	}
	if s := ing.Stats(); s.Lost != 1 {
		t.Errorf("stats %+v: want one lost session", s)
	}
}

// TestSameGenPolledAgain: polling fails as if the session were gone, but the
// session manager keeps answering the same gen (it knows better, as when a
// replica's polling term ended and began again): ingress pauses and polls the
// same session again instead of waiting for a gen that never comes.
func TestSameGenPolledAgain(t *testing.T) {
	h := newHarness(t)
	ing := h.start(nil)
	first := h.say(qqsim.Say{Kind: "friend", From: testenv.Alice, Text: "first"})
	h.waitMsgID(first)

	saved, ok := h.c.Session()
	if !ok {
		t.Fatal("not logged in")
	}
	h.sess.mu.Lock()
	h.sess.ignoreLost = true
	h.sess.mu.Unlock()
	h.c.Logout() // the next poll fails with ErrNotLoggedIn
	testenv.Eventually(t, "two failed rounds", func() bool { lost, _ := h.sess.reports(); return len(lost) >= 2 })
	if err := h.c.Resume(h.ctx(), saved); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	second := h.say(qqsim.Say{Kind: "friend", From: testenv.Alice, Text: "second"})
	msgs := h.waitMsgID(second)
	if n := countMsgID(msgs, second); n != 1 {
		t.Errorf("second message %d times in the stream", n)
	}
	for _, g := range func() []uint64 { l, _ := h.sess.reports(); return l }() {
		if g != 1 {
			t.Errorf("lost reported for gen %d, want 1", g)
		}
	}
	if s := ing.Stats(); s.Lost < 2 {
		t.Errorf("stats %+v: want the repeated failures counted", s)
	}
}

// TestNATSDown shuts the NATS server down, has a friend say something
// (ingress polls it and cannot publish), restarts the server on the same
// port and store: the event arrives once.
func TestNATSDown(t *testing.T) {
	h := newHarness(t)
	ing := h.start(nil)
	first := h.say(qqsim.Say{Kind: "friend", From: testenv.Alice, Text: "while NATS is up"})
	h.waitMsgID(first)

	h.nats.Stop()
	polledBefore := ing.Stats().Items
	msgID := h.say(qqsim.Say{Kind: "friend", From: testenv.Alice, Text: "while NATS is down"})
	testenv.Eventually(t, "ingress to poll the message", func() bool { return ing.Stats().Items > polledBefore })
	testenv.Eventually(t, "failed publish attempts", func() bool { return ing.Stats().Retries >= 2 })
	later := h.say(qqsim.Say{Kind: "friend", From: testenv.Bob, Text: "said while the publish waits"})

	h.nats.Restart()
	msgs := h.waitMsgID(later)
	if n := countMsgID(msgs, msgID); n != 1 {
		t.Fatalf("msg_id %d in the stream %d times, want 1: %s", msgID, n, describe(msgs))
	}
	var order []int64
	for _, m := range msgs {
		order = append(order, m.Event.MsgID)
	}
	if want := []int64{first, msgID, later}; !reflect.DeepEqual(order, want) {
		t.Errorf("stream order %v, want %v", order, want)
	}
	if e := msgs[1].Event; e.Text != "while NATS is down" || e.From == nil || e.From.QQ != testenv.Alice {
		t.Errorf("event after the outage %+v", e)
	}
}

// TestNew checks the required fields.
func TestNew(t *testing.T) {
	h := newHarness(t)
	full := Config{Client: h.c, Terms: h.sess, JS: h.js}
	if _, err := New(full); err != nil {
		t.Fatalf("New(full): %v", err)
	}
	for name, mod := range map[string]func(*Config){
		"no client":        func(c *Config) { c.Client = nil },
		"no terms":         func(c *Config) { c.Terms = nil },
		"no JetStream":     func(c *Config) { c.JS = nil },
		"negative timeout": func(c *Config) { c.PublishTimeout = -1 },
		"negative hold":    func(c *Config) { c.MinHold = -1 },
		"negative payload": func(c *Config) { c.MaxPayload = -1 },
	} {
		cfg := full
		mod(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%s) succeeded", name)
		}
	}

}

// TestImmediateErrorsBackOff: during a burst of immediate HTTP 502 answers
// (an empty poll each, for qqclient) ingress backs off instead of polling in
// a tight loop; once the answers are held again, polling resumes.
func TestImmediateErrorsBackOff(t *testing.T) {
	h := newHarness(t)
	h.start(nil)
	first := h.say(qqsim.Say{Kind: "friend", From: testenv.Alice, Text: "before the burst"})
	h.waitMsgID(first)

	h.sim.SetChaos(qqsim.Chaos{HTTP502Rate: 1})
	before := h.sim.State().Counters["poll2"]
	time.Sleep(time.Second) // the window the requests are counted in
	polls := h.sim.State().Counters["poll2"] - before
	h.sim.SetChaos(qqsim.Chaos{})
	// Backing off from 100ms to MaxBackoff (200ms here) makes a handful; a
	// hot loop makes thousands.
	if polls > 30 {
		t.Errorf("%d poll2 requests in one second of immediate 502 answers, want at most 30", polls)
	}
	second := h.say(qqsim.Say{Kind: "friend", From: testenv.Alice, Text: "after the burst"})
	h.waitMsgID(second)
}

// TestLargeMessageNotDropped: a text of about 600 KB, carried as text and as
// segments, is more than the NATS max payload (1 MB) as one event; it is
// published in parts that fit, and the parts give back the whole message.
func TestLargeMessageNotDropped(t *testing.T) {
	h := newHarness(t)
	ing := h.start(nil)
	big := strings.Repeat("长消息 long message ", 600<<10/len("长消息 long message "))
	id := h.say(qqsim.Say{Kind: "friend", From: testenv.Alice, Text: big})
	after := h.say(qqsim.Say{Kind: "friend", From: testenv.Alice, Text: "after the large one"})
	msgs := h.waitMsgID(after)
	var text strings.Builder
	var segs []schema.Segment
	parts := 0
	for _, m := range msgs {
		if m.Event.MsgID != id {
			continue
		}
		parts++
		text.WriteString(m.Event.Text)
		segs = append(segs, m.Event.Segments...)
	}
	if parts == 0 {
		t.Fatalf("the large message is not in the stream; stats %+v", ing.Stats())
	}
	if text.String() != big {
		t.Errorf("the parts' text is %d bytes, want the %d bytes said", text.Len(), len(big))
	}
	var segText strings.Builder
	for _, s := range segs {
		segText.WriteString(s.Text)
	}
	if segText.String() != big {
		t.Errorf("the parts' segments hold %d bytes of text, want %d", segText.Len(), len(big))
	}
	if s := ing.Stats(); s.Dropped != 0 {
		t.Errorf("stats %+v: want nothing dropped", s)
	}
}

// TestTermEndIsNotLost: the end of a polling term (a leadership change, a
// login request) is not a lost session: nothing is reported or counted lost,
// and the next term is polled.
func TestTermEndIsNotLost(t *testing.T) {
	h := newHarness(t)
	ing := h.start(nil)
	first := h.say(qqsim.Say{Kind: "friend", From: testenv.Alice, Text: "first term"})
	h.waitMsgID(first)
	for range 3 {
		h.sess.endTerm()
	}
	second := h.say(qqsim.Say{Kind: "friend", From: testenv.Alice, Text: "a later term"})
	h.waitMsgID(second)
	if lost, _ := h.sess.reports(); len(lost) != 0 {
		t.Errorf("lost reported for gens %v", lost)
	}
	if s := ing.Stats(); s.Lost != 0 {
		t.Errorf("stats %+v: the end of a term counted as a lost session", s)
	}
}

// TestLargeMessageSmallPayload: with a small max payload, a message of text
// and faces is published in many parts; each fits, they carry part and
// parts, distinct ids and the same msg_id, and together the whole message.
func TestLargeMessageSmallPayload(t *testing.T) {
	h := newHarness(t)
	ing, err := New(Config{
		Client: h.c, Terms: h.sess, Dir: h.dir, JS: h.js, Subjects: h.subjects, Log: h.log,
		MaxBackoff: 200 * time.Millisecond, MinHold: 50 * time.Millisecond, MaxPayload: 16 << 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	defer func() { cancel(); <-done }()

	text := strings.Repeat("ab€😀", 30<<10/11)
	id := h.say(qqsim.Say{Kind: "group", From: testenv.Alice, Group: testenv.DevChat, Text: text, Faces: []int{14, 0}})
	msgs := h.waitFor(func(m received) bool { return m.Event.MsgID == id && m.Event.Part == m.Event.Parts })
	var parts []*schema.Event
	for _, m := range msgs {
		if m.Event.MsgID == id {
			parts = append(parts, m.Event)
			if data, _, err := m.Event.Encode(schema.JSON()); err != nil || len(data) > 16<<10 {
				t.Errorf("part %d: %d bytes (%v), larger than the payload", m.Event.Part, len(data), err)
			}
		}
	}
	if len(parts) < 2 {
		t.Fatalf("%d parts, want several", len(parts))
	}
	whole := ""
	var segs []schema.Segment
	ids := map[string]bool{}
	for k, p := range parts {
		if p.Part != k+1 || p.Parts != len(parts) || p.Group == nil || p.Group.Number != testenv.DevChat {
			t.Errorf("part %d: part %d of %d, group %+v", k+1, p.Part, p.Parts, p.Group)
		}
		if want := schema.EventID(testenv.Self, "group", id) + schema.PartSuffix(k+1, len(parts)); p.ID != want {
			t.Errorf("part %d id %q, want %q", k+1, p.ID, want)
		}
		ids[p.ID] = true
		whole += p.Text
		segs = append(segs, p.Segments...)
	}
	if len(ids) != len(parts) {
		t.Errorf("%d distinct ids for %d parts", len(ids), len(parts))
	}
	var merged []schema.Segment // adjacent text pieces joined again
	for _, s := range segs {
		if n := len(merged); n > 0 && s.Type == schema.SegmentText && merged[n-1].Type == schema.SegmentText {
			merged[n-1].Text += s.Text
			continue
		}
		merged = append(merged, s)
	}
	want := []schema.Segment{schema.TextSegment(text), schema.FaceSegment(14), schema.FaceSegment(0)}
	if !reflect.DeepEqual(merged, want) {
		t.Errorf("the parts' segments (%d) do not make the message", len(merged))
	}
	if whole != text+"/微笑/惊讶" {
		t.Errorf("the parts' text is %d bytes, want %d", len(whole), len(text)+len("/微笑/惊讶"))
	}
	if s := ing.Stats(); s.Split != 1 || s.Dropped != 0 {
		t.Errorf("stats %+v: want one split, nothing dropped", s)
	}
}

// TestLargeRawTruncated: a system item whose raw value does not fit in a
// message is published without it, marked truncated — not dropped.
func TestLargeRawTruncated(t *testing.T) {
	h := newHarness(t)
	ing, err := New(Config{
		Client: h.c, Terms: h.sess, Dir: h.dir, JS: h.js, Subjects: h.subjects, Log: h.log,
		MaxBackoff: 200 * time.Millisecond, MinHold: 50 * time.Millisecond, MaxPayload: 16 << 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	defer func() { cancel(); <-done }()

	h.inject(`{"poll_type":"huge_notice","value":{"from_uin":1,"blob":"` + strings.Repeat("x", 32<<10) + `"}}`)
	msgs := h.waitFor(func(m received) bool { return m.Subject == "qq.in.system.huge_notice" })
	e := msgs[len(msgs)-1].Event
	if !e.Truncated || len(e.Raw) != 0 || e.SystemKind != "huge_notice" {
		t.Errorf("event truncated=%v raw %d bytes kind %q; want truncated without raw", e.Truncated, len(e.Raw), e.SystemKind)
	}
	if s := ing.Stats(); s.Truncated != 1 || s.Dropped != 0 {
		t.Errorf("stats %+v: want one truncated, nothing dropped", s)
	}
}
