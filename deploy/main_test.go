package deploy_test

import (
	"os"
	"testing"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const token = "deploy-test-token-7d2e"

func TestMain(m *testing.M) {
	os.Exit(testkit.Main(m))
}

// env is the settings of an instance.
type env map[string]string

// startMcpwrap runs the real mcpwrap with the given settings, wrapping
// command (the example server by default); its MCPWRAP_TOKEN, if any, is
// what its Connect and Send present.
func startMcpwrap(t *testing.T, vars env, command ...string) *testkit.Process {
	t.Helper()
	return testkit.Start(t, testkit.Options{Env: vars, Token: vars["MCPWRAP_TOKEN"], Command: command})
}

// connect opens a session with the official Go SDK client, which gives up
// on a broken stream at once instead of retrying it.
func connect(t *testing.T, url, tok string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	return testkit.Client{URL: url, Token: tok, Options: opts, MaxRetries: -1}.MustConnect(t)
}
