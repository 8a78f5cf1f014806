package main

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportsOnlySchemaAndNATS: the service's code (not its tests) uses the
// schema package, nats.go and the standard library only, as a consumer team's
// code would.
func TestImportsOnlySchemaAndNATS(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			switch {
			case p == "github.com/qqbridge/qqbridge/schema":
			case strings.HasPrefix(p, "github.com/nats-io/nats.go"):
			case !strings.Contains(strings.SplitN(p, "/", 2)[0], "."): // the standard library
			default:
				t.Errorf("%s imports %s", f, p)
			}
		}
	}
}
