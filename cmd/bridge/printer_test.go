package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qqbridge/qqbridge/schema"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(b)
}

func TestPrinter(t *testing.T) {
	s, err := schema.NewSubjects("qq")
	if err != nil {
		t.Fatal(err)
	}
	groupEvent := readTestdata(t, "event_group.json")
	ev, err := schema.DecodeEvent(nil, groupEvent)
	if err != nil {
		t.Fatal(err)
	}
	packed, packedHeader, err := ev.Encode(schema.Msgpack())
	if err != nil {
		t.Fatal(err)
	}
	qrPNG := simQR(t)
	qrJSON, err := json.Marshal(schema.QR{PNG: qrPNG, ExpiresAt: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		subject string
		header  nats.Header
		data    []byte
		want    []string // substrings of the output
		notWant []string
	}{
		{
			name: "group event", subject: "qq.in.group.987654",
			header: nats.Header{"Content-Type": {"application/json"}, "ce-type": {"qq.message.group"}, "ce-id": {"931996776:group:50873"}, "Nats-Msg-Id": {"931996776:group:50873"}},
			data:   groupEvent,
			want: []string{"qq.in.group.987654", "ce-type=qq.message.group", "ce-id=931996776:group:50873",
				"message.group in group Dev chat (987654) from Alice@dev (123456): 好啊 [face 14]", `"msg_id":50873`},
			notWant: []string{"content-type=application/json", "nats-msg-id="},
		},
		{
			name: "msgpack event is decoded", subject: "qq.in.group.987654", header: nats.Header(packedHeader), data: packed,
			want: []string{"content-type=application/msgpack", "from Alice@dev (123456)", `"text":"好啊 /微笑"`},
		},
		{
			name: "unresolved sender", subject: "qq.in.friend.uin3785096088", data: readTestdata(t, "event_friend_unresolved.json"),
			want: []string{"message.friend from uin3785096088: hi"},
		},
		{
			name: "state", subject: "qq.session.state", data: readTestdata(t, "state_online.json"),
			want: []string{"state online (account 931996776)"},
		},
		{
			name: "QR is drawn, not dumped", subject: "qq.session.qr", data: qrJSON,
			want: []string{"QR code to scan", "█"}, notWant: []string{`"png"`},
		},
		{
			name: "QR as the PNG itself", subject: "qq.session.qr",
			header: nats.Header{"Content-Type": {"image/png"}, "expires_at": {"2030-01-02T03:04:05Z"}}, data: qrPNG,
			want: []string{"content-type=image/png", "expires_at=2030-01-02T03:04:05Z", "QR code to scan", "▀"}, notWant: []string{"PNG\\r"},
		},
		{
			name: "failed result", subject: "qq.result.group", data: readTestdata(t, "result_failed.json"),
			want: []string{"failed group r-7: qq_error: QQ refused the message (retcode 100001)"},
		},
		{
			name: "request", subject: "qq.out.sess", header: nats.Header{"Nats-Msg-Id": {"r-8"}}, data: readTestdata(t, "request_sess.json"),
			want: []string{"nats-msg-id=r-8", "send to qq 2468024, group 987654: hello [face 0]  (id r-8)"},
		},
		{
			name: "bad event body", subject: "qq.in.group.1", data: []byte("{"),
			want: []string{"undecodable event"},
		},
		{
			name: "other subject, text body", subject: "elsewhere", data: []byte("plain words"),
			want: []string{"elsewhere", `"plain words"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			p := &printer{w: &out, subjects: s, body: true, drawQR: true}
			p.print(&nats.Msg{Subject: tt.subject, Header: tt.header, Data: tt.data})
			got := out.String()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(got, w) {
					t.Errorf("output has %q:\n%s", w, got)
				}
			}
		})
	}
}
