package main

import (
	"context"
	"fmt"
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

// cleanShutdown waits for mcpwrap to exit after a SIGTERM and asserts that
// the shutdown was clean: exit 0, "shutdown complete" as the last log line,
// nothing printed after it. mcpwrap keeps its own budget
// (MCPWRAP_SHUTDOWN_TIMEOUT, left at its 9 s default here, as Docker and Fly
// allow 10 s between SIGTERM and SIGKILL): when the budget runs out it cuts
// the shutdown short, says so and exits 1. So a clean shutdown is one that
// ended every session within the budget, and the test need not time it.
func cleanShutdown(t *testing.T, w *testkit.Process, what string) {
	t.Helper()
	start := time.Now()
	code := w.WaitExit()
	t.Logf("%s: exit %d after %v", what, code, time.Since(start).Round(time.Millisecond))
	if code != 0 {
		t.Errorf("%s: exit code %d, want 0", what, code)
	}
	if last := lastLine(t, w); last.Msg() != "shutdown complete" {
		t.Errorf("%s: last log line %v, want \"shutdown complete\" within the budget", what, last)
	}
	if msg := exitMessage(w); msg != "" {
		t.Errorf("%s: a clean shutdown printed %q after its last log line", what, msg)
	}
}

// sessionPids are the child pids mcpwrap logged as it started sessions;
// each is also the pgid of its child's process group.
func sessionPids(w *testkit.Process) []int {
	var out []int
	for _, l := range w.Logs.Find(func(l testkit.Line) bool { return l.Msg() == "session started" }) {
		out = append(out, l.Int("pid"))
	}
	return out
}

// lastLine is mcpwrap's final JSON log line; what main prints to stderr
// as it exits with an error comes after it.
func lastLine(t *testing.T, w *testkit.Process) testkit.Line {
	t.Helper()
	all := w.Logs.All()
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].Parsed() {
			return all[i]
		}
	}
	t.Fatal("mcpwrap logged nothing")
	return nil
}

// exitMessage is what mcpwrap printed last if that was no JSON log line
// (main's "mcpwrap: <error>"), or "".
func exitMessage(w *testkit.Process) string {
	all := w.Logs.All()
	if len(all) == 0 || all[len(all)-1].Parsed() {
		return ""
	}
	return all[len(all)-1].Msg()
}

func TestShutdownWithHundredSessions(t *testing.T) {
	w := startWrapper(t, testkit.Options{})
	const n, inFlight = 100, 10

	// Open the sessions in bounded parallel batches, each proven live by a
	// call its own child answers.
	sessions := make([]*mcp.ClientSession, n)
	// A call's first progress notification says it reached its child.
	reached := make(chan struct{}, n)
	client := w.Client()
	client.Options = &mcp.ClientOptions{
		ProgressNotificationHandler: func(context.Context, *mcp.ProgressNotificationClientRequest) { reached <- struct{}{} },
	}
	var mu sync.Mutex
	var errs []error
	for batch := 0; batch < n; batch += 10 {
		var wg sync.WaitGroup
		for i := batch; i < batch+10; i++ {
			wg.Go(func() {
				cs, err := client.Connect(t.Context())
				if err == nil {
					_, err = testkit.Call(t.Context(), cs, "echo", map[string]any{"text": "hi"})
				}
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				sessions[i] = cs
			})
		}
		wg.Wait()
	}
	t.Cleanup(func() {
		for _, cs := range sessions {
			if cs != nil {
				cs.Close()
			}
		}
	})
	if len(errs) > 0 {
		t.Fatalf("%d of %d sessions failed to open; first: %v", len(errs), n, errs[0])
	}

	// Some sessions have a call in flight when the signal comes: it must be
	// answered with an error, not left hanging.
	results := make(chan error, inFlight)
	for _, cs := range sessions[:inFlight] {
		go func() {
			params := &mcp.CallToolParams{Name: "progress", Arguments: map[string]any{"steps": 2, "ms": 120000}}
			params.SetProgressToken("in-flight")
			res, err := cs.CallTool(t.Context(), params)
			if err == nil && res.IsError {
				err = fmt.Errorf("tool error: %+v", res.Content)
			}
			results <- err
		}()
	}
	for range inFlight {
		select {
		case <-reached:
		case <-time.After(testkit.Patience):
			t.Fatal("a call meant to be in flight at shutdown never reached its child")
		}
	}

	before := testkit.Descendants(w.Pid)
	groups := sessionPids(w)
	if len(groups) != n {
		t.Fatalf("mcpwrap logged %d sessions started, want %d", len(groups), n)
	}
	if len(before) < n {
		t.Fatalf("only %d descendants of mcpwrap for %d sessions", len(before), n)
	}

	w.Signal(syscall.SIGTERM)
	cleanShutdown(t, w, fmt.Sprintf("SIGTERM with %d live sessions (%d calls in flight, %d descendant processes)", n, inFlight, len(before)))

	shut := w.Logs.Find(func(l testkit.Line) bool { return l.Msg() == "shutting down" })
	if len(shut) != 1 || shut[0].Str("reason") != "signal terminated" || shut[0].Int("sessions") != n {
		t.Errorf("want one \"shutting down\" line naming SIGTERM and %d sessions, got %v", n, shut)
	}
	if ended := w.Logs.Find(func(l testkit.Line) bool { return l.Msg() == "session ended" }); len(ended) != n {
		t.Errorf("%d \"session ended\" lines, want %d", len(ended), n)
	}
	testkit.AssertGone(t, "after shutdown", before, groups)

	for range inFlight {
		select {
		case err := <-results:
			if err == nil {
				t.Error("a call in flight at shutdown succeeded")
			}
		case <-time.After(testkit.Patience):
			t.Fatal("a call in flight at shutdown was never answered")
		}
	}
}

