package directory

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

// The default world of the simulator (qqsim.DefaultWorld), as a consumer
// would name it.
const (
	alice   = testenv.Alice   // friend, member of Dev chat with a card, discussion member
	bob     = testenv.Bob     // friend, member of both groups without a card
	hey     = testenv.Hey     // friend, member of 周末爬山
	carol   = testenv.Carol   // not a friend: member of Dev chat with a card, discussion member
	dave    = testenv.Dave    // not a friend: member of 周末爬山
	devChat = testenv.DevChat // group with cards
	hiking  = testenv.Hiking  // group where nobody set a card
	lunch   = testenv.Lunch   // discussion (the simulator's stable id)
)

func TestRefreshLoadsLists(t *testing.T) {
	e := newEnv(t)
	ctx := testenv.Context(t)
	d := New(e.c, testLog(t))
	if got := d.Friends(); len(got) != 0 {
		t.Fatalf("Friends before Refresh = %v, want none", got)
	}
	if err := d.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	st := e.sim.State()

	friends := map[int64]string{}
	for _, f := range d.Friends() {
		friends[f.UIN] = f.Nick
	}
	for qq, nick := range map[int64]string{alice: "Alice", bob: "Bob", hey: "Hey"} {
		if got := friends[st.Friends[qq]]; got != nick {
			t.Errorf("friend %d (uin %d): nick %q, want %q", qq, st.Friends[qq], got, nick)
		}
	}
	if len(friends) != 3 {
		t.Errorf("Friends() has %d entries, want 3", len(friends))
	}

	wantGroups := map[int64]string{devChat: "Dev chat", hiking: "周末爬山"}
	groups := d.Groups()
	if len(groups) != len(wantGroups) {
		t.Fatalf("Groups() = %v, want %d groups", groups, len(wantGroups))
	}
	for _, g := range groups {
		if name, ok := wantGroups[g.Number]; !ok || g.Name != name || g.GID != st.Groups[g.Number] {
			t.Errorf("group %+v: want number in %v with its name and gid %d", g, wantGroups, st.Groups[g.Number])
		}
	}

	ds := d.Discussions()
	if len(ds) != 1 || ds[0].DID != st.Discussions[lunch] || ds[0].Name != "午饭吃什么" {
		t.Errorf("Discussions() = %+v, want did %d named 午饭吃什么", ds, st.Discussions[lunch])
	}
}

func TestInboundLookups(t *testing.T) {
	e := newEnv(t)
	ctx := testenv.Context(t)
	d := New(e.c, testLog(t))
	if err := d.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	st := e.sim.State()
	uin := func(qq int64) int64 { return st.Friends[qq] }

	t.Run("Friend", func(t *testing.T) {
		for _, tc := range []struct {
			qq   int64
			nick string
		}{{alice, "Alice"}, {bob, "Bob"}, {hey, "Hey"}} {
			got := d.Friend(ctx, uin(tc.qq))
			want := schema.Contact{UIN: uin(tc.qq), QQ: tc.qq, Nick: tc.nick}
			if got != want {
				t.Errorf("Friend(%d) = %+v, want %+v", uin(tc.qq), got, want)
			}
		}
	})
	t.Run("Member", func(t *testing.T) {
		for _, tc := range []struct {
			group, qq  int64
			nick, card string
		}{
			{devChat, alice, "Alice", "Alice@dev"},
			{devChat, bob, "Bob", ""},
			{devChat, carol, "Carol", "Carol (QA)"},
			{hiking, dave, "Dave", ""},
			{hiking, hey, "Hey", ""},
		} {
			gid := st.Groups[tc.group]
			got := d.Member(ctx, gid, uin(tc.qq))
			want := schema.Contact{UIN: uin(tc.qq), QQ: tc.qq, Nick: tc.nick, Card: tc.card}
			if got != want {
				t.Errorf("Member(gid of %d, uin of %d) = %+v, want %+v", tc.group, tc.qq, got, want)
			}
		}
	})
	t.Run("DiscussMember", func(t *testing.T) {
		did := st.Discussions[lunch]
		for _, tc := range []struct {
			qq   int64
			nick string
		}{{alice, "Alice"}, {carol, "Carol"}} {
			got := d.DiscussMember(ctx, did, uin(tc.qq))
			want := schema.Contact{UIN: uin(tc.qq), QQ: tc.qq, Nick: tc.nick}
			if got != want {
				t.Errorf("DiscussMember(%d, uin of %d) = %+v, want %+v", did, tc.qq, got, want)
			}
		}
	})
	t.Run("GroupAndDiscuss", func(t *testing.T) {
		for number, name := range map[int64]string{devChat: "Dev chat", hiking: "周末爬山"} {
			gid := st.Groups[number]
			if got, want := d.Group(ctx, gid), (schema.GroupRef{GID: gid, Number: number, Name: name}); got != want {
				t.Errorf("Group(%d) = %+v, want %+v", gid, got, want)
			}
		}
		did := st.Discussions[lunch]
		if got, want := d.Discuss(did), (schema.DiscussRef{DID: did, Name: "午饭吃什么"}); got != want {
			t.Errorf("Discuss(%d) = %+v, want %+v", did, got, want)
		}
	})
	t.Run("Unknown", func(t *testing.T) {
		const stranger = 4000000001
		if got := d.Friend(ctx, stranger); got != (schema.Contact{UIN: stranger}) {
			t.Errorf("Friend(unknown) = %+v, want the uin only", got)
		}
		if got := d.Group(ctx, stranger); got != (schema.GroupRef{GID: stranger}) {
			t.Errorf("Group(unknown) = %+v, want the gid only", got)
		}
	})
}

