package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/config"
	"github.com/rs/zerolog"
	"github.com/zalando/go-keyring"
)

func TestStoreFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mcpwrap", "proxy")
	// A directory that exists with looser modes is tightened.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := openStore(dir, "file")
	if err != nil {
		t.Fatal(err)
	}
	const remote = "https://example.com/mcp"
	g := &grant{Issuer: "https://as.example.com", ClientID: "c1", AccessToken: "access-secret", RefreshToken: "refresh-secret", Expiry: time.Now().Add(time.Hour).Round(0).UTC()}
	err = st.update(remote, func(r *record) (bool, error) {
		r.Current = g.Issuer
		r.Grants[g.Issuer] = g
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, storeKey(remote)+".json")
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			t.Fatalf("%s: mode %v, %v; want %v", p, fi.Mode().Perm(), err, want)
		}
	}
	r, err := st.load(remote)
	if err != nil || !reflect.DeepEqual(r.current(), g) {
		t.Fatalf("load = %+v, %v; want %+v", r.current(), err, g)
	}
	if r, err := st.load("https://other.example.com/mcp"); err != nil || r != nil {
		t.Fatalf("load of another remote = %+v, %v; want nothing", r, err)
	}

	// A failing change that changed the record is saved all the same.
	sentinel := errors.New("refused")
	err = st.update(remote, func(r *record) (bool, error) {
		r.current().AccessToken = ""
		return true, sentinel
	})
	if !errors.Is(err, sentinel) {
		t.Fatalf("update = %v, want the sentinel", err)
	}
	if r, _ := st.load(remote); r.current().AccessToken != "" {
		t.Fatal("the change made with the error was not saved")
	}

	// A damaged file is reported without its content.
	if err := os.WriteFile(path, []byte("{not json refresh-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := st.load(remote); err == nil || strings.Contains(err.Error(), "refresh-secret") {
		t.Fatalf("load of a damaged file = %v", err)
	}

	if err := st.forget(remote); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("token file after forget: %v", err)
	}
	if err := st.forget(remote); err != nil {
		t.Fatalf("second forget: %v", err)
	}
}

func TestStoreLockSerializesUpdates(t *testing.T) {
	dir := t.TempDir()
	// Two stores, as two shims have: the lock is the file system's.
	a, err := openStore(dir, "file")
	if err != nil {
		t.Fatal(err)
	}
	b, err := openStore(dir, "file")
	if err != nil {
		t.Fatal(err)
	}
	const remote = "https://example.com/mcp"
	inside := make(chan struct{})
	release := make(chan struct{})
	aDone := make(chan error, 1)
	go func() {
		aDone <- a.update(remote, func(r *record) (bool, error) {
			close(inside)
			<-release
			r.Current = "a"
			r.Grants["a"] = &grant{RefreshToken: "rotated-by-a"}
			return true, nil
		})
	}()
	<-inside
	var bSaw atomic.Value
	bDone := make(chan error, 1)
	go func() {
		bDone <- b.update(remote, func(r *record) (bool, error) {
			bSaw.Store(r.current() != nil && r.current().RefreshToken == "rotated-by-a")
			return false, nil
		})
	}()
	select {
	case err := <-bDone:
		t.Fatalf("second update ran while the first held the lock: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	if err := <-bDone; err != nil {
		t.Fatal(err)
	}
	if saw, _ := bSaw.Load().(bool); !saw {
		t.Fatal("the second update did not read the first's rotation")
	}
}

func TestOpenStoreWithoutKeyring(t *testing.T) {
	if _, err := keyring.Get(keyringService, "mcpwrap probe"); err == nil || errors.Is(err, keyring.ErrNotFound) {
		t.Skip("this machine has a working keychain")
	}
	dir := t.TempDir()
	if _, err := openStore(dir, "keyring"); !errors.Is(err, errNoKeyring) {
		t.Fatalf("keyring store = %v, want errNoKeyring", err)
	}
	st, err := openStore(dir, "auto")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.v.(fileVault); !ok {
		t.Fatalf("auto store = %T, want the files", st.v)
	}
}

func TestBrowserCommands(t *testing.T) {
	const u = "http://127.0.0.1:1/authorize?a=b"
	for _, tc := range []struct {
		browser, goos string
		want          [][]string
	}{
		{"", "linux", [][]string{{"xdg-open", u}}},
		{"", "darwin", [][]string{{"open", u}}},
		{"", "windows", [][]string{{"rundll32", "url.dll,FileProtocolHandler", u}}},
		{"firefox", "linux", [][]string{{"firefox", u}}},
		{"/bin/b -x --flag", "linux", [][]string{{"/bin/b", "-x", "--flag", u}}},
		{"w3m %s -dump", "linux", [][]string{{"w3m", u, "-dump"}}},
		{"a:b %s", "linux", [][]string{{"a", u}, {"b", u}}},
		{"C:\\b.exe;d", "windows", [][]string{{"C:\\b.exe", u}, {"d", u}}},
	} {
		if got := browserCommands(tc.browser, tc.goos, u); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("browserCommands(%q, %s) = %q, want %q", tc.browser, tc.goos, got, tc.want)
		}
	}
}

