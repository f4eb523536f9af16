package wrap_test

//lint:file-ignore SA1019 mcpwrap must carry sampling requests to the client, which the SDK marks deprecated as of 2026-07-28 (SEP-2577) but clients still use.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/auth"
	"github.com/mcpwrap/mcpwrap/child"
	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/mcpwrap/mcpwrap/session"
	"github.com/mcpwrap/mcpwrap/wrap"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/rs/zerolog"
)

const token = "test-token-4f1c"

func TestMain(m *testing.M) {
	os.Exit(testkit.Main(m))
}

// server is mcpwrap's handler on a real listener at 127.0.0.1, wrapping the
// fixture.
type server struct {
	URL string // the Streamable HTTP endpoint
	Reg *session.Registry
	srv *httptest.Server
}

type tweak func(*session.Options, *wrap.Options)

func start(t testing.TB, tweaks ...tweak) *server {
	t.Helper()
	// The example server, built once for every test: the real child
	// process mcpwrap wraps.
	_, fixture := testkit.Programs(t)
	sopts := session.Options{
		Command:     child.Command{Path: fixture, Env: os.Environ()},
		Child:       child.Options{CloseGrace: time.Second, TermGrace: time.Second},
		MaxSessions: 200,
		MaxQueue:    256,
	}
	wopts := wrap.Options{
		Path: "/mcp", SSEPath: "/sse", MessagePath: "/message",
		Auth:       auth.NewTokens([]auth.Tenant{{Name: "test", Admin: true, Token: token}}),
		MaxMessage: 16 << 20,
		KeepAlive:  2 * time.Second,
	}
	for _, tw := range tweaks {
		tw(&sopts, &wopts)
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	reg := session.NewRegistry(sopts, log)
	srv := httptest.NewServer(wrap.New(wopts, reg, log))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := reg.Close(ctx); err != nil {
			t.Errorf("closing the registry: %v", err)
		}
		srv.Close()
	})
	return &server{URL: srv.URL + "/mcp", Reg: reg, srv: srv}
}

func httpClient() *http.Client {
	return &http.Client{Transport: testkit.Bearer{Token: token}}
}

// connect opens a session with the official Go SDK client.
func connect(t *testing.T, url string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	return testkit.Client{URL: url, Token: token, Options: opts}.MustConnect(t)
}

// transport is one way a client reaches the handler.
type transport struct {
	name    string
	connect func(t *testing.T, s *server, opts *mcp.ClientOptions) *mcp.ClientSession
}

var transports = []transport{
	{"Streamable HTTP", func(t *testing.T, s *server, opts *mcp.ClientOptions) *mcp.ClientSession {
		return connect(t, s.URL, opts)
	}},
	{"HTTP+SSE", func(t *testing.T, s *server, opts *mcp.ClientOptions) *mcp.ClientSession {
		return connectSSE(t, s.sseURL(), opts, "")
	}},
}

// eachTransport runs a check that holds for both transports as a subtest
// per transport, each with a server of its own.
func eachTransport(t *testing.T, check func(t *testing.T, tr transport, s *server)) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { check(t, tr, start(t)) })
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func text(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	if len(res.Content) == 0 {
		t.Fatalf("no content in %+v", res)
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("content is %T, want text", res.Content[0])
	}
	return tc.Text
}

// raw is one hand-made HTTP exchange with the endpoint.
type raw struct {
	method, session, body, accept, contentType, version, origin, auth string
	headers                                                           map[string]string
}

