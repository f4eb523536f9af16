package main

// End-to-end tests of the whole program, in the manner of tailscale's
// containerboot test: TestMain builds the real mcpwrap binary and the
// everything fixture; each test starts mcpwrap as a process wrapping real
// children, talks to it with the official Go SDK client over real HTTP on
// 127.0.0.1, sends it real signals, and asserts exit codes, log lines and
// what /proc says is left behind.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

var (
	binary  string // mcpwrap, built from this tree
	fixture string // examples/everything, the wrapped stdio server
)

const e2eToken = "e2e-token-9d2a7c"

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "mcpwrap-e2e-")
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
	binary, fixture = bins[0], bins[1]
	return m.Run()
}

// wrapper is one running mcpwrap process.
type wrapper struct {
	t    *testing.T
	cmd  *exec.Cmd
	Pid  int    // mcpwrap's own pid (not a launcher's such as unshare)
	Base string // http://127.0.0.1:port
	URL  string // the Streamable HTTP endpoint
	Logs *logBook

	exited chan struct{} // closed once Wait returned
	state  *os.ProcessState
}

// launch starts mcpwrap with the given MCPWRAP_* settings (on top of test
// defaults) wrapping command. prefix, if any, is a launcher that runs
// mcpwrap as its own child (unshare).
type launch struct {
	env     map[string]string
	command []string // default: the fixture
	prefix  []string
}

func startWrapper(t *testing.T, l launch) *wrapper {
	t.Helper()
	env := map[string]string{
		"MCPWRAP_LISTEN":      "127.0.0.1:0",
		"MCPWRAP_TOKEN":       e2eToken,
		"MCPWRAP_LOG_FORMAT":  "json",
		"MCPWRAP_CLOSE_GRACE": "500ms",
		"MCPWRAP_TERM_GRACE":  "1s",
	}
	for k, v := range l.env {
		env[k] = v
	}
	var environ []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MCPWRAP_") && !strings.HasPrefix(kv, "EVERYTHING_") {
			environ = append(environ, kv)
		}
	}
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	command := l.command
	if command == nil {
		command = []string{fixture}
	}
	argv := append(append(append(slices.Clone(l.prefix), binary), "--"), command...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = environ
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	w := &wrapper{t: t, cmd: cmd, Logs: newLogBook(t), exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting mcpwrap: %v", err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		w.Logs.consume(stderr)
	}()
	go func() {
		<-read // Wait closes the pipe; read it to the end first
		_ = cmd.Wait()
		w.state = cmd.ProcessState
		close(w.exited)
	}()
	t.Cleanup(w.cleanup)

	line, err := w.Logs.wait("mcpwrap listening", 30*time.Second, func(l logLine) bool { return l.Msg() == "mcpwrap listening" })
	if err != nil {
		t.Fatalf("mcpwrap did not start: %v\n%s", err, w.Logs.dump())
	}
	w.Base = "http://" + line.Str("addr")
	w.URL = w.Base + "/mcp"
	w.Pid = cmd.Process.Pid
	if len(l.prefix) > 0 {
		// The launcher forks mcpwrap; find it among the launcher's children.
		w.Pid = 0
		for i := 0; i < 200 && w.Pid == 0; i++ {
			for _, p := range procTable() {
				if p.PPid == cmd.Process.Pid {
					w.Pid = p.Pid
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		if w.Pid == 0 {
			t.Fatalf("no mcpwrap process under launcher %d", cmd.Process.Pid)
		}
	}
	return w
}

// cleanup kills mcpwrap if a test left it running, and whatever it left
// behind, so that one failed test does not litter the machine for the next.
func (w *wrapper) cleanup() {
	select {
	case <-w.exited:
	default:
		left := descendants(w.cmd.Process.Pid)
		if w.Pid != 0 && w.Pid != w.cmd.Process.Pid {
			// Under a launcher, mcpwrap itself must go, or it keeps the
			// log pipe open.
			_ = syscall.Kill(w.Pid, syscall.SIGKILL)
		}
		_ = w.cmd.Process.Kill()
		select {
		case <-w.exited:
		case <-time.After(10 * time.Second):
			w.t.Errorf("mcpwrap %d did not die of SIGKILL", w.cmd.Process.Pid)
		}
		for _, p := range left {
			if p.stillThere() {
				_ = syscall.Kill(p.Pid, syscall.SIGKILL)
			}
		}
	}
	if w.t.Failed() {
		w.t.Logf("mcpwrap log:\n%s", w.Logs.dump())
	}
}

// signal sends sig to mcpwrap itself.
func (w *wrapper) signal(sig syscall.Signal) {
	w.t.Helper()
	if err := syscall.Kill(w.Pid, sig); err != nil {
		w.t.Fatalf("signalling mcpwrap: %v", err)
	}
}

// waitExit waits for mcpwrap to exit and returns its exit code (-1 if a
// signal killed it) and how long that took from since.
func (w *wrapper) waitExit(since time.Time, limit time.Duration) (int, time.Duration) {
	w.t.Helper()
	select {
	case <-w.exited:
	case <-time.After(limit):
		w.t.Fatalf("mcpwrap still running %v after the signal\n%s", limit, w.Logs.dump())
	}
	return w.state.ExitCode(), time.Since(since)
}

// connect opens a session with the official Go SDK client.
func (w *wrapper) connect(t *testing.T) *mcp.ClientSession {
	t.Helper()
	cs, err := w.tryConnect(t.Context())
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func (w *wrapper) tryConnect(ctx context.Context) (*mcp.ClientSession, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpwrap-e2e", Version: "1"}, nil)
	return client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   w.URL,
		HTTPClient: &http.Client{Transport: bearer{e2eToken, http.DefaultTransport}},
		// The SDK's default retries, as real clients have them: when a
		// session ends, its standalone stream ends with it, and a client
		// that gives up on the session at once (MaxRetries -1) may fail a
		// call whose error response is already on its way.
	}, legacySession)
}

// legacySession pins a client to the stateful era: these tests are about
// sessions and the child each one owns, which protocol 2026-07-28 lacks.
var legacySession = &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"}

type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// call calls a fixture tool and returns its text.
func call(ctx context.Context, cs *mcp.ClientSession, tool string, args map[string]any) (string, error) {
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		return "", err
	}
	if res.IsError || len(res.Content) == 0 {
		return "", fmt.Errorf("tool %s failed: %+v", tool, res.Content)
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		return "", fmt.Errorf("tool %s returned %T", tool, res.Content[0])
	}
	return tc.Text, nil
}

func mustCall(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	s, err := call(ctx, cs, tool, args)
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	return s
}

// childPid asks a session's child for its pid.
func childPid(t *testing.T, cs *mcp.ClientSession) int {
	t.Helper()
	pid, err := strconv.Atoi(mustCall(t, cs, "pid", nil))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// ---- mcpwrap's log -------------------------------------------------------

// logLine is one JSON log line of mcpwrap.
type logLine map[string]any

func (l logLine) Msg() string { return l.Str("message") }

func (l logLine) Str(k string) string {
	s, _ := l[k].(string)
	return s
}

func (l logLine) Int(k string) int {
	f, _ := l[k].(float64)
	return int(f)
}

// logBook keeps every line mcpwrap logs, and lets tests wait for one.
type logBook struct {
	t       *testing.T
	mu      sync.Mutex // guards the fields below
	lines   []logLine
	raw     []string
	changed chan struct{} // closed and replaced on every new line
}

func newLogBook(t *testing.T) *logBook {
	return &logBook{t: t, changed: make(chan struct{})}
}

func (b *logBook) consume(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var l logLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			l = logLine{"message": sc.Text(), "unparsed": true}
		}
		b.mu.Lock()
		b.lines = append(b.lines, l)
		b.raw = append(b.raw, sc.Text())
		close(b.changed)
		b.changed = make(chan struct{})
		b.mu.Unlock()
	}
	b.mu.Lock()
	b.raw = append(b.raw, "(end of log)")
	b.mu.Unlock()
}

