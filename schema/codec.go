package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"strings"

	"github.com/vmihailenco/msgpack/v5"
)

// Content types of message bodies.
const (
	ContentTypeJSON    = "application/json"
	ContentTypeMsgpack = "application/msgpack"
)

// Codec encodes and decodes message bodies in one format. The codecs of this
// package are stateless and safe for concurrent use.
type Codec interface {
	// ContentType returns the value for the Content-Type header.
	ContentType() string
	// Marshal encodes v.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, which must be a non-nil pointer.
	Unmarshal(data []byte, v any) error
}

// JSON returns the JSON codec.
func JSON() Codec { return jsonCodec{} }

// Msgpack returns the msgpack codec. Maps are keyed by the same names as in
// JSON; times are msgpack timestamps (extension -1); byte slices (QR PNG, an
// event's raw wire value) are bin.
func Msgpack() Codec { return msgpackCodec{} }

// CodecFor returns the codec for a Content-Type value. Parameters such as
// "; charset=utf-8" are ignored; "" means JSON; "application/x-msgpack" and
// "application/vnd.msgpack" are accepted as msgpack. Anything else is an
// error wrapping ErrUnsupportedContentType.
func CodecFor(contentType string) (Codec, error) {
	if contentType == "" || contentType == ContentTypeJSON {
		return jsonCodec{}, nil
	}
	if contentType == ContentTypeMsgpack {
		return msgpackCodec{}, nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedContentType, truncate(contentType, 64))
	}
	switch strings.ToLower(mt) {
	case ContentTypeJSON:
		return jsonCodec{}, nil
	case ContentTypeMsgpack, "application/x-msgpack", "application/vnd.msgpack":
		return msgpackCodec{}, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnsupportedContentType, truncate(contentType, 64))
}

// Decode decodes data, whose Content-Type is contentType, into v. It is the
// one-call form of CodecFor and Codec.Unmarshal, for results, session states
// and QR messages.
func Decode(contentType string, data []byte, v any) error {
	c, err := CodecFor(contentType)
	if err != nil {
		return err
	}
	return c.Unmarshal(data, v)
}

type jsonCodec struct{}

func (jsonCodec) ContentType() string { return ContentTypeJSON }

func (jsonCodec) Marshal(v any) ([]byte, error) {
	// Encode the wire forms directly: through a MarshalJSON method
	// encoding/json would scan the output a second time.
	switch m := v.(type) {
	case *Event:
		if m != nil {
			if b, ok := appendEventJSON(nil, m); ok {
				return b, nil // without reflection (jsonwrite.go)
			}
			w, err := m.wire()
			if err != nil {
				return nil, err
			}
			v = w
		}
	case *Request:
		if m != nil {
			v = m.wire()
		}
	case *Result:
		if m != nil {
			v = m.wire()
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep '<', '>' and '&' of chat text readable
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

type msgpackCodec struct{}

func (msgpackCodec) ContentType() string { return ContentTypeMsgpack }

func (msgpackCodec) Marshal(v any) ([]byte, error) {
	if e, ok := v.(*Event); ok && e != nil {
		if b, ok := appendEventMsgpack(nil, e); ok {
			return b, nil // without reflection (msgpackwrite.go)
		}
		// Skip the EncodeMsgpack indirection, which copies the event.
		w, err := e.wire()
		if err != nil {
			return nil, err
		}
		v = w
	}
	var buf bytes.Buffer
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Unmarshal checks that data is one well-formed msgpack value whose
// declared lengths fit in it (see checkMsgpack), then decodes it.
func (msgpackCodec) Unmarshal(data []byte, v any) error {
	if err := checkMsgpack(data); err != nil {
		return fmt.Errorf("msgpack: %w", err)
	}
	return msgpack.Unmarshal(data, v)
}
