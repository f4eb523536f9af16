package deploy_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
)

// idleEnv is a short idle timeout, with keep-alives far more often.
var idleEnv = env{
	"MCPWRAP_TOKEN":                token,
	"MCPWRAP_SESSION_IDLE_TIMEOUT": "2s",
	"MCPWRAP_KEEPALIVE":            "100ms",
}

// TestIdleSessionEndsDespiteKeepAlives leaves a session with nothing but
// its open GET stream, which carries a keep-alive every 100 ms. The idle
// timeout still ends the session, closes the stream and stops the child:
// keep-alives are not activity, or the Fly proxy would never see the
// Machine idle.
func TestIdleSessionEndsDespiteKeepAlives(t *testing.T) {
	in := startMcpwrap(t, idleEnv)
	url := in.Base + "/mcp"
	id := in.OpenRaw(t)
	pid := in.ChildPid(t, id)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", id)
	req.Header.Set("MCP-Protocol-Version", "2025-06-18")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET stream: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET stream: %d", resp.StatusCode)
	}

	// Read the stream until the server ends it.
	keepAlives := 0
	r := bufio.NewReader(resp.Body)
	for {
		line, err := r.ReadString('\n')
		if strings.HasPrefix(line, ":") {
			keepAlives++
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the idle session's stream is still open after 60s (%d keep-alives): %v", keepAlives, err)
		}
	}
	if keepAlives < 3 {
		t.Errorf("the stream carried %d keep-alives before it closed, want several: the test did not test keep-alives", keepAlives)
	}
	in.Logs.MustWait(t, "ending idle session", func(l testkit.Line) bool {
		return l.Msg() == "ending idle session" && l.Str("session") == id
	})
	testkit.Eventually(t, "the idle session's child to exit", func() bool { return !testkit.Alive(pid) })
	if status, _, body := in.Send(t, testkit.Request{Session: id, Body: `{"jsonrpc":"2.0","id":2,"method":"ping"}`}); status != http.StatusNotFound {
		t.Errorf("request to the ended session: %d %s, want 404", status, body)
	}
}

// TestActiveSessionsOutliveTheIdleTimeout keeps one session busy with a call
// longer than the idle timeout and another with frequent requests: neither
// is ended.
func TestActiveSessionsOutliveTheIdleTimeout(t *testing.T) {
	in := startMcpwrap(t, idleEnv)
	url := in.Base + "/mcp"

	t.Run("a call running past the timeout", func(t *testing.T) {
		t.Parallel()
		cs := connect(t, url, token, nil)
		if got := testkit.MustCall(t, cs, "sleep", map[string]any{"ms": 5000}); got == "" {
			t.Error("sleep returned nothing")
		}
	})
	t.Run("requests more often than the timeout", func(t *testing.T) {
		t.Parallel()
		cs := connect(t, url, token, nil)
		pid := testkit.MustCall(t, cs, "pid", nil)
		for i := range 25 { // 5 s, more than twice the timeout
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := cs.Ping(ctx, nil)
			cancel()
			if err != nil {
				t.Fatalf("ping %d: %v", i, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if got := testkit.MustCall(t, cs, "pid", nil); got != pid {
			t.Errorf("pid %s, then %s: the session was replaced", pid, got)
		}
		if _, err := strconv.Atoi(pid); err != nil {
			t.Errorf("pid %q", pid)
		}
	})
}
