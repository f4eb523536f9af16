package main

// The Node OAuth clients, pinned in oauth/e2e (npm ci there): the
// TypeScript SDK's client, mcp-remote (the stdio shim most desktop clients
// use for remote servers), and the conformance suite's authorization
// scenarios (pinned in conformance/). Without node or the packages these
// tests skip, except in CI (CI=true), where they fail.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// nodeFile is node and the absolute path of rel, a file the pinned packages
// installed; it skips the test when either is missing, outside CI.
func nodeFile(t *testing.T, rel string) (node, path string) {
	t.Helper()
	path, err := filepath.Abs(rel)
	if err != nil {
		t.Fatal(err)
	}
	node, err = exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(path)
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI needs node and the pinned packages (npm ci in %s): %v", filepath.Dir(rel), err)
		}
		t.Skipf("needs node and the pinned packages (npm ci): %v", err)
	}
	return node, path
}

// nodeEnv is the environment for a Node client: this process's, without
// mcpwrap's settings or a display (no real browser may open), plus extra.
// On Node 20 the conformance CLI needs the repository's polyfill; on 22 it
// does nothing.
func nodeEnv(t *testing.T, extra ...string) []string {
	t.Helper()
	polyfill, err := filepath.Abs("conformance/node22-polyfill.cjs")
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "MCPWRAP_"), k == "DISPLAY", k == "WAYLAND_DISPLAY", k == "BROWSER", k == "NODE_OPTIONS":
		default:
			env = append(env, kv)
		}
	}
	return append(append(env, "NODE_OPTIONS=--require="+polyfill), extra...)
}

