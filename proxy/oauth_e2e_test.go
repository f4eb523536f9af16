package proxy_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The stand-in browser is this test binary re-run with browserLogEnv set:
// $BROWSER names it, and the shim hands it the authorization URL.
const (
	browserLogEnv = "MCPWRAP_TEST_BROWSER_LOG" // a file it appends a line to per sign-in
	browserKeyEnv = "MCPWRAP_TEST_BROWSER_KEY" // the tenant key it types in
)

// TestBrowserStandIn is not a test: it is the stand-in browser, and does
// nothing unless run as one.
func TestBrowserStandIn(t *testing.T) {
	logFile := os.Getenv(browserLogEnv)
	if logFile == "" {
		t.Skip("runs only as the stand-in browser")
	}
	if flag.NArg() != 1 {
		t.Fatalf("want the URL as the one argument, got %q", flag.Args())
	}
	err := signInLikeABrowser(flag.Arg(0), os.Getenv(browserKeyEnv))
	f, ferr := os.OpenFile(logFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if ferr != nil {
		t.Fatal(ferr)
	}
	defer f.Close()
	result := "ok"
	if err != nil {
		result = "failed: " + err.Error()
	}
	fmt.Fprintln(f, result)
	if err != nil {
		t.Fatal(err)
	}
}

var (
	formRe   = regexp.MustCompile(`(?is)<form[^>]*>.*?</form>`)
	actionRe = regexp.MustCompile(`(?i)action="([^"]*)"`)
	inputRe  = regexp.MustCompile(`(?i)<input[^>]*>`)
	buttonRe = regexp.MustCompile(`(?i)<button[^>]*>`)
	attrRe   = regexp.MustCompile(`(?i)(\w+)="([^"]*)"`)
)

func attrs(tag string) map[string]string {
	m := map[string]string{}
	for _, a := range attrRe.FindAllStringSubmatch(tag, -1) {
		m[strings.ToLower(a[1])] = html.UnescapeString(a[2])
	}
	return m
}

// pickForm chooses the form a user would submit: the one asking for the
// key, else the one that allows, else the first.
func pickForm(forms []string) string {
	for _, f := range forms {
		if strings.Contains(f, `type="password"`) {
			return f
		}
	}
	for _, f := range forms {
		if strings.Contains(f, `value="allow"`) || strings.Contains(f, `value="approve"`) {
			return f
		}
	}
	if len(forms) > 0 {
		return forms[0]
	}
	return ""
}

// signInLikeABrowser does what a user does in a browser: opens the URL,
// types the key into the key page, allows on the consent page, and follows
// the redirect to the shim's callback.
func signInLikeABrowser(authURL, key string) error {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(authURL)
	for range 5 {
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Request.URL.Path == "/callback" {
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "close this tab") {
				return fmt.Errorf("callback page: %s %s", resp.Status, body)
			}
			return nil
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s %s", resp.Request.URL.Path, resp.Status, body)
		}
		form := pickForm(formRe.FindAllString(string(body), -1))
		if form == "" {
			return fmt.Errorf("%s: no form in %s", resp.Request.URL.Path, body)
		}
		vals := url.Values{}
		for _, in := range inputRe.FindAllString(form, -1) {
			a := attrs(in)
			if a["type"] == "password" {
				vals.Set(a["name"], key)
			} else if a["name"] != "" {
				vals.Set(a["name"], a["value"])
			}
		}
		for _, b := range buttonRe.FindAllString(form, -1) {
			if a := attrs(b); a["name"] != "" && (a["value"] == "allow" || a["value"] == "approve") {
				vals.Set(a["name"], a["value"])
			}
		}
		action := ""
		if m := actionRe.FindStringSubmatch(form); m != nil {
			action = html.UnescapeString(m[1])
		}
		next, perr := resp.Request.URL.Parse(action)
		if perr != nil {
			return perr
		}
		resp, err = c.PostForm(next.String(), vals)
	}
	if err != nil {
		return err
	}
	resp.Body.Close()
	return errors.New("no callback after five pages")
}

// oauthWorld is a real mcpwrap behind the stand-in authorization server,
// and a home of its own for the shims' configuration.
type oauthWorld struct {
	t       *testing.T
	as      *standInAS
	home    string
	browser string // $BROWSER running the stand-in
	log     string // the stand-in's log: a line per sign-in
}

func newOAuthWorld(t *testing.T) *oauthWorld {
	srv := newServer(t)
	srv.start()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	return &oauthWorld{
		t:       t,
		as:      newStandInAS(t, srv.url("/mcp")),
		home:    home,
		browser: exe + " -test.run=^TestBrowserStandIn$",
		log:     filepath.Join(home, "browser.log"),
	}
}

// env is the shims' environment: the temporary home, the stand-in browser
// (or the given $BROWSER) and no token.
func (w *oauthWorld) env(browser string) []string {
	return []string{
		"HOME=" + w.home, "XDG_CONFIG_HOME=" + filepath.Join(w.home, "config"),
		"BROWSER=" + browser, browserLogEnv + "=" + w.log, browserKeyEnv + "=" + tenantKey,
		"MCPWRAP_TOKEN=", "MCPWRAP_TOKEN_FILE=", "MCPWRAP_PROXY_TOKEN_STORE=file",
	}
}

