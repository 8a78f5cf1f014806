package qqclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrSkippedItem marks the Err of an Event whose poll2 item was not even well-formed JSON:
// the item is kept as an Event without Type, its text (as a JSON string) in Raw. It also
// wraps ErrProtocol.
var ErrSkippedItem = errors.New("qqclient: poll item skipped")

// SkippedItems counts the events of a poll that could not be decoded (Err set): what the
// caller should log as lost. The other events are whole.
func SkippedItems(evs []Event) int {
	n := 0
	for _, ev := range evs {
		if ev.Err != nil {
			n++
		}
	}
	return n
}

// The seeds print arrays and objects with a trailing comma ("好啊",\n],), as some servers'
// JSON did. The lenient decoding below accepts them, and when an answer is still not JSON
// it keeps every item of the result that is.

// stripTrailingCommas returns b without the commas that come (after white space) right
// before a closing bracket or brace, outside strings. It returns b itself when there are
// none.
func stripTrailingCommas(b []byte) []byte {
	var out []byte
	inStr, esc := false, false
	last := 0 // copied up to here
	for i := 0; i < len(b); i++ {
		ch := b[i]
		if inStr {
			switch {
			case esc:
				esc = false
			case ch == '\\':
				esc = true
			case ch == '"':
				inStr = false
			}
			continue
		}
		if ch == '"' {
			inStr = true
			continue
		}
		if ch != ',' {
			continue
		}
		j := i + 1
		for j < len(b) && isSpace(b[j]) {
			j++
		}
		if j < len(b) && (b[j] == ']' || b[j] == '}') {
			out = append(out, b[last:i]...)
			last = i + 1
		}
	}
	if out == nil {
		return b
	}
	return append(out, b[last:]...)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipValue returns the end of the JSON-ish value starting at b[i] (after white space): the
// index after a balanced string, array or object, or the next ',', ']' or '}' at depth 0 for
// a scalar. ok is false when b ends first.
func skipValue(b []byte, i int) (end int, ok bool) {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	depth := 0
	inStr, esc := false, false
	for ; i < len(b); i++ {
		ch := b[i]
		if inStr {
			switch {
			case esc:
				esc = false
			case ch == '\\':
				esc = true
			case ch == '"':
				inStr = false
				if depth == 0 {
					return i + 1, true
				}
			}
			continue
		}
		switch ch {
		case '"':
			inStr = true
		case '[', '{':
			depth++
		case ']', '}':
			if depth == 0 {
				return i, true
			}
			depth--
			if depth == 0 {
				return i + 1, true
			}
		case ',':
			if depth == 0 {
				return i, true
			}
		}
	}
	return len(b), false
}

// splitMembers splits the text of a JSON object or array (b[0] is '{' or '[') into its
// top-level members: for an object key text and value text, for an array the element
// texts (keys nil). It stops at the first member it cannot delimit; complete is false then.
func splitMembers(b []byte) (keys, vals [][]byte, complete bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || (b[0] != '{' && b[0] != '[') {
		return nil, nil, false
	}
	obj := b[0] == '{'
	i := 1
	for {
		for i < len(b) && (isSpace(b[i]) || b[i] == ',') {
			i++
		}
		if i >= len(b) {
			return keys, vals, false
		}
		if b[i] == '}' || b[i] == ']' {
			return keys, vals, true
		}
		var key []byte
		if obj {
			end, ok := skipValue(b, i)
			if !ok || b[i] != '"' {
				return keys, vals, false
			}
			key = b[i:end]
			i = end
			for i < len(b) && isSpace(b[i]) {
				i++
			}
			if i >= len(b) || b[i] != ':' {
				return keys, vals, false
			}
			i++
		}
		start := i
		end, ok := skipValue(b, i)
		if !ok || end == start {
			// A value that runs to the end (a truncated answer): keep it, so that the
			// complete items of a result array are decoded and the rest counted.
			if v := bytes.TrimSpace(b[start:]); len(v) > 0 {
				keys = append(keys, key)
				vals = append(vals, v)
			}
			return keys, vals, false
		}
		keys = append(keys, key)
		vals = append(vals, bytes.TrimSpace(b[start:end]))
		i = end
	}
}

// salvagePollAnswer reads a poll2 answer that is not JSON even without trailing commas: the
// retcode, p and result members are found by their delimiters, and each item of result is
// decoded on its own.
func salvagePollAnswer(body []byte) (pollAnswer, error) {
	keys, vals, _ := splitMembers(body)
	var rcRaw, resRaw, pRaw []byte
	for i, k := range keys {
		var name string
		if json.Unmarshal(k, &name) != nil {
			continue
		}
		switch name {
		case "retcode":
			rcRaw = vals[i]
		case "result":
			resRaw = vals[i]
		case "p":
			pRaw = vals[i]
		}
	}
	var rc flexInt
	if rcRaw == nil || json.Unmarshal(rcRaw, &rc) != nil {
		return pollAnswer{}, protocolError("poll2", "answer is not a JSON object with a retcode")
	}
	a := pollAnswer{retcode: int(rc)}
	if pRaw != nil {
		var p flexString
		if json.Unmarshal(pRaw, &p) == nil {
			a.p = string(p)
		}
	}
	if a.retcode != 0 || resRaw == nil {
		return a, nil
	}
	if bytes.HasPrefix(resRaw, []byte("null")) {
		return a, nil
	}
	if resRaw[0] != '[' {
		return pollAnswer{}, protocolError("poll2", "result is not an array")
	}
	_, items, _ := splitMembers(resRaw)
	for _, it := range items {
		a.events = append(a.events, decodeItemLenient(it))
	}
	return a, nil
}

// maxSkippedRaw bounds the text an undecodable item keeps in Raw.
const maxSkippedRaw = 4096

// decodeItemLenient decodes one item that may not be valid JSON: without its trailing
// commas it is decoded as usual; if still not JSON it becomes a skipped Event.
func decodeItemLenient(it []byte) Event {
	fixed := stripTrailingCommas(it)
	if json.Valid(fixed) {
		return DecodeEvent(fixed)
	}
	text := it
	if len(text) > maxSkippedRaw {
		text = text[:maxSkippedRaw]
	}
	raw, _ := json.Marshal(string(bytes.ToValidUTF8(text, []byte("\uFFFD"))))
	return Event{
		Raw: raw,
		Err: fmt.Errorf("%w: %w: poll2: item is not JSON (%d bytes)", ErrProtocol, ErrSkippedItem, len(it)),
	}
}
