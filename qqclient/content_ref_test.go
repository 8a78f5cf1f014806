package qqclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// decodeContentReference is decodeContent as it was before its one-pass
// fast paths (every item decoded on its own): the reference the fuzz below
// compares with.
func decodeContentReference(raw json.RawMessage) (Font, []Segment, []Picture, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return Font{}, nil, nil, fmt.Errorf("%w: content: %v", ErrProtocol, err)
		}
		raw = bytes.TrimSpace([]byte(s))
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return Font{}, nil, nil, fmt.Errorf("%w: content is not an array", ErrProtocol)
	}
	var font Font
	var segs []Segment
	var pics []Picture
	for i, it := range items {
		it = bytes.TrimSpace(it)
		if len(it) == 0 {
			continue
		}
		switch it[0] {
		case '"':
			var s string
			if err := json.Unmarshal(it, &s); err != nil {
				return Font{}, nil, nil, fmt.Errorf("%w: content[%d]: bad string", ErrProtocol, i)
			}
			if s != "" {
				segs = append(segs, TextSegment(UnescapeEntities(s)))
			}
		case '[':
			var parts []json.RawMessage
			if err := json.Unmarshal(it, &parts); err != nil || len(parts) == 0 {
				return Font{}, nil, nil, fmt.Errorf("%w: content[%d]: bad segment", ErrProtocol, i)
			}
			var kind string
			if err := json.Unmarshal(parts[0], &kind); err != nil {
				return Font{}, nil, nil, fmt.Errorf("%w: content[%d]: segment without a name", ErrProtocol, i)
			}
			switch kind {
			case "font":
				if len(parts) < 2 {
					return Font{}, nil, nil, fmt.Errorf("%w: content[%d]: font without value", ErrProtocol, i)
				}
				f, err := decodeFont(parts[1])
				if err != nil {
					return Font{}, nil, nil, fmt.Errorf("%w: content[%d]: %v", ErrProtocol, i, err)
				}
				font = f
			case "face":
				if len(parts) < 2 {
					return Font{}, nil, nil, fmt.Errorf("%w: content[%d]: face without number", ErrProtocol, i)
				}
				var n flexInt
				if err := json.Unmarshal(parts[1], &n); err != nil || n < 0 || n > 1<<31-1 {
					return Font{}, nil, nil, fmt.Errorf("%w: content[%d]: bad face number", ErrProtocol, i)
				}
				segs = append(segs, FaceSegment(int(n)))
			case "offpic", "cface":
				if len(parts) >= 2 {
					if p, ok := decodePicture(kind, parts[1]); ok {
						p.Index = len(segs)
						pics = append(pics, p)
					}
				}
			default:
				// others: not part of the protocol; skipped.
			}
		default:
			// numbers, objects: not part of the protocol; skipped.
		}
	}
	return font, segs, pics, nil
}

