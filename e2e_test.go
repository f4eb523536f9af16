package main

// End-to-end tests of the whole program, in the manner of tailscale's
// containerboot test: the real mcpwrap binary and the everything fixture
// are built once (testkit.Programs); each test starts mcpwrap as a process
// wrapping real children, talks to it with the official Go SDK client over
// real HTTP on 127.0.0.1, sends it real signals, and asserts exit codes,
// log lines and what /proc says is left behind.

import (
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
)

const e2eToken = "e2e-token-9d2a7c"

func TestMain(m *testing.M) {
	os.Exit(testkit.Main(m))
}

// fixture is the everything server, the wrapped stdio server.
func fixture(t testing.TB) string {
	_, f := testkit.Programs(t)
	return f
}

// startWrapper starts mcpwrap with the token and short graces of these
// tests, under the options' own settings.
func startWrapper(t *testing.T, o testkit.Options) *testkit.Process {
	t.Helper()
	env := map[string]string{
		"MCPWRAP_CLOSE_GRACE": "500ms",
		"MCPWRAP_TERM_GRACE":  "1s",
	}
	for k, v := range o.Env {
		env[k] = v
	}
	o.Env, o.Token = env, e2eToken
	return testkit.Start(t, o)
}

// grandchildPid is the pid the fixture logs for its grandchild
// (EVERYTHING_SPAWN_GRANDCHILD=1) in the given session.
func grandchildPid(t *testing.T, w *testkit.Process, session string) int {
	t.Helper()
	l := w.Logs.MustWait(t, "naming the grandchild of "+session, func(l testkit.Line) bool {
		return l.Str("session") == session && strings.HasPrefix(l.Msg(), "everything: grandchild pid=")
	})
	pid, err := strconv.Atoi(strings.TrimPrefix(l.Msg(), "everything: grandchild pid="))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

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
func sessionGone(t *testing.T, w *testkit.Process, id string) {
	t.Helper()
	status, _, body := w.Send(t, testkit.Request{Session: id, Body: `{"jsonrpc":"2.0","id":9,"method":"ping"}`})
	if status != http.StatusNotFound {
		t.Errorf("request to ended session %s: %d %s, want 404", id, status, body)
	}
}
