package qqclient

import (
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// reader reads JSON strictly, in one pass, for the fast decoding of poll
// answers (fastpoll.go). It takes exactly what encoding/json takes as valid
// JSON and reports everything else as a failure; it also fails on what its
// callers do not take on (a key that only another spelling of a field's name
// matches, a duplicate field, an unusual value). On a failure the caller
// decodes the same bytes the general way, with encoding/json, so that the
// fast way never has to match encoding/json's handling of the unusual.
type reader struct {
	b     []byte
	i     int
	depth int
}

// maxReadDepth bounds the nesting the reader follows; deeper input takes the
// general way (encoding/json's own limit is 10000).
const maxReadDepth = 200

// peek skips white space and returns the next byte, 0 at the end.
func (r *reader) peek() byte {
	for r.i < len(r.b) {
		switch c := r.b[r.i]; c {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return c
		}
	}
	return 0
}

// end reports whether only white space is left.
func (r *reader) end() bool {
	r.peek()
	return r.i == len(r.b)
}

// value reads one value of any kind and returns where it starts and ends.
func (r *reader) value() (start, end int, ok bool) {
	r.peek()
	start = r.i
	ok = r.skip()
	return start, r.i, ok
}

// skip reads one value of any kind.
func (r *reader) skip() bool {
	switch r.peek() {
	case '{':
		return r.object(func([]byte, bool) bool { return r.skip() })
	case '[':
		return r.array(r.skip)
	case '"':
		_, _, ok := r.str()
		return ok
	case 't':
		return r.lit("true")
	case 'f':
		return r.lit("false")
	case 'n':
		return r.lit("null")
	}
	_, _, ok := r.number()
	return ok
}

// lit reads the literal s (true, false, null).
func (r *reader) lit(s string) bool {
	if len(r.b)-r.i < len(s) || string(r.b[r.i:r.i+len(s)]) != s {
		return false
	}
	r.i += len(s)
	return true
}

// object reads an object, calling member for each member with the text of
// its key between the quotes (plain: without escapes and valid UTF-8, so the
// key itself) and the reader at the value, which member must read.
func (r *reader) object(member func(key []byte, plain bool) bool) bool {
	if r.peek() != '{' || r.depth >= maxReadDepth {
		return false
	}
	r.i++
	r.depth++
	if r.peek() == '}' {
		r.i++
		r.depth--
		return true
	}
	for {
		key, plain, ok := r.str()
		if !ok || r.peek() != ':' {
			return false
		}
		r.i++
		if !member(key, plain) {
			return false
		}
		switch r.peek() {
		case ',':
			r.i++
		case '}':
			r.i++
			r.depth--
			return true
		default:
			return false
		}
	}
}

// array reads an array, calling elem with the reader at each element, which
// elem must read.
func (r *reader) array(elem func() bool) bool {
	if r.peek() != '[' || r.depth >= maxReadDepth {
		return false
	}
	r.i++
	r.depth++
	if r.peek() == ']' {
		r.i++
		r.depth--
		return true
	}
	for {
		if !elem() {
			return false
		}
		switch r.peek() {
		case ',':
			r.i++
		case ']':
			r.i++
			r.depth--
			return true
		default:
			return false
		}
	}
}

// str reads a string and returns the text between its quotes; plain says
// that the text has no escape and is valid UTF-8 (it is then the value).
func (r *reader) str() (text []byte, plain, ok bool) {
	if r.peek() != '"' {
		return nil, false, false
	}
	start := r.i + 1
	plain = true
	ascii := true
	for j := start; j < len(r.b); {
		c := r.b[j]
		switch {
		case c == '"':
			r.i = j + 1
			text = r.b[start:j]
			if !ascii && plain {
				plain = utf8.Valid(text)
			}
			return text, plain, true
		case c == '\\':
			plain = false
			if j+1 >= len(r.b) {
				return nil, false, false
			}
			switch r.b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+6 > len(r.b) || hex4(r.b[j+2:j+6]) < 0 {
					return nil, false, false
				}
				j += 6
			default:
				return nil, false, false
			}
		case c < 0x20:
			return nil, false, false
		case c >= utf8.RuneSelf:
			ascii = false
			j++
		default:
			j++
		}
	}
	return nil, false, false
}

