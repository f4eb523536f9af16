package proxy_test

import (
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
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
		// A user who was given a client knows where it is registered; the
		// scenario says so only through the remote's metadata.
		args = append(args, "--client-id", scenario.ClientID, "--client-secret", scenario.ClientSecret,
			"--client-issuer", scenarioIssuer(t, flag.Arg(0)))
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

// scenarioIssuer is the authorization server the remote's protected
// resource metadata names, at either well-known place.
func scenarioIssuer(t *testing.T, remote string) string {
	t.Helper()
	u, err := url.Parse(remote)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/.well-known/oauth-protected-resource" + u.Path, "/.well-known/oauth-protected-resource"} {
		resp, err := http.Get(u.Scheme + "://" + u.Host + p)
		if err != nil {
			continue
		}
		var prm struct {
			AuthorizationServers []string `json:"authorization_servers"`
		}
		err = json.NewDecoder(resp.Body).Decode(&prm)
		resp.Body.Close()
		if err == nil && resp.StatusCode == http.StatusOK && len(prm.AuthorizationServers) > 0 {
			return prm.AuthorizationServers[0]
		}
	}
	t.Fatalf("no protected resource metadata names an authorization server for %s", remote)
	return ""
}

// conformanceEnv turns on TestConformanceClientAuth, which needs Node and
// the suite installed in conformance/ (npm ci there) and takes a minute.
const conformanceEnv = "MCPWRAP_CONFORMANCE_CLIENT"

// The scenarios the suite's "auth" list leaves out: those of 2026-07-28
// and the 2025-03-26 fallbacks.
var extraAuthScenarios = []string{
	"resource-mismatch", "offline-access-scope", "offline-access-not-supported", "authorization-server-migration",
	"iss-supported", "iss-not-advertised", "iss-supported-missing", "iss-wrong-issuer", "iss-unexpected", "iss-normalized",
	"metadata-issuer-mismatch", "2025-03-26-oauth-metadata-backcompat", "2025-03-26-oauth-endpoint-fallback",
}

// TestConformanceClientAuth runs the conformance suite's client
// authorization scenarios against the shim, through the driver above.
func TestConformanceClientAuth(t *testing.T) {
	if os.Getenv(conformanceEnv) == "" {
		t.Skip("set " + conformanceEnv + "=1 to run the conformance suite's client auth scenarios (needs Node and npm ci in conformance/)")
	}
	dir, err := filepath.Abs("../conformance")
	if err != nil {
		t.Fatal(err)
	}
	cli := filepath.Join(dir, "node_modules", "conformance-next", "dist", "index.js")
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("the suite is not installed: %v (run npm ci in conformance/)", err)
	}
	mcpwrapBin, _ := testkit.Programs(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	driver := exe + " -test.run=^TestConformanceDriver$"
	env := append(os.Environ(), driverEnv+"="+mcpwrapBin, conformanceEnv+"=")
	if out, err := exec.Command("node", "-p", "process.versions.node.split('.')[0] < 22").Output(); err == nil && strings.TrimSpace(string(out)) == "true" {
		env = append(env, "NODE_OPTIONS=--require="+filepath.Join(dir, "node22-polyfill.cjs"))
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("node", append([]string{cli, "client", "--command", driver, "-o", t.TempDir()}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("conformance %q: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out := run("--suite", "auth")
	total := regexp.MustCompile(`Total: (\d+) passed, (\d+) failed, (\d+) warnings`).FindStringSubmatch(out)
	if total == nil || total[2] != "0" || total[3] != "0" {
		t.Errorf("auth suite: %v\n%s", total, out)
	} else {
		t.Logf("auth suite: %s passed, 0 failed, 0 warnings", total[1])
	}
	one := regexp.MustCompile(`Passed: (\d+)/(\d+), (\d+) failed, (\d+) warnings`)
	for _, sc := range extraAuthScenarios {
		out := run("--scenario", "auth/"+sc, "--timeout", "60000")
		m := one.FindStringSubmatch(out)
		if m == nil || m[1] != m[2] || m[3] != "0" || m[4] != "0" {
			t.Errorf("auth/%s: %v\n%s", sc, m, out)
			continue
		}
		t.Logf("auth/%s: %s/%s passed", sc, m[1], m[2])
	}
}
