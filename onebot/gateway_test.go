package onebot

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/qqbridge/qqbridge/schema"
)

// recordingBackend answers sends as a bridge that knows every target, and
// records what it was asked. It stands in for qq.api.* in the tests of the
// mapping alone; the end-to-end tests in cmd/bridge use the real bridge.
type recordingBackend struct {
	mu   sync.Mutex
	reqs []sentReq
	// members answers Members: the lists by group target; a target not in
	// it is ErrUnknownGroup, and membersErr, when set, is every answer.
	members    map[schema.Target][]schema.Contact
	membersErr error
	asked      []schema.Target // the targets Members was asked for
}

type sentReq struct {
	kind schema.Kind
	req  schema.Request
}

func (b *recordingBackend) Send(_ context.Context, kind schema.Kind, req *schema.Request) (schema.Result, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reqs = append(b.reqs, sentReq{kind, *req})
	if err := req.Validate(kind); err != nil {
		return schema.Result{ID: req.ID, Kind: kind, Error: &schema.ResultError{Code: schema.CodeInvalidRequest, Message: err.Error()}}, nil
	}
	return schema.Result{ID: req.ID, Kind: kind, OK: true, Parts: 1}, nil
}

func (b *recordingBackend) Friends(context.Context) ([]schema.Contact, error) { return nil, nil }
func (b *recordingBackend) Groups(context.Context) ([]schema.GroupRef, error) { return nil, nil }
func (b *recordingBackend) Discussions(context.Context) ([]schema.DiscussRef, error) {
	return nil, nil
}
func (b *recordingBackend) Members(_ context.Context, group schema.Target) ([]schema.Contact, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.asked = append(b.asked, group)
	if b.membersErr != nil {
		return nil, b.membersErr
	}
	ms, found := b.members[group]
	if !found {
		return nil, ErrUnknownGroup
	}
	return ms, nil
}

func (b *recordingBackend) SessionState(context.Context) (schema.SessionState, error) {
	return schema.SessionState{State: schema.StateOnline, Account: 931996776}, nil
}

func (b *recordingBackend) last() sentReq {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reqs[len(b.reqs)-1]
}

// TestUnresolvedNumbers: an event whose sender and group are unresolved
// gives their session numbers as user_id / group_id, and a send to those
// numbers goes out as uin / gid; a stable number goes out as qq / group.
func TestUnresolvedNumbers(t *testing.T) {
	ctx := context.Background()
	be := &recordingBackend{}
	g, err := New(Config{}, be, NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	ev := &schema.Event{ID: "931996776:group:9", Type: schema.TypeMessageGroup, Time: evTime, Account: 931996776, MsgID: 9,
		From: &schema.Contact{UIN: 3680220215, Nick: "?"}, Group: &schema.GroupRef{GID: 2323421101}, Segments: []schema.Segment{schema.TextSegment("x")}}
	out, err := g.Convert(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(out.JSON, &m)
	if m["user_id"] != float64(3680220215) || m["group_id"] != float64(2323421101) {
		t.Fatalf("event %s", out.JSON)
	}
	msg := json.RawMessage(`"hi"`)
	for _, c := range []struct {
		action string
		params Params
		kind   schema.Kind
		to     schema.Target
	}{
		{"send_group_msg", Params{"group_id": json.RawMessage(`2323421101`), "message": msg}, schema.KindGroup, schema.Target{GID: 2323421101}},
		{"send_group_msg", Params{"group_id": json.RawMessage(`"987654"`), "message": msg}, schema.KindGroup, schema.Target{Group: 987654}},
		{"send_private_msg", Params{"user_id": json.RawMessage(`3680220215`), "message": msg}, schema.KindFriend, schema.Target{UIN: 3680220215}},
		{"send_private_msg", Params{"user_id": json.RawMessage(`123456`), "message": msg}, schema.KindFriend, schema.Target{QQ: 123456}},
		{"send_private_msg", Params{"user_id": json.RawMessage(`777`), "group_id": json.RawMessage(`987654`), "message": msg}, schema.KindSess, schema.Target{QQ: 777, Group: 987654}},
		{"send_msg", Params{"discuss_id": json.RawMessage(`2322423201`), "message": msg}, schema.KindDiscuss, schema.Target{DID: 2322423201}},
	} {
		r := g.Call(ctx, c.action, c.params, nil)
		if r.Status != "ok" {
			t.Errorf("%s %v: %+v", c.action, c.params, r)
			continue
		}
		if got := be.last(); got.kind != c.kind || got.req.To != c.to {
			t.Errorf("%s: sent %s to %+v, want %s to %+v", c.action, got.kind, got.req.To, c.kind, c.to)
		}
	}
	if _, err := g.Convert(ctx, &schema.Event{Type: schema.TypeInputNotify}); !errors.Is(err, ErrSkip) {
		t.Errorf("input.notify: %v, want ErrSkip", err)
	}
}

// FuzzParams: the getters never panic and agree with Has.
func FuzzParams(f *testing.F) {
	for _, s := range []string{`1`, `"1"`, `"x"`, `null`, `true`, `1.5`, `"  7 "`, `{}`, `[]`, `"9223372036854775808"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p := Params{"k": raw}
		n, ok, err := p.Int64("k")
		if ok && err != nil {
			t.Fatalf("Int64 ok with error %v", err)
		}
		if ok && !p.Has("k") {
			t.Fatalf("Int64 found %d where Has says none", n)
		}
		_, _ = p.Bool("k")
		_ = p.String("k")
	})
}
