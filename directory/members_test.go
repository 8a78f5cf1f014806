package directory

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
)

// errorCode is the result code an error of Members says it means.
func errorCode(err error) schema.ErrorCode {
	var c interface{ ErrorCode() schema.ErrorCode }
	if errors.As(err, &c) {
		return c.ErrorCode()
	}
	return ""
}

// TestMembers: a group's members by group number and by gid, in QQ's order,
// with nicks and cards, and the QQ numbers known without asking QQ: those of
// discussion members at once, a friend's once resolved — and no
// get_friend_uin2 request made by Members itself.
func TestMembers(t *testing.T) {
	e := newEnv(t)
	ctx := testenv.Context(t)
	d := New(e.c, testLog(t))
	if err := d.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	st := e.sim.State()
	uin := func(qq int64) int64 { return st.Friends[qq] }
	lookups := func() int64 { return e.sim.State().Counters["get_friend_uin2"] }
	before := lookups()

	got, err := d.Members(ctx, schema.Target{Group: devChat})
	if err != nil {
		t.Fatalf("Members(Dev chat): %v", err)
	}
	// The account is a member too (its uin is its QQ number). Alice, Bob and
	// Carol are in the discussion: its list gave their numbers.
	self := schema.Contact{UIN: 931996776, QQ: 931996776, Nick: "qqbridge"}
	want := []schema.Contact{
		self,
		{UIN: uin(alice), QQ: alice, Nick: "Alice", Card: "Alice@dev"},
		{UIN: uin(bob), QQ: bob, Nick: "Bob"},
		{UIN: uin(carol), QQ: carol, Nick: "Carol", Card: "Carol (QA)"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Members(Dev chat) = %+v, want %+v", got, want)
	}

	byGID, err := d.Members(ctx, schema.Target{GID: st.Groups[hiking]})
	if err != nil {
		t.Fatalf("Members(gid of 周末爬山): %v", err)
	}
	// Dave and Hey are in no discussion and nobody asked for their numbers.
	want = []schema.Contact{
		self,
		{UIN: uin(bob), QQ: bob, Nick: "Bob"},
		{UIN: uin(dave), Nick: "Dave"},
		{UIN: uin(hey), Nick: "Hey"},
	}
	if fmt.Sprint(byGID) != fmt.Sprint(want) {
		t.Errorf("Members(gid of 周末爬山) = %+v, want %+v", byGID, want)
	}
	if n := lookups() - before; n != 0 {
		t.Errorf("Members asked QQ for %d QQ numbers, want none", n)
	}

	if err := d.ResolveFriends(ctx); err != nil {
		t.Fatalf("ResolveFriends: %v", err)
	}
	byGID, _ = d.Members(ctx, schema.Target{GID: st.Groups[hiking]})
	if len(byGID) != 4 || byGID[3].QQ != hey || byGID[2].QQ != 0 {
		t.Errorf("after ResolveFriends: %+v, want Hey's QQ number (a friend) and still none for Dave", byGID)
	}
}

// TestMembersErrors: a group the current login does not have — an unknown
// number, the gid of an older login — is ErrUnknownTarget (code
// unknown_target); a target that does not name one group is invalid; without
// a session the error says so and is no finding.
func TestMembersErrors(t *testing.T) {
	e := newEnv(t)
	ctx := testenv.Context(t)
	d := New(e.c, testLog(t))
	if err := d.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	old := e.sim.State()
	e.relogin(t)
	now := e.sim.State()

	// After the re-login the lists are reloaded first: the new numbers.
	got, err := d.Members(ctx, schema.Target{Group: devChat})
	if err != nil || len(got) != 4 || got[1].UIN != now.Friends[alice] || got[1].UIN == old.Friends[alice] {
		t.Fatalf("Members(Dev chat) after a re-login = %+v, %v; want Alice under her new uin %d", got, err, now.Friends[alice])
	}
	for _, tc := range []struct {
		name    string
		target  schema.Target
		is      error
		code    schema.ErrorCode
		mention string
	}{
		{"no such group", schema.Target{Group: 11111}, ErrUnknownTarget, schema.CodeUnknownTarget, "11111"},
		{"gid of the older login", schema.Target{GID: old.Groups[devChat]}, ErrUnknownTarget, schema.CodeUnknownTarget, "gid"},
		{"nothing", schema.Target{}, schema.ErrInvalidRequest, schema.CodeInvalidRequest, "group"},
		{"both", schema.Target{Group: devChat, GID: now.Groups[devChat]}, schema.ErrInvalidRequest, schema.CodeInvalidRequest, "not both"},
		{"a person", schema.Target{QQ: alice}, schema.ErrInvalidRequest, schema.CodeInvalidRequest, "nothing else"},
		{"negative", schema.Target{GID: -1}, schema.ErrInvalidRequest, schema.CodeInvalidRequest, "positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := d.Members(ctx, tc.target)
			if !errors.Is(err, tc.is) || errorCode(err) != tc.code || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("Members(%+v) = %+v, %v (code %q); want %v, code %s, mentioning %q", tc.target, got, err, errorCode(err), tc.is, tc.code, tc.mention)
			}
		})
	}

	e.c.Logout()
	if _, err := d.Members(ctx, schema.Target{Group: devChat}); !errors.Is(err, qqclient.ErrNotLoggedIn) ||
		errors.Is(err, ErrUnknownTarget) || errorCode(err) != schema.CodeSessionUnavailable {
		t.Errorf("Members logged out = %v (code %q), want ErrNotLoggedIn, session_unavailable", err, errorCode(err))
	}
}

