package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/bench/internal/echotools"
	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// echoBin is bench/echoserver, built once for the tests that spawn it.
var echoBin string

// fakeChildEnv makes the test binary act as a misbehaving stdio server.
const fakeChildEnv = "BENCH_TEST_FAKE_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeChildEnv); mode != "" {
		fakeChild(mode)
		return
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "bench-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bins, err := testkit.Build(dir, "github.com/mcpwrap/mcpwrap/bench/echoserver")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	echoBin = bins[0]
	return m.Run()
}

// fakeChild answers initialize properly and then misbehaves as mode says.
func fakeChild(mode string) {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(nil, 1<<20)
	for in.Scan() {
		var req struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		if json.Unmarshal(in.Bytes(), &req) != nil || req.ID == nil {
			continue
		}
		switch req.Method {
		case "initialize":
			fmt.Printf(`{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"fake","version":"0"}}}`+"\n", req.ID)
			if mode == "exit-after-init" {
				os.Exit(0)
			}
		case "tools/call":
			// Not what was sent, whatever was sent.
			fmt.Printf(`{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"nope"}]}}`+"\n", req.ID)
		}
	}
}

// jsonReport is the JSON report as a script reads it.
type jsonReport struct {
	Mode        string            `json:"mode"`
	Sessions    int               `json:"sessions"`
	Opened      int               `json:"sessions_opened"`
	CallsOK     int               `json:"calls_ok"`
	CallsPerSec float64           `json:"calls_per_sec"`
	CutShort    bool              `json:"cut_short"`
	ErrorsTotal int               `json:"errors_total"`
	Errors      map[string]int    `json:"errors"`
	Examples    map[string]string `json:"error_examples"`
	SetupP50    float64           `json:"setup_p50_ms"`
	CallP50     float64           `json:"call_p50_ms"`
	CallP99     float64           `json:"call_p99_ms"`
}

// runBench runs the tool as `mcpwrap bench --json --quiet args...`.
func runBench(t *testing.T, environ map[string]string, args ...string) (jsonReport, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var stdout, stderr strings.Builder
	args = append([]string{"--json", "--quiet", "--max-duration", "90s"}, args...)
	err := Run(ctx, args, env(environ), &stdout, &stderr)
	var rep jsonReport
	if jerr := json.Unmarshal([]byte(stdout.String()), &rep); jerr != nil {
		t.Fatalf("report is not JSON (%v): %q; stderr %q; run error %v", jerr, stdout.String(), stderr.String(), err)
	}
	return rep, err
}

func requireClean(t *testing.T, rep jsonReport, err error, sessions, calls int) {
	t.Helper()
	if err != nil {
		t.Errorf("run failed: %v; errors %v %v", err, rep.Errors, rep.Examples)
	}
	if rep.Opened != sessions || rep.CallsOK != calls || rep.ErrorsTotal != 0 || rep.CutShort {
		t.Errorf("opened %d/%d, calls %d/%d, errors %v %v, cut short %v",
			rep.Opened, sessions, rep.CallsOK, calls, rep.Errors, rep.Examples, rep.CutShort)
	}
	if calls > 0 && (rep.CallsPerSec <= 0 || rep.CallP50 <= 0 || rep.CallP99 < rep.CallP50) {
		t.Errorf("figures out of shape: %+v", rep)
	}
	if rep.SetupP50 <= 0 {
		t.Errorf("setup p50 %v", rep.SetupP50)
	}
}

func TestDirectEcho(t *testing.T) {
	rep, err := runBench(t, nil, "--sessions", "3", "--calls", "40", "--inflight", "4", "--payload", "1000", "--", echoBin)
	requireClean(t, rep, err, 3, 120)
	if rep.Mode != "direct" {
		t.Errorf("mode %q", rep.Mode)
	}
}

func TestDirectBigResponse(t *testing.T) {
	// Larger than the read buffer, so lines arrive in pieces.
	rep, err := runBench(t, nil, "--calls", "3", "--response", "300000", "--", echoBin)
	requireClean(t, rep, err, 1, 3)
}

func TestDirectLargeRequest(t *testing.T) {
	rep, err := runBench(t, nil, "--calls", "2", "--payload", "300000", "--", echoBin)
	requireClean(t, rep, err, 1, 2)
}