// sigtermIgnorer is a child that ignores SIGTERM and outlives its stdin: the
// fixture (told to ignore SIGTERM too) under a shell that, once the fixture
// has exited at EOF, becomes a sleep that ignores SIGTERM as well, the way a
// wedged server does. Only SIGKILL ends it.
func sigtermIgnorer(t *testing.T) []string {
	return []string{"/bin/sh", "-c", `trap '' TERM; "$0"; exec sleep 1000`, fixture(t)}
}

func TestChildIgnoringSIGTERMIsKilled(t *testing.T) {
	w := startWrapper(t, testkit.Options{
		Command: sigtermIgnorer(t),
		Env:     map[string]string{"MCPWRAP_CHILD_ENV": "EVERYTHING_IGNORE_SIGTERM=1"},
	})

	// DELETE: the session's child is killed after MCPWRAP_TERM_GRACE.
	cs := w.Connect(t)
	pgid := w.ChildPid(t, cs.ID())
	w.Logs.MustWait(t, "from the fixture ignoring SIGTERM", func(l testkit.Line) bool {
		return l.Str("session") == cs.ID() && l.Msg() == "everything: ignoring SIGTERM"
	})
	group := testkit.InGroups([]int{pgid})
	start := time.Now()
	status, _, body := w.Send(t, testkit.Request{Method: http.MethodDelete, Session: cs.ID()})
	if status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", status, body)
	}
	t.Logf("DELETE of a session whose child ignores SIGTERM took %v (close grace 500ms, term grace 1s)", time.Since(start).Round(time.Millisecond))
	w.Logs.MustWait(t, "escalating to SIGKILL", func(l testkit.Line) bool {
		return l.Str("session") == cs.ID() && l.Msg() == "child ignored SIGTERM, sending SIGKILL to its group"
	})
	ended := w.Ended(t, cs.ID())
	if got := ended.Str("exit"); got != "killed by signal SIGKILL" {
		t.Errorf("session ended with %q, want killed by signal SIGKILL", got)
	}
	testkit.AssertGone(t, "after DELETE", group, []int{pgid})

	// Shutdown: the same escalation, within the budget.
	cs2 := w.Connect(t)
	testkit.MustCall(t, cs2, "echo", map[string]any{"text": "x"})
	before := testkit.Descendants(w.Pid)
	groups := sessionPids(w)
	w.Signal(syscall.SIGTERM)
	cleanShutdown(t, w, "shutdown with a SIGTERM-ignoring child")
	if n := len(w.Logs.Find(func(l testkit.Line) bool {
		return l.Str("session") == cs2.ID() && l.Msg() == "child ignored SIGTERM, sending SIGKILL to its group"
	})); n != 1 {
		t.Errorf("%d SIGKILL escalations logged for the second session, want 1", n)
	}
	testkit.AssertGone(t, "after shutdown", before, groups)
}

