package schema

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func TestCheckMsgpackAccepts(t *testing.T) {
	values := []any{
		nil, true, false, 0, 127, -1, -32, -33, 200, 70000, 1 << 40, -1 << 40, uint64(1 << 63),
		float32(1.5), 2.5, "", "short", string(bytes.Repeat([]byte("x"), 40)), string(bytes.Repeat([]byte("x"), 300)),
		string(bytes.Repeat([]byte("x"), 70000)), []byte{1, 2, 3}, bytes.Repeat([]byte{1}, 300),
		[]any{1, "a", []any{}}, make([]int, 20), make([]int, 70000),
		map[string]any{"a": 1, "b": map[string]any{"c": []any{nil}}},
		time.Unix(1, 0), time.Unix(1<<40, 5), time.Unix(1, 5), // timestamp ext 4, 8 and 12 bytes
	}
	for _, v := range values {
		data, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkMsgpack(data); err != nil {
			t.Errorf("checkMsgpack(%T %.20v) = %v", v, v, err)
		}
	}
	// The remaining ext forms, built by hand.
	for _, data := range [][]byte{
		{0xd4, 5, 1}, {0xd5, 5, 1, 2}, {0xd8, 5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		{0xc7, 2, 5, 1, 2}, {0xc8, 0, 1, 5, 9}, {0xc9, 0, 0, 0, 0, 5},
	} {
		if err := checkMsgpack(data); err != nil {
			t.Errorf("checkMsgpack(% x) = %v", data, err)
		}
	}
}

func TestCheckMsgpackRejects(t *testing.T) {
	deep := append(bytes.Repeat([]byte{0x91}, maxMsgpackDepth+1), 0xc0)
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"never-used code", []byte{0xc1}},
		{"huge array32", []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"huge map32", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}},
		{"array16 too long", []byte{0xdc, 0x00, 0x03, 0x01, 0x02}},
		{"fixarray too long", []byte{0x93, 0x01}},
		{"fixmap missing value", []byte{0x81, 0xa1, 'a'}},
		{"str32 too long", []byte{0xdb, 0x7f, 0xff, 0xff, 0xff, 'a'}},
		{"bin8 too long", []byte{0xc4, 0x05, 1}},
		{"fixstr too long", []byte{0xa5, 'a'}},
		{"ext32 too long", []byte{0xc9, 0x00, 0x00, 0x10, 0x00, 0x05}},
		{"ext8 no type", []byte{0xc7, 0x00}},
		{"fixext16 short", []byte{0xd8, 0x05, 1, 2}},
		{"uint64 short", []byte{0xcf, 1, 2, 3}},
		{"length short", []byte{0xdd, 0x00}},
		{"trailing", []byte{0x01, 0x02}},
		{"too deep", deep},
	}
	for _, tt := range tests {
		if err := checkMsgpack(tt.data); err == nil {
			t.Errorf("%s: checkMsgpack(% x) accepted", tt.name, tt.data)
		}
		if err := Msgpack().Unmarshal(tt.data, new(Event)); err == nil {
			t.Errorf("%s: Unmarshal accepted", tt.name)
		}
		if _, err := DecodeEvent(map[string][]string{"Content-Type": {ContentTypeMsgpack}}, tt.data); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("%s: DecodeEvent err = %v", tt.name, err)
		}
	}
	// The attack the check exists for: a short body claiming a huge
	// segments array must fail fast instead of allocating it.
	attack := []byte{0x81, 0xa8, 's', 'e', 'g', 'm', 'e', 'n', 't', 's', 0xdd, 0x7f, 0xff, 0xff, 0xff}
	if _, err := DecodeRequest(ContentTypeMsgpack, attack); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("DecodeRequest(huge segments) = %v", err)
	}
}
