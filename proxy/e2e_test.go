package proxy_test

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// server is a real mcpwrap serving the everything fixture, on an address
// that stays the same when it restarts, as a machine's does.
type server struct {
	t    *testing.T
	addr string
	proc *testkit.Process // the running one, or the last
}

func newServer(t *testing.T) *server {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, addr: ln.Addr().String()}
	ln.Close()
	return s
}

// startServer is newServer, started.
func startServer(t *testing.T) *server {
	s := newServer(t)
	s.start()
	return s
}

func (s *server) url(path string) string { return "http://" + s.addr + path }

// start runs mcpwrap and waits until it listens.
func (s *server) start() {
	s.t.Helper()
	s.startWith(nil)
}

// startWith runs mcpwrap with settings of its own besides the token and
// the address, and waits until it listens.
func (s *server) startWith(settings map[string]string) {
	s.t.Helper()
	env := map[string]string{"MCPWRAP_LISTEN": s.addr, "MCPWRAP_LOG_LEVEL": "debug"}
	maps.Copy(env, settings)
	s.proc = testkit.Start(s.t, testkit.Options{Token: testToken, Env: env})
}

// stop ends mcpwrap the way a platform stops a machine, with SIGTERM.
func (s *server) stop() {
	s.t.Helper()
	s.proc.Stop()
}

// realShim returns the real `mcpwrap proxy args...` as a command for the
// SDK client.
func realShim(t *testing.T, env []string, args ...string) (*exec.Cmd, *testkit.LogBook) {
	t.Helper()
	mcpwrapBin, _ := testkit.Programs(t)
	return shim(t, exec.Command(mcpwrapBin, append([]string{"proxy"}, args...)...), env)
}

// exerciseEverything drives the fixture's tools, resources and prompts and a
// sampling round trip through both hops.
func exerciseEverything(t *testing.T, ctx context.Context, cs *mcp.ClientSession, tag string) {
	t.Helper()
	if got, err := callText(ctx, cs, "echo", map[string]any{"text": "hi " + tag}); err != nil || got != "hi "+tag {
		t.Fatalf("%s: echo = %q, %v", tag, got, err)
	}
	res, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "test://static-text"})
	if err != nil || len(res.Contents) != 1 || !strings.Contains(res.Contents[0].Text, "static text resource") {
		t.Fatalf("%s: read resource = %+v, %v", tag, res, err)
	}
	pr, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "test_simple_prompt"})
	if err != nil || len(pr.Messages) != 1 {
		t.Fatalf("%s: get prompt = %+v, %v", tag, pr, err)
	}
	if got, err := callText(ctx, cs, "sample", map[string]any{"prompt": "ping " + tag}); err != nil || got != "PING "+strings.ToUpper(tag) {
		t.Fatalf("%s: sample = %q, %v", tag, got, err)
	}
}

func TestEndToEnd(t *testing.T) {
	ctx := testContext(t, 2*testTimeout)
	srv := startServer(t)
	cmd, stderr := realShim(t, []string{"MCPWRAP_TOKEN=" + testToken}, srv.url("/mcp"))
	// Pinned to the stateful era: this test follows the remote session the
	// shim keeps and rebuilds, which protocol 2026-07-28 does not have.
	cs, err := connectWith(t, ctx, cmd, nil, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}

	tools, err := cs.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) < 10 {
		t.Fatalf("list tools: %d tools, %v", len(tools.Tools), err)
	}
	resources, err := cs.ListResources(ctx, nil)
	if err != nil || len(resources.Resources) == 0 {
		t.Fatalf("list resources: %+v, %v", resources, err)
	}
	prompts, err := cs.ListPrompts(ctx, nil)
	if err != nil || len(prompts.Prompts) == 0 {
		t.Fatalf("list prompts: %+v, %v", prompts, err)
	}
	exerciseEverything(t, ctx, cs, "first")
	checkBigMessages(t, ctx, cs, 1<<20, 10<<20)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 10 {
		wg.Go(func() {
			want := fmt.Sprintf("SAMPLE-%d", i)
			if got, err := callText(ctx, cs, "sample", map[string]any{"prompt": strings.ToLower(want)}); err != nil || got != want {
				errs <- fmt.Errorf("sample %d = %q, %v", i, got, err)
			}
		})
		wg.Go(func() {
			if got, err := callText(ctx, cs, "sleep", map[string]any{"ms": 200}); err != nil || got != "slept 200 ms" {
				errs <- fmt.Errorf("sleep = %q, %v", got, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// The machine stops and starts again on the same address: every session
	// it had is gone, and the client must not notice.
	srv.stop()
	srv.start()
	exerciseEverything(t, ctx, cs, "after-restart")
	if !strings.Contains(stderr.Text(), "re-initialized it transparently") {
		t.Errorf("shim did not log the re-initialization")
	}

	if err := cs.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("shim exit code %d, want 0", code)
	}
	if strings.Contains(stderr.Text(), testToken) {
		t.Errorf("the token appears in the shim's log")
	}
	// Only the shim's DELETE can end the session of this mcpwrap (started
	// after the restart) before the test stops it.
	if _, err := srv.proc.Logs.Wait("session ended", testkit.Patience, func(l testkit.Line) bool { return l.Msg() == "session ended" }); err != nil {
		t.Errorf("the remote session was not ended when the client closed: %v", err)
	}
}

func TestEndToEndColdStart(t *testing.T) {
	ctx := testContext(t, testTimeout)
	srv := newServer(t)
	cmd, stderr := realShim(t, []string{"MCPWRAP_TOKEN=" + testToken}, "--retry-for", "45s", srv.url("/mcp"))
	cs := connectThroughColdStart(t, ctx, cmd, stderr, srv.start)
	exerciseEverything(t, ctx, cs, "cold")
}

func TestEndToEndWrongToken(t *testing.T) {
	ctx := testContext(t, testTimeout)
	srv := startServer(t)
	const wrong = "not-the-token"
	cmd, stderr := realShim(t, nil, "--token", wrong, srv.url("/mcp"))
	checkTokenRejected(t, ctx, cmd, stderr, wrong)
}

func TestEndToEndSSE(t *testing.T) {
	ctx := testContext(t, testTimeout)
	srv := startServer(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, stderr := realShim(t, []string{"MCPWRAP_TOKEN_FILE=" + tokenFile}, srv.url("/sse"))
	cs := mustConnect(t, ctx, cmd, nil)
	exerciseEverything(t, ctx, cs, "sse")
	if !strings.Contains(stderr.Text(), "remote speaks HTTP+SSE") {
		t.Errorf("shim did not log the fallback to HTTP+SSE")
	}
	if err := cs.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// TestEndToEndStateless: a client that speaks protocol 2026-07-28 reaches
// mcpwrap through the shim without falling back, and its calls, including
// one that needs its input, work without any remote session.
func TestEndToEndStateless(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*testTimeout)
	defer cancel()
	srv := startServer(t)
	cmd, _ := realShim(t, []string{"MCPWRAP_TOKEN=" + testToken}, srv.url("/mcp"))
	cs := mustConnect(t, ctx, cmd, nil)
	if v := cs.InitializeResult().ProtocolVersion; v != "2026-07-28" {
		t.Fatalf("negotiated %q through the shim, want 2026-07-28", v)
	}
	exerciseEverything(t, ctx, cs, "stateless")
	if err := cs.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if started := srv.proc.Logs.Find(func(l testkit.Line) bool { return l.Msg() == "session started" }); len(started) > 0 {
		t.Errorf("a stateless client opened %d sessions", len(started))
	}
}