func TestDirectMessageCap(t *testing.T) {
	rep, err := runBench(t, nil, "--calls", "2", "--response", "300000", "--max-message", "100000", "--", echoBin)
	if !errors.Is(err, ErrCallsFailed) || rep.Errors[kindTooLarge] == 0 || rep.CallsOK != 0 {
		t.Errorf("err %v, errors %v, calls ok %d; want too_large errors and no calls", err, rep.Errors, rep.CallsOK)
	}
}

// fakeChildArgs runs the test binary itself as a stdio server.
func fakeChildArgs(t *testing.T, mode string) []string {
	t.Setenv(fakeChildEnv, mode)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{"--", exe}
}

func TestDirectWrongEchoIsCounted(t *testing.T) {
	rep, err := runBench(t, nil, append([]string{"--sessions", "2", "--calls", "5"}, fakeChildArgs(t, "wrong-echo")...)...)
	if !errors.Is(err, ErrCallsFailed) {
		t.Errorf("err = %v, want ErrCallsFailed", err)
	}
	if rep.Opened != 2 || rep.CallsOK != 0 || rep.Errors[kindBadResponse] != 10 || rep.ErrorsTotal != 10 {
		t.Errorf("opened %d, ok %d, errors %v; want 10 bad_response", rep.Opened, rep.CallsOK, rep.Errors)
	}
}

func TestDirectChildExitIsCounted(t *testing.T) {
	rep, err := runBench(t, nil, append([]string{"--sessions", "2", "--calls", "3"}, fakeChildArgs(t, "exit-after-init")...)...)
	if !errors.Is(err, ErrCallsFailed) {
		t.Errorf("err = %v, want ErrCallsFailed", err)
	}
	// The child may be gone before or after initialized is written, so the
	// failure lands in setup or in the calls; either way it is a child exit.
	if rep.CallsOK != 0 || rep.ErrorsTotal == 0 || rep.Errors[kindChildExit] != rep.ErrorsTotal {
		t.Errorf("ok %d, errors %v %v; want only child_exit", rep.CallsOK, rep.Errors, rep.Examples)
	}
}

func TestDirectSpawnFailure(t *testing.T) {
	rep, err := runBench(t, nil, "--sessions", "3", "--", filepath.Join(t.TempDir(), "missing"))
	if !errors.Is(err, ErrCallsFailed) || rep.Errors[kindSpawn] != 3 || rep.Opened != 0 {
		t.Errorf("err %v, errors %v, opened %d; want 3 spawn errors", err, rep.Errors, rep.Opened)
	}
}

func TestMaxDurationCutsShortWithoutErrors(t *testing.T) {
	var stdout, stderr strings.Builder
	err := Run(t.Context(), []string{"--json", "--quiet", "--calls", "100000000", "--max-duration", "3s", "--", echoBin},
		env(nil), &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v (%s)", err, stderr.String())
	}
	var rep jsonReport
	if err := json.Unmarshal([]byte(stdout.String()), &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.CutShort || rep.ErrorsTotal != 0 || rep.CallsOK == 0 || rep.CallsOK >= 100000000 {
		t.Errorf("cut short %v, errors %v, calls %d", rep.CutShort, rep.Errors, rep.CallsOK)
	}
}

// mcpServer is a Go SDK Streamable HTTP server with the echo tools behind
// a bearer token check, counting what the benchmark must send.
type mcpServer struct {
	*httptest.Server
	srv     *mcp.Server
	deletes atomic.Int64
}

func newMCPServer(t testing.TB, token string, opts *mcp.StreamableHTTPOptions) *mcpServer {
	t.Helper()
	s := &mcpServer{srv: echotools.NewServer()}
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.srv }, opts)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodDelete {
			s.deletes.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *mcpServer) openSessions() int {
	n := 0
	for range s.srv.Sessions() {
		n++
	}
	return n
}

func TestURLEcho(t *testing.T) {
	for name, jsonResponse := range map[string]bool{"sse": false, "json": true} {
		t.Run(name, func(t *testing.T) {
			s := newMCPServer(t, "tok", &mcp.StreamableHTTPOptions{JSONResponse: jsonResponse})
			rep, err := runBench(t, map[string]string{"MCPWRAP_TOKEN": "tok"},
				"--sessions", "4", "--calls", "25", "--inflight", "3", "--payload", "70000", s.URL+"/mcp")
			requireClean(t, rep, err, 4, 100)
			if rep.Mode != "url" {
				t.Errorf("mode %q", rep.Mode)
			}
			if got := s.deletes.Load(); got != 4 {
				t.Errorf("server saw %d DELETEs, want one per session", got)
			}
			if n := s.openSessions(); n != 0 {
				t.Errorf("%d sessions still open on the server after the run", n)
			}
		})
	}
}

