package egress

import (
	"go/build"
	"testing"
)

// TestDoesNotImportSession: egress knows live sessions (package live), never
// the session manager.
func TestDoesNotImportSession(t *testing.T) {
	p, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range p.Imports {
		if imp == "github.com/qqbridge/qqbridge/session" {
			t.Errorf("egress imports %s", imp)
		}
	}
}
