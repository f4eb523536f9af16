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

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The default MCPWRAP_SHUTDOWN_TIMEOUT, which the tests leave alone: Docker
// and Fly allow 10 s between SIGTERM and SIGKILL.
const shutdownBudget = 9 * time.Second

// sessionPids are the child pids mcpwrap logged as it started sessions;
// each is also the pgid of its child's process group.
func sessionPids(w *wrapper) []int {
	var out []int
	for _, l := range w.Logs.find(func(l logLine) bool { return l.Msg() == "session started" }) {
		out = append(out, l.Int("pid"))
	}
	return out
}

// lastLine is mcpwrap's final JSON log line; what main prints to stderr
// as it exits with an error comes after it.
func lastLine(t *testing.T, w *wrapper) logLine {
	t.Helper()
	all := w.Logs.all()
	for i := len(all) - 1; i >= 0; i-- {
		if all[i]["unparsed"] == nil {
			return all[i]
		}
	}
	t.Fatal("mcpwrap logged nothing")
	return nil
}

// exitMessage is what mcpwrap printed last if that was no JSON log line
// (main's "mcpwrap: <error>"), or "".
func exitMessage(w *wrapper) string {
	all := w.Logs.all()
	if len(all) == 0 || all[len(all)-1]["unparsed"] == nil {
		return ""
	}
	return all[len(all)-1].Msg()
}

