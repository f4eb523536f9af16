package authserver

import (
	"bytes"
	"context"
	"flag"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/chromedp"
)

var screenshots = flag.String("screenshots", "", "also save a PNG of each page in this directory (docs/screenshots: -screenshots ../docs/screenshots)")

// chrome is one headless Chromium with a fresh profile, and everything it
// logged (CSP violations among them).
type chrome struct {
	t   *testing.T
	ctx context.Context

	mu   sync.Mutex // guards logs
	logs []string
}

func newChrome(t *testing.T) *chrome {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium is required in CI: %v", err)
		}
		t.Skip("chromium is not installed (apt-get install chromium)")
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	c := &chrome{t: t, ctx: ctx}
	entries := chromedp.Events(ctx, log.EntryAdded)
	if _, err := chromedp.Call(ctx, log.Enable, struct{}{}); err != nil {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
		t.Fatalf("starting chromium: %v", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for ev, err := range entries {
			if err != nil {
				return
			}
			c.mu.Lock()
			c.logs = append(c.logs, string(ev.Entry.Level)+" "+string(ev.Entry.Source)+": "+ev.Entry.Text)
			c.mu.Unlock()
		}
	})
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
		wg.Wait()
	})
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(420, 780)); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *chrome) do(actions ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	if err := chromedp.Do(c.ctx, actions...); err != nil {
		c.t.Fatalf("browser: %v\nlogs: %q", err, c.logged())
	}
}

func (c *chrome) text(sel string) string {
	c.t.Helper()
	s, err := chromedp.Run(c.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		c.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func (c *chrome) logged() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.logs...)
}

// cspErrors are the Content Security Policy complaints logged so far.
func (c *chrome) cspErrors() []string {
	var out []string
	for _, l := range c.logged() {
		if strings.Contains(l, "Content Security Policy") {
			out = append(out, l)
		}
	}
	return out
}

// screenshot checks that the page renders to a real image, and keeps it
// when -screenshots is given.
func (c *chrome) screenshot(name string) {
	c.t.Helper()
	buf, err := chromedp.Run(c.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		c.t.Fatalf("screenshot %s: %v", name, err)
	}
	img, err := png.DecodeConfig(bytes.NewReader(buf))
	if err != nil || img.Width < 300 || img.Height < 300 {
		c.t.Fatalf("screenshot %s: %v, %dx%d", name, err, img.Width, img.Height)
	}
	if *screenshots != "" {
		if err := os.MkdirAll(*screenshots, 0o755); err != nil {
			c.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(*screenshots, name+".png"), buf, 0o644); err != nil {
			c.t.Fatal(err)
		}
	}
}

// appCallback is the client's redirect URI on loopback: it records what the
// authorization server sent back.
type appCallback struct {
	*httptest.Server
	got chan url.Values
}

func newAppCallback(t *testing.T) *appCallback {
	a := &appCallback{got: make(chan url.Values, 10)}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		a.got <- r.URL.Query()
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(`<!doctype html><title>Connected</title><p id="done">Connected</p>`))
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *appCallback) next(t *testing.T) url.Values {
	t.Helper()
	select {
	case q := <-a.got:
		return q
	case <-time.After(30 * time.Second):
		t.Fatal("the app's callback was not called")
		return nil
	}
}