// TestMembersLoadedOnDemand: when QQ did not give a group's members at the
// refresh, Members loads them instead of answering an empty list; while QQ
// still does not give them, it fails (no finding) rather than answer none.
func TestMembersLoadedOnDemand(t *testing.T) {
	var failInfo atomic.Bool
	failInfo.Store(true)
	sim := testenv.StartSim(t, testenv.SimConfig(), func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if failInfo.Load() && strings.HasSuffix(r.URL.Path, "/get_group_info_ext2") {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"retcode":0,"result":null}`)) // an answer without the group
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	c, err := qqclient.New(qqclient.WithBaseURL(sim.URL), qqclient.WithRequestTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{sim: sim, c: c}
	e.login(t)
	ctx := testenv.Context(t)
	d := New(e.c, testLog(t), WithMissRefresh(time.Hour))
	if err := d.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if len(d.Groups()) != 2 {
		t.Fatalf("groups %+v, want both (without members)", d.Groups())
	}
	if got, err := d.Members(ctx, schema.Target{Group: devChat}); err == nil || errors.Is(err, ErrUnknownTarget) ||
		errorCode(err) != schema.CodeSessionUnavailable {
		t.Fatalf("Members while QQ does not give them = %+v, %v (code %q); want an error that is no finding", got, err, errorCode(err))
	}

	failInfo.Store(false)
	infos := sim.State().Counters["get_group_info_ext2"]
	got, err := d.Members(ctx, schema.Target{Group: devChat})
	if err != nil || len(got) != 4 || got[1].Nick != "Alice" || got[1].Card != "Alice@dev" || got[3].Nick != "Carol" {
		t.Fatalf("Members once QQ gives them = %+v, %v; want the account, Alice, Bob, Carol", got, err)
	}
	// They are kept: the next call and the inbound lookups use them.
	if _, err := d.Members(ctx, schema.Target{Group: devChat}); err != nil {
		t.Fatal(err)
	}
	if n := sim.State().Counters["get_group_info_ext2"] - infos; n != 1 {
		t.Errorf("get_group_info_ext2 asked %d times for two calls, want once", n)
	}
	st := sim.State()
	if m := d.Member(ctx, st.Groups[devChat], st.Friends[carol]); m.Card != "Carol (QA)" {
		t.Errorf("Member(carol) after the load = %+v, want her card", m)
	}
	// The other group stays as it was until asked for.
	if g := d.snapshot().groupByNum[hiking]; g == nil || g.loaded {
		t.Errorf("周末爬山 %+v: want it still without members", g)
	}
}

// TestMembersOfALargeGroup: the members of a 2,000-member group come in QQ's
// order without a single QQ number lookup (a lookup per member would take
// QQ minutes).
func TestMembersOfALargeGroup(t *testing.T) {
	w := qqsim.DefaultWorld()
	big := qqsim.GroupDef{Number: 20002000, Name: "big", Owner: w.Self.QQ}
	for i := range 2000 {
		big.Members = append(big.Members, qqsim.MemberDef{QQ: int64(50000000 + i), Nick: fmt.Sprintf("m%04d", i)})
	}
	w.Groups = append(w.Groups, big)
	cfg := testenv.SimConfig()
	cfg.World = w
	sim := testenv.StartSim(t, cfg)
	c, err := qqclient.New(qqclient.WithBaseURL(sim.URL), qqclient.WithRequestTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{sim: sim, c: c}
	e.login(t)
	ctx := testenv.Context(t)
	d := New(e.c, testLog(t))
	if err := d.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	before := sim.State().Counters["get_friend_uin2"]
	got, err := d.Members(ctx, schema.Target{Group: 20002000})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2001 || got[0].QQ != w.Self.QQ {
		t.Fatalf("%d members, first %+v; want the account and 2000", len(got), got[0])
	}
	for i, m := range got[1:] {
		if m.Nick != fmt.Sprintf("m%04d", i) || m.UIN <= 0 || m.QQ != 0 {
			t.Fatalf("member %d = %+v, want m%04d with a uin and no QQ number", i, m, i)
		}
	}
	if n := sim.State().Counters["get_friend_uin2"] - before; n != 0 {
		t.Errorf("%d QQ number lookups, want none", n)
	}
}