func TestURLBigResponse(t *testing.T) {
	s := newMCPServer(t, "tok", nil)
	rep, err := runBench(t, nil, "--token", "tok", "--calls", "3", "--response", "200000", s.URL+"/mcp")
	requireClean(t, rep, err, 1, 3)
}

func TestURLWrongTokenIsCounted(t *testing.T) {
	s := newMCPServer(t, "right", nil)
	rep, err := runBench(t, nil, "--token", "wrong", "--sessions", "3", s.URL+"/mcp")
	if !errors.Is(err, ErrCallsFailed) || rep.Errors["http_401"] != 3 || rep.Opened != 0 {
		t.Errorf("err %v, errors %v, opened %d; want 3 http_401", err, rep.Errors, rep.Opened)
	}
}

func TestURLTooLargeRequestIsCounted(t *testing.T) {
	s := newMCPServer(t, "tok", &mcp.StreamableHTTPOptions{MaxRequestBodyBytes: 4096})
	rep, err := runBench(t, nil, "--token", "tok", "--calls", "3", "--payload", "8192", s.URL+"/mcp")
	if !errors.Is(err, ErrCallsFailed) || rep.Errors["http_413"] != 3 || rep.Opened != 1 || rep.CallsOK != 0 {
		t.Errorf("err %v, errors %v, opened %d, ok %d; want 3 http_413", err, rep.Errors, rep.Opened, rep.CallsOK)
	}
}

func TestProgressLines(t *testing.T) {
	cfg, err := parseArgs([]string{"--calls", "1", "--hold", "500ms", "--", echoBin}, env(nil), &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.progress = 10 * time.Millisecond
	w, err := cfg.workload()
	if err != nil {
		t.Fatal(err)
	}
	// runLoad waits for the progress printer before it returns, so out is
	// no longer written when it is read.
	var out strings.Builder
	rep := runLoad(t.Context(), cfg, &directOpener{argv: cfg.command, maxMsg: cfg.MaxMessage}, w, &out)
	if rep.ErrorsTotal != 0 {
		t.Fatalf("errors %v", rep.ErrorExamples)
	}
	if !strings.Contains(out.String(), "bench: ") || !strings.Contains(out.String(), "sessions 1/1") {
		t.Errorf("no progress line in %q", out.String())
	}
}

func TestReadyFileWhileHeld(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "ready")
	rep, err := runBench(t, nil, "--sessions", "2", "--calls", "1", "--ready-file", ready, "--", echoBin)
	requireClean(t, rep, err, 2, 2)
	if b, err := os.ReadFile(ready); err != nil || string(b) != "ready\n" {
		t.Errorf("ready file: %q, %v", b, err)
	}
}

// TestFloorEcho: bench/echoserver answers over HTTP itself (the floor
// targets of the matrix), with the SDK or lean, and a paced opening opens
// every session.
func TestFloorEcho(t *testing.T) {
	for _, lean := range []bool{false, true} {
		t.Run(fmt.Sprintf("lean=%t", lean), func(t *testing.T) { testFloor(t, lean) })
	}
}

func testFloor(t *testing.T, lean bool) {
	cmd := exec.Command(echoBin, "-http", "127.0.0.1:0", fmt.Sprintf("-lean=%t", lean))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stderr).ReadString('\n')
	if err != nil {
		t.Fatalf("echoserver -http said nothing: %v", err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok {
		t.Fatalf("echoserver -http said %q", line)
	}
	rep, err := runBench(t, nil, "--sessions", "3", "--open-every", "10ms", "--calls", "5", "http://"+addr+"/mcp")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Opened != 3 || rep.CallsOK != 15 || rep.ErrorsTotal != 0 {
		t.Errorf("opened %d, calls %d, errors %v", rep.Opened, rep.CallsOK, rep.Errors)
	}
	rep, err = runBench(t, nil, "--calls", "2", "--response", "4096", "http://"+addr+"/mcp")
	if err != nil || rep.CallsOK != 2 {
		t.Errorf("big: %d calls, err %v", rep.CallsOK, err)
	}
}
