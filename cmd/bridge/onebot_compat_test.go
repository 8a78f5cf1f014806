//go:build compat

// The compatibility tests run real OneBot client libraries from npm; they are
// behind the build tag compat (CI runs them: cd onebot/compat && npm ci, then
// go test -tags compat -run Compat ./cmd/bridge/), so that go test ./... needs
// no Node.js packages on a new machine.

package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qqbridge/qqbridge/internal/testenv"
	"github.com/qqbridge/qqbridge/onebot"
	"github.com/qqbridge/qqbridge/qqsim"
)

// compatDir returns onebot/compat; a missing node or node_modules fails the
// test, with the command that fixes it.
func compatDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "onebot", "compat"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed: the koishi compatibility test needs Node.js 20 or later (apt-get install nodejs npm)")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "koishi-plugin-adapter-onebot")); err != nil {
		t.Fatalf("%s/node_modules is missing: run `npm ci --no-audit --no-fund` in onebot/compat first", dir)
	}
	return dir
}

// TestOnebotKoishi runs a real koishi bot (koishi 4 with
// koishi-plugin-adapter-onebot, from npm) against bridge onebot, over the
// forward WebSocket (the bot dials the gateway) and the reverse WebSocket
// (the gateway dials the bot): a contact says "ping <n>" in a group in
// qqsim, the bot answers, and the answer is in qqsim's /_sim/sent.
//
// koishi's own "http" protocol is not run: adapter-onebot 6.9.4 reads the
// pushed event from ctx.body, which @koishijs/plugin-server 3.2.9 leaves
// empty (it parses into ctx.request.body), so it fails before it reaches
// the gateway's answer. TestOnebotHTTP covers the HTTP API and POST push.
func TestOnebotKoishi(t *testing.T) {
	dir := compatDir(t)
	for _, protocol := range []string{"ws", "ws-reverse"} {
		t.Run(protocol, func(t *testing.T) {
			env := []string{"ONEBOT_PROTOCOL=" + protocol, "ONEBOT_TOKEN=" + obToken, "ONEBOT_SELF_ID=931996776"}
			var o *onebotSetup
			switch protocol {
			case "ws":
				o = startOnebotSetup(t, nil)
				env = append(env, "ONEBOT_ENDPOINT=ws://"+o.gw.Addr+"/")
			default:
				addr := testenv.FreeAddr(t)
				_, port, _ := net.SplitHostPort(addr)
				env = append(env, "ONEBOT_PORT="+port)
				o = startOnebotSetup(t, func(oc *onebotConfig) {
					oc.Listen = ""
					oc.Gateway.Reverse = []onebot.Reverse{{URL: "ws://" + addr + "/onebot"}}
				})
			}
			out := startNodeBot(t, dir, env)
			out.WaitFor(t, "bot online")
			text := "ping " + protocol
			if _, err := o.sim.Say(qqsim.Say{Kind: "group", From: aliceQQ, Group: devGroup, Text: text}); err != nil {
				t.Fatal(err)
			}
			want := "pong " + protocol + " from koishi"
			deadline := time.Now().Add(testenv.WaitTimeout)
			for !simSent(t, o.simURL, "group", devGroup, want) {
				if time.Now().After(deadline) {
					t.Fatalf("qqsim never received %q; the bot said:\n%s", want, out.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
			out.WaitFor(t, "replied "+want)
			t.Logf("koishi over %s:\n%s", protocol, out.String())
		})
	}
}

// TestOnebotKoishiDemo: the koishi bot, unchanged, against `bridge demo
// --onebot`: the issue's "done when".
func TestOnebotKoishiDemo(t *testing.T) {
	dir := compatDir(t)
	_, obAddr, simURL := startDemoWithOnebot(t)
	out := startNodeBot(t, dir, []string{"ONEBOT_PROTOCOL=ws", "ONEBOT_ENDPOINT=ws://" + obAddr + "/", "ONEBOT_SELF_ID=931996776"})
	out.WaitFor(t, "bot online")
	resp, err := http.Post(simURL+"/_sim/messages", "application/json", strings.NewReader(`{"kind":"group","from":123456,"group":987654,"text":"ping demo"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	deadline := time.Now().Add(testenv.WaitTimeout)
	for !simSent(t, simURL, "group", devGroup, "pong demo from koishi") {
		if time.Now().After(deadline) {
			t.Fatalf("the demo's simulator never received the bot's answer; the bot said:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestOnebotCQWebSocket runs a bot on cq-websocket 2.1.1 (the CQHTTP-era
// Node SDK, from npm), unchanged: /api and /event as two forward WebSocket
// connections with the token in the query, messages as CQ-code strings
// (--message-format string), the reply through send_msg with the whole
// event as its parameters.
func TestOnebotCQWebSocket(t *testing.T) {
	dir := compatDir(t)
	o := startOnebotSetup(t, func(oc *onebotConfig) { oc.Gateway.MessageFormat = onebot.FormatString })
	out := startNodeScript(t, dir, "cqws-bot.js", []string{"ONEBOT_ENDPOINT=ws://" + o.gw.Addr, "ONEBOT_TOKEN=" + obToken, "ONEBOT_SELF_ID=931996776"})
	out.WaitFor(t, "bot online")
	if _, err := o.sim.Say(qqsim.Say{Kind: "group", From: aliceQQ, Group: devGroup, Text: "ping cq"}); err != nil {
		t.Fatal(err)
	}
	want := "pong cq from cq-websocket[face 14]"
	deadline := time.Now().Add(testenv.WaitTimeout)
	for !simSent(t, o.simURL, "group", devGroup, want) {
		if time.Now().After(deadline) {
			t.Fatalf("qqsim never received %q; the bot said:\n%s", want, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	out.WaitFor(t, "replied pong cq from cq-websocket")
}

// startNodeBot runs bot.js until the test ends.
func startNodeBot(t *testing.T, dir string, env []string) *testenv.LogBuffer {
	t.Helper()
	return startNodeScript(t, dir, "bot.js", env)
}

// startNodeScript runs a script of onebot/compat until the test ends.
func startNodeScript(t *testing.T, dir, script string, env []string) *testenv.LogBuffer {
	t.Helper()
	out := &testenv.LogBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "node", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("bot output:\n%s", out.String())
		}
	})
	return out
}
