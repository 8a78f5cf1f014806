package media_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/directory"
	"github.com/qqbridge/qqbridge/ingress"
	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/live"
	"github.com/qqbridge/qqbridge/media"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
)

// *media.Media is what ingress hands pictures to.
var _ ingress.Media = (*media.Media)(nil)

// env is a bridge's inbound half with pictures: an embedded nats-server,
// qqsim (its blob answers recorded), a real client logged in, ingress and
// the media worker.
type env struct {
	t      *testing.T
	subj   schema.Subjects
	nc     *nats.Conn
	js     jetstream.JetStream
	store  jetstream.ObjectStore
	sim    *testenv.Sim
	client *qqclient.Client
	media  *media.Media
	events *testenv.Recorder
	blobs  *blobLog
	logs   *testenv.LogBuffer
	secret string // the session's psessionid: never in a log
	mcfg   media.Config
}

// blobLog keeps the bodies qqsim served under /blob/ (the picture and file
// bytes behind the 302s).
type blobLog struct {
	mu       sync.Mutex
	bodies   [][]byte
	fetching int // get_offpic2 requests in flight
	most     int // the most at once
}

func (b *blobLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/get_offpic2") {
			b.mu.Lock()
			b.fetching++
			b.most = max(b.most, b.fetching)
			b.mu.Unlock()
			defer func() {
				b.mu.Lock()
				b.fetching--
				b.mu.Unlock()
			}()
		}
		if !strings.HasPrefix(r.URL.Path, "/blob/") {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		if rec.Code == http.StatusOK {
			b.mu.Lock()
			b.bodies = append(b.bodies, rec.Body.Bytes())
			b.mu.Unlock()
		}
	})
}

func (b *blobLog) all() [][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([][]byte(nil), b.bodies...)
}

// session is one live session for the whole test (the session manager's
// stand-in).
type session struct{ s live.Session }

func (s session) Await(context.Context) (live.Session, error) { return s.s, nil }
func (session) Lost(uint64, error)                            {}
func (session) Kicked(uint64, string)                         {}

func newEnv(t *testing.T, simCfg func(*qqsim.Config), cfg func(*media.Config)) *env {
	t.Helper()
	return newEnvWorker(t, simCfg, cfg, true)
}

