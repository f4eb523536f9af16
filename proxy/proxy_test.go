package proxy_test

//lint:file-ignore SA1019 the shim must pass sampling requests through, which the SDK marks deprecated as of 2026-07-28 (SEP-2577) but clients still use.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/mcpwrap/mcpwrap/proxy"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// childEnv makes the test binary run as `mcpwrap proxy` instead of the tests:
// the SDK client launches it as a real stdio child. The proxy arguments
// travel JSON-encoded in childArgs.
const (
	childEnv  = "MCPWRAP_PROXY_TEST_CHILD"
	childArgs = "MCPWRAP_PROXY_TEST_ARGS"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		var args []string
		if err := json.Unmarshal([]byte(os.Getenv(childArgs)), &args); err != nil {
			fmt.Fprintln(os.Stderr, "bad", childArgs, err)
			os.Exit(2)
		}
		if err := proxy.Run(context.Background(), args, os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "proxy:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(testkit.Main(m))
}

// Generous bounds: they only stop a broken test from hanging.
const (
	testTimeout = 60 * time.Second
	testToken   = "s3cret-token-value"
	// maxBody is mcpwrap's default limit, above the SDK's 4 MiB, so that the
	// 10 MiB messages pass as they do through mcpwrap.
	maxBody = 16 << 20
)

// shimCommand returns the test binary set up to run `mcpwrap proxy args...`
// with the given extra environment.
func shimCommand(t *testing.T, env []string, args ...string) (*exec.Cmd, *testkit.LogBook) {
	t.Helper()
	a, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	return shim(t, exec.Command(os.Args[0]), append([]string{childEnv + "=1", childArgs + "=" + string(a)}, env...))
}

// shim sets up a command that runs the shim: debug logs on its stderr,
// shown if the test fails.
func shim(t *testing.T, cmd *exec.Cmd, env []string) (*exec.Cmd, *testkit.LogBook) {
	cmd.Env = append(os.Environ(), "MCPWRAP_LOG_LEVEL=debug")
	cmd.Env = append(cmd.Env, env...)
	stderr := testkit.NewLogBook()
	cmd.Stderr = stderr
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("shim stderr:\n%s", stderr.Dump())
		}
	})
	return cmd, stderr
}

// remote is an MCP server built with the Go SDK, served on 127.0.0.1. It can
// be stopped and started again on the same address, which loses every
// session the way a restarted machine does.
type remote struct {
	t         *testing.T
	legacy    bool // serve only HTTP+SSE (2024-11-05)
	stateless bool // serve 2026-07-28 stateless Streamable HTTP
	token     string
	addr      string

	deletes atomic.Int32 // DELETE requests answered 2xx
	tools   atomic.Int32 // tools/call requests seen

	// slow receives a value when a call of the slow tool starts.
	slow chan struct{}

	// gateway holds statuses to answer, one per request, before the MCP
	// handler sees any: what a platform proxy says while the machine
	// behind it starts.
	gateway chan int

	mu     sync.Mutex // guards the fields below
	srv    *http.Server
	server *mcp.Server
	served chan struct{}
	quit   chan struct{} // closed on stop: the slow tool's calls end
}

func newRemote(t *testing.T, legacy bool) *remote {
	r := &remote{t: t, legacy: legacy, token: testToken, addr: "127.0.0.1:0"}
	t.Cleanup(r.stop)
	return r
}

// startRemote is newRemote, started.
func startRemote(t *testing.T, legacy bool) *remote {
	r := newRemote(t, legacy)
	r.start()
	return r
}

func (r *remote) url() string {
	if r.legacy {
		return "http://" + r.addr + "/sse"
	}
	return "http://" + r.addr + "/mcp"
}

// reserve picks a free port without serving on it yet.
func (r *remote) reserve() {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	ln.Close()
}

func (r *remote) start() {
	r.t.Helper()
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatalf("listen %s: %v", r.addr, err)
	}
	r.addr = ln.Addr().String()
	quit := make(chan struct{})
	server := newTestServer(r.slow, quit)
	var h http.Handler
	if r.legacy {
		h = mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return server }, &mcp.SSEOptions{MaxRequestBodyBytes: maxBody})
	} else {
		h = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, &mcp.StreamableHTTPOptions{
			MaxRequestBodyBytes: maxBody,
			Stateless:           r.stateless,
			// Event ids make response streams resumable.
			EventStore: mcp.NewMemoryEventStore(nil),
		})
	}
	srv := &http.Server{Handler: r.wrap(h), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	r.mu.Lock()
	r.srv, r.server, r.served, r.quit = srv, server, served, quit
	r.mu.Unlock()
}