// standInBrowser serves GET /open?url=… on loopback: the Node clients hand
// it the URL they would open in a browser, and it signs in with b and
// follows the redirect back to the client. It counts the URLs opened.
func standInBrowser(t *testing.T, b *browser) (string, *atomic.Int32) {
	t.Helper()
	var opened atomic.Int32
	var mu sync.Mutex // one person, one browser: sign-ins one at a time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		opened.Add(1)
		if err := b.open(r.URL.Query().Get("url")); err != nil {
			t.Errorf("stand-in browser: %v", err)
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		io.WriteString(w, "signed in")
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &opened
}

// TestOAuthTypeScriptClient signs in with the TypeScript SDK's OAuth client
// (oauth/e2e/ts-client.mjs), lists the tools and calls one.
func TestOAuthTypeScriptClient(t *testing.T) {
	node, script := nodeFile(t, "oauth/e2e/ts-client.mjs")
	nodeFile(t, "oauth/e2e/node_modules/@modelcontextprotocol/sdk/package.json")
	s := startOAuth(t, freePort(t), oauthSecret, "")
	browserURL, opened := standInBrowser(t, newBrowser(oauthKey))

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Env = nodeEnv(t, "MCP_URL="+s.URL, "BROWSER_URL="+browserURL)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ts-client.mjs: %v\n%s%s", err, out, stderr.Bytes())
	}
	var got struct {
		Tools        []string `json:"tools"`
		Text         string   `json:"text"`
		SignIns      int      `json:"signIns"`
		RefreshToken bool     `json:"refreshToken"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &got); err != nil {
		t.Fatalf("ts-client.mjs printed %q: %v", out, err)
	}
	if got.Text != "from typescript" || len(got.Tools) == 0 || got.SignIns != 1 || opened.Load() != 1 || !got.RefreshToken {
		t.Errorf("the TypeScript client: %+v, browser opened %d times", got, opened.Load())
	}
}

// TestOAuthMcpRemote runs mcp-remote, the stdio shim, with the Go SDK client
// on its stdin and stdout: it finds the sign-in from mcpwrap's 401, opens
// the "browser" (BROWSER, honoured by xdg-open), takes the code at its own
// callback, and proxies the calls. Run again after a restart of mcpwrap, it
// signs in no more: the tokens it stored still hold.
func TestOAuthMcpRemote(t *testing.T) {
	node, proxy := nodeFile(t, "oauth/e2e/node_modules/mcp-remote/dist/proxy.js")
	_, standIn := nodeFile(t, "oauth/e2e/browser.mjs")
	port := freePort(t)
	s := startOAuth(t, port, oauthSecret, "")
	browserURL, opened := standInBrowser(t, newBrowser(oauthKey))
	config := t.TempDir()

	shim := func(text string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		cmd := exec.Command(node, proxy, s.URL, strconv.Itoa(freePort(t)), "--allow-http")
		cmd.Env = nodeEnv(t, "BROWSER="+standIn, "STANDIN_BROWSER_URL="+browserURL, "MCP_REMOTE_CONFIG_DIR="+config)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		client := mcp.NewClient(&mcp.Implementation{Name: "mcpwrap-e2e-shim", Version: "1"}, nil)
		cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
		if err != nil {
			t.Fatalf("mcp-remote: %v\n%s", err, stderr.String())
		}
		defer cs.Close()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": text}})
		if err != nil || res.IsError {
			t.Fatalf("echo through mcp-remote: %v %+v\n%s", err, res, stderr.String())
		}
		if got := res.Content[0].(*mcp.TextContent).Text; got != text {
			t.Errorf("echo through mcp-remote: %q, want %q", got, text)
		}
	}
	shim("through the shim")
	if n := opened.Load(); n != 1 {
		t.Fatalf("the browser opened %d times, want once", n)
	}
	s.stop()
	s = startOAuth(t, port, oauthSecret, "")
	shim("after a restart")
	if n := opened.Load(); n != 1 {
		t.Errorf("after a restart mcp-remote signed in again (browser opened %d times)", n)
	}
}

var conformanceTotal = regexp.MustCompile(`Total: (\d+) passed, (\d+) failed`)

// TestOAuthConformanceAuthorization runs the conformance suite's
// authorization scenarios (metadata, then a whole authorization code grant
// whose sign-in the stand-in browser does) against the built-in server,
// and fails on any failed check.
func TestOAuthConformanceAuthorization(t *testing.T) {
	node, cli := nodeFile(t, "conformance/node_modules/conformance-next/dist/index.js")
	s := startOAuth(t, freePort(t), oauthSecret, "")
	b := newBrowser(oauthKey)
	port := freePort(t)
	redirect := fmt.Sprintf("http://127.0.0.1:%d/callback", port)
	var reg struct {
		ClientID string `json:"client_id"`
	}
	resp, err := http.Post(s.Base+"/register", "application/json", strings.NewReader(`{"redirect_uris":["`+redirect+`"],"client_name":"MCP conformance","token_endpoint_auth_method":"none"}`))
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()
	if reg.ClientID == "" {
		t.Fatalf("registering: %s", resp.Status)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	results := t.TempDir()
	cmd := exec.CommandContext(ctx, node, cli, "authorization", "--url", s.Base, "--client-id", reg.ClientID,
		"--resource", s.URL, "--port", strconv.Itoa(port), "-o", results)
	cmd.Env = nodeEnv(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var output strings.Builder
	signedIn := make(chan error, 1)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		output.WriteString(line + "\n")
		if strings.HasPrefix(line, s.Base+"/authorize?") {
			// The suite waits for its callback while the person signs in;
			// its callback server may still be starting when the URL shows.
			go func() {
				back, err := b.signIn(line)
				if err == nil {
					for range 100 {
						if _, err = b.do(http.MethodGet, back.String(), nil); err == nil {
							break
						}
						time.Sleep(100 * time.Millisecond)
					}
				}
				signedIn <- err
			}()
		}
	}
	err = cmd.Wait()
	t.Logf("conformance authorization:\n%s", output.String())
	select {
	case err := <-signedIn:
		if err != nil {
			t.Errorf("signing in for the suite: %v", err)
		}
	default:
		t.Error("the suite never asked for a sign-in")
	}
	m := conformanceTotal.FindStringSubmatch(output.String())
	if m == nil {
		t.Fatalf("no summary from the suite (%v):\n%s", err, stderr.String())
	}
	if passed, _ := strconv.Atoi(m[1]); passed == 0 || m[2] != "0" || err != nil {
		t.Errorf("conformance authorization: %s passed, %s failed (exit: %v)\n%s", m[1], m[2], err, stderr.String())
	}
}
