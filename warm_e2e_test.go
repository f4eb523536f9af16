package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
)

// childrenOf lists mcpwrap's own children: its sessions' and its warm ones.
func childrenOf(w *testkit.Process) []int {
	var out []int
	for _, p := range testkit.Procs() {
		if p.PPid == w.Pid && p.State != 'Z' {
			out = append(out, p.Pid)
		}
	}
	return out
}

// warmOf lists mcpwrap's children that belong to no session.
func warmOf(w *testkit.Process) []int {
	sessions := sessionPids(w)
	var out []int
	for _, pid := range childrenOf(w) {
		if !slices.Contains(sessions, pid) {
			out = append(out, pid)
		}
	}
	return out
}

// environOf reads a process's environment; nil once it is gone.
func environOf(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// healthz is GET /healthz: its status, sessions and fullness.
func healthz(t *testing.T, w *testkit.Process) (status, sessions int, full bool) {
	t.Helper()
	resp, err := http.Get(w.Base + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Sessions int  `json:"sessions"`
		Full     bool `json:"full"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	return resp.StatusCode, body.Sessions, body.Full
}

// TestWarmChildrenPerTenant: each tenant's sessions get warm children with
// that tenant's environment (read from /proc), the first session of a tenant
// starting its set; a shutdown leaves nothing, warm children included.
func TestWarmChildrenPerTenant(t *testing.T) {
	tenants := filepath.Join(t.TempDir(), "tenants.json")
	err := os.WriteFile(tenants, []byte(`{
		"a": {"token": "warm-tenant-a-token-0123456789", "env": {"E2E_TENANT": "a"}},
		"b": {"token": "warm-tenant-b-token-0123456789", "env": {"E2E_TENANT": "b"}}}`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	w := testkit.Start(t, testkit.Options{Env: map[string]string{
		"MCPWRAP_TENANTS_FILE":  tenants,
		"MCPWRAP_WARM_CHILDREN": "1",
		"MCPWRAP_CLOSE_GRACE":   "500ms",
		"MCPWRAP_TERM_GRACE":    "1s",
	}})
	// With tenants there is nothing to warm until a tenant comes.
	if n := len(childrenOf(w)); n != 0 {
		t.Errorf("%d children before any session, want none", n)
	}
	for _, tenant := range []string{"a", "b"} {
		c := testkit.Client{URL: w.URL, Token: "warm-tenant-" + tenant + "-token-0123456789"}
		mine := "E2E_TENANT=" + tenant
		first := testkit.AskPid(t, c.MustConnect(t))
		// The first session started the tenant's set: a warm child with
		// the tenant's environment, besides the session's own.
		var warm int
		testkit.Eventually(t, "a warm child for tenant "+tenant, func() bool {
			for _, pid := range warmOf(w) {
				if slices.Contains(environOf(pid), mine) {
					warm = pid
					return true
				}
			}
			return false
		})
		second := testkit.AskPid(t, c.MustConnect(t))
		if second != warm {
			t.Errorf("tenant %s's second session runs in %d, not the warm child %d (first: %d)", tenant, second, warm, first)
		}
		if env := environOf(second); !slices.Contains(env, mine) || slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "E2E_TENANT=") && kv != mine }) {
			t.Errorf("tenant %s's warm child has environment %q", tenant, env)
		}
	}
	testkit.Eventually(t, "a warm child per tenant again", func() bool { return len(warmOf(w)) == 2 })

	before := testkit.Descendants(w.Pid)
	groups := childrenOf(w)
	if len(groups) != 6 {
		t.Fatalf("%d children for four sessions and two warm ones", len(groups))
	}
	w.Signal(syscall.SIGTERM)
	cleanShutdown(t, w, "SIGTERM with four sessions and two warm children")
	testkit.AssertGone(t, "after shutdown", before, groups)
}

// TestWarmChildrenAreNoSessions: with more warm children than
// MCPWRAP_MAX_SESSIONS, /healthz reports no session and no fullness until a
// client opens one, the limit counts sessions only, and
// MCPWRAP_EXIT_WHEN_IDLE still ends an instance holding only warm children.
func TestWarmChildrenAreNoSessions(t *testing.T) {
	w := startWrapper(t, testkit.Options{Env: map[string]string{
		"MCPWRAP_WARM_CHILDREN": "2",
		"MCPWRAP_MAX_SESSIONS":  "1",
	}})
	var warm []int
	testkit.Eventually(t, "two warm children", func() bool { warm = warmOf(w); return len(warm) == 2 })
	if status, sessions, full := healthz(t, w); status != http.StatusOK || sessions != 0 || full {
		t.Errorf("/healthz with two warm children: %d, %d sessions, full %t; want 200, 0, false", status, sessions, full)
	}
	cs := w.Connect(t)
	if pid := testkit.AskPid(t, cs); !slices.Contains(warm, pid) {
		t.Errorf("the session runs in %d, not one of the warm %v", pid, warm)
	}
	if _, sessions, full := healthz(t, w); sessions != 1 || !full {
		t.Errorf("/healthz with one session of one allowed: %d sessions, full %t", sessions, full)
	}
	if _, err := w.Client().Connect(t.Context()); err == nil {
		t.Error("a second session opened past MCPWRAP_MAX_SESSIONS=1")
	}
	testkit.Eventually(t, "the warm set topped up", func() bool { return len(warmOf(w)) == 2 })
	if err := cs.Close(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "no session", func() bool { _, n, _ := healthz(t, w); return n == 0 })
	if _, err := w.Client().Connect(t.Context()); err != nil {
		t.Errorf("a session after the first ended: %v", err)
	}
}

// TestWarmChildrenDoNotKeepItAwake: an instance with nothing but warm
// children exits when idle, and takes them with it.
func TestWarmChildrenDoNotKeepItAwake(t *testing.T) {
	w := startWrapper(t, testkit.Options{Env: map[string]string{
		"MCPWRAP_WARM_CHILDREN":  "2",
		"MCPWRAP_EXIT_WHEN_IDLE": "2s",
		"MCPWRAP_LOG_LEVEL":      "debug",
	}})
	code := w.WaitExit()
	if code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	var warm []int
	var shut bool
	for _, l := range w.Logs.All() {
		switch l.Msg() {
		case "warm child started":
			if !shut {
				warm = append(warm, l.Int("pid"))
			}
		case "shutting down":
			shut = true
			if !strings.HasPrefix(l.Str("reason"), "no session") {
				t.Errorf("shut down for %q, want idleness", l.Str("reason"))
			}
		}
	}
	if len(warm) < 2 {
		t.Fatalf("%d warm children started before the idle exit, want 2:\n%s", len(warm), w.Logs.Dump())
	}
	testkit.AssertGone(t, "after the idle exit", nil, warm)
}

// TestWarmChildThatDiesIsReplaced: a warm child killed while it waits is
// replaced, and the next session gets the replacement.
func TestWarmChildThatDiesIsReplaced(t *testing.T) {
	w := startWrapper(t, testkit.Options{Env: map[string]string{"MCPWRAP_WARM_CHILDREN": "1"}})
	var dead int
	testkit.Eventually(t, "a warm child", func() bool {
		if pids := warmOf(w); len(pids) == 1 {
			dead = pids[0]
			return true
		}
		return false
	})
	// ESRCH: it died on its own meanwhile, which is the same case.
	if err := syscall.Kill(dead, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Fatal(err)
	}
	var next int
	testkit.Eventually(t, "a replacement warm child", func() bool {
		if pids := warmOf(w); len(pids) == 1 && pids[0] != dead {
			next = pids[0]
			return true
		}
		return false
	})
	if pid := testkit.AskPid(t, w.Connect(t)); pid != next {
		t.Errorf("the session runs in %d, not the replacement %d", pid, next)
	}
}

// TestWarmChildThatCannotRunIsReportedOnce: a command that exits as soon as
// it starts is retried with a growing pause and reported once, not once a
// retry; sessions still get the error of a child that will not run.
func TestWarmChildThatCannotRunIsReportedOnce(t *testing.T) {
	w := testkit.Start(t, testkit.Options{
		Command: []string{"/bin/sh", "-c", "echo no config >&2; exit 3"},
		Env: map[string]string{
			"MCPWRAP_WARM_CHILDREN": "2",
			"MCPWRAP_LOG_LEVEL":     "debug",
		},
	})
	failure := func(l testkit.Line) bool {
		return strings.HasPrefix(l.Msg(), "warm child exited soon after it started")
	}
	testkit.Eventually(t, "several failed warm children", func() bool {
		return len(w.Logs.Find(func(l testkit.Line) bool { return failure(l) && l.Str("level") == "debug" })) >= 3
	})
	reported := w.Logs.Find(func(l testkit.Line) bool { return failure(l) && l.Str("level") == "error" })
	if len(reported) != 1 {
		t.Fatalf("%d error lines for the failing warm child, want 1", len(reported))
	}
	if !slices.Contains(strings.Fields(strings.Join(reportedStderr(reported[0]), " ")), "config") {
		t.Errorf("the report does not carry the child's stderr: %v", reported[0])
	}
	w.Signal(syscall.SIGTERM)
	if code := w.WaitExit(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}

func reportedStderr(l testkit.Line) []string {
	var out []string
	if v, ok := l["stderr"].([]any); ok {
		for _, s := range v {
			if s, ok := s.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}