func (r *remote) stop() {
	r.mu.Lock()
	srv, server, served, quit := r.srv, r.server, r.served, r.quit
	r.srv, r.server = nil, nil
	r.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Close()
	<-served
	// A session's Close waits for its handlers, so the ones that would run
	// on must end first; their answers go nowhere now.
	close(quit)
	for ss := range server.Sessions() {
		ss.Close()
	}
}

func (r *remote) mcpServer() *mcp.Server {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.server
}

// wrap checks the bearer token and counts what the tests look for.
func (r *remote) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Authorization") != "Bearer "+r.token {
			w.Header().Set("WWW-Authenticate", `Bearer realm="test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		select {
		case code := <-r.gateway:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "machine starting", code)
			return
		default:
		}
		if req.Method == http.MethodPost && strings.Contains(req.Header.Get("Mcp-Method")+peekMethod(req), "tools/call") {
			r.tools.Add(1)
		}
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, req)
		if req.Method == http.MethodDelete && rec.status/100 == 2 {
			r.deletes.Add(1)
		}
	})
}

// peekMethod reads the method of a POSTed message and puts the body back.
func peekMethod(req *http.Request) string {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(req.Body); err != nil {
		return ""
	}
	req.Body.Close()
	req.Body = io.NopCloser(bytes.NewReader(buf.Bytes()))
	var m struct {
		Method string `json:"method"`
	}
	_ = json.Unmarshal(buf.Bytes(), &m)
	return m.Method
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// newTestServer has what the tests exercise: tools (echo, big, sample,
// reconnect, slow), a resource and a prompt. A call of slow signals on
// slow, if given, and runs until cancelled or quit is closed.
func newTestServer(slow chan<- struct{}, quit <-chan struct{}) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "test-remote", Version: "1.0.0"}, &mcp.ServerOptions{
		// The SDK keeps track of who subscribed to what.
		SubscribeHandler:   func(context.Context, *mcp.SubscribeRequest) error { return nil },
		UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error { return nil },
	})
	type echoArgs struct {
		Text string `json:"text"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "returns text"},
		func(_ context.Context, _ *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
		})
	type bigArgs struct {
		Size int `json:"size"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "big", Description: "returns size bytes of text"},
		func(_ context.Context, _ *mcp.CallToolRequest, in bigArgs) (*mcp.CallToolResult, any, error) {
			if in.Size < 0 || in.Size > 32<<20 {
				return nil, nil, fmt.Errorf("size %d out of range", in.Size)
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strings.Repeat("x", in.Size)}}}, nil, nil
		})
	type sampleArgs struct {
		Prompt string `json:"prompt"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "sample", Description: "asks the client's model"},
		func(ctx context.Context, req *mcp.CallToolRequest, in sampleArgs) (*mcp.CallToolResult, any, error) {
			res, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{
				Messages:  []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: in.Prompt}}},
				MaxTokens: 10,
			})
			if err != nil {
				return nil, nil, err
			}
			text, _ := res.Content.(*mcp.TextContent)
			if text == nil {
				return nil, nil, errors.New("sampled content is not text")
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "model said: " + text.Text}}}, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "reconnect", Description: "closes its response stream, then answers"},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			if req.Extra == nil || req.Extra.CloseSSEStream == nil {
				return nil, nil, errors.New("transport cannot close the stream")
			}
			req.Extra.CloseSSEStream(mcp.CloseSSEStreamArgs{RetryAfter: 50 * time.Millisecond})
			t := time.NewTimer(200 * time.Millisecond)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			case <-t.C:
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "answered after the stream closed"}}}, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "slow", Description: "runs until cancelled"},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			if slow != nil {
				slow <- struct{}{}
			}
			select {
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			case <-quit:
				return nil, nil, errors.New("server stopped")
			}
		})
	s.AddResource(&mcp.Resource{URI: "test://hello", Name: "hello", MIMEType: "text/plain"},
		func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: "text/plain", Text: "hello resource"}}}, nil
		})
	s.AddPrompt(&mcp.Prompt{Name: "greet", Arguments: []*mcp.PromptArgument{{Name: "who", Required: true}}},
		func(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "hello " + req.Params.Arguments["who"]}}}}, nil
		})
	return s
}

// connect starts the shim as the SDK client's stdio child.
func connect(t *testing.T, ctx context.Context, cmd *exec.Cmd, opts *mcp.ClientOptions) (*mcp.ClientSession, error) {
	t.Helper()
	return connectWith(t, ctx, cmd, opts, nil)
}