func TestBrowserOpener(t *testing.T) {
	dir := t.TempDir()
	mark := filepath.Join(dir, "opened")
	var logs strings.Builder
	log := zerolog.New(&logs)
	browser := filepath.Join(dir, "browser")
	if err := os.WriteFile(browser, []byte("#!/bin/sh\nprintf %s \"$1\" > "+mark+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}

	browserOpener(browser, true, io.Discard, log)("http://127.0.0.1:1/authorize?state=s")
	if !strings.Contains(logs.String(), "/authorize?state=s") {
		t.Fatalf("--no-browser did not show the URL: %s", logs.String())
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := os.Stat(mark); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("--no-browser ran the browser")
	}

	browserOpener(browser, false, io.Discard, log)("http://127.0.0.1:1/authorize?state=s")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(mark); err == nil && string(b) == "http://127.0.0.1:1/authorize?state=s" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the browser command did not run")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCallback(t *testing.T) {
	rd := &redactor{}
	cb, err := listenCallback("", rd)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.close()
	if !strings.HasPrefix(cb.redirectURI, "http://127.0.0.1:") || !strings.HasSuffix(cb.redirectURI, "/callback") {
		t.Fatalf("redirect URI %q", cb.redirectURI)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	type result struct {
		code string
		err  error
	}
	if err := cb.expect("http://as.example/authorize?state=right-state"); err != nil {
		t.Fatal(err)
	}
	got := make(chan result, 1)
	go func() {
		res, err := cb.wait(ctx)
		if err != nil {
			got <- result{err: err}
			return
		}
		got <- result{code: res.Code}
	}()
	// The browser may come back before wait runs: expect is enough.
	get := func(q string) (int, string) {
		t.Helper()
		resp, err := http.Get(cb.redirectURI + "?" + q)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	// A stale tab does not end the sign-in.
	if status, _ := get("state=wrong&code=nope"); status != http.StatusBadRequest {
		t.Fatalf("stale state: %d, want 400", status)
	}
	status, body := get(url.Values{"state": {"right-state"}, "code": {"the-code-1234"}, "iss": {"http://as.example"}}.Encode())
	if status != http.StatusOK || !strings.Contains(body, "close this tab") {
		t.Fatalf("callback page: %d %s", status, body)
	}
	r := <-got
	if r.err != nil || r.code != "the-code-1234" {
		t.Fatalf("wait = %q, %v", r.code, r.err)
	}
	if out := rd.Replace("code the-code-1234"); strings.Contains(out, "the-code-1234") {
		t.Fatalf("the code is not redacted: %s", out)
	}
	resp, err := http.Post(cb.redirectURI, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %s", resp.Status)
	}
}

func TestCallbackRefused(t *testing.T) {
	cb, err := listenCallback("", &redactor{})
	if err != nil {
		t.Fatal(err)
	}
	defer cb.close()
	if err := cb.expect("http://as.example/authorize?state=s"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(cb.redirectURI + "?state=s&error=access_denied&error_description=no%0Athanks")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, err = cb.wait(t.Context())
	if !errors.Is(err, errAuthorizationRefused) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("wait = %v, want errAuthorizationRefused on one line", err)
	}
}

func TestRedactor(t *testing.T) {
	rd := newRedactor(Config{Token: "static-token-value", Header: http.Header{"X-Key": {"header-secret", "short"}}})
	rd.add("oauth-access-token", "tiny", "")
	got := rd.Replace("static-token-value header-secret short oauth-access-token tiny")
	if want := "[redacted] [redacted] short [redacted] tiny"; got != want {
		t.Fatalf("Replace = %q, want %q", got, want)
	}
	// The oldest OAuth secrets make way; the static ones stay.
	for i := range maxSecrets {
		rd.add(strings.Repeat("x", 10) + string(rune('A'+i%26)) + strings.Repeat("y", i))
	}
	if got := rd.Replace("static-token-value"); got != "[redacted]" {
		t.Fatalf("static token after many adds: %q", got)
	}
}

func TestSameOrigin(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"https://h.example/mcp", "https://h.example/messages?s=1", true},
		{"https://h.example/mcp", "https://h.example:443/x", true},
		{"https://H.example/mcp", "https://h.example/x", true},
		{"http://h.example/mcp", "https://h.example/x", false},
		{"https://h.example/mcp", "https://evil.example/x", false},
		{"https://h.example/mcp", "https://h.example:8443/x", false},
		{"https://h.example/mcp", "https://sub.h.example/x", false},
	} {
		a, _ := url.Parse(tc.a)
		b, _ := url.Parse(tc.b)
		if got := sameOrigin(a, b); got != tc.want {
			t.Errorf("sameOrigin(%s, %s) = %v", tc.a, tc.b, got)
		}
	}
}

// The static token goes to the remote's origin only: an HTTP+SSE endpoint
// event may name another.
func TestTokenStaysOnItsOrigin(t *testing.T) {
	var gotAuth atomic.Value
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth.Store(r.Header.Get("Authorization"))
	}))
	defer other.Close()
	home, _ := url.Parse("http://127.0.0.1:1/mcp")
	s := newShim(Config{Token: "static-token-value", URL: home, RetryFor: time.Second}, zerolog.Nop(), io.Discard)
	s.redact = newRedactor(s.cfg)
	target, _ := url.Parse(other.URL + "/messages")
	resp, err := s.do(t.Context(), request{method: http.MethodPost, url: target, header: s.baseHeader()}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	drain(resp)
	if got, _ := gotAuth.Load().(string); got != "" {
		t.Fatalf("another origin got Authorization %q", got)
	}
}

