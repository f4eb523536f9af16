package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/sys/unix"
)

// bystander is a live session that every bad input must leave alone: it
// answers an echo, and its child is still the one it started with.
type bystander struct {
	cs  *mcp.ClientSession
	pid int
	n   int
}

func newBystander(t *testing.T, w *testkit.Process) *bystander {
	cs := w.Connect(t)
	return &bystander{cs: cs, pid: testkit.AskPid(t, cs)}
}

func (b *bystander) check(t *testing.T, after string) {
	t.Helper()
	b.n++
	want := fmt.Sprintf("still here %d", b.n)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	got, err := testkit.Call(ctx, b.cs, "echo", map[string]any{"text": want})
	if err != nil || got != want {
		t.Fatalf("after %s, the other live session's echo: %q, %v", after, got, err)
	}
	if p, ok := testkit.ReadProc(b.pid); !ok || p.State == 'Z' {
		t.Fatalf("after %s, the other session's child %d is gone", after, b.pid)
	}
}

func TestBadRequestsAreRefused(t *testing.T) {
	const limit = 4 << 20
	w := startWrapper(t, testkit.Options{Env: map[string]string{
		"MCPWRAP_MAX_MESSAGE_BYTES": fmt.Sprint(limit),
		"MCPWRAP_MAX_SESSIONS":      "4",
	}})
	live := newBystander(t, w)
	sid := live.cs.ID()
	ping := `{"jsonrpc":"2.0","id":7,"method":"ping"}`
	huge := `{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"` + strings.Repeat("x", limit+1) + `"}}`

	cases := []struct {
		name   string
		req    testkit.Request
		status int
		code   int               // JSON-RPC error code expected in the body; 0: not checked
		header map[string]string // response headers that must be present (prefix match)
	}{
		{"malformed JSON", testkit.Request{Session: sid, Body: `{"jsonrpc":"2.0","id":1,"method":`}, 400, -32700, nil},
		{"not JSON-RPC", testkit.Request{Session: sid, Body: `{"hello":"world"}`}, 400, -32600, nil},
		{"JSON-RPC 1.0", testkit.Request{Session: sid, Body: `{"id":1,"method":"ping"}`}, 400, -32600, nil},
		{"empty body", testkit.Request{Session: sid, Body: ``}, 400, -32700, nil},
		{"wrong Content-Type", testkit.Request{Session: sid, Body: ping, Headers: map[string]string{"Content-Type": "text/plain"}}, 415, 0, nil},
		{"no Content-Type", testkit.Request{Session: sid, Body: ping, Headers: map[string]string{"Content-Type": ""}}, 415, 0, nil},
		{"Accept without text/event-stream", testkit.Request{Session: sid, Body: ping, Headers: map[string]string{"Accept": "application/json"}}, 406, 0, nil},
		{"Accept without application/json", testkit.Request{Session: sid, Body: ping, Headers: map[string]string{"Accept": "text/event-stream"}}, 406, 0, nil},
		{"GET without Accept text/event-stream", testkit.Request{Method: http.MethodGet, Session: sid, Headers: map[string]string{"Accept": "application/json"}}, 406, 0, nil},
		{"body over the limit", testkit.Request{Session: sid, Body: huge}, 413, 0, nil},
		{"unknown method", testkit.Request{Method: http.MethodPut, Session: sid, Body: ping}, 405, 0, map[string]string{"Allow": "GET, POST, DELETE"}},
		{"PATCH", testkit.Request{Method: http.MethodPatch, Session: sid, Body: ping}, 405, 0, map[string]string{"Allow": "GET, POST, DELETE"}},
		{"no session id", testkit.Request{Body: ping}, 400, 0, nil},
		{"GET without session id", testkit.Request{Method: http.MethodGet, Headers: map[string]string{"Accept": "text/event-stream"}}, 400, 0, nil},
		{"unknown session", testkit.Request{Session: "no-such-session", Body: ping}, 404, 0, nil},
		{"DELETE of an unknown session", testkit.Request{Method: http.MethodDelete, Session: "no-such-session"}, 404, 0, nil},
		{"unsupported MCP-Protocol-Version", testkit.Request{Session: sid, Body: ping, Headers: map[string]string{"MCP-Protocol-Version": "1999-01-01"}}, 400, 0, nil},
		{"batch in 2025-06-18", testkit.Request{Session: sid, Body: "[" + ping + "]"}, 400, -32600, nil},
		{"second initialize", testkit.Request{Session: sid, Body: testkit.InitBody}, 400, -32600, nil},
		{"wrong token", testkit.Request{Session: sid, Body: ping, Headers: map[string]string{"Authorization": "Bearer not-the-token"}}, 401, 0, map[string]string{"WWW-Authenticate": "Bearer"}},
		{"missing token", testkit.Request{Session: sid, Body: ping, Headers: map[string]string{"Authorization": ""}}, 401, 0, map[string]string{"WWW-Authenticate": "Bearer"}},
		{"token in another scheme", testkit.Request{Session: sid, Body: ping, Headers: map[string]string{"Authorization": "Basic " + e2eToken}}, 401, 0, map[string]string{"WWW-Authenticate": "Bearer"}},
		{"missing token on initialize", testkit.Request{Body: testkit.InitBody, Headers: map[string]string{"Authorization": ""}}, 401, 0, map[string]string{"WWW-Authenticate": "Bearer"}},
		{"foreign Origin", testkit.Request{Session: sid, Body: ping, Headers: map[string]string{"Origin": "https://evil.example"}}, 403, 0, nil},
		{"foreign Origin on initialize", testkit.Request{Body: testkit.InitBody, Headers: map[string]string{"Origin": "http://evil.example:8080"}}, 403, 0, nil},
		{"message endpoint without sessionId", testkit.Request{URL: w.Base + "/message", Body: ping}, 400, 0, nil},
		{"message endpoint, unknown session", testkit.Request{URL: w.Base + "/message?sessionId=nope", Body: ping}, 404, 0, nil},
	}
	for _, tc := range cases {
		status, header, body := w.Send(t, tc.req)
		if status != tc.status {
			t.Errorf("%s: status %d, want %d (body %.300s)", tc.name, status, tc.status, body)
		}
		if tc.code != 0 {
			if code, msg := rpcError(t, body); code != tc.code {
				t.Errorf("%s: JSON-RPC error %d %q, want code %d", tc.name, code, msg, tc.code)
			}
		}
		for k, v := range tc.header {
			if !strings.HasPrefix(header.Get(k), v) {
				t.Errorf("%s: header %s %q, want %q", tc.name, k, header.Get(k), v)
			}
		}
		live.check(t, tc.name)
	}

	// A loopback Origin is a local tool, not an attack.
	if status, _, body := w.Send(t, testkit.Request{Session: sid, Body: ping, Headers: map[string]string{"Origin": "http://localhost:6274"}}); status != http.StatusOK {
		t.Errorf("loopback Origin: %d %s, want 200", status, body)
	}

	// Too many sessions: 503 with Retry-After, and room again once one ends.
	var opened []string
	for len(opened) < 3 {
		status, header, body := w.Send(t, testkit.Request{Body: testkit.InitBody})
		if status != http.StatusOK {
			t.Fatalf("initialize %d: %d %s", len(opened)+2, status, body)
		}
		opened = append(opened, header.Get("Mcp-Session-Id"))
	}
	status, header, body := w.Send(t, testkit.Request{Body: testkit.InitBody})
	if status != http.StatusServiceUnavailable || header.Get("Retry-After") == "" {
		t.Errorf("fifth session of at most 4: %d Retry-After %q %s, want 503 with Retry-After", status, header.Get("Retry-After"), body)
	}
	live.check(t, "a refused fifth session")
	for _, id := range opened {
		if status, _, body := w.Send(t, testkit.Request{Method: http.MethodDelete, Session: id}); status != http.StatusNoContent {
			t.Errorf("DELETE %s: %d %s", id, status, body)
		}
	}

	// A child that prints a line that is not JSON-RPC: logged, dropped, and
	// the session carries on.
	g := w.Connect(t)
	garbage := "this line is not JSON-RPC {{{"
	testkit.MustCall(t, g, "garbage", map[string]any{"line": garbage})
	dropped := w.Logs.MustWait(t, "about the garbage line", func(l testkit.Line) bool {
		return l.Str("session") == g.ID() && l.Msg() == "child wrote a line that is not JSON-RPC; dropped"
	})
	if dropped.Str("line") != garbage {
		t.Errorf("garbage log line shows %q, want %q", dropped.Str("line"), garbage)
	}
	if got := testkit.MustCall(t, g, "echo", map[string]any{"text": "after garbage"}); got != "after garbage" {
		t.Errorf("echo after garbage: %q", got)
	}
	live.check(t, "a garbage line in another session")

	// Messages up to the limit pass both ways; a child line past it ends
	// that session only, with an error that says why.
	mib := strings.Repeat("m", 1<<20)
	if got := testkit.MustCall(t, g, "echo", map[string]any{"text": mib}); got != mib {
		t.Errorf("1 MiB echo came back with %d bytes", len(got))
	}
	if got := testkit.MustCall(t, g, "big", map[string]any{"size": 1 << 20}); len(got) != 1<<20 {
		t.Errorf("1 MiB big came back with %d bytes", len(got))
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	_, err := testkit.Call(ctx, g, "big", map[string]any{"size": limit + 1})
	cancel()
	t.Logf("a child line over the limit ended its session after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if err == nil || !strings.Contains(err.Error(), "longer than the maximum message size") {
		t.Errorf("call whose answer exceeds the limit: %v, want an error about the maximum message size", err)
	}
	sessionGone(t, w, g.ID())
	w.Logs.MustWait(t, "saying why the session ended", func(l testkit.Line) bool {
		return l.Str("session") == g.ID() && l.Msg() == "ending the session" &&
			strings.Contains(l.Str("error"), "longer than the maximum message size")
	})
	live.check(t, "another session's child wrote a line over the limit")

	// A child that floods stderr never blocks.
	f := w.Connect(t)
	if got := testkit.MustCall(t, f, "stderr", map[string]any{"bytes": 8 << 20}); got != fmt.Sprintf("wrote %d bytes to stderr", 8<<20) {
		t.Errorf("stderr flood: %q", got)
	}
	if got := testkit.MustCall(t, f, "echo", map[string]any{"text": "after the flood"}); got != "after the flood" {
		t.Errorf("echo after the stderr flood: %q", got)
	}
	live.check(t, "a stderr flood")

	if w.Logs.Find(func(l testkit.Line) bool { return l.Msg() == "session ended" && l.Str("session") == sid }) != nil {
		t.Errorf("the bystander session ended")
	}
}

func TestLargeMessagesPass(t *testing.T) {
	w := startWrapper(t, testkit.Options{}) // the default limit, 16 MiB
	cs := w.Connect(t)
	for _, n := range []int{1 << 20, 10 << 20} {
		text := strings.Repeat("0123456789abcdef", n/16)
		if got := testkit.MustCall(t, cs, "echo", map[string]any{"text": text}); got != text {
			t.Errorf("echo of %d bytes came back with %d", n, len(got))
		}
		if got := testkit.MustCall(t, cs, "big", map[string]any{"size": n}); len(got) != n {
			t.Errorf("big %d came back with %d bytes", n, len(got))
		}
	}
}

func TestChildThatCannotStart(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "server")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path string }{
		{"missing", "/nonexistent/mcp-server"},
		{"not executable", notExec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := startWrapper(t, testkit.Options{Command: []string{tc.path}})
			// The answer comes at once: a hang would fail Send at its
			// deadline.
			start := time.Now()
			status, _, body := w.Send(t, testkit.Request{Body: testkit.InitBody})
			t.Logf("initialize with a %s command: %d after %v: %s", tc.name, status, time.Since(start).Round(time.Millisecond), body)
			if status != http.StatusInternalServerError {
				t.Errorf("status %d, want 500", status)
			}
			code, msg := rpcError(t, body)
			if code != -32603 || !strings.Contains(msg, "cannot start a session") || !strings.Contains(msg, tc.path) {
				t.Errorf("error %d %q, want -32603 naming the command", code, msg)
			}
			if !strings.Contains(body, `"id":1`) {
				t.Errorf("error %s does not answer the initialize request's id", body)
			}
			// The SDK client fails at once too, instead of hanging.
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			if cs, err := w.Client().Connect(ctx); err == nil {
				cs.Close()
				t.Error("SDK client connected to a server whose command cannot start")
			} else if ctx.Err() != nil {
				t.Errorf("SDK client hung: %v", err)
			}
			// And the health check says so.
			status, _, body = w.Send(t, testkit.Request{Method: http.MethodGet, URL: w.Base + "/healthz"})
			if status != http.StatusServiceUnavailable || !strings.Contains(body, "starting child") {
				t.Errorf("healthz: %d %s, want 503 naming the problem", status, body)
			}
		})
	}
}