// connectWith is connect with session options (a pinned protocol version).
func connectWith(t *testing.T, ctx context.Context, cmd *exec.Cmd, opts *mcp.ClientOptions, sopts *mcp.ClientSessionOptions) (*mcp.ClientSession, error) {
	t.Helper()
	if opts == nil {
		opts = &mcp.ClientOptions{}
	}
	if opts.CreateMessageHandler == nil {
		opts.CreateMessageHandler = func(_ context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			in, _ := req.Params.Messages[0].Content.(*mcp.TextContent)
			if in == nil {
				return nil, errors.New("no text to sample")
			}
			return &mcp.CreateMessageResult{Role: "assistant", Model: "test-model", Content: &mcp.TextContent{Text: strings.ToUpper(in.Text)}}, nil
		}
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1.0.0"}, opts)
	return client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, sopts)
}

// echoFromTwoShims starts two shims at once with connect, has each echo a
// text of its own, and returns their logs; what fails is a test error.
func echoFromTwoShims(ctx context.Context, t *testing.T, connect func(context.Context) (*mcp.ClientSession, *testkit.LogBook, error)) []*testkit.LogBook {
	t.Helper()
	var wg sync.WaitGroup
	logs := make([]*testkit.LogBook, 2)
	errs := make(chan error, 2)
	for i := range 2 {
		wg.Go(func() {
			cs, log, err := connect(ctx)
			logs[i] = log
			if err != nil {
				errs <- fmt.Errorf("shim %d: connect: %w", i, err)
				return
			}
			defer cs.Close()
			text := fmt.Sprintf("shim %d", i)
			if got, err := callText(ctx, cs, "echo", map[string]any{"text": text}); err != nil || got != text {
				errs <- fmt.Errorf("shim %d: echo = %q, %w", i, got, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	return logs
}

func callText(ctx context.Context, cs *mcp.ClientSession, tool string, args map[string]any) (string, error) {
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		return "", err
	}
	if res.IsError {
		return "", fmt.Errorf("tool error: %v", res.Content)
	}
	if len(res.Content) != 1 {
		return "", fmt.Errorf("want one content, got %d", len(res.Content))
	}
	text, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		return "", fmt.Errorf("content is %T", res.Content[0])
	}
	return text.Text, nil
}

// connectThroughColdStart connects a client through the shim while the
// remote is down, and brings the remote up only once the shim has been
// turned away twice: the shim must keep knocking until it answers.
func connectThroughColdStart(t *testing.T, ctx context.Context, cmd *exec.Cmd, stderr *testkit.LogBook, start func()) *mcp.ClientSession {
	t.Helper()
	type result struct {
		cs  *mcp.ClientSession
		err error
	}
	connected := make(chan result, 1)
	go func() {
		cs, err := connect(t, ctx, cmd, nil)
		connected <- result{cs, err}
	}()
	testkit.Eventually(t, "the shim to find the remote not ready twice", func() bool {
		return len(stderr.Find(func(l testkit.Line) bool { return l.Msg() == "remote not ready; retrying" })) >= 2
	})
	start()
	r := <-connected
	if r.err != nil {
		t.Fatalf("connect through a cold start: %v", r.err)
	}
	t.Cleanup(func() { r.cs.Close() })
	return r.cs
}

// mustConnect is connect for a test that cannot go on without the session;
// the end of the test closes it.
func mustConnect(t *testing.T, ctx context.Context, cmd *exec.Cmd, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	cs, err := connect(t, ctx, cmd, opts)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// connectFails connects through a shim that must fail to connect (what says
// how) and returns the error.
func connectFails(t *testing.T, ctx context.Context, cmd *exec.Cmd, what string) error {
	t.Helper()
	cs, err := connect(t, ctx, cmd, nil)
	if err == nil {
		cs.Close()
		t.Fatalf("connect %s succeeded", what)
	}
	return err
}

// checkTokenRejected connects through a shim that holds the wrong token:
// the connection must fail saying so, and the token must show nowhere.
func checkTokenRejected(t *testing.T, ctx context.Context, cmd *exec.Cmd, stderr *testkit.LogBook, wrong string) {
	t.Helper()
	err := connectFails(t, ctx, cmd, "with a wrong token")
	if !strings.Contains(err.Error(), "rejected the token") {
		t.Errorf("error %q does not say the token was rejected", err)
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(stderr.Text(), wrong) {
		t.Errorf("the token leaked into the error or the log")
	}
}

// testContext bounds a test's calls; it ends with the test.
func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
