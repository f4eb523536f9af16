package proxy_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// builtin is a real mcpwrap serving the everything fixture with its
// built-in authorization server (MCPWRAP_AUTH_SECRET), on the same address
// at every start; its key page takes testToken.
type builtin struct{ *server }

func newBuiltin(t *testing.T) *builtin {
	b := &builtin{newServer(t)}
	t.Cleanup(func() {
		if b.proc != nil {
			b.proc.Stop()
		}
	})
	return b
}

func (b *builtin) url() string { return b.server.url("/mcp") }

// start runs mcpwrap with secret and waits until it listens.
func (b *builtin) start(secret string) {
	b.t.Helper()
	b.startWith(map[string]string{"MCPWRAP_AUTH_SECRET": secret})
}

// builtinShims runs `mcpwrap proxy` against b with a home of its own.
type builtinShims struct {
	t       *testing.T
	b       *builtin
	home    string
	browser string
	log     string
}

func (w *builtinShims) env(browser string) []string {
	return []string{
		"HOME=" + w.home, "XDG_CONFIG_HOME=" + filepath.Join(w.home, "config"),
		"BROWSER=" + browser, browserLogEnv + "=" + w.log, browserKeyEnv + "=" + testToken,
		"MCPWRAP_TOKEN=", "MCPWRAP_TOKEN_FILE=", "MCPWRAP_PROXY_TOKEN_STORE=file",
	}
}

func (w *builtinShims) connect(ctx context.Context, browser string) (*mcp.ClientSession, *testkit.LogBook, error) {
	w.t.Helper()
	cmd, stderr := realShim(w.t, w.env(browser), w.b.url())
	client := mcp.NewClient(&mcp.Implementation{Name: "oauth-builtin-test", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err == nil {
		w.t.Cleanup(func() { cs.Close() })
	}
	return cs, stderr, err
}

func (w *builtinShims) browserRuns() int {
	b, err := os.ReadFile(w.log)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "ok\n")
}

// expireStored moves the stored access token's expiry into the past, as
// an hour passing would.
func (w *builtinShims) expireStored() {
	w.t.Helper()
	files, _ := filepath.Glob(filepath.Join(w.home, "config", "mcpwrap", "proxy", "*.json"))
	if len(files) != 1 {
		w.t.Fatalf("token files = %q, want one", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		w.t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(b, &rec); err != nil {
		w.t.Fatal(err)
	}
	grants, _ := rec["grants"].(map[string]any)
	g, _ := grants[rec["current"].(string)].(map[string]any)
	if g == nil || g["access_token"] == nil {
		w.t.Fatalf("no current grant with an access token in the token file")
	}
	g["expiry"] = time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	if b, err = json.Marshal(rec); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(files[0], b, 0o600); err != nil {
		w.t.Fatal(err)
	}
}

// stored returns the tokens in the token file.
func (w *builtinShims) stored() []string {
	files, _ := filepath.Glob(filepath.Join(w.home, "config", "mcpwrap", "proxy", "*.json"))
	var out []string
	for _, f := range files {
		b, _ := os.ReadFile(f)
		var rec struct {
			Grants map[string]struct {
				Access  string `json:"access_token"`
				Refresh string `json:"refresh_token"`
			} `json:"grants"`
		}
		_ = json.Unmarshal(b, &rec)
		for _, g := range rec.Grants {
			out = append(out, g.Access, g.Refresh)
		}
	}
	return out
}

// refreshes counts the refreshes the shims logged.
func refreshes(logs ...*testkit.LogBook) int {
	n := 0
	for _, l := range logs {
		n += strings.Count(l.Text(), `"message":"refreshed the access token"`)
	}
	return n
}

// TestOAuthBuiltInServer signs the shim in to mcpwrap's own authorization
// server, as a user of Claude Desktop would: the real binary on both ends,
// the SDK client launching the shim, a browser that types the key.
func TestOAuthBuiltInServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*testTimeout)
	defer cancel()
	b := newBuiltin(t)
	secret1, secret2 := strings.Repeat("s", 40), strings.Repeat("t", 40)
	b.start(secret1)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	w := &builtinShims{t: t, b: b, home: home, browser: exe + " -test.run=^TestBrowserStandIn$", log: filepath.Join(home, "browser.log")}

	// First run: one sign-in.
	cs, log1, err := w.connect(ctx, w.browser)
	if err != nil {
		t.Fatalf("first connect: %v", err)
	}
	echo(t, ctx, cs, "first")
	cs.Close()
	seen := w.stored()
	if n := w.browserRuns(); n != 1 {
		t.Fatalf("sign-ins = %d, want 1", n)
	}
	checkTokenFile(t, home)

	// Second run, no browser at hand: none needed.
	cs, log2, err := w.connect(ctx, "false")
	if err != nil {
		t.Fatalf("second connect: %v", err)
	}
	echo(t, ctx, cs, "second")
	cs.Close()

	// The access token has run out: refreshed without a word.
	w.expireStored()
	cs, log3, err := w.connect(ctx, "false")
	if err != nil {
		t.Fatalf("connect with an expired token: %v", err)
	}
	echo(t, ctx, cs, "refreshed")
	cs.Close()
	seen = append(seen, w.stored()...)
	if n := refreshes(log3); n != 1 {
		t.Fatalf("refreshes = %d, want 1", n)
	}

	// Two shims start together with an expired token: one refresh serves
	// both.
	w.expireStored()
	logs := echoFromTwoShims(ctx, t, func(ctx context.Context) (*mcp.ClientSession, *testkit.LogBook, error) {
		return w.connect(ctx, "false")
	})
	seen = append(seen, w.stored()...)
	if n := refreshes(logs...); n != 1 {
		t.Fatalf("two shims refreshed %d times, want once", n)
	}

	// The server's secret is rotated: exactly one new sign-in.
	b.stop()
	b.start(secret2)
	cs, log4, err := w.connect(ctx, w.browser)
	if err != nil {
		t.Fatalf("connect after rotation: %v", err)
	}
	echo(t, ctx, cs, "after rotation")
	echo(t, ctx, cs, "and again")
	cs.Close()
	seen = append(seen, w.stored()...)
	if n := w.browserRuns(); n != 2 {
		t.Fatalf("sign-ins after rotation = %d, want 2", n)
	}
	if n := refreshes(log1, log2, log3, logs[0], logs[1], log4); n != 2 {
		t.Fatalf("refreshes in all = %d, want 2", n)
	}
	for _, l := range []*testkit.LogBook{log1, log2, log3, logs[0], logs[1], log4} {
		for _, tok := range seen {
			if tok != "" && strings.Contains(l.Text(), tok) {
				t.Errorf("a shim log shows a token:\n%s", l.Text())
			}
		}
	}
}