func TestSecondSignalStopsNow(t *testing.T) {
	// Graces and a shutdown budget far longer than the test waits for the
	// exit: only the second signal can make mcpwrap finish at all.
	w := startWrapper(t, testkit.Options{
		Command: sigtermIgnorer(t),
		Env: map[string]string{
			"MCPWRAP_CHILD_ENV":        "EVERYTHING_IGNORE_SIGTERM=1",
			"MCPWRAP_CLOSE_GRACE":      "1h",
			"MCPWRAP_TERM_GRACE":       "1h",
			"MCPWRAP_SHUTDOWN_TIMEOUT": "1h",
		},
	})
	cs := w.Connect(t)
	testkit.MustCall(t, cs, "echo", map[string]any{"text": "x"})
	before := testkit.Descendants(w.Pid)
	groups := sessionPids(w)

	start := time.Now()
	w.Signal(syscall.SIGTERM)
	w.Logs.MustWait(t, "starting to shut down", func(l testkit.Line) bool { return l.Msg() == "shutting down" })
	w.Signal(syscall.SIGINT)
	code := w.WaitExit()
	t.Logf("SIGTERM then SIGINT: exit %d after %v", code, time.Since(start).Round(time.Millisecond))
	w.Logs.MustWait(t, "about the second signal", func(l testkit.Line) bool {
		return l.Msg() == "second signal: stopping now" && l.Str("signal") == "interrupt"
	})
	if last := lastLine(t, w); last.Msg() != "shutdown cut short: remaining children killed" {
		t.Errorf("last log line %v, want \"shutdown cut short: remaining children killed\"", last)
	}
	if code == 0 {
		t.Errorf("exit code 0 after a shutdown cut short; the exit code must say it was not clean")
	}
	if msg := exitMessage(w); !strings.HasPrefix(msg, "mcpwrap: shutdown cut short") {
		t.Errorf("last words %q, want mcpwrap: shutdown cut short…", msg)
	}
	testkit.AssertGone(t, "after the second signal", before, groups)
}

func TestGrandchildrenDieWithTheirSession(t *testing.T) {
	w := startWrapper(t, testkit.Options{Env: map[string]string{"MCPWRAP_CHILD_ENV": "EVERYTHING_SPAWN_GRANDCHILD=1"}})

	// After DELETE.
	cs := w.Connect(t)
	pid := testkit.AskPid(t, cs)
	gc := grandchildPid(t, w, cs.ID())
	gcProc, ok := testkit.ReadProc(gc)
	if !ok || gcProc.PGrp != pid {
		t.Fatalf("grandchild %d: %+v, want a live process in group %d", gc, gcProc, pid)
	}
	child, _ := testkit.ReadProc(pid)
	status, _, body := w.Send(t, testkit.Request{Method: http.MethodDelete, Session: cs.ID()})
	if status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", status, body)
	}
	testkit.AssertGone(t, "after DELETE", []testkit.Proc{child, gcProc}, []int{pid})
	sessionGone(t, w, cs.ID())

	// After shutdown.
	cs2 := w.Connect(t)
	pid2 := testkit.AskPid(t, cs2)
	gc2, ok := testkit.ReadProc(grandchildPid(t, w, cs2.ID()))
	if !ok || gc2.PGrp != pid2 {
		t.Fatalf("grandchild %+v, want a live process in group %d", gc2, pid2)
	}
	before := testkit.Descendants(w.Pid)
	w.Signal(syscall.SIGTERM)
	cleanShutdown(t, w, "shutdown with a grandchild")
	testkit.AssertGone(t, "after shutdown", append(before, gc2), []int{pid2})
}

// crashInFlight makes the session's child die while a call is in flight
// and returns the call's error. kill, if any, is the death: it comes once
// reached says the call is in the child. Otherwise the call itself is.
func crashInFlight(t *testing.T, cs *mcp.ClientSession, params *mcp.CallToolParams, reached <-chan struct{}, kill func()) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		res, err := cs.CallTool(t.Context(), params)
		if err == nil && res.IsError {
			err = fmt.Errorf("tool %s failed: %+v", params.Name, res.Content)
		}
		done <- err
	}()
	start := time.Now()
	if kill != nil {
		select {
		case <-reached:
		case err := <-done:
			t.Fatalf("the call ended before its child died: %v", err)
		case <-time.After(testkit.Patience):
			t.Fatal("the call never reached the child")
		}
		start = time.Now()
		kill()
	}
	select {
	case err := <-done:
		t.Logf("the in-flight call got its error %v after the child died: %v", time.Since(start).Round(time.Millisecond), err)
		return err
	case <-time.After(testkit.Patience):
		t.Fatalf("the call in flight when the child died got no answer")
		return nil
	}
}

