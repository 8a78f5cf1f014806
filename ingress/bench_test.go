package ingress

import (
	"context"
	"strconv"
	"testing"

	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/directory"
	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/live"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

// benchGroupEvent returns a group message of Alice in Dev chat, in the
// session numbers of a simulator the returned directory is logged in to,
// with the directory loaded and Alice's QQ number cached: the steady state
// of a running bridge.
func benchGroupEvent(b *testing.B) (qqclient.Event, *directory.Directory) {
	b.Helper()
	cfg := testenv.SimConfig()
	cfg.Echo = false
	sim := testenv.StartSim(b, cfg)
	c, err := qqclient.New(qqclient.WithBaseURL(sim.URL))
	if err != nil {
		b.Fatal(err)
	}
	ctx := testenv.Context(b)
	if err := login(ctx, c, sim.Server); err != nil {
		b.Fatal(err)
	}
	dir := directory.New(c, zerolog.Nop())
	if err := dir.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	st := sim.State()
	gid := strconv.FormatInt(st.Groups[testenv.DevChat], 10)
	item := `{"poll_type":"group_message","value":{"msg_id":50873,"msg_id2":1,"msg_type":43,"from_uin":` + gid +
		`,"group_code":` + gid + `,"send_uin":` + strconv.FormatInt(st.Friends[testenv.Alice], 10) +
		`,"seq":51,"to_uin":931996776,"time":1450687625,"content":[["font",{"name":"微软雅黑","size":10,"style":[0,0,0],"color":"000000"}],"好啊 ",["face",14]]}}`
	ev := qqclient.DecodeEvent([]byte(item))
	if ev.Err != nil {
		b.Fatal(ev.Err)
	}
	if e, _, id, ok := normalise(ctx, testenv.Self, ev, dir); !ok || id != "987654" || e.From.QQ != testenv.Alice {
		b.Fatalf("warm-up: %+v %q %v", e, id, ok)
	}
	return ev, dir
}

func BenchmarkNormalise(b *testing.B) {
	ev, dir := benchGroupEvent(b)
	ctx := dir.Pin(context.Background()) // as publishBatch does for a batch
	b.Run("directory", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, _, ok := normalise(ctx, testenv.Self, ev, dir); !ok {
				b.Fatal("not published")
			}
		}
	})
	b.Run("numbers-only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, _, ok := normalise(ctx, testenv.Self, ev, nil); !ok {
				b.Fatal("not published")
			}
		}
	})
}

// BenchmarkNormaliseEncode is the per-event work of ingress before the
// publish: normalise, then the body and headers in each codec (the
// schema.Encoder ingress keeps).
func BenchmarkNormaliseEncode(b *testing.B) {
	ev, dir := benchGroupEvent(b)
	ctx := dir.Pin(context.Background()) // as publishBatch does for a batch
	subjects, _ := schema.NewSubjects("")
	for _, codec := range []schema.Codec{schema.JSON(), schema.Msgpack()} {
		b.Run(codec.ContentType()[len("application/"):], func(b *testing.B) {
			enc := schema.NewEncoder(codec)
			b.ReportAllocs()
			var size int
			for b.Loop() {
				e, kind, id, ok := normalise(ctx, testenv.Self, ev, dir)
				if !ok {
					b.Fatal("not published")
				}
				if _, err := subjects.In(kind, id); err != nil {
					b.Fatal(err)
				}
				data, _, err := enc.Encode(e)
				if err != nil {
					b.Fatal(err)
				}
				size = len(data)
			}
			b.ReportMetric(float64(size), "bytes/event")
		})
	}
}

// BenchmarkDecodePrepare is all the per-event work of ingress but the
// publish, for one group message: the poll item decoded
// (qqclient.DecodeEvent), then prepared as a batch prepares it (normalise,
// subject, repeat check, body, headers, the NATS message).
func BenchmarkDecodePrepare(b *testing.B) {
	ev, dir := benchGroupEvent(b)
	item := append([]byte(`{"poll_type":"group_message","value":`), ev.Raw...)
	item = append(item, '}')
	ctx := dir.Pin(context.Background())
	js := testenv.JetStream(b, testenv.Connect(b, testenv.StartNATS(b).URL()))
	c, err := qqclient.New()
	if err != nil {
		b.Fatal(err)
	}
	i, err := New(Config{Client: c, Terms: live.SourceFunc(nil), JS: js, Dir: dir, RecentIDs: 1})
	if err != nil {
		b.Fatal(err)
	}
	log := zerolog.Nop()
	seen := make(map[string]struct{}, 4096) // a batch's, up to 4,096 items
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		ev := qqclient.DecodeEvent(item)
		ev.Message.MsgID = int64(n) // a new event each time (not a repeat)
		if n++; n%4096 == 0 {
			clear(seen)
		}
		if p := i.prepare(ctx, testenv.Self, ev, seen, log); p == nil || len(p.msgs) != 1 {
			b.Fatal("not prepared")
		}
	}
}
