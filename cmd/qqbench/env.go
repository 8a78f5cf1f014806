// The harness: the environment the runs share (env.go), the runs of the
// bridge and of the baselines (runs.go, latency.go), Run and its table
// (run.go). bench_test.go has the same runs as Go benchmarks.
//
// Everything runs on the loopback: an embedded nats-server (in process, its
// own store in a temporary directory) and the simulator (qqsim) on an
// httptest listener, logged in by QR as a test does.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/qqbridge/qqbridge/bus"
	"github.com/qqbridge/qqbridge/directory"
	"github.com/qqbridge/qqbridge/internal/retry"
	"github.com/qqbridge/qqbridge/live"
	"github.com/qqbridge/qqbridge/natsembed"
	"github.com/qqbridge/qqbridge/qqclient"
	"github.com/qqbridge/qqbridge/qqsim"
	"github.com/qqbridge/qqbridge/schema"
)

// The default world of the simulator (qqsim.DefaultWorld).
const (
	alice   = 123456 // a friend, member of Dev chat
	devChat = 987654 // a group
)

// Env is what the runs share: NATS, the simulator, a logged-in client and its
// directory. Close it when done.
type Env struct {
	Subjects schema.Subjects
	NC       *nats.Conn
	JS       jetstream.JetStream
	Sim      *qqsim.Server
	Client   *qqclient.Client
	Dir      *directory.Directory
	Log      zerolog.Logger
	// LastAnswered and LastDecoded are, in the last IngressBridge run, the
	// times from the items queued to the poll answer's first bytes at the
	// client (the simulator's own work before: its settling wait and
	// encoding the answer) and to the answer received and decoded.
	LastAnswered, LastDecoded time.Duration

	answers *answerClock
	srv     *server.Server
	ts      *httptest.Server
	dataDir string
	account int64
	gen     uint64
	msgID   int64 // the next poll item's msg_id
	reqID   int64 // the next request id
}

// NewEnv starts NATS and the simulator (World(Targets, 0)) and logs the
// client in.
func NewEnv(ctx context.Context) (*Env, error) { return NewEnvWorld(ctx, World(Targets, 0)) }

