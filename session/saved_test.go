package session_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/session"
)

// testdataKey sealed testdata/saved_sealed.json.
const testdataKey = "testdata key"

func testSession() *qqclient.Session {
	return &qqclient.Session{
		UIN: 931996776, PtWebQQ: "ptwebqq-test-value-0001", VFWebQQ: "vfwebqq-test-value-0002",
		PSessionID: "psessionid-test-value-0003",
		Cookies:    []qqclient.SavedCookie{{URL: "http://qq.com/", Name: "skey", Value: "@skeytest"}},
		LoggedInAt: time.Date(2015, 12, 21, 8, 47, 5, 0, time.UTC),
	}
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSavedRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		key  []byte
	}{
		{"clear", nil},
		{"sealed", session.DeriveKey("a secret")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := testSession()
			data, err := session.EncodeSaved(s, c.key)
			if err != nil {
				t.Fatal(err)
			}
			if c.key != nil && bytes.Contains(data, []byte(s.PSessionID)) {
				t.Error("a sealed session shows its psessionid")
			}
			got, err := session.DecodeSaved(data, c.key)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, s) {
				t.Errorf("round trip changed the session")
			}
		})
	}
}

func TestSavedNonceIsFresh(t *testing.T) {
	key := session.DeriveKey("a secret")
	a, _ := session.EncodeSaved(testSession(), key)
	b, _ := session.EncodeSaved(testSession(), key)
	if bytes.Equal(a, b) {
		t.Error("two seals of the same session are equal: the nonce is not random")
	}
}

func TestDecodeSavedTestdata(t *testing.T) {
	cases := []struct {
		file string
		key  []byte
		want error
	}{
		{"saved_plain.json", nil, nil},
		{"saved_plain.json", session.DeriveKey(testdataKey), nil},
		{"saved_sealed.json", session.DeriveKey(testdataKey), nil},
		{"saved_sealed.json", session.DeriveKey("another key"), session.ErrWrongKey},
		{"saved_sealed.json", nil, session.ErrNoKey},
		{"saved_sealed.json", []byte("short"), session.ErrKeySize},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			s, err := session.DecodeSaved(readTestdata(t, c.file), c.key)
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("DecodeSaved: %v, want %v", err, c.want)
			}
			if err == nil && !reflect.DeepEqual(s, testSession()) {
				t.Errorf("decoded %v, not the testdata session", s)
			}
			if err != nil && bytes.Contains([]byte(err.Error()), []byte("test-value")) {
				t.Error("the error shows a secret")
			}
		})
	}
}

func TestDecodeSavedRejects(t *testing.T) {
	key := session.DeriveKey(testdataKey)
	cases := []struct {
		name string
		data string
	}{
		{"empty", ``},
		{"not json", `ptwebqq=abc`},
		{"array", `[]`},
		{"no version", `{"alg":"none","session":{"uin":1,"ptwebqq":"a","vfwebqq":"b","psessionid":"c"}}`},
		{"future version", `{"v":2,"alg":"none","session":{"uin":1,"ptwebqq":"a","vfwebqq":"b","psessionid":"c"}}`},
		{"unknown alg", `{"v":1,"alg":"rot13","data":"AAAA"}`},
		{"no session", `{"v":1,"alg":"none"}`},
		{"incomplete session", `{"v":1,"alg":"none","session":{"uin":1,"ptwebqq":"a"}}`},
		{"negative uin", `{"v":1,"alg":"none","session":{"uin":-1,"ptwebqq":"a","vfwebqq":"b","psessionid":"c"}}`},
		{"short nonce", `{"v":1,"alg":"A256GCM","nonce":"AAAA","data":"AAAAAAAAAAAAAAAAAAAAAA=="}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := session.DecodeSaved([]byte(c.data), key); !errors.Is(err, session.ErrBadSaved) {
				t.Errorf("DecodeSaved: %v, want ErrBadSaved", err)
			}
		})
	}
	// A tampered ciphertext fails authentication.
	sealed := readTestdata(t, "saved_sealed.json")
	i := bytes.Index(sealed, []byte(`"data":"`)) + len(`"data":"`)
	tampered := bytes.Clone(sealed)
	if tampered[i] == 'A' {
		tampered[i] = 'B'
	} else {
		tampered[i] = 'A'
	}
	if _, err := session.DecodeSaved(tampered, key); !errors.Is(err, session.ErrWrongKey) {
		t.Errorf("tampered: %v, want ErrWrongKey", err)
	}
}

func TestDeriveKey(t *testing.T) {
	if session.DeriveKey("") != nil {
		t.Error("an empty secret gives a key")
	}
	k := session.DeriveKey("x")
	if len(k) != session.KeySize {
		t.Errorf("key of %d bytes", len(k))
	}
	if bytes.Equal(k, session.DeriveKey("y")) || !bytes.Equal(k, session.DeriveKey("x")) {
		t.Error("DeriveKey is not a function of the secret")
	}
}

// FuzzDecodeSaved feeds DecodeSaved arbitrary bucket values: it must never
// panic, and whatever it accepts must encode and decode to the same session.
func FuzzDecodeSaved(f *testing.F) {
	f.Add(readTestdata(f, "saved_plain.json"))
	f.Add(readTestdata(f, "saved_sealed.json"))
	f.Add([]byte(`{"v":1,"alg":"A256GCM","nonce":"AAAAAAAAAAAAAAAA","data":""}`))
	f.Add([]byte(`{"v":1,"alg":"none","session":null}`))
	f.Add([]byte(`null`))
	key := session.DeriveKey(testdataKey)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := session.DecodeSaved(data, key)
		if err != nil {
			if !errors.Is(err, session.ErrBadSaved) && !errors.Is(err, session.ErrWrongKey) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		again, err := session.EncodeSaved(s, key)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := session.DecodeSaved(again, key)
		if err != nil || !reflect.DeepEqual(s, s2) {
			t.Fatalf("re-encoding changed the session: %v", err)
		}
	})
}