func TestQQNumbersResolvedOncePerSession(t *testing.T) {
	e := newEnv(t)
	ctx := testenv.Context(t)
	d := New(e.c, testLog(t))
	if err := d.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	st := e.sim.State()
	before := e.sim.State().Counters["get_friend_uin2"]
	// Hey is in no discussion, so only get_friend_uin2 knows his number.
	for range 3 {
		if got := d.Friend(ctx, st.Friends[hey]).QQ; got != hey {
			t.Fatalf("Friend(hey).QQ = %d, want %d", got, hey)
		}
		if got := d.Member(ctx, st.Groups[hiking], st.Friends[hey]).QQ; got != hey {
			t.Fatalf("Member(hey).QQ = %d, want %d", got, hey)
		}
	}
	if n := e.sim.State().Counters["get_friend_uin2"] - before; n != 1 {
		t.Errorf("get_friend_uin2 asked %d times for one person, want 1", n)
	}
	// Discussion lists carry QQ numbers: no lookup at all.
	before = e.sim.State().Counters["get_friend_uin2"]
	if got := d.DiscussMember(ctx, st.Discussions[lunch], st.Friends[carol]).QQ; got != carol {
		t.Fatalf("DiscussMember(carol).QQ = %d, want %d", got, carol)
	}
	if n := e.sim.State().Counters["get_friend_uin2"] - before; n != 0 {
		t.Errorf("get_friend_uin2 asked %d times for a discussion member, want 0", n)
	}
}