// all returns the lines so far.
func (b *logBook) all() []logLine {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.lines)
}

// find returns the lines matching f.
func (b *logBook) find(f func(logLine) bool) []logLine {
	var out []logLine
	for _, l := range b.all() {
		if f(l) {
			out = append(out, l)
		}
	}
	return out
}

// wait returns the first line matching f, waiting up to limit for it.
func (b *logBook) wait(what string, limit time.Duration, f func(logLine) bool) (logLine, error) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	seen := 0
	for {
		b.mu.Lock()
		lines, changed := b.lines[seen:], b.changed
		seen = len(b.lines)
		b.mu.Unlock()
		for _, l := range lines {
			if f(l) {
				return l, nil
			}
		}
		select {
		case <-changed:
		case <-deadline.C:
			return nil, fmt.Errorf("no log line %s within %v", what, limit)
		}
	}
}

func (b *logBook) mustWait(what string, f func(logLine) bool) logLine {
	b.t.Helper()
	l, err := b.wait(what, 30*time.Second, f)
	if err != nil {
		b.t.Fatalf("%v\n%s", err, b.dump())
	}
	return l
}

// dump is the log for a failure message, capped so a flood stays readable.
func (b *logBook) dump() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	raw := b.raw
	if len(raw) > 300 {
		raw = append([]string{fmt.Sprintf("(%d earlier lines)", len(raw)-300)}, raw[len(raw)-300:]...)
	}
	var sb strings.Builder
	for _, r := range raw {
		if len(r) > 2000 {
			r = r[:2000] + "…"
		}
		sb.WriteString(r)
		sb.WriteByte('\n')
	}
	return sb.String()
}

