package proxy_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The real mcpwrap and the everything fixture, built once for the tests
// that need them.
var (
	buildOnce  sync.Once
	buildDir   string
	buildErr   error
	mcpwrapBin string
	fixtureBin string
)

func buildBinaries(t *testing.T) {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "mcpwrap-proxy-e2e-")
		if buildErr != nil {
			return
		}
		var bins []string
		if bins, buildErr = testkit.Build(buildDir, testkit.Mcpwrap, testkit.Everything); buildErr == nil {
			mcpwrapBin, fixtureBin = bins[0], bins[1]
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

// server is a real mcpwrap serving the everything fixture.
type server struct {
	t    *testing.T
	addr string
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

func newServer(t *testing.T) *server {
	buildBinaries(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, addr: ln.Addr().String()}
	ln.Close()
	t.Cleanup(s.stop)
	return s
}

func (s *server) url(path string) string { return "http://" + s.addr + path }

// start runs mcpwrap and waits until /healthz answers.
func (s *server) start() {
	s.t.Helper()
	cmd := exec.Command(mcpwrapBin, "--", fixtureBin)
	cmd.Env = append(os.Environ(), "MCPWRAP_LISTEN="+s.addr, "MCPWRAP_TOKEN="+testToken, "MCPWRAP_LOG_FORMAT=json", "MCPWRAP_LOG_LEVEL=debug")
	s.log = &syncBuffer{}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() {
		defer close(s.done)
		_ = cmd.Wait()
	}()
	deadline := time.Now().Add(testTimeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.url("/healthz"))
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-s.done:
			s.t.Fatalf("mcpwrap exited early:\n%s", s.log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	s.t.Fatalf("mcpwrap did not become healthy:\n%s", s.log.String())
}

// stop ends mcpwrap the way a platform stops a machine: SIGTERM, then
// SIGKILL if it lingers.
func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(testTimeout):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	if s.t.Failed() {
		s.t.Logf("mcpwrap log:\n%s", s.log.String())
	}
	s.cmd = nil
}

// realShim returns `mcpwrap proxy args...` as a command for the SDK client.
func realShim(t *testing.T, env []string, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(mcpwrapBin, append([]string{"proxy"}, args...)...)
	cmd.Env = append(os.Environ(), "MCPWRAP_LOG_LEVEL=debug")
	cmd.Env = append(cmd.Env, env...)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("shim stderr:\n%s", stderr.String())
		}
	})
	return cmd, stderr
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
	ctx, cancel := context.WithTimeout(t.Context(), 2*testTimeout)
	defer cancel()
	srv := newServer(t)
	srv.start()
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
	for _, size := range []int{1 << 20, 10 << 20} {
		text := strings.Repeat("c", size)
		if got, err := callText(ctx, cs, "echo", map[string]any{"text": text}); err != nil || got != text {
			t.Fatalf("echo of %d bytes: got %d bytes, %v", size, len(got), err)
		}
		if got, err := callText(ctx, cs, "big", map[string]any{"size": size}); err != nil || len(got) != size {
			t.Fatalf("big %d: got %d bytes, %v", size, len(got), err)
		}
	}
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
	if !strings.Contains(stderr.String(), "re-initialized it transparently") {
		t.Errorf("shim did not log the re-initialization")
	}

	if err := cs.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("shim exit code %d, want 0", code)
	}
	if strings.Contains(stderr.String(), testToken) {
		t.Errorf("the token appears in the shim's log")
	}
	// Only the shim's DELETE can end the session of this mcpwrap (started
	// after the restart) before the test stops it.
	ended := false
	for i := 0; i < 200 && !ended; i++ {
		ended = strings.Contains(srv.log.String(), `"message":"session ended"`)
		time.Sleep(50 * time.Millisecond)
	}
	if !ended {
		t.Errorf("the remote session was not ended when the client closed")
	}
}

func TestEndToEndColdStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	srv := newServer(t)
	cmd, stderr := realShim(t, []string{"MCPWRAP_TOKEN=" + testToken}, "--retry-for", "45s", srv.url("/mcp"))
	started := make(chan struct{})
	go func() {
		defer close(started)
		for !strings.Contains(stderr.String(), "remote not ready; retrying") {
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
		time.Sleep(time.Second)
		srv.start()
	}()
	cs, err := connect(t, ctx, cmd, nil)
	<-started
	if err != nil {
		t.Fatalf("connect through a cold start: %v", err)
	}
	defer cs.Close()
	exerciseEverything(t, ctx, cs, "cold")
}

func TestEndToEndWrongToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	srv := newServer(t)
	srv.start()
	const wrong = "not-the-token"
	cmd, stderr := realShim(t, nil, "--token", wrong, srv.url("/mcp"))
	cs, err := connect(t, ctx, cmd, nil)
	if err == nil {
		cs.Close()
		t.Fatal("connect with a wrong token succeeded")
	}
	if !strings.Contains(err.Error(), "rejected the token") {
		t.Errorf("error %q does not say the token was rejected", err)
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(stderr.String(), wrong) {
		t.Errorf("the token leaked into the error or the log")
	}
}

func TestEndToEndSSE(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	srv := newServer(t)
	srv.start()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, stderr := realShim(t, []string{"MCPWRAP_TOKEN_FILE=" + tokenFile}, srv.url("/sse"))
	cs, err := connect(t, ctx, cmd, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	exerciseEverything(t, ctx, cs, "sse")
	if !strings.Contains(stderr.String(), "remote speaks HTTP+SSE") {
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
	srv := newServer(t)
	srv.start()
	cmd, _ := realShim(t, []string{"MCPWRAP_TOKEN=" + testToken}, srv.url("/mcp"))
	cs, err := connect(t, ctx, cmd, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if v := cs.InitializeResult().ProtocolVersion; v != "2026-07-28" {
		t.Fatalf("negotiated %q through the shim, want 2026-07-28", v)
	}
	exerciseEverything(t, ctx, cs, "stateless")
	if err := cs.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if strings.Contains(srv.log.String(), `"message":"session started"`) {
		t.Errorf("a stateless client opened a session")
	}
}
