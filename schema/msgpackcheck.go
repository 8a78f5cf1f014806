package schema

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// maxMsgpackDepth bounds the nesting of arrays and maps in a msgpack body.
const maxMsgpackDepth = 32

// checkMsgpack verifies that data is exactly one well-formed msgpack value
// whose declared lengths fit in the data, nested at most maxMsgpackDepth
// deep. The msgpack decoder allocates a slice of the declared length before
// reading its elements, so without this check a few bytes claiming a
// four-billion-element array would exhaust memory.
func checkMsgpack(data []byte) error {
	rest, err := skipMsgpack(data, 0)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return errors.New("data after the msgpack value")
	}
	return nil
}

var errMsgpackTruncated = errors.New("truncated msgpack")

// skipMsgpack returns data after the one value it starts with.
func skipMsgpack(data []byte, depth int) ([]byte, error) {
	if len(data) == 0 {
		return nil, errMsgpackTruncated
	}
	c, data := data[0], data[1:]
	switch {
	case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
		return data, nil
	case c&0xf0 == 0x80:
		return skipMsgpackItems(data, 2*int(c&0x0f), depth)
	case c&0xf0 == 0x90:
		return skipMsgpackItems(data, int(c&0x0f), depth)
	case c&0xe0 == 0xa0:
		return skipMsgpackBytes(data, int(c&0x1f))
	}
	switch c {
	case 0xcc, 0xd0:
		return skipMsgpackBytes(data, 1)
	case 0xcd, 0xd1:
		return skipMsgpackBytes(data, 2)
	case 0xca, 0xce, 0xd2:
		return skipMsgpackBytes(data, 4)
	case 0xcb, 0xcf, 0xd3:
		return skipMsgpackBytes(data, 8)
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16: type byte + data
		return skipMsgpackBytes(data, 1+1<<(c-0xd4))
	case 0xc4, 0xd9: // bin8, str8
		return skipMsgpackSized(data, 1, 0)
	case 0xc5, 0xda: // bin16, str16
		return skipMsgpackSized(data, 2, 0)
	case 0xc6, 0xdb: // bin32, str32
		return skipMsgpackSized(data, 4, 0)
	case 0xc7, 0xc8, 0xc9: // ext8, ext16, ext32: length, type byte, data
		return skipMsgpackSized(data, 1<<(c-0xc7), 1)
	case 0xdc, 0xdd, 0xde, 0xdf: // array16, array32, map16, map32
		width := 2
		if c == 0xdd || c == 0xdf {
			width = 4
		}
		n, rest, err := msgpackLength(data, width)
		if err != nil {
			return nil, err
		}
		if c >= 0xde {
			n *= 2
		}
		return skipMsgpackItems(rest, n, depth)
	}
	return nil, fmt.Errorf("invalid msgpack code 0x%02x", c)
}

func skipMsgpackItems(data []byte, n, depth int) ([]byte, error) {
	if depth >= maxMsgpackDepth {
		return nil, fmt.Errorf("msgpack nested deeper than %d", maxMsgpackDepth)
	}
	if n > len(data) { // every item takes at least one byte
		return nil, errMsgpackTruncated
	}
	var err error
	for range n {
		if data, err = skipMsgpack(data, depth+1); err != nil {
			return nil, err
		}
	}
	return data, nil
}

func skipMsgpackBytes(data []byte, n int) ([]byte, error) {
	if n > len(data) {
		return nil, errMsgpackTruncated
	}
	return data[n:], nil
}

// skipMsgpackSized skips a length of width bytes, extra bytes, and the
// length's worth of bytes.
func skipMsgpackSized(data []byte, width, extra int) ([]byte, error) {
	n, rest, err := msgpackLength(data, width)
	if err != nil {
		return nil, err
	}
	return skipMsgpackBytes(rest, extra+n)
}

func msgpackLength(data []byte, width int) (int, []byte, error) {
	if len(data) < width {
		return 0, nil, errMsgpackTruncated
	}
	var n uint64
	switch width {
	case 1:
		n = uint64(data[0])
	case 2:
		n = uint64(binary.BigEndian.Uint16(data))
	default:
		n = uint64(binary.BigEndian.Uint32(data))
	}
	rest := data[width:]
	if n > uint64(len(rest)) {
		return 0, nil, errMsgpackTruncated
	}
	return int(n), rest, nil
}