func TestBrowserKeySignIn(t *testing.T) {
	c := newChrome(t)
	f := newFixture(t, nil)
	app := newAppCallback(t)
	client := f.register("http://127.0.0.1/callback") // any port: the app's is random
	redirect := app.URL + "/callback"
	p := newPKCE()

	c.do(chromedp.Navigate(f.authorizeURL(client, redirect, p, nil)), chromedp.WaitVisible(chromedp.ID("key")))
	if h := c.text("h1"); !strings.Contains(h, "Sign in to connect Test App") {
		t.Errorf("key page heading %q", h)
	}
	c.screenshot("key-page")

	c.do(chromedp.SendKeys(chromedp.ID("key"), "not-the-key"), chromedp.Click(chromedp.CSS("button.primary")),
		chromedp.WaitVisible(chromedp.CSS(".error")))
	if msg := c.text(".error"); !strings.Contains(msg, "That key is not valid here") {
		t.Errorf("wrong key message %q", msg)
	}
	if v, err := chromedp.Run(c.ctx, chromedp.Value(chromedp.ID("key"))); err != nil || v != "" {
		t.Errorf("the key field holds %q after a wrong key (%v)", v, err)
	}
	c.screenshot("wrong-key")

	c.do(chromedp.SendKeys(chromedp.ID("key"), testKey), chromedp.Click(chromedp.CSS("button.primary")),
		chromedp.WaitVisible(chromedp.CSS("dl")))
	details := c.text("dl")
	for _, want := range []string{"Test App", strings.TrimPrefix(app.URL, "http://"), "key:acme", f.srv.opts.Resource} {
		if !strings.Contains(details, want) {
			t.Errorf("consent page lacks %q: %q", want, details)
		}
	}
	c.screenshot("consent")

	// Allow posts to the server, which redirects to the app: the page's
	// form-action must allow that redirect, or Chromium stops it.
	c.do(chromedp.Click(chromedp.CSS("button.primary")), chromedp.WaitVisible(chromedp.ID("done")))
	q := app.next(t)
	if q.Get("iss") != f.issuer || q.Get("state") != "st-123" || q.Get("code") == "" {
		t.Fatalf("the app got %v", q)
	}
	if tok := f.redeem(client, redirect, q.Get("code"), p.verifier); tok.status != http.StatusOK {
		t.Fatalf("the browser's code: %+v", tok)
	}
	if errs := c.cspErrors(); len(errs) > 0 {
		t.Errorf("CSP errors: %q", errs)
	}
}

// TestBrowserSeesCSPViolations proves the CSP check above can fail: a page
// under the same policy with an inline script is reported.
func TestBrowserSeesCSPViolations(t *testing.T) {
	c := newChrome(t)
	f := newFixture(t, nil)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.srv.render(w, http.StatusOK, page{Kind: "message", Message: "<script>"})
		w.Write([]byte(`<script>document.title = "ran"</script>`))
	}))
	defer ts.Close()
	c.do(chromedp.Navigate(ts.URL), chromedp.WaitVisible(chromedp.CSS("h1")))
	if h := c.text("h1"); h != "<script>" {
		t.Errorf("heading %q: the page does not escape", h)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(c.cspErrors()) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if len(c.cspErrors()) == 0 {
		t.Fatalf("no CSP violation seen; logs: %q", c.logged())
	}
}

func TestBrowserUpstreamSignIn(t *testing.T) {
	c := newChrome(t)
	gh := newGitHubStandIn(t)
	op := newOIDCStandIn(t)
	f := newFixture(t, withUpstreams(gh, op))
	app := newAppCallback(t)
	client := f.register("http://127.0.0.1/callback")
	redirect := app.URL + "/callback"

	for _, tc := range []struct{ provider, identity string }{
		{"github", "github:alice"},
		{"oidc", "oidc:bob@corp.example"},
	} {
		c.do(chromedp.Navigate(f.authorizeURL(client, redirect, newPKCE(), nil)),
			chromedp.Click(chromedp.CSS(`input[value="`+tc.provider+`"] ~ button`)),
			chromedp.WaitVisible(chromedp.CSS("dl")))
		if d := c.text("dl"); !strings.Contains(d, tc.identity) {
			t.Errorf("%s: consent names %q, want %s", tc.provider, d, tc.identity)
		}
		c.do(chromedp.Click(chromedp.CSS("button.primary")), chromedp.WaitVisible(chromedp.ID("done")))
		if q := app.next(t); q.Get("code") == "" || q.Get("iss") != f.issuer {
			t.Errorf("%s: the app got %v", tc.provider, q)
		}
	}
	c.do(chromedp.Navigate(f.authorizeURL(client, redirect, newPKCE(), nil)), chromedp.WaitVisible(chromedp.ID("key")))
	c.screenshot("sign-in-choices")

	gh.setUser("mallory")
	c.do(chromedp.Click(chromedp.CSS(`input[value="github"] ~ button`)), chromedp.WaitVisible(chromedp.CSS("main strong")))
	if h, who := c.text("h1"), c.text("main strong"); !strings.Contains(h, "may not use this server") || who != "github:mallory" {
		t.Errorf("refused page: %q, %q", h, who)
	}
	c.screenshot("refused")
	if errs := c.cspErrors(); len(errs) > 0 {
		t.Errorf("CSP errors: %q", errs)
	}
}
