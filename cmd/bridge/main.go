// Command bridge is qqbridge's one binary. It bridges a SmartQQ (WebQQ) account to
// NATS JetStream and carries the tools a person uses around it:
//
//	bridge run    the bridge itself (embedded NATS unless --nats is given)
//	bridge demo   everything in one process: NATS, the simulator, a scripted QR scan and traffic
//	bridge tail   print the messages on a subject readably
//	bridge send   send one message through a running bridge and wait for the outcome
//	bridge onebot a OneBot v11 gateway on a running bridge (docs/onebot.md)
//	bridge --version  the module version and VCS revision of the build
//
// Every flag --foo-bar has an environment twin QQBRIDGE_FOO_BAR; the flag wins.
// See README.md and docs/operations.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // the first signal stops gracefully; a second one kills at once
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// Exit codes of the binary.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed (a send that did not go out, a lost NATS connection)
	exitUsage   = 2 // bad flags or arguments
)

// run runs the command line args (without the program name) until it is done or
// ctx is cancelled, reading the environment of the process for the flags' twins.
// Cancelling ctx is a clean stop, not an error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := &cli{stdout: stdout, stderr: stderr, lookupEnv: os.LookupEnv, isTerminal: isTerminal(stderr)}
	return c.run(ctx, args)
}

// exitCode maps run's error to the process exit code, printing it first.
func exitCode(err error, stderr io.Writer) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "bridge:", err)
		return exitUsage
	default:
		fmt.Fprintln(stderr, "bridge:", err)
		return exitFailure
	}
}

// cli is one invocation of the binary: where it writes and where its environment
// comes from (tests pass a map instead of the process environment).
type cli struct {
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
	isTerminal     bool // stderr is a terminal: readable logs
}

// run dispatches to the sub-command.
func (c *cli) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		c.usage()
		return usageErrorf("no command given: want run, demo, tail, send or onebot")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		return c.runBridge(ctx, rest)
	case "demo":
		return c.runDemo(ctx, rest)
	case "tail":
		return c.runTail(ctx, rest)
	case "send":
		return c.runSend(ctx, rest)
	case "onebot":
		return c.runOnebot(ctx, rest)
	case "version", "-version", "--version":
		c.printVersion()
		return nil
	case "help", "-h", "-help", "--help":
		c.usage()
		return errHelp
	default:
		c.usage()
		return usageErrorf("unknown command %q: want run, demo, tail, send or onebot", cmd)
	}
}

func (c *cli) usage() {
	fmt.Fprint(c.stderr, `Usage: bridge <command> [flags]

Commands:
  run    bridge a SmartQQ account to NATS JetStream (embedded NATS unless --nats is given)
  demo   NATS, the simulator, a scripted QR scan and traffic both ways, all in one process
  tail   print the messages on a subject readably (default <prefix>.>)
  send   send one message through a running bridge and wait for the outcome
  onebot a OneBot v11 gateway (HTTP, WebSocket, reverse WebSocket) on a running bridge

Every flag --foo-bar has an environment twin QQBRIDGE_FOO_BAR; the flag wins.
"bridge <command> --help" lists a command's flags; "bridge --version" prints the
version and VCS revision.
`)
}
