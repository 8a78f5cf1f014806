package directory

import (
	"errors"
	"strings"
	"testing"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

// TestResolve: stable and session numbers of the current login resolve to
// the numbers QQ expects; session numbers of an older login and unknown
// stable numbers are ErrUnknownTarget, with the field named.
func TestResolve(t *testing.T) {
	e := newEnv(t)
	ctx := testenv.Context(t)
	d := New(e.c, testLog(t))
	if err := d.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	old := e.sim.State()
	e.relogin(t)
	now := e.sim.State()
	for _, tc := range []struct {
		name    string
		kind    schema.Kind
		to      schema.Target
		want    qqclient.Target
		wantErr string // in the error, which must wrap ErrUnknownTarget
	}{
		{"friend by qq", schema.KindFriend, schema.Target{QQ: alice}, qqclient.Target{Kind: qqclient.TargetFriend, UIN: now.Friends[alice]}, ""},
		{"friend by uin", schema.KindFriend, schema.Target{UIN: now.Friends[alice]}, qqclient.Target{Kind: qqclient.TargetFriend, UIN: now.Friends[alice]}, ""},
		{"group by number", schema.KindGroup, schema.Target{Group: devChat}, qqclient.Target{Kind: qqclient.TargetGroup, UIN: now.Groups[devChat]}, ""},
		{"group by gid", schema.KindGroup, schema.Target{GID: now.Groups[hiking]}, qqclient.Target{Kind: qqclient.TargetGroup, UIN: now.Groups[hiking]}, ""},
		{"discussion", schema.KindDiscuss, schema.Target{DID: now.Discussions[lunch]}, qqclient.Target{Kind: qqclient.TargetDiscuss, UIN: now.Discussions[lunch]}, ""},
		{"sess by numbers", schema.KindSess, schema.Target{QQ: carol, Group: devChat},
			qqclient.Target{Kind: qqclient.TargetSess, UIN: now.Friends[carol], GroupUIN: now.Groups[devChat]}, ""},
		{"sess by session numbers", schema.KindSess, schema.Target{UIN: now.Friends[dave], GID: now.Groups[hiking]},
			qqclient.Target{Kind: qqclient.TargetSess, UIN: now.Friends[dave], GroupUIN: now.Groups[hiking]}, ""},
		{"old friend uin", schema.KindFriend, schema.Target{UIN: old.Friends[alice]}, qqclient.Target{}, "to.uin"},
		{"old gid", schema.KindGroup, schema.Target{GID: old.Groups[devChat]}, qqclient.Target{}, "to.gid"},
		{"old did", schema.KindDiscuss, schema.Target{DID: old.Discussions[lunch]}, qqclient.Target{}, "to.did"},
		{"old member uin", schema.KindSess, schema.Target{UIN: old.Friends[carol], GID: now.Groups[devChat]}, qqclient.Target{}, "to.uin"},
		{"member of the other group", schema.KindSess, schema.Target{UIN: now.Friends[dave], GID: now.Groups[devChat]}, qqclient.Target{}, "to.uin"},
		{"not a friend", schema.KindFriend, schema.Target{QQ: carol}, qqclient.Target{}, "to.qq 2468024"},
		{"no such group", schema.KindGroup, schema.Target{Group: 11111}, qqclient.Target{}, "to.group 11111"},
		{"not a member", schema.KindSess, schema.Target{QQ: dave, Group: devChat}, qqclient.Target{}, "to.qq 7654321"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := d.Resolve(ctx, tc.kind, tc.to)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrUnknownTarget) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Resolve = %+v, %v; want ErrUnknownTarget naming %s", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Resolve = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestResolveWithoutListsIsNotAFinding: when the lists of the current
// session cannot be loaded, Resolve fails with the reason — never with
// ErrUnknownTarget, which would drop a request that may well be valid.
func TestResolveWithoutListsIsNotAFinding(t *testing.T) {
	e := newEnv(t)
	ctx := testenv.Context(t)
	d := New(e.c, testLog(t))
	if err := d.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	e.sim.ExpireSession() // the client's session is gone: nothing loads
	for _, to := range []schema.Target{{QQ: 99999}, {UIN: 42}} {
		// The lists are of this session, but a miss makes a refresh (due:
		// the miss interval is tiny), which fails.
		d.missRefresh = 1
		if _, err := d.Resolve(ctx, schema.KindFriend, to); err == nil || errors.Is(err, ErrUnknownTarget) {
			t.Errorf("Resolve(%+v) in a dead session = %v, want an error that is not ErrUnknownTarget", to, err)
		} else if !errors.Is(err, qqclient.ErrSessionLost) {
			t.Errorf("Resolve(%+v) = %v, want it to say the session is lost", to, err)
		}
	}
	e.c.Logout()
	if _, err := d.Resolve(ctx, schema.KindGroup, schema.Target{Group: devChat}); !errors.Is(err, qqclient.ErrNotLoggedIn) {
		t.Errorf("Resolve logged out = %v, want ErrNotLoggedIn", err)
	}
}