// TestChildThatStopsReading wraps a command whose first instance never
// reads its stdin (and never answers), while every later one is the
// fixture. Requests pile up against the stuck child; nobody else notices.
func TestChildThatStopsReading(t *testing.T) {
	dir := t.TempDir()
	w := startWrapper(t, testkit.Options{
		Command: []string{"/bin/sh", "-c", `if mkdir "$0/stuck" 2>/dev/null; then exec sleep 1000; fi; exec "$1"`, dir, fixture(t)},
		Env:     map[string]string{"MCPWRAP_KEEPALIVE": "500ms"},
	})

	// The initialize never gets an answer, but after a keep-alive interval
	// the reply turns into an SSE stream, whose headers carry the id.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, strings.NewReader(testkit.InitBody))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("initialize of the stuck child: %v", err)
	}
	defer resp.Body.Close()
	stuck := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || stuck == "" {
		t.Fatalf("initialize of the stuck child: %d, session %q", resp.StatusCode, stuck)
	}
	stuckPid := w.ChildPid(t, stuck)
	stuckProc, _ := testkit.ReadProc(stuckPid)

	// 24 MiB of notifications for a child that reads nothing: far more
	// than its pipe and mcpwrap's queue hold, so most of these requests
	// block.
	const posts = 96
	var wg sync.WaitGroup
	postCtx, stopPosting := context.WithCancel(t.Context())
	defer stopPosting()
	blocked := make(chan error, posts)
	note := `{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"` + strings.Repeat("z", 256<<10) + `"}}`
	for range posts {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(postCtx, http.MethodPost, w.URL, strings.NewReader(note))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header.Set("Authorization", "Bearer "+e2eToken)
			req.Header.Set("Mcp-Session-Id", stuck)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			blocked <- err
		})
	}

	// The stuck child's stdin fills up: from here on, posts block.
	testkit.Eventually(t, "the stuck child's stdin pipe to fill up", func() bool { return pipeFull(t, stuckPid) })

	// Meanwhile other sessions open and work, and the server stays healthy.
	for i := range 3 {
		cs := w.Connect(t)
		want := fmt.Sprintf("unaffected %d", i)
		if got := testkit.MustCall(t, cs, "echo", map[string]any{"text": want}); got != want {
			t.Errorf("echo beside a stuck child: %q", got)
		}
		if got := testkit.MustCall(t, cs, "big", map[string]any{"size": 1 << 20}); len(got) != 1<<20 {
			t.Errorf("big beside a stuck child: %d bytes", len(got))
		}
	}
	if status, _, body := w.Send(t, testkit.Request{Method: http.MethodGet, URL: w.Base + "/healthz"}); status != http.StatusOK {
		t.Errorf("healthz beside a stuck child: %d %s", status, body)
	}
	finished := len(blocked)
	t.Logf("%d of %d posts of 256 KiB to the stuck child finished before it was ended", finished, posts)
	if finished == posts {
		t.Errorf("every post to a child that reads nothing was taken: the test never had a blocked writer")
	}

	// Ending the stuck session frees everything waiting on it.
	start := time.Now()
	if status, _, body := w.Send(t, testkit.Request{Method: http.MethodDelete, Session: stuck}); status != http.StatusNoContent {
		t.Errorf("DELETE of the stuck session: %d %s", status, body)
	}
	t.Logf("DELETE of the stuck session took %v", time.Since(start).Round(time.Millisecond))
	released := make(chan struct{})
	go func() { wg.Wait(); close(released) }()
	select {
	case <-released:
	case <-time.After(15 * time.Second):
		t.Errorf("posts to the stuck session still blocked 15s after it ended")
		stopPosting()
		<-released
	}
	testkit.AssertGone(t, "the stuck child", []testkit.Proc{stuckProc}, []int{stuckPid})
	sessionGone(t, w, stuck)
}

