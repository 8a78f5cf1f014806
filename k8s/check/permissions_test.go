package check

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
)

// permServer starts a nats-server on loopback with the base's auth.conf (the
// file the NATS pods include) and JetStream in a temporary directory.
func permServer(t *testing.T) *server.Server {
	t.Helper()
	r := render(t, filepath.Join("..", "base"))
	var auth string
	for _, cm := range all[*corev1.ConfigMap](r) {
		if strings.HasPrefix(cm.Name, "nats-config") {
			auth = cm.Data["auth.conf"]
		}
	}
	if auth == "" {
		t.Fatal("no auth.conf in the rendered nats-config")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "auth.conf"), []byte(auth), 0o600); err != nil {
		t.Fatal(err)
	}
	wrapper := "host: 127.0.0.1\nport: -1\njetstream { store_dir: " + `"` + filepath.ToSlash(filepath.Join(dir, "js")) + `"` + " }\ninclude \"auth.conf\"\n"
	if err := os.WriteFile(filepath.Join(dir, "test.conf"), []byte(wrapper), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"BRIDGE", "CONSUMER", "ADMIN"} {
		t.Setenv("NATS_"+u+"_PASSWORD", "pw-"+strings.ToLower(u))
	}
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "test.conf"))
	if err != nil {
		t.Fatalf("auth.conf: %v", err)
	}
	opts.NoLog, opts.NoSigs = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return ns
}

// client is one user's connection and the permission errors the server sent it.
type client struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	errs chan error
}

func connect(t *testing.T, ns *server.Server, user string) *client {
	t.Helper()
	c := &client{errs: make(chan error, 64)}
	nc, err := nats.Connect(ns.ClientURL(), nats.UserInfo(user, "pw-"+user),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { c.errs <- err }))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	c.nc = nc
	if c.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	return c
}

// denied waits for the server's permissions violation naming subject.
func (c *client) denied(t *testing.T, what, subject string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case err := <-c.errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subject+`"`) {
				return
			}
		case <-timeout:
			t.Fatalf("%s on %s was not refused", what, subject)
		}
	}
}