// FuzzDecodeContentSameAsReference: the one-pass decodeContent decodes
// every input as the reference does (the same font, segments, pictures, and
// an error exactly when the reference has one).
func FuzzDecodeContentSameAsReference(f *testing.F) {
	for _, s := range []string{
		`[["font",{"name":"宋体","size":10,"style":[0,0,0],"color":"000000"}],"好啊 ",["face",14]]`,
		`["a\u0026b",["face", 14],["face",-1],["face","14"],["face",2147483648],["face",123456789]]`,
		`[["font",{"name":1,"size":"10","style":[1]}],["font",{"a":1},{"b":2}],["font"],["font",{"size":"x"}]]`,
		`["x",null,1,{},[],["offpic",{"success":1,"file_path":"/a"}],["cface",{"name":"b.jpg"}],"&lt;"]`,
		`"[\"hi\",[\"face\",1]]"`, `[`, `[["face",14]`, `["\ud83d\ude00","é","\"q\""]`, `[["font",{}]]`, `[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		f1, s1, p1, err1 := decodeContent(b)
		f2, s2, p2, err2 := decodeContentReference(b)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("%q: error %v, reference %v", b, err1, err2)
		}
		if err1 != nil {
			if err1.Error() != err2.Error() {
				t.Fatalf("%q: error %q, reference %q", b, err1, err2)
			}
			return
		}
		if f1 != f2 || !reflect.DeepEqual(s1, s2) || !reflect.DeepEqual(p1, p2) {
			t.Fatalf("%q:\n got %+v %+v %+v\nwant %+v %+v %+v", b, f1, s1, p1, f2, s2, p2)
		}
	})
}

// decodeMessageReference is decodeMessage as it was before the one-pass
// decoding of its content.
func decodeMessageReference(raw json.RawMessage) (*Message, error) {
	if !isObject(raw) {
		return nil, errNotObject
	}
	var w wireMessage
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, errors.New("unexpected field types")
	}
	if len(w.Content) == 0 {
		return nil, errors.New("no content")
	}
	font, segs, pics, err := decodeContentReference(w.Content)
	if err != nil {
		return nil, errors.New("bad content")
	}
	m := &Message{
		MsgID: int64(w.MsgID), MsgID2: int64(w.MsgID2), MsgType: int(w.MsgType),
		FromUIN: int64(w.FromUIN), ToUIN: int64(w.ToUIN), SendUIN: int64(w.SendUIN),
		GroupCode: int64(w.GroupCode), DID: int64(w.DID), SessID: int64(w.ID), SessRUIN: int64(w.RUIN),
		ServiceType: int(w.ServiceType), Seq: int64(w.Seq),
		Font: font, Segments: segs, Pictures: pics,
	}
	if w.Time != 0 {
		m.Time = time.Unix(int64(w.Time), 0).UTC()
	}
	return m, nil
}

// FuzzDecodeMessageSameAsReference: the one-pass decodeMessage decodes every
// value as the reference does.
func FuzzDecodeMessageSameAsReference(f *testing.F) {
	for _, s := range []string{
		`{"msg_id":50873,"msg_id2":1,"msg_type":43,"from_uin":2890,"group_code":2890,"send_uin":4711,"seq":51,"to_uin":931996776,"time":1450687625,"content":[["font",{"name":"微软雅黑","size":10,"style":[0,0,0],"color":"000000"}],"好啊 ",["face",14]]}`,
		`{"msg_id":"7","from_uin":1,"content":"[\"hi\"]"}`, `{"msg_id":1,"content":null}`, `{"msg_id":1}`,
		`{"msg_id":1,"content":[]}`, `{"msg_id":true,"content":["x"]}`, `{"content":["a"],"content":["b"]}`,
		`{"msg_id":1,"content":[["face","x"]]}`, `[]`, `{"time":1.5e9,"content":["t"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m1, err1 := decodeMessage(b)
		m2, err2 := decodeMessageReference(b)
		if (err1 == nil) != (err2 == nil) || (err1 != nil && err1.Error() != err2.Error()) {
			t.Fatalf("%q: error %v, reference %v", b, err1, err2)
		}
		if !reflect.DeepEqual(m1, m2) {
			t.Fatalf("%q:\n got %+v\nwant %+v", b, m1, m2)
		}
	})
}

var (
	_ = bytes.TrimSpace
	_ = json.Unmarshal
	_ = fmt.Errorf
)

// FuzzDecodePollAnswerOnePass: the one-pass decodePollAnswer answers every
// body as the general decoding does.
func FuzzDecodePollAnswerOnePass(f *testing.F) {
	for _, s := range []string{
		`{"retcode":0,"result":[{"poll_type":"message","value":{"msg_id":1,"from_uin":2,"content":["hi"]}},null,1,{"poll_type":"tips","value":{"from_uin":3}}]}`,
		`{"retcode":0,"result":[]}`, `{"retcode":0,"result":null}`, `{"retcode":0}`, `{"retcode":102,"errmsg":""}`,
		`{"retcode":116,"p":"abc"}`, `{"retcode":0,"result":"x"}`, `{"retcode":"0","result":[{"poll_type":"kick_message","value":{"reason":"x"}},]}`,
		`{"result":[]}`, `[]`, `{"retcode":0,"result":[{"value":{}}]}`, `{"retcode":1e2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a1, err1 := decodePollAnswer(b)
		a2, err2 := decodePollAnswerGeneral(b)
		if (err1 == nil) != (err2 == nil) || (err1 != nil && err1.Error() != err2.Error()) {
			t.Fatalf("%q: error %v, general %v", b, err1, err2)
		}
		if !reflect.DeepEqual(a1, a2) {
			t.Fatalf("%q:\n got %#v\nwant %#v", b, a1, a2)
		}
	})
}
