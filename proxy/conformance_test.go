package proxy_test

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// driverEnv makes this test binary the MCP client that the conformance
// suite's client scenarios launch: it runs `mcpwrap proxy URL` (the binary
// named by the variable) as its stdio server and does what a user's client
// does — initialize, list the tools, call each — while the stand-in browser
// signs in.
const driverEnv = "MCPWRAP_CONFORMANCE_SHIM"

// TestConformanceDriver is not a test: it is the conformance driver, and
// does nothing unless run as one.
func TestConformanceDriver(t *testing.T) {
	shim := os.Getenv(driverEnv)
	if shim == "" {
		t.Skip("runs only as the conformance driver")
	}
	if flag.NArg() != 1 {
		t.Fatalf("want the server URL as the one argument, got %q", flag.Args())
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	// What a user would configure: the client's metadata document, and
	// a client registered ahead of time where the scenario has one.
	args := []string{"proxy", "--retry-for", "20s", "--client-metadata-url", "https://conformance-test.local/client-metadata.json"}
	var scenario struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if c := os.Getenv("MCP_CONFORMANCE_CONTEXT"); c != "" {
		if err := json.Unmarshal([]byte(c), &scenario); err != nil {
			t.Fatalf("MCP_CONFORMANCE_CONTEXT: %v", err)
		}
	}
	if scenario.ClientID != "" {
		args = append(args, "--client-id", scenario.ClientID, "--client-secret", scenario.ClientSecret)
	}
	cmd := exec.Command(shim, append(args, flag.Arg(0))...)
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, "config"),
		"BROWSER="+exe+" -test.run=^TestBrowserStandIn$", browserLogEnv+"="+filepath.Join(home, "browser.log"),
		"MCPWRAP_PROXY_TOKEN_STORE=file", "MCPWRAP_LOG_LEVEL=debug", driverEnv+"=")
	cmd.Stderr = os.Stderr
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpwrap-proxy-conformance", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("list tools: %v", err)
	}
	for _, tool := range tools.Tools {
		if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool.Name, Arguments: map[string]any{}}); err != nil {
			t.Errorf("call %s: %v", tool.Name, err)
		}
	}
}