func TestChildDeathAnswersInFlightRequests(t *testing.T) {
	w := startWrapper(t, testkit.Options{})

	cases := []struct {
		name     string
		tool     string
		args     map[string]any
		external bool
		exit     string
	}{
		{name: "crash tool", tool: "crash", args: map[string]any{"code": 3}, exit: "exit status 3"},
		// One step reported at once, then a long wait for the next: the
		// call is in the child once its progress arrives.
		{name: "SIGKILL from outside", tool: "progress", args: map[string]any{"steps": 2, "ms": 120000}, external: true, exit: "killed by signal SIGKILL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			other := w.Connect(t)
			reached := make(chan struct{}, 2)
			client := w.Client()
			client.Options = &mcp.ClientOptions{
				ProgressNotificationHandler: func(context.Context, *mcp.ProgressNotificationClientRequest) {
					select {
					case reached <- struct{}{}:
					default:
					}
				},
			}
			cs := client.MustConnect(t)
			pid := testkit.AskPid(t, cs)
			var kill func()
			if tc.external {
				kill = func() {
					if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
						t.Fatal(err)
					}
				}
			}
			params := &mcp.CallToolParams{Name: tc.tool, Arguments: tc.args}
			params.SetProgressToken("in-flight")
			err := crashInFlight(t, cs, params, reached, kill)
			if err == nil {
				t.Fatal("the call succeeded")
			}
			if !strings.Contains(err.Error(), tc.exit) {
				t.Errorf("error %q does not name %q", err, tc.exit)
			}
			sessionGone(t, w, cs.ID())

			ended := w.Ended(t, cs.ID())
			if ended.Str("exit") != tc.exit || ended.Int("in_flight") != 1 {
				t.Errorf("session ended line %v, want exit %q and 1 in flight", ended, tc.exit)
			}
			tail, _ := ended["stderr_tail"].([]any)
			want := fmt.Sprintf("everything: serving MCP on stdio, pid=%d", pid)
			if !strings.Contains(fmt.Sprint(tail), want) {
				t.Errorf("stderr tail %q lacks %q", tail, want)
			}
			// The other session never noticed.
			if got := testkit.MustCall(t, other, "echo", map[string]any{"text": "still here"}); got != "still here" {
				t.Errorf("other session: echo returned %q", got)
			}
		})
	}
}

// TestAsPID1 runs the whole binary as the init of a fresh pid namespace, as
// in a container without tini: orphaned grandchildren are re-parented to
// mcpwrap, and only its reaper can bury them.
func TestAsPID1(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for unshare --pid")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare (util-linux)")
	}
	if out, err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "true").CombinedOutput(); err != nil {
		t.Skipf("unshare --pid --fork --mount-proc does not work here: %v %s", err, out)
	}
	// A grandchild that leaves its group (setsid) and exits by itself
	// after its parent is gone: nothing but a reaper can ever collect it.
	script := filepath.Join(t.TempDir(), "child.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nsetsid sh -c 'sleep 1' </dev/null >/dev/null 2>&1 &\nexec \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	w := startWrapper(t, testkit.Options{
		Prefix:  []string{"unshare", "--pid", "--fork", "--mount-proc"},
		Command: []string{"/bin/sh", script, fixture(t)},
		Env:     map[string]string{"MCPWRAP_CHILD_ENV": "EVERYTHING_SPAWN_GRANDCHILD=1"},
	})
	launcher := w.Launcher()
	if p, _ := testkit.ReadProc(w.Pid); p.Comm != "mcpwrap" {
		t.Fatalf("pid %d under unshare is %q, not mcpwrap", w.Pid, p.Comm)
	}

	zombies := func() []testkit.Proc {
		var out []testkit.Proc
		for _, p := range testkit.Descendants(launcher) {
			if p.State == 'Z' {
				out = append(out, p)
			}
		}
		return out
	}

	for round := range 3 {
		cs := w.Connect(t)
		grandchildPid(t, w, cs.ID())
		err := crashInFlight(t, cs, &mcp.CallToolParams{Name: "crash", Arguments: map[string]any{"code": 7 + round}}, nil, nil)
		want := fmt.Sprintf("exit status %d", 7+round)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("round %d: crash answered with %v, want an error naming %q", round, err, want)
		}
		sessionGone(t, w, cs.ID())
	}

	// The orphans exit within about a second; then nothing may be left but
	// mcpwrap itself.
	var left []testkit.Proc
	for i := 0; i < 200; i++ {
		left = testkit.Descendants(launcher)
		if len(left) == 1 && len(zombies()) == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if z := zombies(); len(z) > 0 {
		t.Errorf("zombies left in the namespace: %+v", z)
	}
	if len(left) != 1 || left[0].Pid != w.Pid {
		t.Errorf("processes left in the namespace: %+v, want only mcpwrap (%d)", left, w.Pid)
	}

	// Sessions still work, and a clean exit still reports its status.
	cs := w.Connect(t)
	if got := testkit.MustCall(t, cs, "echo", map[string]any{"text": "pid 1"}); got != "pid 1" {
		t.Errorf("echo under PID 1: %q", got)
	}
	if err := cs.Close(); err != nil {
		t.Errorf("closing: %v", err)
	}
	ended := w.Ended(t, cs.ID())
	if ended.Str("exit") != "exit status 0" {
		t.Errorf("last session ended with %q, want exit status 0", ended.Str("exit"))
	}

	w.Signal(syscall.SIGTERM)
	if code := w.WaitExit(); code != 0 {
		t.Errorf("mcpwrap as PID 1: exit %d, want 0", code)
	}
}

