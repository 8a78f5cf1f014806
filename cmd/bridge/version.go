package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// buildVersion is what the binary knows of its own build: the module version
// (v1.2.3, "(devel)" for a build from a work tree) and the VCS revision, time and
// whether the tree was modified, from the build info Go embeds.
type buildVersion struct {
	Module   string // e.g. v1.2.3 or (devel)
	Revision string // VCS revision, "" if unknown
	Time     string // VCS commit time (RFC 3339), "" if unknown
	Modified bool   // the work tree had changes
	Go       string // the Go version it was built with
}

func readBuildVersion() buildVersion {
	v := buildVersion{Module: "(unknown)", Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.Main.Version != "" {
		v.Module = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// Short is the version in one token, for the micro service and metadata:
// the module version, with the short revision when it is not a release.
func (v buildVersion) Short() string {
	s := v.Module
	if v.Revision != "" {
		rev := v.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		s += "+" + rev
		if v.Modified {
			s += ".dirty"
		}
	}
	return s
}

// String is the line `bridge --version` prints.
func (v buildVersion) String() string {
	s := "qqbridge " + v.Module
	if v.Revision != "" {
		s += " revision " + v.Revision
		if v.Modified {
			s += " (modified)"
		}
	}
	if v.Time != "" {
		s += " " + v.Time
	}
	return s + " " + v.Go
}

// printVersion is `bridge --version`.
func (c *cli) printVersion() {
	fmt.Fprintln(c.stdout, readBuildVersion())
}
