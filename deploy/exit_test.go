package deploy_test

import (
	"strings"
	"testing"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
)

// TestExitWhenIdle: with MCPWRAP_EXIT_WHEN_IDLE, a process nobody uses exits
// 0 by itself, so the Machine under it stops even without the proxy's help.
func TestExitWhenIdle(t *testing.T) {
	t.Run("never used", func(t *testing.T) {
		t.Parallel()
		in := startMcpwrap(t, env{"MCPWRAP_TOKEN": token, "MCPWRAP_EXIT_WHEN_IDLE": "1s"})
		if code := in.WaitExit(); code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
		if len(in.Logs.Find(func(l testkit.Line) bool {
			return l.Msg() == "shutting down" && strings.HasPrefix(l.Str("reason"), "no session for")
		})) == 0 {
			t.Error(`no "shutting down" log line with reason "no session for ..."`)
		}
	})

	// A client that goes away with its stream open: the idle timeout ends
	// the session, and then no session exists, so the process exits. Before
	// that, a session in use, even by one long call, keeps it running.
	t.Run("after a session left open", func(t *testing.T) {
		t.Parallel()
		in := startMcpwrap(t, env{
			"MCPWRAP_TOKEN":                token,
			"MCPWRAP_EXIT_WHEN_IDLE":       "1s",
			"MCPWRAP_SESSION_IDLE_TIMEOUT": "2s",
			"MCPWRAP_KEEPALIVE":            "100ms",
		})
		cs := connect(t, in.Base+"/mcp", token, nil) // opens its GET stream
		pid := testkit.AskPid(t, cs)
		testkit.MustCall(t, cs, "sleep", map[string]any{"ms": 3000})
		if code := in.WaitExit(); code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
		if testkit.Alive(pid) {
			t.Errorf("the session's child %d outlived mcpwrap", pid)
		}
		if len(in.Logs.Find(func(l testkit.Line) bool { return l.Msg() == "ending idle session" })) == 0 {
			t.Error("the session did not end by the idle timeout")
		}
	})
}
