package deploy_test

import (
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
)

// TestIdleAfterALongCall ends a call that ran longer than the idle timeout
// and then waits half the timeout: the session has been idle only since the
// answer, so the next request must still find it.
func TestIdleAfterALongCall(t *testing.T) {
	in := startMcpwrap(t, env{
		"MCPWRAP_TOKEN":                token,
		"MCPWRAP_SESSION_IDLE_TIMEOUT": "4s",
	})
	cs := connect(t, in.Base+"/mcp", token, nil)
	testkit.MustCall(t, cs, "sleep", map[string]any{"ms": 8000})
	time.Sleep(2 * time.Second)
	testkit.MustCall(t, cs, "pid", nil)
}
