package qqclient

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestDecodeContentPictures(t *testing.T) {
	raw := json.RawMessage(`[["font",{"name":"宋体","size":10,"style":[0,0,0],"color":"000000"}],"look",` +
		`["offpic",{"success":1,"file_path":"/4c7d819b-4235-466c-9915-c7e0dcd0cceb"}],["face",14],` +
		`["cface",{"name":"{E8F9A0B1-C2D3-E4F5-0617-28394A5B6C7D}.jpg","file_id":"3208463937","key":"q2rVIhZpUk6uAo2m","server":"123.138.154.167:8000"}],` +
		`["offpic","not an object"],["cface"],"end"]`)
	font, segs, pics, err := DecodeContentPictures(raw)
	if err != nil || font.Name != "宋体" {
		t.Fatalf("font %+v, %v", font, err)
	}
	if len(segs) != 3 || segs[0].Text != "look" || segs[1].Face != 14 || segs[2].Text != "end" {
		t.Errorf("segments = %+v", segs)
	}
	want := []Picture{
		{Kind: PictureOffPic, Index: 1, FilePath: "/4c7d819b-4235-466c-9915-c7e0dcd0cceb", Success: true},
		{Kind: PictureCFace, Index: 2, Name: "{E8F9A0B1-C2D3-E4F5-0617-28394A5B6C7D}.jpg", FileID: 3208463937, Key: "q2rVIhZpUk6uAo2m", Server: "123.138.154.167:8000"},
	}
	if len(pics) != len(want) || pics[0] != want[0] || pics[1] != want[1] {
		t.Errorf("pictures = %+v, want %+v", pics, want)
	}
	// DecodeContent is unchanged: the same segments, no pictures.
	if _, s2, err := DecodeContent(raw); err != nil || len(s2) != 3 {
		t.Errorf("DecodeContent = %+v, %v", s2, err)
	}
	ev := DecodeEvent(json.RawMessage(`{"poll_type":"message","value":{"msg_id":1,"from_uin":7,"to_uin":8,"time":1,"content":` + string(raw) + `}}`))
	if ev.Err != nil || ev.Message == nil || len(ev.Message.Pictures) != 2 || ev.Message.Text() != "lookend" {
		t.Errorf("event = %+v", ev)
	}
}

func TestDecodeFileMessage(t *testing.T) {
	tests := []struct {
		name    string
		value   string
		file    *FileOffer
		wantErr bool
	}{
		{name: "offer", value: `{"msg_id":1234,"mode":"recv","from_uin":2300061779,"to_uin":1,"msg_id2":5,"msg_type":9,"reply_ip":176498075,"type":129,"name":"qt.png","inet_ip":0,"time":1444491764,"session_id":20868,"cancel_type":1}`,
			file: &FileOffer{MsgID: 1234, FromUIN: 2300061779, LCID: 20868, Name: "qt.png"}},
		{name: "numbers as strings", value: `{"msg_id":"1","mode":"recv","from_uin":"2","session_id":"3","name":"a"}`,
			file: &FileOffer{MsgID: 1, FromUIN: 2, LCID: 3, Name: "a"}},
		{name: "the sender cancelled", value: `{"msg_id":1,"mode":"refuse","from_uin":2,"session_id":3,"name":"a","cancel_type":2}`},
		{name: "offer without session_id", value: `{"mode":"recv","from_uin":2,"name":"a"}`, wantErr: true},
		{name: "not an object", value: `[1]`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := DecodeEvent(json.RawMessage(`{"poll_type":"file_message","value":` + tt.value + `}`))
			if tt.wantErr {
				if !errors.Is(ev.Err, ErrProtocol) || ev.Notice != nil {
					t.Fatalf("event = %+v, want a malformed item", ev)
				}
				return
			}
			if ev.Err != nil || ev.Notice == nil {
				t.Fatalf("event = %+v", ev)
			}
			got := ev.Notice.File
			if (got == nil) != (tt.file == nil) {
				t.Fatalf("file = %+v, want %+v", got, tt.file)
			}
			if got != nil && (got.MsgID != tt.file.MsgID || got.FromUIN != tt.file.FromUIN || got.LCID != tt.file.LCID || got.Name != tt.file.Name) {
				t.Errorf("file = %+v, want %+v", got, tt.file)
			}
		})
	}
}

// FuzzDecodeContentPictures: never panics; pictures are in order of Index, within the
// segments, of a known kind; DecodeContent agrees on the segments.
func FuzzDecodeContentPictures(f *testing.F) {
	for _, s := range []string{
		`[["font",{}],"a",["offpic",{"success":1,"file_path":"/x"}],["cface",{"name":"{A}.jpg","file_id":1,"key":"k","server":"1.2.3.4:80"}]]`,
		`[["offpic",{"success":"1","file_path":7}],["cface",[]],["offpic"],["cface",null]]`,
		`[["cface",{"file_id":1e30}]]`, `[["offpic",{"success":true}]]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, segs, pics, err := DecodeContentPictures(raw)
		_, segs2, err2 := DecodeContent(raw)
		if (err == nil) != (err2 == nil) || len(segs) != len(segs2) {
			t.Fatalf("DecodeContent disagrees: %v / %v", err, err2)
		}
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v is not ErrProtocol", err)
			}
			return
		}
		last := 0
		for _, p := range pics {
			if p.Index < last || p.Index > len(segs) || (p.Kind != PictureOffPic && p.Kind != PictureCFace) {
				t.Fatalf("picture %+v of %d segments", p, len(segs))
			}
			last = p.Index
		}
	})
}

// FuzzDecodeFileNotice: never panics; an offer always has what AcceptFile needs.
func FuzzDecodeFileNotice(f *testing.F) {
	for _, s := range []string{
		`{"msg_id":1234,"mode":"recv","from_uin":2300061779,"name":"qt.png","time":1444491764,"session_id":20868}`,
		`{"mode":"refuse","from_uin":1}`, `{"mode":"recv"}`, `{"mode":7,"session_id":"x"}`, `null`, `[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		n, err := decodeFileNotice(raw)
		if err != nil {
			return
		}
		if n == nil {
			t.Fatal("nil notice without error")
		}
		if fo := n.File; fo != nil && (fo.LCID == 0 || fo.FromUIN == 0 || fo.Name == "") {
			t.Fatalf("incomplete offer %+v", fo)
		}
	})
}
