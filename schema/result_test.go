package schema

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestResultGolden(t *testing.T) {
	tests := []struct {
		file string
		res  Result
	}{
		{"results/ok.json", Result{ID: "order-1", Kind: KindFriend, OK: true, Parts: 2}},
		{"results/qq_error.json", Result{V: 1, ID: "g-7", Kind: KindGroup,
			Error: &ResultError{Code: CodeQQError, Message: "QQ refused the message", Retcode: 1202}}},
		{"results/invalid.json", Result{Kind: KindSess,
			Error: &ResultError{Code: CodeInvalidRequest, Message: "invalid request: to: sess needs group or gid"}}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			want := bytes.TrimSpace(readTestdata(t, tt.file))
			got, err := JSON().Marshal(&tt.res)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
			expect := tt.res
			expect.V = Version
			for _, c := range []Codec{JSON(), Msgpack()} {
				data, err := c.Marshal(tt.res) // a value, not a pointer: MarshalJSON / EncodeMsgpack
				if err != nil {
					t.Fatal(err)
				}
				var back Result
				if err := Decode(c.ContentType(), data, &back); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(back, expect) {
					t.Errorf("%s: got %+v, want %+v", c.ContentType(), back, expect)
				}
			}
		})
	}
}

func TestResultError(t *testing.T) {
	var err error = &ResultError{Code: CodeRateLimited, Message: "too fast"}
	if err.Error() != "rate_limited: too fast" {
		t.Errorf("Error() = %q", err.Error())
	}
	if got := (&ResultError{Code: CodeMaybeSent}).Error(); got != "maybe_sent" {
		t.Errorf("Error() = %q", got)
	}
	retry := map[ErrorCode]bool{
		CodeInvalidRequest: false, CodeUnknownTarget: false, CodeRateLimited: true,
		CodeSessionUnavailable: true, CodeQQError: false, CodeMaybeSent: false,
	}
	for c, want := range retry {
		if c.Retryable() != want {
			t.Errorf("%s.Retryable() = %v, want %v", c, !want, want)
		}
	}
}

func TestSessionMessages(t *testing.T) {
	tests := []struct {
		file string
		v    any
		want any
	}{
		{"session/online.json", &SessionState{},
			&SessionState{State: StateOnline, Time: time.Date(2015, 12, 21, 8, 47, 5, 0, time.UTC), Account: 931996776}},
		{"session/awaiting_scan.json", &SessionState{},
			&SessionState{State: StateAwaitingScan, Reason: "new QR code", Time: time.Date(2015, 12, 21, 8, 45, 0, 0, time.UTC)}},
		{"session/qr.json", &QR{},
			&QR{PNG: []byte("\x89PNG\r\n\x1a\n"), ExpiresAt: time.Date(2015, 12, 21, 8, 47, 0, 0, time.UTC)}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data := bytes.TrimSpace(readTestdata(t, tt.file))
			if err := Decode("", data, tt.v); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(tt.v, tt.want) {
				t.Errorf("decoded %+v, want %+v", tt.v, tt.want)
			}
			got, err := JSON().Marshal(tt.want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("encoded %s, want %s", got, data)
			}
			// msgpack round trip; msgpack times come back in the local zone.
			mp, err := Msgpack().Marshal(tt.want)
			if err != nil {
				t.Fatal(err)
			}
			back := reflect.New(reflect.TypeOf(tt.want).Elem()).Interface()
			if err := Decode(ContentTypeMsgpack, mp, back); err != nil {
				t.Fatal(err)
			}
			switch b := back.(type) {
			case *SessionState:
				b.Time = b.Time.UTC()
			case *QR:
				b.ExpiresAt = b.ExpiresAt.UTC()
			}
			if !reflect.DeepEqual(back, tt.want) {
				t.Errorf("msgpack round trip %+v, want %+v", back, tt.want)
			}
		})
	}
}

func TestCodecFor(t *testing.T) {
	tests := []struct {
		contentType string
		want        string // "" when an error is expected
	}{
		{"", ContentTypeJSON},
		{"application/json", ContentTypeJSON},
		{"application/json; charset=utf-8", ContentTypeJSON},
		{"Application/JSON", ContentTypeJSON},
		{"application/msgpack", ContentTypeMsgpack},
		{"application/x-msgpack", ContentTypeMsgpack},
		{"application/vnd.msgpack", ContentTypeMsgpack},
		{"text/plain", ""},
		{"application/xml", ""},
		{"application/json;;", ""},
		{"json", ""},
		{"application/cloudevents+json", ""},
	}
	for _, tt := range tests {
		c, err := CodecFor(tt.contentType)
		if tt.want == "" {
			if !errors.Is(err, ErrUnsupportedContentType) || c != nil {
				t.Errorf("CodecFor(%q) = %v, %v; want ErrUnsupportedContentType", tt.contentType, c, err)
			}
			continue
		}
		if err != nil || c.ContentType() != tt.want {
			t.Errorf("CodecFor(%q) = %v, %v; want %s", tt.contentType, c, err, tt.want)
		}
	}
	if err := Decode("text/plain", []byte(`{}`), &Result{}); !errors.Is(err, ErrUnsupportedContentType) {
		t.Errorf("Decode with unknown content type: %v", err)
	}
}