// noErrors checks that the server refused nothing so far.
func (c *client) noErrors(t *testing.T, user string) {
	t.Helper()
	if err := c.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-c.errs:
		t.Fatalf("%s: %v", user, err)
	default:
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// The permission set of auth.conf against a real nats-server: what each user
// may do works, and what it must not do is refused by the server.
func TestNATSPermissions(t *testing.T) {
	ns := permServer(t)
	ctx := ctxT(t)
	bridge, consumer, admin := connect(t, ns, "bridge"), connect(t, ns, "consumer"), connect(t, ns, "admin")

	// the bridge keeps its streams and buckets, publishes, serves qq.api.*
	for _, cfg := range []jetstream.StreamConfig{
		{Name: "QQ_IN", Subjects: []string{"qq.in.>"}},
		{Name: "QQ_OUT", Subjects: []string{"qq.out.>"}, Retention: jetstream.WorkQueuePolicy},
		{Name: "QQ_RESULT", Subjects: []string{"qq.result.>"}},
	} {
		if _, err := bridge.js.CreateOrUpdateStream(ctx, cfg); err != nil {
			t.Fatalf("bridge creates %s: %v", cfg.Name, err)
		}
	}
	kv, err := bridge.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "qq_session"})
	if err != nil {
		t.Fatalf("bridge creates qq_session: %v", err)
	}
	for key, val := range map[string]string{"state": `{"state":"online"}`, "session": "sealed"} {
		if _, err := kv.Put(ctx, key, []byte(val)); err != nil {
			t.Fatalf("bridge puts %s: %v", key, err)
		}
	}
	svc, err := bridge.nc.QueueSubscribe("qq.api.>", "qqbridge", func(m *nats.Msg) { _ = m.Respond([]byte("answer to " + m.Subject)) })
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Unsubscribe()
	live, err := consumer.nc.SubscribeSync("qq.in.>")
	if err != nil {
		t.Fatal(err)
	}
	consumer.noErrors(t, "consumer subscribes qq.in.>")
	if _, err := bridge.js.Publish(ctx, "qq.in.group.1", []byte("event 1")); err != nil {
		t.Fatalf("bridge publishes an event: %v", err)
	}
	if err := bridge.nc.Publish("qq.session.state", []byte("online")); err != nil {
		t.Fatal(err)
	}
	bridge.noErrors(t, "bridge")

	// a consumer reads events live and from the stream, sends, asks the API
	if m, err := live.NextMsg(10 * time.Second); err != nil || string(m.Data) != "event 1" {
		t.Fatalf("consumer live: %v %v", m, err)
	}
	cons, err := consumer.js.CreateOrUpdateConsumer(ctx, "QQ_IN", jetstream.ConsumerConfig{Durable: "app", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("consumer makes its durable consumer on QQ_IN: %v", err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for m := range batch.Messages() {
		got++
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if got != 1 || batch.Error() != nil {
		t.Fatalf("consumer fetched %d from QQ_IN (%v)", got, batch.Error())
	}
	if _, err := consumer.js.Publish(ctx, "qq.out.group", []byte(`{"text":"hi"}`), jetstream.WithMsgID("send-1")); err != nil {
		t.Fatalf("consumer publishes a send request: %v", err)
	}
	if m, err := consumer.nc.Request("qq.api.send.group", []byte("{}"), 5*time.Second); err != nil || string(m.Data) != "answer to qq.api.send.group" {
		t.Fatalf("consumer request qq.api.send.group: %v %v", m, err)
	}
	ckv, err := consumer.js.KeyValue(ctx, "qq_session")
	if err != nil {
		t.Fatalf("consumer opens qq_session: %v", err)
	}
	if e, err := ckv.Get(ctx, "state"); err != nil || string(e.Value()) != `{"state":"online"}` {
		t.Fatalf("consumer reads the state: %v", err)
	}
	consumer.noErrors(t, "consumer")

	// … but forges nothing, logs nothing in, reads no saved session, poses as no service
	for _, subj := range []string{"qq.in.group.2", "qq.session.state", "qq.result.group", "qq.api.session.login"} {
		if err := consumer.nc.Publish(subj, []byte("forged")); err != nil {
			t.Fatal(err)
		}
		consumer.denied(t, "consumer publish", subj)
	}
	if _, err := consumer.nc.SubscribeSync("qq.api.send.group"); err != nil {
		t.Fatal(err)
	}
	consumer.denied(t, "consumer subscribe", "qq.api.send.group")
	if _, err := consumer.nc.SubscribeSync("qq.out.>"); err != nil {
		t.Fatal(err)
	}
	consumer.denied(t, "consumer subscribe", "qq.out.>")
	// a denied request is dropped by the server: its caller gives up after a while
	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 3*time.Second)
		t.Cleanup(cancel)
		return c
	}
	if _, err := ckv.Put(short(), "state", []byte("forged")); err == nil {
		t.Fatal("consumer wrote the session state")
	}
	consumer.denied(t, "consumer KV put", "$KV.qq_session.state")
	if e, err := ckv.Get(short(), "session"); err == nil {
		t.Fatalf("consumer read the saved session: %q", e.Value())
	}
	if _, err := consumer.js.CreateOrUpdateStream(short(), jetstream.StreamConfig{Name: "QQ_IN", Subjects: []string{"qq.in.>"}, MaxAge: time.Hour}); err == nil {
		t.Fatal("consumer changed QQ_IN")
	}
	s, err := bridge.js.Stream(ctx, "QQ_IN")
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("QQ_IN holds %d messages after the forgeries, want 1", n)
	}

	// an operator asks for a login, but forges no event either
	if m, err := admin.nc.Request("qq.api.session.login", nil, 5*time.Second); err != nil || string(m.Data) != "answer to qq.api.session.login" {
		t.Fatalf("admin request qq.api.session.login: %v %v", m, err)
	}
	admin.noErrors(t, "admin")
	if err := admin.nc.Publish("qq.in.group.3", []byte("forged")); err != nil {
		t.Fatal(err)
	}
	admin.denied(t, "admin publish", "qq.in.group.3")
}
