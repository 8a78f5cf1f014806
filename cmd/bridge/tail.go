package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/schema"
)

// defaultClientNATS is where tail and send look for NATS: the address of `bridge
// run`'s embedded server.
const defaultClientNATS = "nats://127.0.0.1:4222"

// clientFlags are the NATS flags of tail and send.
type clientFlags struct {
	url, creds string
	subjects   schema.Subjects
}

func (f *flagSet) clientFlags() (*clientFlags, *string) {
	cf := &clientFlags{}
	prefix := new(string)
	f.fs.StringVar(&cf.url, "nats", defaultClientNATS, "NATS server `URL`s, comma-separated")
	f.fs.StringVar(&cf.creds, "nats-creds", "", "NATS user credentials `file` (.creds)")
	f.fs.StringVar(prefix, "prefix", schema.DefaultPrefix, "subject `prefix` of the bridge")
	return cf, prefix
}

// check validates the NATS flags after parsing.
func (cf *clientFlags) check(f *flagSet, prefix string) error {
	if err := f.checkNATSURL("nats", cf.url); err != nil {
		return err
	}
	s, err := schema.NewSubjects(prefix)
	if err != nil || prefix == "" {
		return f.badf("prefix", "%q: one or more tokens separated by '.', each of A-Z, a-z, 0-9, '_' and '-'", prefix)
	}
	cf.subjects = s
	return nil
}

// connect connects to NATS, giving up after a few seconds when no server answers.
func (cf *clientFlags) connect(name string) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name(name), nats.Timeout(5 * time.Second), nats.MaxReconnects(-1)}
	if cf.creds != "" {
		opts = append(opts, nats.UserCredentials(cf.creds))
	}
	nc, err := nats.Connect(cf.url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w (is a bridge or nats-server running there? see --nats)", cf.url, err)
	}
	return nc, nil
}

// runTail is `bridge tail [subject]`.
func (c *cli) runTail(ctx context.Context, args []string) error {
	f := c.newFlagSet("tail", "bridge tail [flags] [subject]",
		"Prints every message on subject (default <prefix>.>) readably: the subject, the headers of\n"+
			"interest, a decoded summary and the body as JSON (msgpack bodies are decoded). QR codes\n"+
			"on <prefix>.session.qr are drawn. Stops on Ctrl-C.")
	cf, prefix := f.clientFlags()
	body := f.fs.Bool("body", true, "print each body as JSON under its summary")
	drawQR := f.fs.Bool("qr", true, "draw QR codes in the terminal")
	latest := f.fs.Bool("latest", true, "first print the latest session state and QR code kept in the session bucket (when subject covers them)")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if err := cf.check(f, *prefix); err != nil {
		return err
	}
	subject := cf.subjects.Prefix() + ".>"
	switch len(pos) {
	case 0:
	case 1:
		subject = pos[0]
		if !validSubscription(subject) {
			return usageErrorf("tail: %q is not a valid subject (tokens separated by '.', wildcards '*' and '>')", subject)
		}
	default:
		return usageErrorf("tail: one subject at most, got %d arguments", len(pos))
	}
	nc, err := cf.connect("qqbridge tail")
	if err != nil {
		return err
	}
	defer nc.Close()
	p := &printer{w: c.stdout, subjects: cf.subjects, body: *body, drawQR: *drawQR}
	sub, err := nc.Subscribe(subject, p.print)
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", subject, err)
	}
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("subscribe to %s: %w", subject, err)
	}
	fmt.Fprintf(c.stderr, "tail: listening on %s at %s (Ctrl-C stops)\n", subject, nc.ConnectedUrlRedacted())
	if *latest {
		printLatest(ctx, nc, cf.subjects, subject, p, c.stderr)
	}
	<-ctx.Done()
	_ = sub.Unsubscribe()
	return drainConn(nc, 5*time.Second)
}

// drainConn drains nc (pending messages are handled, then it closes) and waits up
// to timeout for it to close.
func drainConn(nc *nats.Conn, timeout time.Duration) error {
	done := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(done) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		if errors.Is(err, nats.ErrConnectionClosed) {
			return nil
		}
		return fmt.Errorf("drain NATS: %w", err)
	}
	select {
	case <-done:
	case <-time.After(timeout):
		nc.Close()
	}
	return nil
}

// validSubscription reports whether s is a subject a subscription may use: tokens
// separated by '.', none empty or holding white space, '*' only as a whole token and
// '>' only as the whole last token.
func validSubscription(s string) bool {
	toks := strings.Split(s, ".")
	for i, t := range toks {
		switch {
		case t == "", strings.ContainsAny(t, " \t\r\n"):
			return false
		case t == ">" && i != len(toks)-1:
			return false
		case t != "*" && t != ">" && strings.ContainsAny(t, "*>"):
			return false
		}
	}
	return true
}

// printLatest prints the session state and QR code kept in the session bucket when
// the subscription covers their subjects, so that a tail started late sees where
// the session stands. The values carry no Content-Type: JSON starts with '{',
// anything else is msgpack.
func printLatest(ctx context.Context, nc *nats.Conn, s schema.Subjects, subscription string, p *printer, stderr io.Writer) {
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var kv jetstream.KeyValue
	for _, k := range []struct{ key, subject string }{
		{schema.SessionKeyState, s.SessionState()},
		{schema.SessionKeyQR, s.SessionQR()},
	} {
		if !subjectMatches(subscription, k.subject) {
			continue
		}
		if kv == nil {
			if kv, err = js.KeyValue(ctx, s.SessionBucket()); err != nil {
				return // no bridge has run with this prefix yet
			}
		}
		e, err := kv.Get(ctx, k.key)
		if err != nil || len(e.Value()) == 0 {
			continue
		}
		ct := schema.ContentTypeMsgpack
		if e.Value()[0] == '{' {
			ct = schema.ContentTypeJSON
		}
		m := nats.NewMsg(k.subject)
		m.Header.Set(schema.HeaderContentType, ct)
		m.Data = e.Value()
		fmt.Fprintf(stderr, "tail: the latest %s, from KV %s (written %s):\n", k.key, s.SessionBucket(), e.Created().Local().Format(time.TimeOnly))
		p.print(m)
	}
}

// subjectMatches reports whether subscription (which may hold the wildcards '*'
// and '>') matches the literal subject.
func subjectMatches(subscription, subject string) bool {
	pt, st := strings.Split(subscription, "."), strings.Split(subject, ".")
	for i, p := range pt {
		switch {
		case p == ">":
			return len(st) > i
		case i >= len(st):
			return false
		case p != "*" && p != st[i]:
			return false
		}
	}
	return len(pt) == len(st)
}