func TestOutboundLookups(t *testing.T) {
	e := newEnv(t)
	ctx := testenv.Context(t)
	d := New(e.c, testLog(t))
	if err := d.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	st := e.sim.State()
	for _, tc := range []struct {
		name    string
		call    func() (int64, error)
		want    int64
		wantErr error
	}{
		{"friend alice", func() (int64, error) { return d.friendUIN(ctx, alice) }, st.Friends[alice], nil},
		{"friend hey", func() (int64, error) { return d.friendUIN(ctx, hey) }, st.Friends[hey], nil},
		{"not a friend", func() (int64, error) { return d.friendUIN(ctx, carol) }, 0, ErrUnknownTarget},
		{"no such person", func() (int64, error) { return d.friendUIN(ctx, 99999) }, 0, ErrUnknownTarget},
		{"group dev chat", func() (int64, error) { return d.groupGID(ctx, devChat) }, st.Groups[devChat], nil},
		{"group hiking", func() (int64, error) { return d.groupGID(ctx, hiking) }, st.Groups[hiking], nil},
		{"no such group", func() (int64, error) { return d.groupGID(ctx, 11111) }, 0, ErrUnknownTarget},
		{"member carol", func() (int64, error) { return d.memberUIN(ctx, st.Groups[devChat], carol) }, st.Friends[carol], nil},
		{"member dave", func() (int64, error) { return d.memberUIN(ctx, st.Groups[hiking], dave) }, st.Friends[dave], nil},
		{"dave not in dev chat", func() (int64, error) { return d.memberUIN(ctx, st.Groups[devChat], dave) }, 0, ErrUnknownTarget},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.call()
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("= %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestReloginNewSessionNumbers(t *testing.T) {
	e := newEnv(t)
	ctx := testenv.Context(t)
	d := New(e.c, testLog(t))
	if err := d.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	old := e.sim.State()
	if got := d.Friend(ctx, old.Friends[alice]).QQ; got != alice {
		t.Fatalf("before re-login: Friend(alice).QQ = %d", got)
	}

	e.relogin(t)
	now := e.sim.State()
	if now.Friends[alice] == old.Friends[alice] || now.Groups[devChat] == old.Groups[devChat] {
		t.Fatal("the simulator kept session numbers across the re-login")
	}

	// Outbound lookups notice the new session and refresh before answering:
	// an old session number is never handed out.
	if got, err := d.friendUIN(ctx, alice); err != nil || got != now.Friends[alice] {
		t.Errorf("friendUIN(alice) = %d, %v; want the new uin %d", got, err, now.Friends[alice])
	}
	if got, err := d.groupGID(ctx, devChat); err != nil || got != now.Groups[devChat] {
		t.Errorf("groupGID(dev chat) = %d, %v; want the new gid %d", got, err, now.Groups[devChat])
	}
	// Inbound lookups with the new numbers resolve names, cards and numbers.
	gid := now.Groups[devChat]
	if got, want := d.Group(ctx, gid), (schema.GroupRef{GID: gid, Number: devChat, Name: "Dev chat"}); got != want {
		t.Errorf("Group(new gid) = %+v, want %+v", got, want)
	}
	wantMember := schema.Contact{UIN: now.Friends[alice], QQ: alice, Nick: "Alice", Card: "Alice@dev"}
	if got := d.Member(ctx, gid, now.Friends[alice]); got != wantMember {
		t.Errorf("Member(new numbers) = %+v, want %+v", got, wantMember)
	}
	// The old numbers mean nothing any more.
	if got := d.Friend(ctx, old.Friends[alice]); got.QQ != 0 || got.Nick != "" {
		t.Errorf("Friend(old uin) = %+v, want nothing resolved", got)
	}
	if got := d.Group(ctx, old.Groups[devChat]); got.Number != 0 {
		t.Errorf("Group(old gid) = %+v, want no number", got)
	}
}

func TestInboundRefreshesAfterRelogin(t *testing.T) {
	e := newEnv(t)
	ctx := testenv.Context(t)
	d := New(e.c, testLog(t), WithMissRefresh(time.Hour))
	if err := d.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	e.relogin(t)
	now := e.sim.State()
	// No explicit Refresh: the first unknown number in a new session loads
	// the lists of that session, whatever the miss interval.
	want := schema.Contact{UIN: now.Friends[bob], QQ: bob, Nick: "Bob"}
	if got := d.Friend(ctx, now.Friends[bob]); got != want {
		t.Errorf("Friend(new uin) = %+v, want %+v", got, want)
	}
}

func TestRefreshErrors(t *testing.T) {
	e := newEnv(t)
	ctx := testenv.Context(t)
	d := New(e.c, testLog(t))
	if err := d.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	e.sim.ExpireSession()
	if err := d.Refresh(ctx); !errors.Is(err, qqclient.ErrSessionLost) {
		t.Errorf("Refresh in a dead session: %v, want ErrSessionLost", err)
	}
	if got := len(d.Groups()); got != 2 {
		t.Errorf("a failed refresh left %d groups, want the 2 loaded before", got)
	}
	e.c.Logout()
	if err := d.Refresh(ctx); !errors.Is(err, qqclient.ErrNotLoggedIn) {
		t.Errorf("Refresh logged out: %v, want ErrNotLoggedIn", err)
	}
	if _, err := d.friendUIN(ctx, alice); !errors.Is(err, qqclient.ErrNotLoggedIn) {
		t.Errorf("friendUIN logged out: %v, want ErrNotLoggedIn", err)
	}
}

func TestRunRefreshesPeriodically(t *testing.T) {
	e := newEnv(t)
	d := New(e.c, testLog(t))
	ctx, cancel := context.WithCancel(testenv.Context(t))
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx, 20*time.Millisecond)
	}()
	for len(d.Groups()) == 0 {
		if ctx.Err() != nil {
			t.Fatal("Run never loaded the groups")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if got := len(d.Friends()); got != 3 {
		t.Errorf("after Run: %d friends, want 3", got)
	}
}

func TestResolveFriends(t *testing.T) {
	e := newEnv(t)
	ctx := testenv.Context(t)
	d := New(e.c, testLog(t))
	if err := d.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	for _, f := range d.Friends() {
		if f.Nick == "Hey" && f.QQ != 0 {
			t.Fatalf("friend %+v resolved before anyone asked", f)
		}
	}
	if err := d.ResolveFriends(ctx); err != nil {
		t.Fatalf("ResolveFriends: %v", err)
	}
	got := map[int64]bool{}
	for _, f := range d.Friends() {
		got[f.QQ] = true
	}
	for _, qq := range []int64{alice, bob, hey} {
		if !got[qq] {
			t.Errorf("QQ number %d missing after ResolveFriends: %+v", qq, d.Friends())
		}
	}
}

func TestMissRefreshAndNegativeCache(t *testing.T) {
	e := newEnv(t)
	ctx := testenv.Context(t)
	const stranger = 4000000001
	count := func(name string) int64 { return e.sim.State().Counters[name] }

	slow := New(e.c, testLog(t), WithMissRefresh(time.Hour), WithNegativeTTL(time.Hour))
	if err := slow.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	lists, lookups := count("get_user_friends2"), count("get_friend_uin2")
	for range 3 {
		if got := slow.Friend(ctx, stranger); got != (schema.Contact{UIN: stranger}) {
			t.Fatalf("Friend(stranger) = %+v", got)
		}
	}
	if n := count("get_user_friends2") - lists; n != 0 {
		t.Errorf("%d refreshes for unknown numbers within the miss interval, want 0", n)
	}
	if n := count("get_friend_uin2") - lookups; n != 1 {
		t.Errorf("%d QQ number lookups of a stranger, want 1 (then remembered as failed)", n)
	}

	eager := New(e.c, testLog(t), WithMissRefresh(time.Nanosecond))
	if err := eager.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	lists = count("get_user_friends2")
	for range 2 {
		eager.Group(ctx, stranger)
	}
	if n := count("get_user_friends2") - lists; n != 2 {
		t.Errorf("%d refreshes for 2 misses past the miss interval, want 2", n)
	}
}
