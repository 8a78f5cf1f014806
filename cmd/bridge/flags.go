package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"
)

// envPrefix starts the environment twin of every flag: --foo-bar ↔ QQBRIDGE_FOO_BAR.
const envPrefix = "QQBRIDGE_"

// errHelp is returned when the user asked for help (-h, --help): exit 0.
var errHelp = flag.ErrHelp

// usageError is a bad command line: a flag, an environment twin or an argument. It
// makes the process exit with code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// envName returns the environment twin of a flag name: "foo-bar" → "QQBRIDGE_FOO_BAR".
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// flagSet is a flag.FlagSet whose flags also read their environment twins. A flag
// given on the command line wins over its twin; a twin wins over the default.
type flagSet struct {
	fs        *flag.FlagSet
	cmd       string // "run", "tail", …
	synopsis  string // the line after "Usage:"
	about     string // a paragraph under it
	lookupEnv func(string) (string, bool)
	stderr    io.Writer
	fromEnv   map[string]string // flag name → the twin it was read from
}

func (c *cli) newFlagSet(cmd, synopsis, about string) *flagSet {
	fs := flag.NewFlagSet("bridge "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse errors come back as usageError; help is printed by usage
	return &flagSet{fs: fs, cmd: cmd, synopsis: synopsis, about: about, lookupEnv: c.lookupEnv, stderr: c.stderr, fromEnv: map[string]string{}}
}

// parse parses args, then fills every flag not given from its environment twin. It
// returns the positional arguments, which may come before, between or after flags
// ("--" ends the flags). -h/--help prints the usage and returns errHelp.
func (f *flagSet) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := f.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				f.usage(f.stderr)
				return nil, errHelp
			}
			return nil, usageErrorf("%s: %s (see bridge %s --help)", f.cmd, strings.Replace(err.Error(), " -", " --", 1), f.cmd)
		}
		rest := f.fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	given := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	var err error
	f.fs.VisitAll(func(fl *flag.Flag) {
		if err != nil || given[fl.Name] {
			return
		}
		name := envName(fl.Name)
		v, ok := f.lookupEnv(name)
		if !ok {
			return
		}
		if serr := fl.Value.Set(v); serr != nil {
			err = usageErrorf("%s: invalid value %q for %s (the twin of --%s): %v", f.cmd, v, name, fl.Name, serr)
			return
		}
		f.fromEnv[fl.Name] = name
	})
	return pos, err
}

// where names a flag for an error message, saying when its value came from the
// environment: "--rate" or "--rate (from QQBRIDGE_RATE)".
func (f *flagSet) where(name string) string {
	if env, ok := f.fromEnv[name]; ok {
		return "--" + name + " (from " + env + ")"
	}
	return "--" + name
}

// badf is a usage error about one flag.
func (f *flagSet) badf(name, format string, args ...any) error {
	return usageErrorf("%s: %s: %s", f.cmd, f.where(name), fmt.Sprintf(format, args...))
}

// usage prints the synopsis and every flag with its default and environment twin.
func (f *flagSet) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s\n", f.synopsis)
	if f.about != "" {
		fmt.Fprintf(w, "\n%s\n", f.about)
	}
	fmt.Fprintf(w, "\nFlags (each also read from its environment twin; the flag wins):\n")
	var all []*flag.Flag
	f.fs.VisitAll(func(fl *flag.Flag) { all = append(all, fl) })
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	for _, fl := range all {
		arg, help := flag.UnquoteUsage(fl)
		head := "--" + fl.Name
		if arg != "" {
			head += " " + arg
		}
		fmt.Fprintf(w, "  %-28s %s\n", head, help)
		var tail []string
		if fl.DefValue != "" && fl.DefValue != "0" && fl.DefValue != "false" {
			tail = append(tail, "default "+fl.DefValue)
		}
		tail = append(tail, "env "+envName(fl.Name))
		fmt.Fprintf(w, "  %-28s (%s)\n", "", strings.Join(tail, ", "))
	}
}

// noArgs rejects positional arguments for commands that take none.
func (f *flagSet) noArgs(pos []string) error {
	if len(pos) > 0 {
		return usageErrorf("%s: unexpected argument %q (all settings are flags; see bridge %s --help)", f.cmd, pos[0], f.cmd)
	}
	return nil
}

// Checks shared by the commands.

// checkNATSURL accepts a NATS URL list (comma-separated nats://, tls://, ws://, wss://).
func (f *flagSet) checkNATSURL(name, v string) error {
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return f.badf(name, "%q is not a NATS URL such as nats://127.0.0.1:4222", v)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return f.badf(name, "%q: scheme %q, want nats://, tls://, ws:// or wss://", v, u.Scheme)
		}
	}
	return nil
}

// checkHostPort accepts host:port (the port may be 0: any free port).
func (f *flagSet) checkHostPort(name, v string) error {
	if _, _, err := net.SplitHostPort(v); err != nil {
		return f.badf(name, "%q: want host:port such as 127.0.0.1:8081", v)
	}
	return nil
}

// checkPositive rejects durations ≤ 0.
func (f *flagSet) checkPositive(name string, d time.Duration) error {
	if d <= 0 {
		return f.badf(name, "must be a positive duration such as 30s, got %v", d)
	}
	return nil
}