func TestConfigOAuthFlags(t *testing.T) {
	env := map[string]string{"MCPWRAP_PROXY_NO_BROWSER": "true", "MCPWRAP_PROXY_TOKEN_STORE": "file", "BROWSER": "w3m"}
	cfg, err := parseConfig([]string{"https://h.example/mcp"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil || !cfg.NoBrowser || cfg.TokenStore != "file" || cfg.Browser != "w3m" {
		t.Fatalf("from the environment: %+v, %v", cfg, err)
	}
	cfg, err = parseConfig([]string{"--no-browser=false", "--token-store", "keyring", "https://h.example/mcp"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil || cfg.NoBrowser || cfg.TokenStore != "keyring" {
		t.Fatalf("flags over the environment: %+v, %v", cfg, err)
	}
	_, err = parseConfig([]string{"--token-store", "vault", "https://h.example/mcp"}, func(string) string { return "" }, io.Discard)
	if !errors.Is(err, config.ErrUsage) {
		t.Fatalf("bad --token-store = %v, want a usage error", err)
	}
}

func TestConfigClientFlags(t *testing.T) {
	none := func(string) string { return "" }
	cfg, err := parseConfig([]string{"--client-id", "c", "--client-secret", "s3cret-value", "--client-issuer", "https://auth.example", "--client-metadata-url", "https://app.example/client.json", "https://h.example/mcp"}, none, io.Discard)
	if err != nil || cfg.ClientID != "c" || cfg.ClientSecret != "s3cret-value" || cfg.ClientIssuer != "https://auth.example" || cfg.ClientMetadataURL != "https://app.example/client.json" {
		t.Fatalf("client flags: %+v, %v", cfg, err)
	}
	if got := newRedactor(cfg).Replace("s3cret-value"); got != "[redacted]" {
		t.Fatalf("the client secret is not redacted: %q", got)
	}
	for _, args := range [][]string{
		{"--client-secret", "s", "https://h.example/mcp"},
		{"--client-issuer", "https://auth.example", "https://h.example/mcp"},
		{"--client-id", "c", "--client-issuer", "auth.example", "https://h.example/mcp"},
		{"--client-metadata-url", "http://app.example/client.json", "https://h.example/mcp"},
		{"--client-metadata-url", "https://app.example/", "https://h.example/mcp"},
	} {
		if _, err := parseConfig(args, none, io.Discard); !errors.Is(err, config.ErrUsage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}

func TestStoreDir(t *testing.T) {
	env := map[string]string{"HOME": "/home/u"}
	getenv := func(k string) string { return env[k] }
	if d, err := storeDir(getenv); err != nil || d != "/home/u/.config/mcpwrap/proxy" {
		t.Fatalf("storeDir = %q, %v", d, err)
	}
	env["XDG_CONFIG_HOME"] = "/cfg"
	if d, err := storeDir(getenv); err != nil || d != "/cfg/mcpwrap/proxy" {
		t.Fatalf("storeDir = %q, %v", d, err)
	}
	env["XDG_CONFIG_HOME"] = "relative" // not absolute: ignored, as XDG says
	if d, err := storeDir(getenv); err != nil || d != "/home/u/.config/mcpwrap/proxy" {
		t.Fatalf("storeDir = %q, %v", d, err)
	}
}