func TestRequestTimeout(t *testing.T) {
	w := startWrapper(t, testkit.Options{Env: map[string]string{"MCPWRAP_REQUEST_TIMEOUT": "1s"}})
	cs := w.Connect(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	_, err := testkit.Call(ctx, cs, "sleep", map[string]any{"ms": 30000})
	t.Logf("a 30 s call under a 1 s request timeout ended after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("call past the request timeout: %v, want a timeout error", err)
	}
	w.Logs.MustWait(t, "about the timeout", func(l testkit.Line) bool {
		return l.Str("session") == cs.ID() && l.Msg() == "request timed out"
	})
	// The session lives on, and quick calls are not affected.
	if got := testkit.MustCall(t, cs, "echo", map[string]any{"text": "after the timeout"}); got != "after the timeout" {
		t.Errorf("echo after a timeout: %q", got)
	}
}

func TestChildEnvironment(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("E2E_INHERITED", "from-the-parent")
	w := startWrapper(t, testkit.Options{Env: map[string]string{
		"MCPWRAP_CHILD_ENV": "E2E_EXTRA=one,E2E_OTHER=two",
		"MCPWRAP_CHILD_DIR": dir,
	}})
	cs := w.Connect(t)
	pid := testkit.AskPid(t, cs)
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	has := func(kv string) bool {
		for _, e := range env {
			if e == kv {
				return true
			}
		}
		return false
	}
	for _, kv := range []string{"E2E_EXTRA=one", "E2E_OTHER=two", "E2E_INHERITED=from-the-parent"} {
		if !has(kv) {
			t.Errorf("child environment lacks %s", kv)
		}
	}
	if strings.Contains(string(raw), e2eToken) {
		t.Error("the bearer token reached the child's environment")
	}
	for _, e := range env {
		if strings.HasPrefix(e, "MCPWRAP_") {
			t.Errorf("child environment holds %s", e)
		}
	}
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err != nil || cwd != dir {
		t.Errorf("child working directory %q (%v), want %q", cwd, err, dir)
	}
}

// pipeFull reports whether the pipe that is the stdin of pid holds as much
// as it can, so that a writer to it blocks.
func pipeFull(t *testing.T, pid int) bool {
	t.Helper()
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/0", pid), os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatalf("opening the stdin of %d: %v", pid, err)
	}
	defer f.Close()
	size, err := unix.FcntlInt(f.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatalf("the stdin of %d is no pipe: %v", pid, err)
	}
	held, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCINQ) // FIONREAD
	if err != nil {
		t.Fatalf("FIONREAD on the stdin of %d: %v", pid, err)
	}
	// The kernel fills the pipe a page at a time and does not top up the
	// page that took the first small write: a full pipe may lack up to a
	// page of its size.
	return held > size-os.Getpagesize()
}
