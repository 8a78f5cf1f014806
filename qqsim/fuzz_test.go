package qqsim

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeSent feeds the send content decoder outside bytes: it must never panic,
// and what it accepts has a font, at least one segment and at most 720 bytes of text.
func FuzzDecodeSent(f *testing.F) {
	for _, s := range []string{
		`["hi",["font",{"name":"宋体","size":10,"style":[0,0,0],"color":"000000"}]]`,
		`["a",["face",14],"b",["font",{}]]`,
		`[["font",{}],"font first"]`,
		`["no font"]`,
		`[]`, `{}`, `"str"`, `[["face","x"],["font",{}]]`, `[["face",-1],["font",{}]]`,
		`[["img",1],["font",{}]]`, `["x",["font",[]]]`, `[1,["font",{}]]`,
		`["` + strings.Repeat("a", 721) + `",["font",{}]]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, content string) {
		segs, font, err := decodeSent(content)
		if err != nil {
			return
		}
		if len(font) == 0 || len(segs) == 0 {
			t.Fatalf("accepted %q without font or segments", content)
		}
		size := 0
		for _, s := range segs {
			if !s.isFace {
				size += len(s.text)
			}
		}
		if size > MaxContentBytes {
			t.Fatalf("accepted %d bytes of text", size)
		}
		for _, s := range segs {
			if !s.isFace && !utf8.ValidString(s.text) {
				// encoding/json replaces invalid UTF-8; a decoded text is always valid
				t.Fatalf("invalid UTF-8 text from %q", content)
			}
		}
	})
}

// FuzzEscapeEntities: the escaped text never holds a raw <, >, " or \.
func FuzzEscapeEntities(f *testing.F) {
	for _, s := range []string{"", "plain", `a<b>&"c"\`, "&amp;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := escapeEntities(s)
		if strings.ContainsAny(e, `<>"\`) {
			t.Fatalf("escape(%q) = %q", s, e)
		}
	})
}
