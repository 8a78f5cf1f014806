package egress

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/schema"
)

// FuzzDecodeOut feeds outside bytes through the consumer's decoding path
// (the subject after <prefix>.out. or its stored partition form, and the
// body): it must never panic, and either accept a request that validates for
// a sendable kind, whose target is the subject's key when it has one, or
// reject it as invalid_request.
func FuzzDecodeOut(f *testing.F) {
	for _, dir := range []string{"invalid", "valid"} {
		files, err := filepath.Glob(filepath.Join("testdata", dir, "*"))
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			ct := ""
			if filepath.Ext(file) == ".msgpack" {
				ct = schema.ContentTypeMsgpack
			}
			f.Add("friend", ct, b)
			f.Add("sess", ct, b)
			f.Add("friend.123", ct, b)
		}
	}
	f.Add("group", "application/json; charset=utf-8", []byte(`{"to":{"gid":1},"text":"x"}`))
	f.Add("fax", "", []byte(`{}`))
	f.Add("group.gid1", "", []byte(`{"to":{"gid":1},"text":"x"}`))
	f.Add("group.gid2", "", []byte(`{"to":{"gid":1},"text":"x"}`))
	f.Add("sess.uin1_2", "", []byte(`{"to":{"uin":1,"group":2},"text":"x"}`))
	f.Add("group.1.2", "", []byte(`{"to":{"group":1},"text":"x"}`))
	s, _ := schema.NewSubjects("")
	f.Fuzz(func(t *testing.T, rest, contentType string, data []byte) {
		h := nats.Header{}
		if contentType != "" {
			h.Set(schema.HeaderContentType, contentType)
		}
		o, req, err := decodeOut(s, s.Prefix()+".out."+rest, h, data)
		o2, _, err2 := decodeOut(s, s.OutPartitionBase()+".5."+rest, h, data)
		if (err == nil) != (err2 == nil) && o.Key != "" {
			t.Fatalf("%q: published form %v, stored form %v", rest, err, err2)
		}
		if o2.Kind != o.Kind || o2.Key != o.Key {
			t.Fatalf("%q: published form %+v, stored form %+v", rest, o, o2)
		}
		k := o.Kind
		if err != nil {
			if !errors.Is(err, schema.ErrInvalidRequest) {
				t.Fatalf("error %v does not match ErrInvalidRequest", err)
			}
			if res := invalidResult("x", k, err); res.Error.Code != schema.CodeInvalidRequest || res.Error.Message == "" {
				t.Fatalf("result %+v", res)
			}
			return
		}
		if !k.Sendable() || req == nil {
			t.Fatalf("accepted kind %q request %v", k, req)
		}
		if err := req.Validate(k); err != nil {
			t.Fatalf("accepted a request that does not validate: %v", err)
		}
		if key, err := schema.TargetKey(k, req.To); o.Key != "" && (err != nil || key != o.Key) {
			t.Fatalf("accepted target %+v on key %q (its key %q, %v)", req.To, o.Key, key, err)
		}
		// What is accepted can be put on the wire.
		for _, part := range qqclient.Split(clientSegments(req)) {
			if qqclient.ContentSize(part) > qqclient.MaxPartBytes {
				t.Fatalf("part of %d bytes", qqclient.ContentSize(part))
			}
			if _, err := qqclient.EncodeContent(part, qqclient.DefaultFont()); err != nil {
				t.Fatalf("EncodeContent: %v", err)
			}
		}
	})
}

// BenchmarkDecodeToWire measures the hot path from a request's bytes to the
// wire content and the encoded result: decode, validate, split, encode.
func BenchmarkDecodeToWire(b *testing.B) {
	s, _ := schema.NewSubjects("")
	data := []byte(`{"id":"bench-1","to":{"group":987654},"segments":[{"type":"text","text":"早上好 everyone, the build is green "},{"type":"face","face":14}]}`)
	h := nats.Header{}
	subject := s.Out(schema.KindGroup)
	codec := schema.JSON()
	b.ReportAllocs()
	for b.Loop() {
		k, req, err := decodeOut(s, subject, h, data)
		if err != nil {
			b.Fatal(err)
		}
		parts := qqclient.Split(clientSegments(req))
		for _, p := range parts {
			if _, err := qqclient.EncodeContent(p, qqclient.DefaultFont()); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := codec.Marshal(schema.Result{ID: req.ID, Kind: k.Kind, OK: true, Parts: len(parts)}); err != nil {
			b.Fatal(err)
		}
	}
}