func TestPTYCarriesHundredKiB(t *testing.T) {
	w := startWrapper(t, testkit.Options{Env: map[string]string{"MCPWRAP_PTY": "true"}})
	cs := w.Connect(t)
	// Every printable byte and the control bytes a cooked terminal would
	// act on (JSON escapes them, but their escapes must survive too),
	// with no line shorter than a terminal's 4095-byte limit.
	var sb strings.Builder
	for i := 0; sb.Len() < 100<<10; i++ {
		sb.WriteByte(byte(32 + i%95))
		if i%997 == 0 {
			sb.WriteString("\r\n\t\x03\x04\x1a\x7f")
		}
	}
	text := sb.String()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	got, err := testkit.Call(ctx, cs, "echo", map[string]any{"text": text})
	if err != nil {
		t.Fatalf("echo through the pty: %v", err)
	}
	if got != text {
		t.Fatalf("echo through the pty: %d bytes back, want the same %d bytes", len(got), len(text))
	}
	big := testkit.MustCall(t, cs, "big", map[string]any{"size": 100 << 10})
	if len(big) != 100<<10 {
		t.Errorf("big through the pty: %d bytes, want %d", len(big), 100<<10)
	}
	// The child really runs on a terminal.
	pid := testkit.AskPid(t, cs)
	for _, fd := range []string{"0", "1"} {
		if tty, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd)); err != nil || !strings.HasPrefix(tty, "/dev/pts/") {
			t.Errorf("child fd %s is %q (%v), want a /dev/pts terminal", fd, tty, err)
		}
	}
}

// TestSSEClientHangingUpOnAFullQueueEndsItsSession: an HTTP+SSE client that
// reads nothing while its child floods the stream, so that every buffer on
// the way and the session's queue fill, and then hangs up, must not leave
// the session behind: it ends, and the shutdown after it is clean.
func TestSSEClientHangingUpOnAFullQueueEndsItsSession(t *testing.T) {
	line := `{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"` + strings.Repeat("x", 64<<10) + `"}}`
	w := testkit.Start(t, testkit.Options{
		Token:   e2eToken,
		Command: []string{"/bin/sh", "-c", `exec yes "$1"`, "sh", line},
		Env:     map[string]string{"MCPWRAP_MAX_QUEUED_MESSAGES": "4"},
	})
	ctx, hangUp := context.WithCancel(t.Context())
	defer hangUp()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.Base+"/sse", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /sse: %d", resp.StatusCode)
	}
	pid := w.Logs.MustWait(t, "the session to start", func(l testkit.Line) bool { return l.Msg() == "session started" }).Int("pid")

	// Read nothing until the child is stuck writing: by then the socket,
	// the session's queue and the child's pipe are all full. Kernels that
	// hide wchan get a fixed pause instead; the pause is not asserted.
	stuck := time.Now().Add(10 * time.Second)
	for time.Now().Before(stuck) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", pid))
		if err == nil && strings.Contains(string(b), "pipe_write") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	hangUp()
	resp.Body.Close()

	testkit.Eventually(t, "the session to end after its client hung up", func() bool {
		_, sessions := w.Health(t)
		return sessions == 0
	})
	w.Signal(syscall.SIGTERM)
	cleanShutdown(t, w, "SIGTERM after the client hung up")
	testkit.AssertGone(t, "after the client hung up", nil, []int{pid})
}