// browserRuns returns what the stand-in browser logged, a line per run.
func (w *oauthWorld) browserRuns() []string {
	b, err := os.ReadFile(w.log)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		w.t.Fatal(err)
	}
	return strings.Fields(strings.TrimSpace(string(b)))
}

// connect starts `mcpwrap proxy` as the SDK client's stdio child.
func (w *oauthWorld) connect(ctx context.Context, browser string, args ...string) (*mcp.ClientSession, *testkit.LogBook, error) {
	w.t.Helper()
	cmd, stderr := realShim(w.t, w.env(browser), append(args, w.as.resource())...)
	client := mcp.NewClient(&mcp.Implementation{Name: "oauth-test", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err == nil {
		w.t.Cleanup(func() { cs.Close() })
	}
	return cs, stderr, err
}

// echo calls the echo tool and fails the test unless it comes back.
func echo(t *testing.T, ctx context.Context, cs *mcp.ClientSession, text string) {
	t.Helper()
	if got, err := callText(ctx, cs, "echo", map[string]any{"text": text}); err != nil || got != text {
		t.Fatalf("echo %q = %q, %v", text, got, err)
	}
}

// noSecrets fails t if a log shows anything the authorization server
// issued.
func (w *oauthWorld) noSecrets(logs ...*testkit.LogBook) {
	w.t.Helper()
	for _, l := range logs {
		s := l.Text()
		for _, secret := range w.as.issued() {
			if strings.Contains(s, secret) {
				w.t.Errorf("a log shows an issued token or code")
			}
		}
	}
}

func TestOAuthSignInOnceThenRefresh(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*testTimeout)
	defer cancel()
	w := newOAuthWorld(t)

	// First run: the remote asks for OAuth; the browser signs in once.
	cs, log1, err := w.connect(ctx, w.browser)
	if err != nil {
		t.Fatalf("first connect: %v", err)
	}
	echo(t, ctx, cs, "first")
	if runs := w.browserRuns(); len(runs) != 1 || runs[0] != "ok" {
		t.Fatalf("browser runs = %q, want one that worked", runs)
	}
	if in, _, reg := w.as.counts(); in != 1 || reg != 1 {
		t.Fatalf("sign-ins = %d, registrations = %d; want 1 and 1", in, reg)
	}
	cs.Close()

	// The tokens are kept where only the user can read them.
	checkTokenFile(t, w.home)

	// Second run, with a browser that cannot open: none is needed.
	cs, log2, err := w.connect(ctx, "false")
	if err != nil {
		t.Fatalf("second connect: %v", err)
	}
	echo(t, ctx, cs, "second")

	// The access token runs out: the shim refreshes it without a word.
	w.as.expireAccess()
	echo(t, ctx, cs, "after expiry")
	if in, ref, _ := w.as.counts(); in != 1 || ref != 1 {
		t.Fatalf("after expiry: sign-ins = %d, refreshes = %d; want 1 and 1", in, ref)
	}
	if runs := w.browserRuns(); len(runs) != 1 {
		t.Fatalf("browser runs = %q after a refresh, want still one", runs)
	}
	// The refresh names the remote (RFC 8707), as the sign-in did, so the
	// new token is for it.
	if got := w.as.refreshResources(); len(got) != 1 || got[0] != w.as.resource() {
		t.Errorf("refresh requests named resources %q, want %q", got, w.as.resource())
	}
	cs.Close()

	// The refresh token runs out too: one sign-in, with a new registration,
	// since the old one may be void as well.
	cs, log3, err := w.connect(ctx, w.browser)
	if err != nil {
		t.Fatalf("third connect: %v", err)
	}
	w.as.expireAccess()
	w.as.revokeRefresh()
	echo(t, ctx, cs, "after the refresh token ran out")
	if in, _, reg := w.as.counts(); in != 2 || reg != 2 {
		t.Fatalf("after the refresh token ran out: sign-ins = %d, registrations = %d; want 2 and 2", in, reg)
	}
	cs.Close()

	// The server's key changes: every token and registration is void. One
	// new sign-in (with a new registration) puts it right.
	w.as.rotate()
	cs, log4, err := w.connect(ctx, w.browser)
	if err != nil {
		t.Fatalf("connect after rotation: %v", err)
	}
	echo(t, ctx, cs, "after rotation")
	echo(t, ctx, cs, "and again")
	if in, _, reg := w.as.counts(); in != 3 || reg != 3 {
		t.Fatalf("after rotation: sign-ins = %d, registrations = %d; want 3 and 3", in, reg)
	}
	if runs := w.browserRuns(); len(runs) != 3 {
		t.Fatalf("browser runs = %q after rotation, want three", runs)
	}
	cs.Close()
	w.noSecrets(log1, log2, log3, log4)
}

func TestOAuthTwoShimsRefreshOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*testTimeout)
	defer cancel()
	w := newOAuthWorld(t)

	// Sign in ahead of time.
	login, loginLog := realShim(t, w.env(w.browser), "login", w.as.resource())
	if out, err := login.Output(); err != nil || len(out) != 0 {
		t.Fatalf("login: %v, stdout %q\n%s", err, out, loginLog.Text())
	}
	if !strings.Contains(loginLog.Text(), "signed in to") {
		t.Fatalf("login said:\n%s", loginLog.Text())
	}
	if in, _, _ := w.as.counts(); in != 1 {
		t.Fatalf("sign-ins after login = %d, want 1", in)
	}

	// Both shims hold an access token the server no longer takes, and the
	// same refresh token, which works once.
	w.as.expireAccess()
	logs := echoFromTwoShims(ctx, t, func(ctx context.Context) (*mcp.ClientSession, *testkit.LogBook, error) {
		return w.connect(ctx, "false")
	})
	if in, ref, _ := w.as.counts(); in != 1 || ref != 1 {
		t.Fatalf("sign-ins = %d, refreshes = %d; want 1 and 1", in, ref)
	}
	w.noSecrets(append(logs, loginLog)...)
}

