package schema

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// mediaEvents are the picture and file event shapes, pinned to files in
// testdata/events (which docs/events.md quotes and FuzzDecodeEvent seeds
// from).
func mediaEvents() map[string]*Event {
	const account = 931996776
	at := time.Date(2015, 12, 21, 8, 47, 5, 0, time.UTC)
	alice := &Contact{UIN: 3785096088, QQ: 123456, Nick: "Alice"}
	msgID := EventID(account, "friend", 11)
	ref := ImageRef(msgID, 1)
	offer := FileOffer{LCID: 4242, FromUIN: 3785096088, Name: "qt.png"}
	return map[string]*Event{
		"image_pending": {
			V: Version, ID: msgID, Type: TypeMessageFriend, Time: at, Account: account, MsgID: 11,
			From: alice, Text: "look",
			Segments: []Segment{TextSegment("look"), ImageSegment(Image{State: ImagePending, Ref: ref})},
		},
		"media_stored": {
			V: Version, ID: ref, Type: TypeMediaStored, Time: at, Account: account, MsgID: 11, From: alice,
			Image: &Image{State: ImageStored, Ref: ref, Bucket: "qq_media", Size: 1234, ContentType: "image/png",
				SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Event: msgID},
		},
		"media_failed": {
			V: Version, ID: ImageRef(msgID, 2), Type: TypeMediaFailed, Time: at, Account: account, MsgID: 11, From: alice,
			Image: &Image{State: ImageFailed, Ref: ImageRef(msgID, 2), Reason: ReasonTooLarge, Size: 9000000, Event: msgID},
		},
		"file_offer": {
			V: Version, ID: EventID(account, "file", 12), Type: TypeFileOffer, Time: at, Account: account, MsgID: 12, From: alice,
			File: &File{Offer: offer.Token(), Name: "qt.png", Expires: at.Add(time.Minute)},
		},
		"file_received": {
			V: Version, ID: FileRef(account, offer), Type: TypeFileReceived, Time: at, Account: account, From: &Contact{UIN: 3785096088},
			File: &File{Offer: offer.Token(), Name: "qt.png", Ref: FileRef(account, offer), Bucket: "qq_media", Size: 11,
				ContentType: "text/plain; charset=utf-8", SHA256: "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"},
		},
	}
}

func TestMediaEventsGolden(t *testing.T) {
	events := mediaEvents()
	for _, name := range sortedNames(events) {
		t.Run(name, func(t *testing.T) {
			in := events[name]
			got, err := JSON().Marshal(in)
			if err != nil {
				t.Fatal(err)
			}
			want := bytes.TrimSpace(readTestdata(t, "events/"+name+".json"))
			if !bytes.Equal(got, want) {
				t.Errorf("JSON mismatch\n got: %s\nwant: %s", got, want)
			}
			for _, c := range []Codec{JSON(), Msgpack()} {
				data, h, err := in.Encode(c)
				if err != nil {
					t.Fatal(err)
				}
				out, err := DecodeEvent(h, data)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(out, in) {
					t.Errorf("%s round trip changed the event\n got: %+v\nwant: %+v", c.ContentType(), out, in)
				}
			}
		})
	}
}

func TestMediaEventKinds(t *testing.T) {
	for typ, want := range map[string]Kind{TypeMediaStored: KindMedia, TypeMediaFailed: KindMedia, TypeFileOffer: KindFile, TypeFileReceived: KindFile} {
		if got := (&Event{Type: typ}).Kind(); got != want {
			t.Errorf("%s: kind %q, want %q", typ, got, want)
		}
	}
	s := Subjects{}
	for _, tc := range []struct {
		kind Kind
		id   string
		ok   bool
	}{
		{KindMedia, "gid42", true}, {KindMedia, "did42", true}, {KindMedia, "uin42", true}, {KindMedia, "123456", true},
		{KindMedia, "x42", false}, {KindFile, "uin42", true}, {KindFile, "123456", true}, {KindFile, "gid42", false},
	} {
		_, err := s.In(tc.kind, tc.id)
		if (err == nil) != tc.ok {
			t.Errorf("In(%s, %s): %v", tc.kind, tc.id, err)
		}
	}
	if s.MediaBucket() != "qq_media" || s.MediaJobs() != "qq.media.jobs" || s.StreamMediaJobs() != "QQ_MEDIA_JOBS" {
		t.Errorf("names: %s %s %s", s.MediaBucket(), s.MediaJobs(), s.StreamMediaJobs())
	}
}

func TestImageSegmentNotSendable(t *testing.T) {
	_, err := DecodeRequest("", []byte(`{"to":{"qq":123456},"segments":[{"type":"image","image":{"state":"stored","ref":"x"}}]}`))
	if !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("an image segment in a request: %v, want ErrInvalidRequest", err)
	}
}

func TestFileOfferToken(t *testing.T) {
	for _, o := range []FileOffer{
		{LCID: 1, FromUIN: 2, Name: "a"},
		{LCID: 4242, FromUIN: 3785096088, Name: "报告 final.v2.pdf"},
		{LCID: 1 << 62, FromUIN: 1 << 62, Name: "../../etc/passwd"},
	} {
		got, err := ParseFileOffer(o.Token())
		if err != nil || got != o {
			t.Errorf("ParseFileOffer(%q) = %+v, %v; want %+v", o.Token(), got, err, o)
		}
		if ref := FileRef(7, o); strings.Count(ref, "/") != 3 {
			t.Errorf("FileRef %q: the name adds path levels", ref)
		}
	}
	for _, bad := range []string{"", "1.2", "1.2.3.4", "0.2.YQ", "1.-2.YQ", "1.2.", "1.2.!!", "01.2.YQ", strings.Repeat("9", 700)} {
		if _, err := ParseFileOffer(bad); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("ParseFileOffer(%q): %v, want ErrInvalidRequest", bad, err)
		}
	}
}

// FuzzParseFileOffer: an offer token from outside never panics; one that
// parses gives the same token back.
func FuzzParseFileOffer(f *testing.F) {
	for _, s := range []string{"4242.3785096088.cXQucG5n", "1.2.YQ", "", "1..", "1.2.____", "9223372036854775807.1.YQ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseFileOffer(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("error %v is not ErrInvalidRequest", err)
			}
			if len(err.Error()) > 400 {
				t.Fatalf("error echoes too much: %d bytes", len(err.Error()))
			}
			return
		}
		if o.LCID <= 0 || o.FromUIN <= 0 || o.Name == "" {
			t.Fatalf("accepted %q as %+v", s, o)
		}
		back, err := ParseFileOffer(o.Token())
		if err != nil || back != o {
			t.Fatalf("token of %+v does not parse back: %+v, %v", o, back, err)
		}
	})
}

// TestMediaDocs: docs/events.md names every picture and file type, state,
// reason and name.
func TestMediaDocs(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "events.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := Subjects{}
	for _, w := range []string{
		TypeMediaStored, TypeMediaFailed, TypeFileOffer, TypeFileReceived, SegmentImage,
		ImagePending, ImageStored, ImageFailed,
		ReasonTooLarge, ReasonUnsupported, ReasonUnavailable, ReasonFetchFailed, ReasonOfferExpired,
		s.MediaBucket(), s.StreamMediaJobs(), s.MediaJobs(), s.API("file", "accept"), s.API("file", "refuse"),
		"can_send_image",
	} {
		if !bytes.Contains(doc, []byte(w)) {
			t.Errorf("docs/events.md does not mention %q", w)
		}
	}
}