func TestShutdownWithHundredSessions(t *testing.T) {
	w := startWrapper(t, launch{})
	const n, inFlight = 100, 10

	// Open the sessions in bounded parallel batches, each proven live by a
	// call its own child answers.
	sessions := make([]*mcp.ClientSession, n)
	var mu sync.Mutex
	var errs []error
	for batch := 0; batch < n; batch += 10 {
		var wg sync.WaitGroup
		for i := batch; i < batch+10; i++ {
			wg.Go(func() {
				cs, err := w.tryConnect(t.Context())
				if err == nil {
					_, err = call(t.Context(), cs, "echo", map[string]any{"text": "hi"})
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
			_, err := call(t.Context(), cs, "sleep", map[string]any{"ms": 120000})
			results <- err
		}()
	}
	time.Sleep(500 * time.Millisecond) // let the calls reach the children; not asserted

	before := descendants(w.Pid)
	groups := sessionPids(w)
	if len(groups) != n {
		t.Fatalf("mcpwrap logged %d sessions started, want %d", len(groups), n)
	}
	if len(before) < n {
		t.Fatalf("only %d descendants of mcpwrap for %d sessions", len(before), n)
	}

	start := time.Now()
	w.signal(syscall.SIGTERM)
	code, took := w.waitExit(start, 3*shutdownBudget)
	t.Logf("SIGTERM with %d live sessions (%d calls in flight, %d descendant processes): exit %d after %v",
		n, inFlight, len(before), code, took.Round(time.Millisecond))
	if code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if took >= shutdownBudget {
		t.Errorf("shutdown took %v, more than the %v budget", took, shutdownBudget)
	}

	shut := w.Logs.find(func(l logLine) bool { return l.Msg() == "shutting down" })
	if len(shut) != 1 || shut[0].Str("reason") != "signal terminated" || shut[0].Int("sessions") != n {
		t.Errorf("want one \"shutting down\" line naming SIGTERM and %d sessions, got %v", n, shut)
	}
	if last := lastLine(t, w); last.Msg() != "shutdown complete" {
		t.Errorf("last log line %v, want \"shutdown complete\"", last)
	}
	if msg := exitMessage(w); msg != "" {
		t.Errorf("a clean shutdown printed %q after its last log line", msg)
	}
	if ended := w.Logs.find(func(l logLine) bool { return l.Msg() == "session ended" }); len(ended) != n {
		t.Errorf("%d \"session ended\" lines, want %d", len(ended), n)
	}
	assertGone(t, "after shutdown", before, groups)

	for range inFlight {
		select {
		case err := <-results:
			if err == nil {
				t.Error("a call in flight at shutdown succeeded")
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a call in flight at shutdown was never answered")
		}
	}
}

// sigtermIgnorer is a child that ignores SIGTERM and outlives its stdin: the
// fixture (told to ignore SIGTERM too) under a shell that, once the fixture
// has exited at EOF, becomes a sleep that ignores SIGTERM as well, the way a
// wedged server does. Only SIGKILL ends it.
func sigtermIgnorer() []string {
	return []string{"/bin/sh", "-c", `trap '' TERM; "$0"; exec sleep 1000`, fixture}
}

func TestChildIgnoringSIGTERMIsKilled(t *testing.T) {
	w := startWrapper(t, launch{
		command: sigtermIgnorer(),
		env:     map[string]string{"MCPWRAP_CHILD_ENV": "EVERYTHING_IGNORE_SIGTERM=1"},
	})

	// DELETE: the session's child is killed after MCPWRAP_TERM_GRACE.
	cs := w.connect(t)
	pgid := w.Logs.mustWait("starting the session", func(l logLine) bool {
		return l.Msg() == "session started" && l.Str("session") == cs.ID()
	}).Int("pid")
	w.Logs.mustWait("from the fixture ignoring SIGTERM", func(l logLine) bool {
		return l.Str("session") == cs.ID() && l.Msg() == "everything: ignoring SIGTERM"
	})
	group := inGroups([]int{pgid})
	start := time.Now()
	status, _, body := w.raw(t, rawReq{method: http.MethodDelete, session: cs.ID()})
	if status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", status, body)
	}
	t.Logf("DELETE of a session whose child ignores SIGTERM took %v (close grace 500ms, term grace 1s)", time.Since(start).Round(time.Millisecond))
	w.Logs.mustWait("escalating to SIGKILL", func(l logLine) bool {
		return l.Str("session") == cs.ID() && l.Msg() == "child ignored SIGTERM, sending SIGKILL to its group"
	})
	ended := w.Logs.mustWait("ending the session", func(l logLine) bool {
		return l.Str("session") == cs.ID() && l.Msg() == "session ended"
	})
	if got := ended.Str("exit"); got != "killed by signal SIGKILL" {
		t.Errorf("session ended with %q, want killed by signal SIGKILL", got)
	}
	assertGone(t, "after DELETE", group, []int{pgid})

	// Shutdown: the same escalation, within the budget.
	cs2 := w.connect(t)
	mustCall(t, cs2, "echo", map[string]any{"text": "x"})
	before := descendants(w.Pid)
	groups := sessionPids(w)
	start = time.Now()
	w.signal(syscall.SIGTERM)
	code, took := w.waitExit(start, 3*shutdownBudget)
	t.Logf("shutdown with a SIGTERM-ignoring child: exit %d after %v", code, took.Round(time.Millisecond))
	if code != 0 || took >= shutdownBudget {
		t.Errorf("exit %d after %v, want 0 within %v", code, took, shutdownBudget)
	}
	if last := lastLine(t, w); last.Msg() != "shutdown complete" {
		t.Errorf("last log line %v, want \"shutdown complete\"", last)
	}
	if n := len(w.Logs.find(func(l logLine) bool {
		return l.Str("session") == cs2.ID() && l.Msg() == "child ignored SIGTERM, sending SIGKILL to its group"
	})); n != 1 {
		t.Errorf("%d SIGKILL escalations logged for the second session, want 1", n)
	}
	assertGone(t, "after shutdown", before, groups)
}

func TestSecondSignalStopsNow(t *testing.T) {
	// Graces far longer than the test waits: only the second signal can
	// make mcpwrap finish in time.
	w := startWrapper(t, launch{
		command: sigtermIgnorer(),
		env: map[string]string{
			"MCPWRAP_CHILD_ENV":   "EVERYTHING_IGNORE_SIGTERM=1",
			"MCPWRAP_CLOSE_GRACE": "1m",
			"MCPWRAP_TERM_GRACE":  "1m",
		},
	})
	cs := w.connect(t)
	mustCall(t, cs, "echo", map[string]any{"text": "x"})
	before := descendants(w.Pid)
	groups := sessionPids(w)

	start := time.Now()
	w.signal(syscall.SIGTERM)
	w.Logs.mustWait("starting to shut down", func(l logLine) bool { return l.Msg() == "shutting down" })
	w.signal(syscall.SIGINT)
	code, took := w.waitExit(start, 3*shutdownBudget)
	t.Logf("SIGTERM then SIGINT: exit %d after %v", code, took.Round(time.Millisecond))
	w.Logs.mustWait("about the second signal", func(l logLine) bool {
		return l.Msg() == "second signal: stopping now" && l.Str("signal") == "interrupt"
	})
	if last := lastLine(t, w); last.Msg() != "shutdown cut short: remaining children killed" {
		t.Errorf("last log line %v, want \"shutdown cut short: remaining children killed\"", last)
	}
	if took >= shutdownBudget {
		t.Errorf("exit after %v: the second signal did not stop mcpwrap before the %v budget ran out", took, shutdownBudget)
	}
	if code == 0 {
		t.Errorf("exit code 0 after a shutdown cut short; the exit code must say it was not clean")
	}
	if msg := exitMessage(w); !strings.HasPrefix(msg, "mcpwrap: shutdown cut short") {
		t.Errorf("last words %q, want mcpwrap: shutdown cut short…", msg)
	}
	assertGone(t, "after the second signal", before, groups)
}

func TestGrandchildrenDieWithTheirSession(t *testing.T) {
	w := startWrapper(t, launch{env: map[string]string{"MCPWRAP_CHILD_ENV": "EVERYTHING_SPAWN_GRANDCHILD=1"}})

	// After DELETE.
	cs := w.connect(t)
	pid := childPid(t, cs)
	gc := w.Logs.grandchildPid(cs.ID())
	gcProc, ok := readProc(gc)
	if !ok || gcProc.PGrp != pid {
		t.Fatalf("grandchild %d: %+v, want a live process in group %d", gc, gcProc, pid)
	}
	child, _ := readProc(pid)
	status, _, body := w.raw(t, rawReq{method: http.MethodDelete, session: cs.ID()})
	if status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", status, body)
	}
	assertGone(t, "after DELETE", []proc{child, gcProc}, []int{pid})
	w.sessionGone(t, cs.ID())

	// After shutdown.
	cs2 := w.connect(t)
	pid2 := childPid(t, cs2)
	gc2, ok := readProc(w.Logs.grandchildPid(cs2.ID()))
	if !ok || gc2.PGrp != pid2 {
		t.Fatalf("grandchild %+v, want a live process in group %d", gc2, pid2)
	}
	before := descendants(w.Pid)
	start := time.Now()
	w.signal(syscall.SIGTERM)
	if code, took := w.waitExit(start, 3*shutdownBudget); code != 0 || took >= shutdownBudget {
		t.Errorf("exit %d after %v, want 0 within %v", code, took, shutdownBudget)
	}
	assertGone(t, "after shutdown", append(before, gc2), []int{pid2})
}

// crashAndMeasure makes the session's child die while a call is in flight
// (kill does it, after the call was sent) and returns the call's error and
// how long after the death it came.
func crashAndMeasure(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any, kill func()) (time.Duration, error) {
	t.Helper()
	type result struct {
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	go func() {
		_, err := call(t.Context(), cs, tool, args)
		done <- result{err, time.Now()}
	}()
	var died time.Time
	if kill != nil {
		time.Sleep(300 * time.Millisecond) // the call reaches the child first; not asserted
		died = time.Now()
		kill()
	} else {
		died = time.Now()
	}
	select {
	case r := <-done:
		return r.at.Sub(died), r.err
	case <-time.After(10 * time.Second):
		t.Fatalf("the call in flight when the child died got no answer within 10s")
		return 0, nil
	}
}

func TestChildDeathAnswersInFlightRequests(t *testing.T) {
	w := startWrapper(t, launch{})

	cases := []struct {
		name     string
		tool     string
		args     map[string]any
		external bool
		exit     string
	}{
		{name: "crash tool", tool: "crash", args: map[string]any{"code": 3}, exit: "exit status 3"},
		{name: "SIGKILL from outside", tool: "sleep", args: map[string]any{"ms": 120000}, external: true, exit: "killed by signal SIGKILL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			other := w.connect(t)
			cs := w.connect(t)
			pid := childPid(t, cs)
			var kill func()
			if tc.external {
				kill = func() {
					if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
						t.Fatal(err)
					}
				}
			}
			latency, err := crashAndMeasure(t, cs, tc.tool, tc.args, kill)
			t.Logf("%s: the in-flight call got its error %v after the child died: %v", tc.name, latency.Round(time.Millisecond), err)
			if err == nil {
				t.Fatal("the call succeeded")
			}
			if !strings.Contains(err.Error(), tc.exit) {
				t.Errorf("error %q does not name %q", err, tc.exit)
			}
			w.sessionGone(t, cs.ID())

			ended := w.Logs.mustWait("ending the session", func(l logLine) bool {
				return l.Str("session") == cs.ID() && l.Msg() == "session ended"
			})
			if ended.Str("exit") != tc.exit || ended.Int("in_flight") != 1 {
				t.Errorf("session ended line %v, want exit %q and 1 in flight", ended, tc.exit)
			}
			tail, _ := ended["stderr_tail"].([]any)
			want := fmt.Sprintf("everything: serving MCP on stdio, pid=%d", pid)
			if !strings.Contains(fmt.Sprint(tail), want) {
				t.Errorf("stderr tail %q lacks %q", tail, want)
			}
			// The other session never noticed.
			if got := mustCall(t, other, "echo", map[string]any{"text": "still here"}); got != "still here" {
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
	w := startWrapper(t, launch{
		prefix:  []string{"unshare", "--pid", "--fork", "--mount-proc"},
		command: []string{"/bin/sh", script, fixture},
		env:     map[string]string{"MCPWRAP_CHILD_ENV": "EVERYTHING_SPAWN_GRANDCHILD=1"},
	})
	launcher := w.cmd.Process.Pid
	if p, _ := readProc(w.Pid); p.Comm != "mcpwrap" {
		t.Fatalf("pid %d under unshare is %q, not mcpwrap", w.Pid, p.Comm)
	}

	zombies := func() []proc {
		var out []proc
		for _, p := range descendants(launcher) {
			if p.State == 'Z' {
				out = append(out, p)
			}
		}
		return out
	}

	for round := range 3 {
		cs := w.connect(t)
		w.Logs.grandchildPid(cs.ID())
		latency, err := crashAndMeasure(t, cs, "crash", map[string]any{"code": 7 + round}, nil)
		want := fmt.Sprintf("exit status %d", 7+round)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("round %d: crash answered with %v, want an error naming %q", round, err, want)
		}
		t.Logf("round %d: crash reported %q after %v", round, want, latency.Round(time.Millisecond))
		w.sessionGone(t, cs.ID())
	}

	// The orphans exit within about a second; then nothing may be left but
	// mcpwrap itself.
	var left []proc
	for i := 0; i < 200; i++ {
		left = descendants(launcher)
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
	cs := w.connect(t)
	if got := mustCall(t, cs, "echo", map[string]any{"text": "pid 1"}); got != "pid 1" {
		t.Errorf("echo under PID 1: %q", got)
	}
	if err := cs.Close(); err != nil {
		t.Errorf("closing: %v", err)
	}
	ended := w.Logs.mustWait("ending the last session", func(l logLine) bool {
		return l.Str("session") == cs.ID() && l.Msg() == "session ended"
	})
	if ended.Str("exit") != "exit status 0" {
		t.Errorf("last session ended with %q, want exit status 0", ended.Str("exit"))
	}

	start := time.Now()
	w.signal(syscall.SIGTERM)
	if code, took := w.waitExit(start, 3*shutdownBudget); code != 0 {
		t.Errorf("mcpwrap as PID 1: exit %d after %v, want 0", code, took)
	}
}

func TestPTYCarriesHundredKiB(t *testing.T) {
	w := startWrapper(t, launch{env: map[string]string{"MCPWRAP_PTY": "true"}})
	cs := w.connect(t)
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
	got, err := call(ctx, cs, "echo", map[string]any{"text": text})
	if err != nil {
		t.Fatalf("echo through the pty: %v", err)
	}
	if got != text {
		t.Fatalf("echo through the pty: %d bytes back, want the same %d bytes", len(got), len(text))
	}
	big := mustCall(t, cs, "big", map[string]any{"size": 100 << 10})
	if len(big) != 100<<10 {
		t.Errorf("big through the pty: %d bytes, want %d", len(big), 100<<10)
	}
	// The child really runs on a terminal.
	pid := childPid(t, cs)
	for _, fd := range []string{"0", "1"} {
		if tty, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd)); err != nil || !strings.HasPrefix(tty, "/dev/pts/") {
			t.Errorf("child fd %s is %q (%v), want a /dev/pts terminal", fd, tty, err)
		}
	}
}