func TestOAuthSignInNeeded(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*testTimeout)
	defer cancel()
	w := newOAuthWorld(t)

	// Nobody signs in: the client's initialize waits --retry-for, then
	// gets an error that says what to do; the URL is on stderr.
	_, log, err := w.connect(ctx, w.browser, "--no-browser", "--retry-for", "1s")
	if err == nil || !strings.Contains(err.Error(), "sign-in needed") {
		t.Fatalf("connect = %v, want a sign-in needed error", err)
	}
	if !strings.Contains(log.Text(), w.as.base+"/authorize?") {
		t.Fatalf("no authorization URL on stderr:\n%s", log.Text())
	}
	if runs := w.browserRuns(); len(runs) != 0 {
		t.Fatalf("browser ran with --no-browser: %q", runs)
	}

	// Signed in, then signed out: the next run needs a sign-in again.
	login, loginLog := realShim(t, w.env(w.browser), "login", w.as.resource())
	if err := login.Run(); err != nil {
		t.Fatalf("login: %v\n%s", err, loginLog.Text())
	}
	cs, _, err := w.connect(ctx, "false")
	if err != nil {
		t.Fatalf("connect after login: %v", err)
	}
	echo(t, ctx, cs, "signed in")
	cs.Close()
	logout, logoutLog := realShim(t, w.env("false"), "logout", w.as.resource())
	if err := logout.Run(); err != nil || !strings.Contains(logoutLog.Text(), "signed out") {
		t.Fatalf("logout: %v\n%s", err, logoutLog.Text())
	}
	files, _ := filepath.Glob(filepath.Join(w.home, "config", "mcpwrap", "proxy", "*.json"))
	if len(files) != 0 {
		t.Fatalf("token files after logout: %q", files)
	}
	if _, _, err := w.connect(ctx, "false", "--retry-for", "1s"); err == nil || !strings.Contains(err.Error(), "sign-in needed") {
		t.Fatalf("connect after logout = %v, want a sign-in needed error", err)
	}
}

func TestOAuthStaticTokenWins(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*testTimeout)
	defer cancel()
	w := newOAuthWorld(t)
	env := append(w.env(w.browser), "MCPWRAP_TOKEN=not-a-token-it-knows")
	cmd, stderr := realShim(t, env, "--retry-for", "1s", w.as.resource())
	client := mcp.NewClient(&mcp.Implementation{Name: "oauth-test", Version: "1"}, nil)
	_, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err == nil || !strings.Contains(err.Error(), "rejected the token") {
		t.Fatalf("connect = %v, want the token refused", err)
	}
	if runs := w.browserRuns(); len(runs) != 0 {
		t.Fatalf("browser ran with a static token: %q", runs)
	}
	if strings.Contains(stderr.Text(), "/authorize?") {
		t.Fatalf("a sign-in started with a static token:\n%s", stderr.Text())
	}
}

func TestOAuthNoSignInLoop(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*testTimeout)
	defer cancel()
	w := newOAuthWorld(t)

	// A remote that refuses even the token it has just issued: one sign-in,
	// then an error, not a browser opening again and again.
	w.as.refuseAll()
	_, _, err := w.connect(ctx, w.browser, "--retry-for", "5s")
	if err == nil || !strings.Contains(err.Error(), "just obtained") {
		t.Fatalf("connect = %v, want the fresh token refused", err)
	}
	if runs := w.browserRuns(); len(runs) != 1 {
		t.Fatalf("browser runs = %q, want one", runs)
	}
}

// checkTokenFile asserts that the shim keeps one token file under home's
// config directory, readable by the user alone, in a directory that is too.
func checkTokenFile(t *testing.T, home string) {
	t.Helper()
	dir := filepath.Join(home, "config", "mcpwrap", "proxy")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) != 1 {
		t.Fatalf("token files = %q, want one", files)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, files[0]: 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Fatalf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
}
