package deploy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The real programs, built once: mcpwrap from the repository root and the
// example server it wraps.
var (
	mcpwrapBin string
	fixture    string
)

const token = "deploy-test-token-7d2e"

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bins, err := testkit.Build(dir, testkit.Mcpwrap, testkit.Everything)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mcpwrapBin, fixture = bins[0], bins[1]
	return m.Run()
}

// instance is one running mcpwrap process wrapping the fixture.
type instance struct {
	Base string // http://127.0.0.1:port
	cmd  *exec.Cmd
	logs *logBuffer

	exited   chan struct{} // closed once the process has been waited for
	exitCode int           // valid after exited
}

// env is a variable for an instance, on top of a minimal base.
type env map[string]string

// startMcpwrap runs mcpwrap with JSON logs on an ephemeral loopback port
// and waits until it logs its address. The process is stopped (SIGTERM,
// then SIGKILL) when the test ends, if it has not exited by itself.
func startMcpwrap(t *testing.T, vars env, command ...string) *instance {
	t.Helper()
	if len(command) == 0 {
		command = []string{fixture}
	}
	cmd := exec.Command(mcpwrapBin, append([]string{"--"}, command...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"MCPWRAP_LISTEN=127.0.0.1:0", "MCPWRAP_LOG_FORMAT=json"}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting mcpwrap: %v", err)
	}
	in := &instance{cmd: cmd, logs: &logBuffer{}, exited: make(chan struct{})}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			in.logs.add(sc.Text())
		}
	}()
	go func() {
		<-copied // Wait closes the pipe; read it all first
		_ = cmd.Wait()
		in.exitCode = cmd.ProcessState.ExitCode()
		close(in.exited)
	}()
	t.Cleanup(func() {
		in.stop(t)
		if t.Failed() {
			t.Logf("mcpwrap (pid %d) log:\n%s", cmd.Process.Pid, in.logs.String())
		}
	})

	line := in.waitLog(t, "listening", func(l logLine) bool { return l.Msg() == "mcpwrap listening" })
	addr, _ := line["addr"].(string)
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("mcpwrap listens on %q, want 127.0.0.1:port", addr)
	}
	in.Base = "http://" + addr
	return in
}

// stop ends the process if it still runs: SIGTERM, a generous wait, SIGKILL.
func (in *instance) stop(t *testing.T) {
	select {
	case <-in.exited:
		return
	default:
	}
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.exited:
	case <-time.After(30 * time.Second):
		t.Errorf("mcpwrap pid %d ignored SIGTERM for 30s; killing it", in.cmd.Process.Pid)
		_ = in.cmd.Process.Kill()
		<-in.exited
	}
}

// logLine is one JSON log line of mcpwrap.
type logLine map[string]any

func (l logLine) Msg() string         { s, _ := l["message"].(string); return s }
func (l logLine) Str(k string) string { s, _ := l[k].(string); return s }

// logBuffer keeps every stderr line of a process.
type logBuffer struct {
	mu    sync.Mutex // guards lines
	lines []string
}

func (b *logBuffer) add(s string) {
	b.mu.Lock()
	b.lines = append(b.lines, s)
	b.mu.Unlock()
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}

// parsed is every line that is a JSON object; the child's stderr arrives
// as JSON lines of mcpwrap too.
func (b *logBuffer) parsed() []logLine {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []logLine
	for _, s := range b.lines {
		var l logLine
		if json.Unmarshal([]byte(s), &l) == nil {
			out = append(out, l)
		}
	}
	return out
}

// find returns the first log line that matches.
func (in *instance) find(match func(logLine) bool) (logLine, bool) {
	for _, l := range in.logs.parsed() {
		if match(l) {
			return l, true
		}
	}
	return nil, false
}

// waitLog waits for a matching log line.
func (in *instance) waitLog(t *testing.T, what string, match func(logLine) bool) logLine {
	t.Helper()
	var line logLine
	testkit.Eventually(t, "log line: "+what, func() bool {
		var ok bool
		line, ok = in.find(match)
		if !ok {
			select {
			case <-in.exited:
				t.Fatalf("mcpwrap exited (code %d) before logging %s", in.exitCode, what)
			default:
			}
		}
		return ok
	})
	return line
}

// childPid is the pid of the child mcpwrap started for a session, from the
// "session started" log line.
func (in *instance) childPid(t *testing.T, session string) int {
	t.Helper()
	l := in.waitLog(t, "session "+session+" started", func(l logLine) bool {
		return l.Msg() == "session started" && l.Str("session") == session
	})
	pid, ok := l["pid"].(float64)
	if !ok || pid <= 0 {
		t.Fatalf("session started without a pid: %v", l)
	}
	return int(pid)
}

// health is GET /healthz, decoded.
func (in *instance) health(t *testing.T) (status int, sessions int) {
	t.Helper()
	resp, err := http.Get(in.Base + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Status   string `json:"status"`
		Sessions int    `json:"sessions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	return resp.StatusCode, body.Sessions
}

// bearer adds a token to every request, as a client configured with an
// Authorization header does.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// connect opens a session with the official Go SDK client.
func connect(t *testing.T, url, tok string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "deploy-test", Version: "1"}, opts)
	transport := &mcp.StreamableClientTransport{
		Endpoint:   url,
		HTTPClient: &http.Client{Transport: bearer{tok, http.DefaultTransport}},
		MaxRetries: -1,
	}
	// Pinned to the stateful era: these tests are about sessions, which
	// protocol 2026-07-28 lacks.
	cs, err := client.Connect(ctx, transport, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// call calls a tool and returns its text, failing the test on any error.
func call(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("calling %s: %v", tool, err)
	}
	if res.IsError || len(res.Content) == 0 {
		t.Fatalf("calling %s: %+v", tool, res)
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("calling %s: content is %T, want text", tool, res.Content[0])
	}
	return tc.Text
}

// rawPost is one hand-made POST to an MCP endpoint.
func rawPost(t *testing.T, url, tok, session string, headers map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+tok)
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
		req.Header.Set("MCP-Protocol-Version", "2025-06-18")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

// openRaw initializes a session by hand and returns its id.
func openRaw(t *testing.T, url, tok string) string {
	t.Helper()
	resp, body := rawPost(t, url, tok, "", nil, initBody)
	id := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || id == "" {
		t.Fatalf("initialize: %d %s (session %q)", resp.StatusCode, body, id)
	}
	resp, body = rawPost(t, url, tok, id, nil, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("initialized: %d %s", resp.StatusCode, body)
	}
	return id
}