func (s *server) do(t testing.TB, r raw) (*http.Response, string) {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	req, err := http.NewRequest(r.method, s.URL, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	set := func(k, v, def string) {
		if v == "" {
			v = def
		}
		if v != "-" {
			req.Header.Set(k, v)
		}
	}
	set("Accept", r.accept, "application/json, text/event-stream")
	set("Content-Type", r.contentType, "application/json")
	set("Authorization", r.auth, "Bearer "+token)
	set("Mcp-Session-Id", r.session, "-")
	set("MCP-Protocol-Version", r.version, "-")
	set("Origin", r.origin, "-")
	for k, v := range r.headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", r.method, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

// open initializes a session by hand and returns its id.
func (s *server) open(t testing.TB) string {
	t.Helper()
	resp, body := s.do(t, raw{body: initBody})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("initialize: %d %s", resp.StatusCode, body)
	}
	id := resp.Header.Get("Mcp-Session-Id")
	if id == "" {
		t.Fatalf("initialize: no Mcp-Session-Id")
	}
	resp, body = s.do(t, raw{session: id, version: "2025-06-18", body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`})
	if resp.StatusCode != http.StatusAccepted || body != "" {
		t.Fatalf("initialized: %d %q, want 202 and no body", resp.StatusCode, body)
	}
	return id
}

// checkToolsResourcesPrompts lists and calls tools, reads resources and gets
// a prompt: what every client of any transport does.
func checkToolsResourcesPrompts(t *testing.T, cs *mcp.ClientSession) {
	t.Helper()
	ctx := ctxFor(t)
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	for _, want := range []string{"echo", "test_simple_text", "sample"} {
		if !slices.Contains(names, want) {
			t.Errorf("tools/list lacks %s: %v", want, names)
		}
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hello through mcpwrap"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := text(t, res); got != "hello through mcpwrap" {
		t.Errorf("echo = %q", got)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_error_handling"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.IsError {
		t.Errorf("test_error_handling: IsError = false")
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "no_such_tool"}); err == nil {
		t.Errorf("calling an unknown tool succeeded")
	}

	rr, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "test://static-text"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rr.Contents) != 1 || rr.Contents[0].Text == "" {
		t.Errorf("static-text: %+v", rr.Contents)
	}
	rr, err = cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "test://template/42/data"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rr.Contents) != 1 || !strings.Contains(rr.Contents[0].Text, "42") {
		t.Errorf("template resource: %+v", rr.Contents)
	}

	pr, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "test_prompt_with_arguments", Arguments: map[string]string{"arg1": "alpha", "arg2": "beta"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(pr.Messages)
	if !strings.Contains(string(b), "alpha") || !strings.Contains(string(b), "beta") {
		t.Errorf("prompt messages lack the arguments: %s", b)
	}
}

// answering is a client that answers sampling and elicitation requests.
func answering() *mcp.ClientOptions {
	return &mcp.ClientOptions{
		CreateMessageHandler: func(ctx context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			prompt := req.Params.Messages[0].Content.(*mcp.TextContent).Text
			return &mcp.CreateMessageResult{Model: "test", Role: "assistant", Content: &mcp.TextContent{Text: "sampled: " + prompt}}, nil
		},
		ElicitationHandler: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"answer": "forty-two"}}, nil
		},
	}
}

// checkSamplingAndElicitation calls the tools that ask the client, through
// a session connected with answering().
func checkSamplingAndElicitation(t *testing.T, cs *mcp.ClientSession) {
	t.Helper()
	ctx := ctxFor(t)
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "sample", Arguments: map[string]any{"prompt": "ping"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := text(t, res); !strings.Contains(got, "sampled: ping") {
		t.Errorf("sample = %q", got)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "elicit", Arguments: map[string]any{"message": "what?"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := text(t, res); !strings.Contains(got, "accept") || !strings.Contains(got, "forty-two") {
		t.Errorf("elicit = %q", got)
	}
}

// checkManySessions opens sessions at once with open, each making calls
// concurrently: every answer reaches its own caller, and every session has
// a child process of its own.
func checkManySessions(t *testing.T, s *server, sessions, calls int, open func() *mcp.ClientSession) {
	t.Helper()
	ctx := ctxFor(t)
	var mu sync.Mutex
	pids := map[int]bool{}
	var wg sync.WaitGroup
	for i := range sessions {
		wg.Go(func() {
			cs := open()
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "pid"})
			if err != nil {
				t.Error(err)
				return
			}
			pid, _ := strconv.Atoi(text(t, res))
			mu.Lock()
			pids[pid] = true
			mu.Unlock()
			var inner sync.WaitGroup
			for j := range calls {
				inner.Go(func() {
					want := fmt.Sprintf("session %d call %d", i, j)
					res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": want}})
					if err != nil {
						t.Error(err)
						return
					}
					if got := text(t, res); got != want {
						t.Errorf("echo = %q, want %q", got, want)
					}
				})
			}
			inner.Wait()
		})
	}
	wg.Wait()
	if len(pids) != sessions {
		t.Errorf("%d distinct child pids for %d sessions", len(pids), sessions)
	}
	if n := s.Reg.Len(); n != sessions {
		t.Errorf("%d live sessions, want %d", n, sessions)
	}
}

// checkOneMebibyteEachWay sends 1 MiB to the child and asks 1 MiB back.
func checkOneMebibyteEachWay(t *testing.T, cs *mcp.ClientSession) {
	t.Helper()
	ctx := ctxFor(t)
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": big}})
	if err != nil {
		t.Fatal(err)
	}
	if got := text(t, res); got != big {
		t.Errorf("echo of 1 MiB came back as %d bytes", len(got))
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "big", Arguments: map[string]any{"size": 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	if got := text(t, res); len(got) != 1<<20 {
		t.Errorf("big returned %d bytes, want %d", len(got), 1<<20)
	}
}