// hex4 is the value of four hex digits, -1 when they are not.
func hex4(b []byte) rune {
	var n rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		n = n<<4 | rune(c)
	}
	return n
}

// unquote is the value of a string whose text str returned: escapes
// replaced, invalid UTF-8 and lone surrogates as U+FFFD, as encoding/json
// decodes a string.
func unquote(text []byte, plain bool) string {
	if plain {
		return string(text)
	}
	var b strings.Builder
	b.Grow(len(text))
	for i := 0; i < len(text); {
		c := text[i]
		if c == '\\' {
			e := text[i+1]
			i += 2
			switch e {
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				ru := hex4(text[i:])
				i += 4
				if utf16.IsSurrogate(ru) {
					// A pair only with a second \u escape right after.
					if i+6 <= len(text) && text[i] == '\\' && text[i+1] == 'u' {
						if d := utf16.DecodeRune(ru, hex4(text[i+2:])); d != utf8.RuneError {
							b.WriteRune(d)
							i += 6
							continue
						}
					}
					ru = utf8.RuneError
				}
				b.WriteRune(ru)
			default: // '"', '\\', '/'
				b.WriteByte(e)
			}
			continue
		}
		if c < utf8.RuneSelf {
			b.WriteByte(c)
			i++
			continue
		}
		ru, n := utf8.DecodeRune(text[i:])
		b.WriteRune(ru) // utf8.RuneError for a byte that is not UTF-8
		i += n
	}
	return b.String()
}

// number reads a number and returns its text; integer says that it has no
// fraction and no exponent.
func (r *reader) number() (text []byte, integer, ok bool) {
	r.peek()
	b, start := r.b, r.i
	j := start
	if j < len(b) && b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case j < len(b) && b[j] >= '1' && b[j] <= '9':
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
	default:
		return nil, false, false
	}
	integer = true
	if j < len(b) && b[j] == '.' {
		integer = false
		j++
		if j >= len(b) || b[j] < '0' || b[j] > '9' {
			return nil, false, false
		}
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		integer = false
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if j >= len(b) || b[j] < '0' || b[j] > '9' {
			return nil, false, false
		}
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
	}
	r.i = j
	return b[start:j], integer, true
}

// flexInt reads what a flexInt field decodes without doubt: an integer of
// at most 18 digits, or null (0). Anything else fails.
func (r *reader) flexInt() (int64, bool) {
	if r.peek() == 'n' {
		return 0, r.lit("null")
	}
	text, integer, ok := r.number()
	if !ok || !integer {
		return 0, false
	}
	return plainInt(text)
}

// flexString reads what a flexString field decodes: a string (its value), a
// number (its text) or null (""). Anything else fails.
func (r *reader) flexString() (string, bool) {
	switch c := r.peek(); {
	case c == '"':
		text, plain, ok := r.str()
		if !ok {
			return "", false
		}
		return intern(text, plain), true
	case c == 'n':
		return "", r.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		text, _, ok := r.number()
		return string(text), ok
	}
	return "", false
}

// intern is unquote that returns the values poll answers repeat (font names
// and colours, statuses) without a new string.
func intern(text []byte, plain bool) string {
	if plain {
		switch string(text) {
		case "":
			return ""
		case "000000":
			return "000000"
		case "宋体":
			return "宋体"
		case "微软雅黑":
			return "微软雅黑"
		case "online":
			return "online"
		case "offline":
			return "offline"
		case "away":
			return "away"
		case "busy":
			return "busy"
		}
	}
	return unquote(text, plain)
}

// field is the index of key in names, -1 for a key that is none of them. ok
// is false for a key that encoding/json could still take for one of them
// (escaped, not ASCII, or one of them in other letter case).
func field(key []byte, plain bool, names []string) (int, bool) {
	if !plain {
		return -1, false
	}
	for k, n := range names {
		if string(key) == n {
			return k, true
		}
	}
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return -1, false
		}
	}
	for _, n := range names {
		if asciiEqualFold(key, n) {
			return -1, false
		}
	}
	return -1, true
}

// asciiEqualFold reports whether the ASCII key and name are equal but for
// letter case.
func asciiEqualFold(key []byte, name string) bool {
	if len(key) != len(name) {
		return false
	}
	for i := range key {
		a, b := key[i], name[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}