// NewEnvWorld is NewEnv with the simulator's world w.
func NewEnvWorld(ctx context.Context, w *qqsim.World) (*Env, error) {
	e, err := startEnv(w)
	if err != nil {
		return nil, err
	}
	var loginErr error
	s, err := e.Client.LoginQR(ctx, func(ev qqclient.LoginEvent) {
		if ev.Step == qqclient.LoginQRReady {
			if err := e.Sim.ScanQR(); err != nil {
				loginErr = err
			} else if err := e.Sim.ConfirmQR(); err != nil {
				loginErr = err
			}
		}
	})
	if err != nil || loginErr != nil {
		e.Close()
		return nil, fmt.Errorf("bench: login: %w", errors.Join(err, loginErr))
	}
	e.account = s.UIN
	e.Dir = directory.New(e.Client, e.Log)
	if err := e.Dir.Refresh(ctx); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// startEnv starts NATS and the simulator with the world w and makes the
// client, not logged in.
func startEnv(w *qqsim.World) (*Env, error) {
	e := &Env{Log: zerolog.Nop(), msgID: 1000}
	var err error
	if e.dataDir, err = os.MkdirTemp("", "qqbench-"); err != nil {
		return nil, err
	}
	if e.srv, err = natsembed.Start(natsembed.Options{DataDir: e.dataDir, Port: -1}); err != nil {
		e.Close()
		return nil, err
	}
	if e.NC, err = nats.Connect(e.srv.ClientURL(), nats.MaxReconnects(-1)); err != nil {
		e.Close()
		return nil, err
	}
	if e.JS, err = jetstream.New(e.NC); err != nil {
		e.Close()
		return nil, err
	}
	e.Subjects, _ = schema.NewSubjects("")
	if e.Sim, err = qqsim.New(qqsim.Config{World: w, PollHold: 30 * time.Second, RateLimit: -1}); err != nil {
		e.Close()
		return nil, err
	}
	e.ts = httptest.NewServer(e.Sim)
	e.answers = &answerClock{rt: http.DefaultTransport}
	if e.Client, err = qqclient.New(qqclient.WithBaseURL(e.ts.URL), qqclient.WithPollTimeout(40*time.Second),
		qqclient.WithHTTPClient(&http.Client{Transport: e.answers}),
		qqclient.WithQRPollInterval(10*time.Millisecond), qqclient.WithRequestTimeout(10*time.Second)); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// Close stops everything NewEnv started.
func (e *Env) Close() {
	if e.NC != nil {
		e.NC.Close()
	}
	if e.ts != nil {
		e.ts.Close()
	}
	if e.Sim != nil {
		e.Sim.Close()
	}
	if e.srv != nil {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
	}
	if e.dataDir != "" {
		_ = os.RemoveAll(e.dataDir)
	}
}

// resetStreams deletes and re-creates the bridge's streams (and so their
// de-duplication windows): every run starts from empty streams.
func (e *Env) resetStreams(ctx context.Context) error {
	for _, name := range []string{e.Subjects.StreamIn(), e.Subjects.StreamOut(), e.Subjects.StreamResult()} {
		if err := e.JS.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return err
		}
	}
	// The server removes a deleted stream's store in the background; a
	// stream of the same name made meanwhile can fail ("error creating
	// store for stream", seen under the race detector): try again briefly.
	var err error
	for range 50 {
		if err = bus.EnsureStreams(ctx, e.JS, e.Subjects, bus.StreamOptions{}); err == nil {
			return nil
		}
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || apiErr.Code != 500 {
			return err
		}
		if err := retry.Sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return err
}

// streamMsgs is the number of messages in stream name.
func (e *Env) streamMsgs(ctx context.Context, name string) (uint64, error) {
	st, err := e.JS.Stream(ctx, name)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// session is a live session that never ends, for the runs.
func (e *Env) session(ctx context.Context) live.Source {
	e.gen++
	s := live.New(ctx, e.account, e.gen, nopReports{})
	return live.SourceFunc(func(context.Context) (live.Session, error) { return s, nil })
}

type nopReports struct{}

func (nopReports) Lost(uint64, error)    {}
func (nopReports) Kicked(uint64, string) {}

// groupItem is a poll2 group message of Alice in Dev chat with msg_id id,
// in the session numbers of the simulator.
func (e *Env) groupItem(st qqsim.State, id int64) []byte {
	gid := strconv.FormatInt(st.Groups[devChat], 10)
	return []byte(`{"poll_type":"group_message","value":{"msg_id":` + strconv.FormatInt(id, 10) +
		`,"msg_id2":1,"msg_type":43,"from_uin":` + gid + `,"group_code":` + gid +
		`,"send_uin":` + strconv.FormatInt(st.Friends[alice], 10) +
		`,"seq":51,"to_uin":931996776,"time":1450687625,"content":[["font",{"name":"微软雅黑","size":10,"style":[0,0,0],"color":"000000"}],"好啊 ",["face",14]]}}`)
}

// Targets is the number of groups the egress runs send to, round robin.
const Targets = 16

// firstGroup is the number of the first of the extra groups of World.
const firstGroup = 70000000

// World is the simulator's default world with groups more groups (numbers
// firstGroup, firstGroup+1, …; Alice a member of each) and friends more
// friends (QQ numbers from 80000000).
func World(groups, friends int) *qqsim.World {
	w := qqsim.DefaultWorld()
	for g := range groups {
		w.Groups = append(w.Groups, qqsim.GroupDef{
			Number: int64(firstGroup + g), Name: "bench " + strconv.Itoa(g), Owner: alice,
			Members: []qqsim.MemberDef{{QQ: alice, Nick: "Alice"}},
		})
	}
	for f := range friends {
		w.Friends = append(w.Friends, qqsim.Person{QQ: int64(80000000 + f), Nick: "friend " + strconv.Itoa(f)})
	}
	return w
}

// answerClock is the client's transport, noting when the answer of the last
// poll2 began to arrive (its headers).
type answerClock struct {
	rt   http.RoundTripper
	mu   sync.Mutex
	last time.Time
}

func (a *answerClock) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := a.rt.RoundTrip(r)
	if err == nil && strings.HasSuffix(r.URL.Path, "/poll2") {
		now := time.Now()
		a.mu.Lock()
		a.last = now
		a.mu.Unlock()
	}
	return resp, err
}

// lastAnswer is when the last poll2 answer began to arrive.
func (a *answerClock) lastAnswer() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last
}
