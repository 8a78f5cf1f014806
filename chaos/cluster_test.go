//go:build chaos

package chaos

import (
	"fmt"
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
}

// freePort returns a port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
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
		Routes:  routes,
		LogFile: nd.log,
		Logtime: true,
		NoSigs:  true,
	}
}

// start starts nd's server and waits until it takes connections.
func (c *cluster) start(nd *node) error {
	srv, err := server.NewServer(c.options(nd))
	if err != nil {
		return fmt.Errorf("node %s: %w", nd.name, err)
	}
	srv.ConfigureLogger() // an embedded server logs nowhere until told
	go srv.Start()
	if !srv.ReadyForConnections(20 * time.Second) {
		srv.Shutdown()
		return fmt.Errorf("node %s: not ready", nd.name)
	}
	c.mu.Lock()
	nd.srv = srv
	c.mu.Unlock()
	return nil
}

// stop shuts nd's server down (clients and routes drop at once).
func (c *cluster) stop(nd *node) {
	c.mu.Lock()
	srv := nd.srv
	nd.srv = nil
	c.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
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