// newEnvWorker is newEnv; without worker the media worker does not run
// (Enqueue does: ingress hands it the pictures).
func newEnvWorker(t *testing.T, simCfg func(*qqsim.Config), cfg func(*media.Config), worker bool) *env {
	t.Helper()
	ctx := testenv.Context(t)
	n := testenv.StartNATS(t)
	nc, js := n.Connect()
	subj := schema.Subjects{}
	if err := bus.EnsureStreams(ctx, js, subj, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	store, err := bus.SetupMedia(ctx, js, subj, 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sc := testenv.SimConfig()
	if simCfg != nil {
		simCfg(&sc)
	}
	blobs := &blobLog{}
	sim := testenv.StartSim(t, sc, blobs.wrap)
	client, err := qqclient.New(qqclient.WithBaseURL(sim.URL), qqclient.WithQRPollInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	lctx, cancel := context.WithTimeout(ctx, testenv.WaitTimeout)
	defer cancel()
	s, err := client.LoginQR(lctx, func(ev qqclient.LoginEvent) {
		if ev.Step == qqclient.LoginQRReady {
			_ = sim.ScanQR()
			_ = sim.ConfirmQR()
		}
	})
	if err != nil {
		t.Fatalf("LoginQR: %v", err)
	}
	term, endTerm := context.WithCancel(context.Background())
	t.Cleanup(endTerm)
	var src session
	src.s = live.New(term, s.UIN, 1, src)
	logs := &testenv.LogBuffer{}
	log := zerolog.New(zerolog.MultiLevelWriter(zerolog.NewTestWriter(t), logs)).Level(zerolog.DebugLevel)
	dir := directory.New(client, log)
	_ = dir.Refresh(lctx)
	mc := media.Config{Client: client, Sessions: src, JS: js, Store: store, Subjects: subj, Log: log,
		RetryWait: 10 * time.Millisecond, SessionWait: time.Second}
	if cfg != nil {
		cfg(&mc)
	}
	m, err := media.New(mc)
	if err != nil {
		t.Fatal(err)
	}
	in, err := ingress.New(ingress.Config{Client: client, Terms: src, Dir: dir, JS: js, Subjects: subj, Log: log, Media: m})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, subj: subj, nc: nc, js: js, store: store, sim: sim, client: client, media: m, blobs: blobs, mcfg: mc,
		logs: logs, secret: s.PSessionID}
	if e.secret == "" {
		t.Fatal("no psessionid after the login")
	}
	t.Cleanup(func() {
		if strings.Contains(logs.String(), e.secret) {
			t.Error("the psessionid is in the log")
		}
	})
	e.events = testenv.Record(t, nc, subj.InWildcard())
	rctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = in.Run(rctx) }()
	go func() {
		defer wg.Done()
		if !worker {
			return
		}
		if err := m.Run(rctx); err != nil {
			t.Errorf("media Run: %v", err)
		}
	}()
	t.Cleanup(func() { stop(); wg.Wait(); m.Wait() })
	return e
}

// event waits for an event of type typ matching and decodes it.
func (e *env) event(typ string, match func(*schema.Event) bool) (int, *schema.Event) {
	e.t.Helper()
	var got *schema.Event
	i, _ := e.events.WaitFrom(0, typ, func(m *nats.Msg) bool {
		ev, err := schema.DecodeEvent(m.Header, m.Data)
		if err != nil || ev.Type != typ || (match != nil && !match(ev)) {
			return false
		}
		got = ev
		return true
	})
	return i, got
}

// object reads an object of the media bucket.
func (e *env) object(name string) []byte {
	e.t.Helper()
	b, err := e.store.GetBytes(testenv.Context(e.t), name)
	if err != nil {
		e.t.Fatalf("object %s: %v", name, err)
	}
	return b
}

func images(ev *schema.Event) []schema.Image {
	var out []schema.Image
	for _, s := range ev.Segments {
		if s.Type == schema.SegmentImage && s.Image != nil {
			out = append(out, *s.Image)
		}
	}
	return out
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func textIs(s string) func(*schema.Event) bool {
	return func(ev *schema.Event) bool { return ev.Text == s }
}

func refIs(ref string) func(*schema.Event) bool {
	return func(ev *schema.Event) bool { return ev.Image != nil && ev.Image.Ref == ref }
}

func TestPictureOnly(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.sim.Control.Say(qqsim.Say{Kind: "friend", From: testenv.Alice, Pictures: []string{"cat.png"}})
	_, msg := e.event(schema.TypeMessageFriend, nil)
	imgs := images(msg)
	if len(msg.Segments) != 1 || len(imgs) != 1 || imgs[0].State != schema.ImagePending || msg.Picture || msg.Text != "" {
		t.Fatalf("message %+v: want one pending image segment and nothing else", msg)
	}
	if want := schema.ImageRef(msg.ID, 1); imgs[0].Ref != want {
		t.Errorf("ref %q, want %q", imgs[0].Ref, want)
	}
	_, st := e.event(schema.TypeMediaStored, refIs(imgs[0].Ref))
	img := st.Image
	if img.Event != msg.ID || img.Bucket != "qq_media" || img.ContentType != "image/png" || st.From == nil || st.From.QQ != testenv.Alice {
		t.Errorf("media.stored %+v %+v", st, img)
	}
	data := e.object(img.Ref)
	served := e.blobs.all()
	if len(served) != 1 || !bytes.Equal(served[0], data) {
		t.Fatalf("the object (%d bytes) is not the picture qqsim served (%d served)", len(data), len(served))
	}
	if int64(len(data)) != img.Size || sum(data) != img.SHA256 {
		t.Errorf("size %d sha256 %s; the event says %d %s", len(data), sum(data), img.Size, img.SHA256)
	}
	// nats object ls: the picture is listed under its ref.
	list, err := e.store.List(testenv.Context(t))
	if err != nil || len(list) != 1 || list[0].Name != img.Ref {
		t.Errorf("bucket list %v, %v", list, err)
	}
}

func TestMixedTextFacePicture(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.sim.Control.Say(qqsim.Say{Kind: "friend", From: testenv.Alice, Text: "look", Faces: []int{14}, Pictures: []string{"a.png", "b.png"}})
	_, msg := e.event(schema.TypeMessageFriend, nil)
	var types []string
	for _, s := range msg.Segments {
		types = append(types, s.Type)
	}
	if strings.Join(types, ",") != "text,face,image,image" || msg.Text != "look/微笑" {
		t.Fatalf("segments %v text %q", types, msg.Text)
	}
	imgs := images(msg)
	for _, img := range imgs {
		e.event(schema.TypeMediaStored, refIs(img.Ref))
	}
	a, b := e.object(imgs[0].Ref), e.object(imgs[1].Ref)
	if bytes.Equal(a, b) {
		t.Error("the two pictures were stored as the same bytes")
	}
}

func TestSlowPictureDoesNotHoldTheBatch(t *testing.T) {
	e := newEnv(t, func(c *qqsim.Config) { c.TransferLatency = 2 * time.Second }, nil)
	e.sim.Control.Say(qqsim.Say{Kind: "friend", From: testenv.Alice, Text: "slow", Pictures: []string{"big.png"}})
	_, msg := e.event(schema.TypeMessageFriend, textIs("slow"))
	e.sim.Control.Say(qqsim.Say{Kind: "friend", From: testenv.Alice, Text: "after"})
	after, _ := e.event(schema.TypeMessageFriend, textIs("after"))
	stored, _ := e.event(schema.TypeMediaStored, refIs(images(msg)[0].Ref))
	if after > stored {
		t.Fatalf("the next message (#%d) came after the slow picture was stored (#%d): the poll waited for it", after, stored)
	}
}

func TestPictureOverTheLimit(t *testing.T) {
	e := newEnv(t, nil, func(c *media.Config) { c.MaxBytes = 16 })
	e.sim.Control.Say(qqsim.Say{Kind: "friend", From: testenv.Alice, Text: "huge", Pictures: []string{"huge.png"}})
	_, msg := e.event(schema.TypeMessageFriend, textIs("huge"))
	_, f := e.event(schema.TypeMediaFailed, refIs(images(msg)[0].Ref))
	if f.Image.Reason != schema.ReasonTooLarge || f.Image.Size <= 16 || f.Image.Event != msg.ID {
		t.Errorf("media.failed %+v", f.Image)
	}
	if _, err := e.store.GetInfo(testenv.Context(t), f.Image.Ref); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Errorf("a picture over the limit was stored: %v", err)
	}
	// Nothing else lost: the next message and its picture go through.
	e.sim.Control.Say(qqsim.Say{Kind: "friend", From: testenv.Alice, Text: "next"})
	e.event(schema.TypeMessageFriend, textIs("next"))
}

func TestGroupPictureUnsupported(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.sim.Control.Say(qqsim.Say{Kind: "group", From: testenv.Alice, Group: testenv.DevChat, Text: "g", Pictures: []string{"g.png"}})
	_, msg := e.event(schema.TypeMessageGroup, textIs("g"))
	_, f := e.event(schema.TypeMediaFailed, refIs(images(msg)[0].Ref))
	if f.Image.Reason != schema.ReasonUnsupported || f.Group == nil {
		t.Errorf("media.failed %+v", f)
	}
	if !strings.HasPrefix(e.events.Msgs()[0].Subject, "qq.in.group.") {
		t.Errorf("first event on %s", e.events.Msgs()[0].Subject)
	}
}

func (e *env) offer(name, text string) *schema.Event {
	e.t.Helper()
	if _, err := e.sim.OfferFile(qqsim.FileOffer{From: testenv.Alice, Name: name, Text: text}); err != nil {
		e.t.Fatal(err)
	}
	_, ev := e.event(schema.TypeFileOffer, func(ev *schema.Event) bool { return ev.File != nil && ev.File.Name == name })
	if ev.From == nil || ev.From.QQ != testenv.Alice || ev.File.Offer == "" || !ev.File.Expires.After(ev.Time) {
		e.t.Fatalf("file.offer %+v %+v", ev, ev.File)
	}
	return ev
}

func TestFileAccepted(t *testing.T) {
	e := newEnv(t, nil, nil)
	off := e.offer("qt.txt", "the file's bytes")
	f, err := e.media.Accept(testenv.Context(t), off.File.Offer)
	if err != nil {
		t.Fatal(err)
	}
	_, rec := e.event(schema.TypeFileReceived, nil)
	if rec.File.Ref != f.Ref || rec.File.Name != "qt.txt" || rec.File.Size != int64(len("the file's bytes")) {
		t.Errorf("file.received %+v, Accept %+v", rec.File, f)
	}
	if data := e.object(f.Ref); string(data) != "the file's bytes" || sum(data) != f.SHA256 {
		t.Errorf("stored %q", data)
	}
	// Answered: a second accept is an expired offer.
	if _, err := e.media.Accept(testenv.Context(t), off.File.Offer); !errors.Is(err, media.ErrOfferExpired) {
		t.Errorf("second accept: %v, want ErrOfferExpired", err)
	}
}

func TestFileRefused(t *testing.T) {
	e := newEnv(t, nil, nil)
	off := e.offer("no.txt", "unwanted")
	if err := e.media.Refuse(testenv.Context(t), off.File.Offer); err != nil {
		t.Fatal(err)
	}
	var refused bool
	for _, tr := range e.sim.Transfers() {
		refused = refused || (tr.Kind == "file" && tr.Action == "refused" && tr.Name == "no.txt")
	}
	if !refused {
		t.Errorf("qqsim saw no refusal: %+v", e.sim.Transfers())
	}
	if _, err := e.media.Accept(testenv.Context(t), off.File.Offer); !errors.Is(err, media.ErrOfferExpired) {
		t.Errorf("accept after refuse: %v, want ErrOfferExpired", err)
	}
}

func TestFileOfferExpired(t *testing.T) {
	e := newEnv(t, func(c *qqsim.Config) { c.FileTTL = time.Millisecond }, nil)
	off := e.offer("late.txt", "too late")
	time.Sleep(10 * time.Millisecond) // past qqsim's FileTTL
	if _, err := e.media.Accept(testenv.Context(t), off.File.Offer); !errors.Is(err, media.ErrOfferExpired) {
		t.Errorf("accept: %v, want ErrOfferExpired", err)
	}
	if err := e.media.Refuse(testenv.Context(t), off.File.Offer); !errors.Is(err, media.ErrOfferExpired) {
		t.Errorf("refuse: %v, want ErrOfferExpired", err)
	}
	if _, err := e.media.Accept(testenv.Context(t), "not-an-offer"); !errors.Is(err, schema.ErrInvalidRequest) {
		t.Errorf("bad token: %v", err)
	}
}

// TestPictureUnavailable: QQ refuses a picture (an unknown file_path):
// media.failed unavailable, and neither the log nor the event holds the
// session's psessionid (which the fetch URL carries).
func TestPictureUnavailable(t *testing.T) {
	e := newEnv(t, nil, nil)
	uin := e.sim.State().Friends[testenv.Alice]
	item := fmt.Sprintf(`{"poll_type":"message","value":{"msg_id":7001,"from_uin":%d,"to_uin":%d,"msg_type":9,"reply_ip":1,"time":1450687625,`+
		`"content":[["font",{"name":"宋体","size":10,"style":[0,0,0],"color":"000000"}],"gone",["offpic",{"success":1,"file_path":"/nope"}]]}}`,
		uin, testenv.Self)
	if err := e.sim.Inject([]json.RawMessage{json.RawMessage(item)}); err != nil {
		t.Fatal(err)
	}
	_, msg := e.event(schema.TypeMessageFriend, textIs("gone"))
	_, f := e.event(schema.TypeMediaFailed, refIs(images(msg)[0].Ref))
	if f.Image.Reason != schema.ReasonUnavailable {
		t.Errorf("reason %q, want unavailable", f.Image.Reason)
	}
	e.logs.WaitFor(t, "QQ did not serve the picture")
	for _, m := range e.events.Msgs() {
		if bytes.Contains(m.Data, []byte(e.secret)) {
			t.Errorf("an event on %s holds the psessionid", m.Subject)
		}
	}
}

// TestConcurrencyBound: with Concurrency 2, no more than two pictures are
// fetched at once, and all five are stored.
func TestConcurrencyBound(t *testing.T) {
	e := newEnv(t, func(c *qqsim.Config) { c.TransferLatency = 300 * time.Millisecond }, func(c *media.Config) { c.Concurrency = 2 })
	e.sim.Control.Say(qqsim.Say{Kind: "friend", From: testenv.Alice, Text: "five", Pictures: []string{"1", "2", "3", "4", "5"}})
	_, msg := e.event(schema.TypeMessageFriend, textIs("five"))
	for _, img := range images(msg) {
		e.event(schema.TypeMediaStored, refIs(img.Ref))
	}
	e.blobs.mu.Lock()
	most := e.blobs.most
	e.blobs.mu.Unlock()
	if most > 2 || most < 1 {
		t.Errorf("%d pictures fetched at once, want at most 2", most)
	}
}

// TestJobsWait: a picture whose worker is down (a crash, a stop) waits in
// the job stream, and another worker (another replica) stores it later;
// a job done twice (redelivered after its object was stored) publishes
// the same media.stored, which the stream de-duplicates.
func TestJobsWait(t *testing.T) {
	e := newEnvWorker(t, nil, nil, false)
	e.sim.Control.Say(qqsim.Say{Kind: "friend", From: testenv.Alice, Text: "later", Pictures: []string{"p.png"}})
	_, msg := e.event(schema.TypeMessageFriend, textIs("later"))
	ref := images(msg)[0].Ref
	ctx := testenv.Context(t)
	stream, err := e.js.Stream(ctx, e.subj.StreamMediaJobs())
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the job in the stream", func() bool {
		info, err := stream.Info(ctx)
		return err == nil && info.State.Msgs == 1
	})
	if n := e.events.Count(func(m *nats.Msg) bool { return strings.HasPrefix(m.Subject, "qq.in.media.") }); n != 0 {
		t.Fatalf("%d media events without a worker", n)
	}
	run := func(name string) {
		cfg := e.mcfg
		m, err := media.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		rctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(rctx) }()
		t.Cleanup(func() {
			stop()
			if err := <-done; err != nil {
				t.Errorf("%s: Run: %v", name, err)
			}
			m.Wait()
		})
	}
	run("replica 2")
	_, st := e.event(schema.TypeMediaStored, refIs(ref))
	if got := e.object(ref); sum(got) != st.Image.SHA256 {
		t.Error("the stored object does not match the event")
	}
	// The same job again: the object is there, so the same event comes, and
	// the stream keeps it once.
	data, _ := json.Marshal(map[string]any{"ref": ref, "event": msg.ID, "subject": "qq.in.media.123456", "account": msg.Account,
		"from_uin": msg.From.UIN, "file_path": "/gone"})
	if _, err := e.js.PublishMsg(ctx, &nats.Msg{Subject: e.subj.MediaJobs(), Data: data}); err != nil {
		t.Fatal(err)
	}
	e.events.WaitN(2, "media.stored twice on the subject", func(m *nats.Msg) bool { return schema.HeaderValue(m.Header, schema.HeaderMsgID) == ref })
	in, err := e.js.Stream(ctx, e.subj.StreamIn())
	if err != nil {
		t.Fatal(err)
	}
	if n := countSubject(t, in, "qq.in.media.123456"); n != 1 {
		t.Errorf("%d media events kept in the stream, want 1 (de-duplicated)", n)
	}
}

// countSubject counts the messages of stream on subject.
func countSubject(t *testing.T, s jetstream.Stream, subject string) uint64 {
	t.Helper()
	info, err := s.Info(testenv.Context(t), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}
