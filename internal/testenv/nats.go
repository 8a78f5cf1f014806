package testenv

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qqbridge/qqbridge/natsembed"
)

// NATS is an embedded nats-server of one test.
type NATS struct {
	t       testing.TB
	Server  *server.Server // nil while stopped
	DataDir string         // the JetStream store (kept across Stop and Restart)
	port    int
	noJS    bool
}

// NATSOptions configures StartNATSWith.
type NATSOptions struct {
	// NoJetStream starts the server without JetStream (EnableJetStream turns
	// it on later), as a server whose JetStream is not ready yet.
	NoJetStream bool
}

// StartNATS starts an embedded nats-server with JetStream on a random
// 127.0.0.1 port with its store in t.TempDir(); it is shut down when the test
// ends.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	return StartNATSWith(t, NATSOptions{})
}

// StartNATSWith is StartNATS with options.
func StartNATSWith(t testing.TB, o NATSOptions) *NATS {
	t.Helper()
	n := &NATS{t: t, DataDir: t.TempDir(), port: -1, noJS: o.NoJetStream}
	n.start()
	t.Cleanup(n.Stop)
	return n
}

func (n *NATS) start() {
	n.t.Helper()
	var err error
	if n.noJS {
		n.Server, err = startPlain(n.port)
	} else {
		n.Server, err = natsembed.Start(natsembed.Options{DataDir: n.DataDir, Port: n.port})
	}
	if err != nil {
		n.t.Fatalf("testenv: start nats-server: %v", err)
	}
	n.port = n.Server.Addr().(*net.TCPAddr).Port
}

// startPlain starts a server without JetStream.
func startPlain(port int) (*server.Server, error) {
	srv, err := server.NewServer(&server.Options{ServerName: "testenv-plain", Host: "127.0.0.1", Port: port, NoSigs: true, NoLog: true})
	if err != nil {
		return nil, err
	}
	srv.Start()
	if !srv.ReadyForConnections(WaitTimeout) {
		srv.Shutdown()
		return nil, fmt.Errorf("not ready after %v", WaitTimeout)
	}
	return srv, nil
}

// URL is the client URL, nats://127.0.0.1:<port>; it stays the same across
// Restart.
func (n *NATS) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// EnableJetStream turns JetStream on in a server started with NoJetStream.
func (n *NATS) EnableJetStream() {
	n.t.Helper()
	if err := n.Server.EnableJetStream(&server.JetStreamConfig{StoreDir: n.DataDir}); err != nil {
		n.t.Fatalf("testenv: EnableJetStream: %v", err)
	}
	n.noJS = false
}

// Stop shuts the server down; the store stays. It is safe to call twice.
func (n *NATS) Stop() {
	if n.Server == nil {
		return
	}
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
	n.Server = nil
}

// Restart stops the server (if running) and starts it again on the same
// port with the same store: a NATS outage for the clients, who reconnect.
func (n *NATS) Restart() {
	n.t.Helper()
	n.Stop()
	n.start()
}

// Connect opens a client connection to url that reconnects quickly and
// forever (so that it rides out a Restart), closed when the test ends.
// opts come after the defaults and may override them.
func Connect(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	all := append([]nats.Option{
		nats.Name("testenv"), nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond),
		nats.ReconnectJitter(0, 0), nats.Timeout(WaitTimeout),
	}, opts...)
	nc, err := nats.Connect(url, all...)
	if err != nil {
		t.Fatalf("testenv: connect to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// JetStream returns a JetStream context of nc.
func JetStream(t testing.TB, nc *nats.Conn, opts ...jetstream.JetStreamOpt) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		t.Fatalf("testenv: jetstream: %v", err)
	}
	return js
}

// Connect opens a connection to n (see the function Connect) and returns it
// with its JetStream context.
func (n *NATS) Connect(opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	n.t.Helper()
	nc := Connect(n.t, n.URL(), opts...)
	return nc, JetStream(n.t, nc)
}

// Context returns a context that ends after WaitTimeout or with the test.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// Cluster is a JetStream cluster of in-process nats-servers on 127.0.0.1,
// routed to each other, each with its store in t.TempDir(). NewCluster
// configures it; the test starts the nodes when it wants (all at once, or
// some later, to make a cluster without a meta leader for a while).
type Cluster struct {
	t     testing.TB
	Name  string
	Nodes []*ClusterNode
}

// ClusterNode is one server of a Cluster.
type ClusterNode struct {
	Name   string
	Server *server.Server // nil until started
	opts   *server.Options
}

// NewCluster configures a cluster of n nodes (n ≥ 1); none is started. Every
// node is shut down when the test ends.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("testenv: NewCluster(%d)", n)
	}
	routePorts := freePorts(t, n)
	c := &Cluster{t: t, Name: "testenv"}
	for i := range n {
		var routes []string
		for j, p := range routePorts {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
			}
		}
		name := fmt.Sprintf("n%d", i+1)
		c.Nodes = append(c.Nodes, &ClusterNode{Name: name, opts: &server.Options{
			ServerName: name,
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoSigs:     true,
			NoLog:      true,
			Cluster:    server.ClusterOpts{Name: c.Name, Host: "127.0.0.1", Port: routePorts[i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
		}})
	}
	t.Cleanup(c.Shutdown)
	return c
}

// Start starts node i and returns once it accepts client connections; its
// JetStream may not be ready yet (the cluster elects its meta leader once a
// majority of nodes is up).
func (c *Cluster) Start(i int) {
	c.t.Helper()
	node := c.Nodes[i]
	if node.Server != nil {
		return
	}
	srv, err := server.NewServer(node.opts)
	if err != nil {
		c.t.Fatalf("testenv: cluster node %s: %v", node.Name, err)
	}
	srv.Start()
	if !srv.ReadyForConnections(WaitTimeout) {
		srv.Shutdown()
		c.t.Fatalf("testenv: cluster node %s not ready after %v", node.Name, WaitTimeout)
	}
	node.Server = srv
}

// StartAll starts every node not started yet, at once.
func (c *Cluster) StartAll() {
	c.t.Helper()
	for i := range c.Nodes {
		c.Start(i)
	}
}

// URL is the client URL of started node i.
func (c *Cluster) URL(i int) string {
	c.t.Helper()
	if c.Nodes[i].Server == nil {
		c.t.Fatalf("testenv: cluster node %s is not started", c.Nodes[i].Name)
	}
	return c.Nodes[i].Server.ClientURL()
}

// HasMetaLeader reports whether some started node knows a JetStream meta
// leader.
func (c *Cluster) HasMetaLeader() bool {
	for _, n := range c.Nodes {
		if n.Server != nil && n.Server.JetStreamIsLeader() {
			return true
		}
	}
	return false
}

// Shutdown stops every started node.
func (c *Cluster) Shutdown() {
	for _, n := range c.Nodes {
		if n.Server != nil {
			n.Server.Shutdown()
			n.Server.WaitForShutdown()
			n.Server = nil
		}
	}
}

// freePorts returns n distinct free TCP ports on 127.0.0.1 (free when asked;
// the route listeners bind them a moment later).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testenv: free port: %v", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// FreeAddr returns a 127.0.0.1:<port> address free when asked, for a program
// that must be told its listen address (a bridge's --http).
func FreeAddr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
}
