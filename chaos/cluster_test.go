//go:build chaos

package chaos

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// cluster is a JetStream cluster of in-process nats-servers joined by routes
// on 127.0.0.1. A node is stopped (Shutdown: its clients and routes drop at
// once) and started again on the same ports and store.
type cluster struct {
	t     *testing.T
	mu    sync.Mutex
	nodes []*node
}

type node struct {
	name       string
	clientPort int
	routePort  int
	store      string
	log        string         // the server's log file (every start appends to it)
	srv        *server.Server // nil while stopped
	logger     *fileLogger    // srv's
}

// The ports of the suite come from below the kernel's ephemeral range
// (32768–60999 here), so that no outgoing connection of anyone on the machine
// takes the port of a node while it is stopped, and none is handed out twice.
var ports = struct {
	sync.Mutex
	used map[int]bool
}{used: map[int]bool{}}

// freePort returns a port in [20000, 32000) that was free a moment ago and
// that the suite has not handed out before.
func freePort(t *testing.T) int {
	t.Helper()
	ports.Lock()
	defer ports.Unlock()
	for range 1000 {
		p := 20000 + rand.IntN(12000)
		if ports.used[p] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		ln.Close()
		ports.used[p] = true
		return p
	}
	t.Fatal("no free port in [20000, 32000)")
	return 0
}

// fileLogger is a nats-server logger writing to a file. Fatalf records the
// message instead of exiting the process, as the server's own logger would
// (a port taken: the suite fails with the message).
type fileLogger struct {
	mu    sync.Mutex
	f     *os.File
	fatal string
}

func newFileLogger(path string) (*fileLogger, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	return &fileLogger{f: f}, nil
}

func (l *fileLogger) logf(level, format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.f, "%s [%s] %s\n", time.Now().UTC().Format("15:04:05.000000"), level, fmt.Sprintf(format, v...))
}

func (l *fileLogger) Noticef(format string, v ...any) { l.logf("INF", format, v...) }
func (l *fileLogger) Warnf(format string, v ...any)   { l.logf("WRN", format, v...) }
func (l *fileLogger) Errorf(format string, v ...any)  { l.logf("ERR", format, v...) }
func (l *fileLogger) Debugf(format string, v ...any)  {}
func (l *fileLogger) Tracef(format string, v ...any)  {}
func (l *fileLogger) Fatalf(format string, v ...any) {
	l.logf("FTL", format, v...)
	l.mu.Lock()
	l.fatal = fmt.Sprintf(format, v...)
	l.mu.Unlock()
}

// fatalf returns the last fatal message, "" if none.
func (l *fileLogger) fatalf() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatal
}

func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	c := &cluster{t: t}
	dir := t.TempDir()
	for i := range n {
		c.nodes = append(c.nodes, &node{
			name:       fmt.Sprintf("n%d", i+1),
			clientPort: freePort(t),
			routePort:  freePort(t),
			store:      filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			log:        filepath.Join(dir, fmt.Sprintf("n%d.log", i+1)),
		})
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, nd := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.start(nd)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			c.stopAll()
			t.Fatal(err)
		}
	}
	t.Cleanup(c.stopAll)
	return c
}

func (c *cluster) options(nd *node) *server.Options {
	var routes []*url.URL
	for _, o := range c.nodes {
		if o != nd {
			routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", o.routePort)})
		}
	}
	return &server.Options{
		ServerName: nd.name,
		Host:       "127.0.0.1",
		Port:       nd.clientPort,
		JetStream:  true,
		StoreDir:   nd.store,
		Cluster: server.ClusterOpts{
			Name: "chaos",
			Host: "127.0.0.1",
			Port: nd.routePort,
		},
		Routes: routes,
		NoSigs: true,
	}
}

// start starts nd's server and waits until it takes connections.
func (c *cluster) start(nd *node) error {
	srv, err := server.NewServer(c.options(nd))
	if err != nil {
		return fmt.Errorf("node %s: %w", nd.name, err)
	}
	l, err := newFileLogger(nd.log)
	if err != nil {
		return err
	}
	srv.SetLoggerV2(l, false, false, false)
	go srv.Start()
	ready := srv.ReadyForConnections(20 * time.Second)
	if msg := l.fatalf(); msg != "" || !ready {
		srv.Shutdown()
		l.f.Close()
		return fmt.Errorf("node %s: not ready: %s", nd.name, msg)
	}
	c.mu.Lock()
	nd.srv, nd.logger = srv, l
	c.mu.Unlock()
	return nil
}

// stop shuts nd's server down (clients and routes drop at once).
func (c *cluster) stop(nd *node) {
	c.mu.Lock()
	srv, l := nd.srv, nd.logger
	nd.srv, nd.logger = nil, nil
	c.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		l.f.Close()
	}
}

func (c *cluster) stopAll() {
	for _, nd := range c.nodes {
		c.stop(nd)
	}
}

// node returns the node named name, nil if none.
func (c *cluster) node(name string) *node {
	for _, nd := range c.nodes {
		if nd.name == name {
			return nd
		}
	}
	return nil
}

// tail returns the last n bytes of nd's log.
func (nd *node) tail(n int) string {
	b, _ := os.ReadFile(nd.log)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// urls is the comma-separated client URL list of every node.
func (c *cluster) urls() string {
	var u []string
	for _, nd := range c.nodes {
		u = append(u, fmt.Sprintf("nats://127.0.0.1:%d", nd.clientPort))
	}
	return strings.Join(u, ",")
}
