package api

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/media"
	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
)

// The media store answers file offers.
var _ Files = (*media.Media)(nil)

// fileEnv is env (logged in) with a second API instance whose Files is the
// real media store: the first has no file endpoints, so the second serves
// them alone.
func fileEnv(t *testing.T) (*env, jetstream.ObjectStore) {
	t.Helper()
	e := newEnv(t, true, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
	defer cancel()
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := bus.SetupMedia(ctx, js, e.subj, 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	m, err := media.New(media.Config{Client: e.client, Sessions: e.sess, JS: js, Store: store, Subjects: e.subj})
	if err != nil {
		t.Fatal(err)
	}
	c := e.api.cfg
	c.Files = m
	a, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	if _, err := a.Start(sctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(); a.Wait() })
	return e, store
}

// answer decodes a reply's body and its error code header.
func answer(t *testing.T, m *nats.Msg) (string, map[string]any) {
	t.Helper()
	var body map[string]any
	if err := json.Unmarshal(m.Data, &body); err != nil {
		t.Fatalf("reply %q: %v", m.Data, err)
	}
	return m.Header.Get("Nats-Service-Error-Code"), body
}

func errorCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func TestFileAcceptAndRefuse(t *testing.T) {
	e, store := fileEnv(t)
	uin := e.sim.State().Friends[alice]
	lcid, err := e.sim.OfferFile(qqsim.FileOffer{From: alice, Name: "qt.txt", Text: "bytes of qt"})
	if err != nil {
		t.Fatal(err)
	}
	tok := schema.FileOffer{LCID: lcid, FromUIN: uin, Name: "qt.txt"}.Token()
	body, _ := json.Marshal(schema.FileRequest{Offer: tok})
	code, ans := answer(t, e.request("qq.api.file.accept", body, nil))
	f, _ := ans["file"].(map[string]any)
	if code != "" || ans["ok"] != true || f["name"] != "qt.txt" {
		t.Fatalf("accept: %s %v", code, ans)
	}
	data, err := store.GetBytes(context.Background(), f["ref"].(string))
	if err != nil || string(data) != "bytes of qt" {
		t.Errorf("stored %q, %v", data, err)
	}
	// Answered already: offer_expired.
	code, ans = answer(t, e.request("qq.api.file.accept", body, nil))
	if code != CodeOfferExpired || errorCode(ans) != string(ErrorOfferExpired) {
		t.Errorf("second accept: %s %v", code, ans)
	}

	lcid, err = e.sim.OfferFile(qqsim.FileOffer{From: alice, Name: "no.txt"})
	if err != nil {
		t.Fatal(err)
	}
	body, _ = json.Marshal(schema.FileRequest{Offer: schema.FileOffer{LCID: lcid, FromUIN: uin, Name: "no.txt"}.Token()})
	if code, ans = answer(t, e.request("qq.api.file.refuse", body, nil)); code != "" || ans["ok"] != true {
		t.Errorf("refuse: %s %v", code, ans)
	}
	if code, ans = answer(t, e.request("qq.api.file.refuse", body, nil)); code != CodeOfferExpired {
		t.Errorf("second refuse: %s %v", code, ans)
	}

	for _, bad := range []string{``, `{}`, `{"offer":"x"}`, `{"offer":"1.2.YQ","more":1}`, `[`} {
		if code, ans = answer(t, e.request("qq.api.file.accept", []byte(bad), nil)); code != CodeInvalid || errorCode(ans) != string(schema.CodeInvalidRequest) {
			t.Errorf("accept %s: %s %v", bad, code, ans)
		}
	}
}