// grandchildPid is the pid the fixture logs for its grandchild
// (EVERYTHING_SPAWN_GRANDCHILD=1) in the given session.
func (b *logBook) grandchildPid(session string) int {
	b.t.Helper()
	l := b.mustWait("naming the grandchild of "+session, func(l logLine) bool {
		return l.Str("session") == session && strings.HasPrefix(l.Msg(), "everything: grandchild pid=")
	})
	pid, err := strconv.Atoi(strings.TrimPrefix(l.Msg(), "everything: grandchild pid="))
	if err != nil {
		b.t.Fatal(err)
	}
	return pid
}

// ---- /proc ---------------------------------------------------------------

// proc is what /proc/<pid>/stat says of one process.
type proc struct {
	Pid, PPid, PGrp int
	State           byte
	Start           uint64 // start time in clock ticks: with Pid, names the process uniquely
	Comm            string
}

func readProc(pid int) (proc, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return proc{}, false
	}
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return proc{}, false
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 20 {
		return proc{}, false
	}
	p := proc{Pid: pid, State: f[0][0], Comm: string(b[open+1 : end])}
	p.PPid, _ = strconv.Atoi(f[1])
	p.PGrp, _ = strconv.Atoi(f[2])
	p.Start, _ = strconv.ParseUint(f[19], 10, 64)
	return p, true
}

// procTable reads every process.
func procTable() []proc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok {
			out = append(out, p)
		}
	}
	return out
}

// descendants lists every process whose chain of parents leads to root.
func descendants(root int) []proc {
	table := procTable()
	byPid := make(map[int]proc, len(table))
	for _, p := range table {
		byPid[p.Pid] = p
	}
	var out []proc
	for _, p := range table {
		for q, hops := p, 0; q.PPid > 1 && hops < 64; hops++ {
			if q.PPid == root {
				out = append(out, p)
				break
			}
			var ok bool
			if q, ok = byPid[q.PPid]; !ok {
				break
			}
		}
	}
	return out
}

// stillThere reports whether the very same process (pid and start time)
// still exists, zombie or not.
func (p proc) stillThere() bool {
	q, ok := readProc(p.Pid)
	return ok && q.Start == p.Start
}

// inGroups lists the processes, zombies included, in any of the groups.
func inGroups(pgids []int) []proc {
	var out []proc
	for _, p := range procTable() {
		if slices.Contains(pgids, p.PGrp) {
			out = append(out, p)
		}
	}
	return out
}

// assertGone fails unless none of procs exists any more and no process is
// left in any of the groups, waiting a little for the kernel to finish.
func assertGone(t *testing.T, what string, procs []proc, pgids []int) {
	t.Helper()
	var left []proc
	for i := 0; i < 100; i++ {
		left = inGroups(pgids)
		for _, p := range procs {
			if p.stillThere() && !slices.ContainsFunc(left, func(q proc) bool { return q.Pid == p.Pid }) {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, p := range left {
		if q, ok := readProc(p.Pid); ok {
			p = q
		}
		t.Errorf("%s: process %d (%s) state %c ppid %d pgrp %d is still there", what, p.Pid, p.Comm, p.State, p.PPid, p.PGrp)
	}
}

func pids(ps []proc) []int {
	out := make([]int, len(ps))
	for i, p := range ps {
		out[i] = p.Pid
	}
	return out
}

// ---- raw HTTP ------------------------------------------------------------

// rawPost sends one hand-made request and returns the status, headers and body.
type rawReq struct {
	method      string
	url         string
	body        string
	session     string
	headers     map[string]string // "" value deletes a default
	contentType string
}

func (w *wrapper) raw(t *testing.T, r rawReq) (int, http.Header, string) {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	if r.url == "" {
		r.url = w.URL
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	if r.session != "" {
		req.Header.Set("Mcp-Session-Id", r.session)
		req.Header.Set("MCP-Protocol-Version", "2025-06-18")
	}
	for k, v := range r.headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

// rpcError is the error member of a JSON-RPC response body (the first one
// of an SSE body).
func rpcError(t *testing.T, body string) (code int, message string) {
	t.Helper()
	if i := strings.Index(body, "data: "); i >= 0 {
		body = body[i+len("data: "):]
		body, _, _ = strings.Cut(body, "\n")
	}
	var m struct {
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &m); err != nil || m.Error == nil {
		t.Fatalf("body is not a JSON-RPC error: %q", body)
	}
	return m.Error.Code, m.Error.Message
}

// sessionGone asserts that a request naming the session now gets 404.
func (w *wrapper) sessionGone(t *testing.T, id string) {
	t.Helper()
	status, _, body := w.raw(t, rawReq{session: id, body: `{"jsonrpc":"2.0","id":9,"method":"ping"}`})
	if status != http.StatusNotFound {
		t.Errorf("request to ended session %s: %d %s, want 404", id, status, body)
	}
}
