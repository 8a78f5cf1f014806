package ingress

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

// segTypes is the types of segs, with each image's ref number: "text,image1".
func segTypes(segs []schema.Segment) string {
	var out []string
	for _, s := range segs {
		t := s.Type
		if s.Image != nil {
			t += s.Image.Ref[strings.LastIndexByte(s.Image.Ref, '/')+1:]
		}
		out = append(out, t)
	}
	return strings.Join(out, ",")
}

// TestNormalisePictures: pictures become pending image segments at their
// place, named after the event; a message without any content item stays
// the stripped picture of old.
func TestNormalisePictures(t *testing.T) {
	pic := func(index int) qqclient.Picture {
		return qqclient.Picture{Kind: qqclient.PictureOffPic, Index: index, FilePath: "/x", Success: true}
	}
	txt, face := qqclient.TextSegment("hi"), qqclient.FaceSegment(14)
	for _, tc := range []struct {
		name     string
		segs     []qqclient.Segment
		pics     []qqclient.Picture
		want     string
		text     string
		stripped bool
	}{
		{"picture only", nil, []qqclient.Picture{pic(0)}, "image1", "", false},
		{"text, face, picture", []qqclient.Segment{txt, face}, []qqclient.Picture{pic(2)}, "text,face,image1", "hi/微笑", false},
		{"picture first", []qqclient.Segment{txt}, []qqclient.Picture{pic(0), pic(0)}, "image1,image2,text", "hi", false},
		{"between", []qqclient.Segment{txt, face}, []qqclient.Picture{pic(1)}, "text,image1,face", "hi/微笑", false},
		{"index past the end", []qqclient.Segment{txt}, []qqclient.Picture{pic(9)}, "text,image1", "hi", false},
		{"stripped", nil, nil, "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := qqclient.Event{Type: qqclient.PollMessage, Raw: json.RawMessage(`{}`), Message: &qqclient.Message{
				MsgID: 77, FromUIN: 5, Time: time.Unix(1450687625, 0), Segments: tc.segs, Pictures: tc.pics}}
			e, kind, _, ok := normalise(context.Background(), testenv.Self, ev, nil)
			if !ok || kind != schema.KindFriend {
				t.Fatalf("ok %v kind %s", ok, kind)
			}
			if got := segTypes(e.Segments); got != tc.want || e.Text != tc.text || e.Picture != tc.stripped {
				t.Errorf("segments %q text %q picture %v; want %q %q %v", got, e.Text, e.Picture, tc.want, tc.text, tc.stripped)
			}
			for i, s := range e.Segments {
				if s.Type == schema.SegmentImage && (s.Image.State != schema.ImagePending || !strings.HasPrefix(s.Image.Ref, "image/"+e.ID+"/")) {
					t.Errorf("segment %d: %+v", i, s.Image)
				}
			}
		})
	}
}

// TestNormaliseFileOffer: a file_message offer is a file.offer event on
// qq.in.file.<sender>; the account's own offer is not published.
func TestNormaliseFileOffer(t *testing.T) {
	raw := json.RawMessage(`{"msg_id":9,"from_uin":5,"mode":"recv","session_id":42,"name":"a.txt"}`)
	at := time.Unix(1450687625, 0).UTC()
	ev := qqclient.Event{Type: "file_message", Raw: raw, Notice: &qqclient.Notice{FromUIN: 5,
		File: &qqclient.FileOffer{MsgID: 9, FromUIN: 5, LCID: 42, Name: "a.txt", Time: at}}}
	e, kind, id, ok := normalise(context.Background(), testenv.Self, ev, nil)
	if !ok || kind != schema.KindFile || id != "uin5" || e.Type != schema.TypeFileOffer || e.ID != schema.EventID(testenv.Self, "file", 9) {
		t.Fatalf("%v %s %s %+v", ok, kind, id, e)
	}
	o, err := schema.ParseFileOffer(e.File.Offer)
	if err != nil || o != (schema.FileOffer{LCID: 42, FromUIN: 5, Name: "a.txt"}) || e.File.Name != "a.txt" || !e.File.Expires.Equal(at.Add(schema.FileOfferTTL)) {
		t.Errorf("offer %+v %v; file %+v", o, err, e.File)
	}
	ev.Notice.FromUIN, ev.Notice.File.FromUIN = testenv.Self, testenv.Self
	if _, _, _, ok := normalise(context.Background(), testenv.Self, ev, nil); ok {
		t.Error("the account's own offer was published")
	}
}

// FuzzNormalisePictures: whatever the pictures' indexes, each becomes one
// image segment, in order, with a distinct ref, and no other segment is lost.
func FuzzNormalisePictures(f *testing.F) {
	f.Add(uint8(2), []byte{0, 1, 5})
	f.Add(uint8(0), []byte{})
	f.Add(uint8(3), []byte{255, 0})
	f.Fuzz(func(t *testing.T, nsegs uint8, idx []byte) {
		segs := make([]qqclient.Segment, int(nsegs)%16)
		for i := range segs {
			segs[i] = qqclient.TextSegment("t")
		}
		var pics []qqclient.Picture
		for _, b := range idx {
			pics = append(pics, qqclient.Picture{Kind: qqclient.PictureOffPic, Index: int(b), FilePath: "/p"})
		}
		ev := qqclient.Event{Type: qqclient.PollMessage, Raw: json.RawMessage(`{}`), Message: &qqclient.Message{MsgID: 1, FromUIN: 5, Segments: segs, Pictures: pics}}
		e, _, _, ok := normalise(context.Background(), testenv.Self, ev, nil)
		if !ok {
			t.Fatal("not published")
		}
		refs := map[string]bool{}
		var texts, n int
		for _, s := range e.Segments {
			switch s.Type {
			case schema.SegmentImage:
				n++
				if want := schema.ImageRef(e.ID, n); s.Image.Ref != want || refs[want] {
					t.Fatalf("image %d: ref %q, want %q once", n, s.Image.Ref, want)
				}
				refs[s.Image.Ref] = true
			case schema.SegmentText:
				texts++
			}
		}
		if n != len(pics) || texts != len(segs) {
			t.Fatalf("%d images of %d pictures, %d texts of %d", n, len(pics), texts, len(segs))
		}
	})
}
