package config

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func vars(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaultsAreSafe(t *testing.T) {
	cfg, err := Load([]string{"--", "server", "--its-flag"}, vars(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8080" {
		t.Errorf("without a token Listen = %q, want loopback", cfg.Listen)
	}
	if !slices.Equal(cfg.Command, []string{"server", "--its-flag"}) {
		t.Errorf("Command = %q", cfg.Command)
	}
	if cfg.Path != "/mcp" || cfg.IdleTimeout != 30*time.Minute || cfg.MaxMessage != 16<<20 {
		t.Errorf("defaults: %+v", cfg)
	}

	cfg, err = Load([]string{"--", "server"}, vars(map[string]string{"MCPWRAP_TOKEN": "s3cret"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != ":8080" {
		t.Errorf("with a token Listen = %q, want :8080", cfg.Listen)
	}
}

func TestNoTokenOnAPublicAddressIsRefused(t *testing.T) {
	_, err := Load([]string{"--", "server"}, vars(map[string]string{"MCPWRAP_LISTEN": "0.0.0.0:8080"}), io.Discard)
	if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "MCPWRAP_TOKEN") {
		t.Errorf("err = %v, want a usage error naming MCPWRAP_TOKEN", err)
	}
	if _, err := Load([]string{"--no-auth", "--", "server"}, vars(map[string]string{"MCPWRAP_LISTEN": "0.0.0.0:8080"}), io.Discard); err != nil {
		t.Errorf("with --no-auth: %v", err)
	}
	for _, addr := range []string{"127.0.0.1:1", "[::1]:1", "localhost:1"} {
		if _, err := Load([]string{"--", "server"}, vars(map[string]string{"MCPWRAP_LISTEN": addr}), io.Discard); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
}

func TestFlagsMatchVariablesAndWin(t *testing.T) {
	set := map[string]string{"MCPWRAP_MAX_SESSIONS": "5", "MCPWRAP_SESSION_IDLE_TIMEOUT": "1m", "MCPWRAP_PTY": "true"}
	cfg, err := Load([]string{"--max-sessions", "9", "--session-idle-timeout=2s", "--", "server"}, vars(set), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxSessions != 9 || cfg.IdleTimeout != 2*time.Second || !cfg.PTY {
		t.Errorf("MaxSessions=%d IdleTimeout=%v PTY=%v", cfg.MaxSessions, cfg.IdleTimeout, cfg.PTY)
	}
	// Every variable has its flag.
	fs := strings.Builder{}
	_, _ = Load([]string{"-h"}, vars(nil), &fs)
	for _, name := range []string{"listen", "token", "token-file", "allowed-origins", "max-message-bytes", "exit-when-idle", "tenants-file", "metrics-listen"} {
		if !strings.Contains(fs.String(), "-"+name) {
			t.Errorf("no flag -%s in usage", name)
		}
	}
	if _, err := Load([]string{"--max-sessions", "many", "--", "x"}, vars(nil), io.Discard); !errors.Is(err, ErrUsage) {
		t.Errorf("bad flag value: %v", err)
	}
	if _, err := Load(nil, vars(nil), io.Discard); !errors.Is(err, ErrUsage) {
		t.Errorf("no command: %v", err)
	}
}

func TestTokensFromEverywhereAreNeverShown(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokenFile, []byte("# comment\nfile-token-1\n\nfile-token-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tenantsFile := filepath.Join(dir, "tenants.json")
	if err := os.WriteFile(tenantsFile, []byte(`{"alice":{"token":"alice-token","env":{"GITHUB_TOKEN":"alice-gh"}},"bob":{"token":"bob-token"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load([]string{"--", "server"}, vars(map[string]string{
		"MCPWRAP_TOKEN":        "env-a, env-b",
		"MCPWRAP_TOKEN_FILE":   tokenFile,
		"MCPWRAP_TENANTS_FILE": tenantsFile,
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tn := range cfg.Tenants {
		names = append(names, tn.Name+"="+tn.Token)
	}
	want := []string{"token1=env-a", "token2=env-b", "token3=file-token-1", "token4=file-token-2", "alice=alice-token", "bob=bob-token"}
	if !slices.Equal(names, want) {
		t.Errorf("tenants %v, want %v", names, want)
	}
	if !slices.Equal(cfg.Tenants[4].Env, []string{"GITHUB_TOKEN=alice-gh"}) {
		t.Errorf("alice's env = %v", cfg.Tenants[4].Env)
	}
	shown := fmt.Sprint(cfg.Redacted())
	for _, secret := range []string{"env-a", "file-token", "alice-token", "alice-gh"} {
		if strings.Contains(shown, secret) {
			t.Errorf("Redacted shows %q: %s", secret, shown)
		}
	}

	if err := os.WriteFile(tenantsFile, []byte(`{"alice":{"token":"dup"},"bob":{"token":"dup"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load([]string{"--", "server"}, vars(map[string]string{"MCPWRAP_TENANTS_FILE": tenantsFile}), io.Discard); !errors.Is(err, ErrUsage) {
		t.Errorf("two tenants with one token: %v", err)
	}
	if err := os.WriteFile(tenantsFile, []byte(`{"alice":"secret-in-a-broken-file"`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load([]string{"--", "server"}, vars(map[string]string{"MCPWRAP_TENANTS_FILE": tenantsFile}), io.Discard)
	if !errors.Is(err, ErrUsage) || strings.Contains(err.Error(), "secret-in-a-broken-file") {
		t.Errorf("broken tenants file: %v", err)
	}
}

func TestChildEnvironmentLosesMcpwrapVariables(t *testing.T) {
	cfg := Config{ChildEnv: []string{"EXTRA=1"}}
	got := cfg.ChildEnviron([]string{"PATH=/bin", "MCPWRAP_TOKEN=s3cret", "MCPWRAP_LISTEN=:1", "HOME=/root"})
	if want := []string{"PATH=/bin", "HOME=/root", "EXTRA=1"}; !slices.Equal(got, want) {
		t.Errorf("child env %v, want %v", got, want)
	}
}

func TestOAuthSettings(t *testing.T) {
	base := map[string]string{
		"MCPWRAP_LISTEN":      "0.0.0.0:8080",
		"MCPWRAP_PUBLIC_URL":  "https://my-mcp.fly.dev",
		"MCPWRAP_AUTH_ISSUER": "https://login.example.com/tenant/",
		"MCPWRAP_AUTH_SCOPES": "mcp, tools",
	}
	with := func(changes map[string]string) map[string]string {
		m := maps.Clone(base)
		for k, v := range changes {
			if v == "" {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	cfg, err := Load([]string{"--auth-introspection-client-id", "rs", "--", "server"}, vars(with(map[string]string{
		"MCPWRAP_AUTH_INTROSPECTION_CLIENT_SECRET": "intro-s3cret",
	})), io.Discard)
	if err != nil {
		t.Fatalf("an OAuth-only server on a public address: %v", err)
	}
	if !cfg.OAuth() || cfg.AuthUserClaim != "sub" || !slices.Equal(cfg.AuthScopes, []string{"mcp", "tools"}) ||
		!slices.Equal(cfg.AuthAlgorithms, []string{"RS256", "ES256", "EdDSA", "PS256"}) || cfg.AuthIntrospectionClientID != "rs" {
		t.Errorf("settings: %+v", cfg)
	}
	if shown := fmt.Sprint(cfg.Redacted()); strings.Contains(shown, "intro-s3cret") || !strings.Contains(shown, "https://login.example.com/tenant/") {
		t.Errorf("Redacted: %s", shown)
	}
	cfg, err = Load([]string{"--", "server"}, vars(with(map[string]string{"MCPWRAP_LISTEN": ""})), io.Discard)
	if err != nil || cfg.Listen != ":8080" {
		t.Errorf("OAuth alone listens on every interface: %q %v", cfg.Listen, err)
	}
	if _, err := Load([]string{"--", "server"}, vars(with(map[string]string{"MCPWRAP_PUBLIC_URL": "", "MCPWRAP_LISTEN": "127.0.0.1:0"})), io.Discard); err != nil {
		t.Errorf("on loopback the public URL may be left out: %v", err)
	}
	for _, bad := range []map[string]string{
		{"MCPWRAP_PUBLIC_URL": ""},
		{"MCPWRAP_PUBLIC_URL": "my-mcp.fly.dev"},
		{"MCPWRAP_PUBLIC_URL": "https://my-mcp.fly.dev/?x=1"},
		{"MCPWRAP_AUTH_ISSUER": "http://login.example.com"},
		{"MCPWRAP_AUTH_ISSUER": "login.example.com"},
		{"MCPWRAP_AUTH_INTROSPECTION_CLIENT_ID": "only-the-id"},
		{"MCPWRAP_AUTH_SCOPES": "mcp,offline_access"},
		{"MCPWRAP_AUTH_USER_CLAIM": " "},
	} {
		if _, err := Load([]string{"--", "server"}, vars(with(bad)), io.Discard); !errors.Is(err, ErrUsage) {
			t.Errorf("%v: err %v, want ErrUsage", bad, err)
		}
	}
	if _, err := Load([]string{"--", "server"}, vars(with(map[string]string{"MCPWRAP_AUTH_ISSUER": "http://127.0.0.1:9999"})), io.Discard); err != nil {
		t.Errorf("an http issuer on loopback (tests): %v", err)
	}
}

func TestTenantsFileUsers(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tenants.json")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"acme": {"token": "acme-token", "users": ["alice@acme.com", " "], "env": {"K": "V"}},
		"corp": {"users": ["google:*@corp.com"]},
		"globex": {"users": ["github:bob"]},
		"old": {"token": "old-token"}}`)
	cfg, err := Load([]string{"--", "server"}, vars(map[string]string{"MCPWRAP_TENANTS_FILE": file}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(cfg.Tenants)
	want := fmt.Sprint([]Tenant{
		{Name: "acme", Token: "acme-token", Env: []string{"K=V"}, Users: []string{"alice@acme.com"}},
		{Name: "corp", Users: []string{"google:*@corp.com"}},
		{Name: "globex", Users: []string{"github:bob"}},
		{Name: "old", Token: "old-token"},
	})
	if got != want {
		t.Errorf("tenants %s, want %s", got, want)
	}
	write(`{"empty": {"env": {"K": "V"}}}`)
	if _, err := Load([]string{"--", "server"}, vars(map[string]string{"MCPWRAP_TENANTS_FILE": file}), io.Discard); !errors.Is(err, ErrUsage) {
		t.Errorf("a tenant with neither token nor users: %v", err)
	}
}

func TestAuthServerSettings(t *testing.T) {
	secret := strings.Repeat("s", 32)
	// On loopback the public URL may be left out: it is the address
	// listened on, known once listening.
	cfg, err := Load([]string{"--", "server"}, vars(map[string]string{"MCPWRAP_AUTH_SECRET": secret, "MCPWRAP_LISTEN": "127.0.0.1:0"}), io.Discard)
	if err != nil || cfg.PublicURL != "" || cfg.AuthGitHubURL != "https://github.com" {
		t.Fatalf("%v: %+v", err, cfg)
	}
	// Elsewhere it is required, and the secret alone is enough to listen
	// on every interface.
	if _, err := Load([]string{"--", "server"}, vars(map[string]string{"MCPWRAP_AUTH_SECRET": secret}), io.Discard); !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "MCPWRAP_PUBLIC_URL") {
		t.Errorf("no public URL on :8080: %v", err)
	}
	cfg, err = Load([]string{"--public-url", "https://my-mcp.fly.dev/", "--", "server"}, vars(map[string]string{
		"MCPWRAP_AUTH_SECRET":               secret,
		"MCPWRAP_AUTH_SECRET_PREVIOUS":      strings.Repeat("p", 32),
		"MCPWRAP_AUTH_GITHUB_CLIENT_ID":     "gh-id",
		"MCPWRAP_AUTH_GITHUB_CLIENT_SECRET": "gh-secret-value",
		"MCPWRAP_AUTH_OIDC_ISSUER":          "https://accounts.google.com",
		"MCPWRAP_AUTH_OIDC_CLIENT_ID":       "g-id",
		"MCPWRAP_AUTH_OIDC_CLIENT_SECRET":   "g-secret-value",
	}), io.Discard)
	if err != nil || cfg.Listen != ":8080" || cfg.PublicURL != "https://my-mcp.fly.dev" {
		t.Fatalf("%v: %+v", err, cfg)
	}
	shown := fmt.Sprint(cfg.Redacted())
	for _, s := range []string{secret, strings.Repeat("p", 32), "gh-secret-value", "g-secret-value"} {
		if strings.Contains(shown, s) {
			t.Errorf("Redacted shows %q: %s", s, shown)
		}
	}
	for _, bad := range []map[string]string{
		{"MCPWRAP_AUTH_SECRET": "too-short"},
		{"MCPWRAP_AUTH_SECRET": secret, "MCPWRAP_AUTH_SECRET_PREVIOUS": "short"},
		{"MCPWRAP_AUTH_SECRET": secret, "MCPWRAP_PUBLIC_URL": "http://my-mcp.fly.dev"},
		{"MCPWRAP_AUTH_SECRET": secret, "MCPWRAP_PUBLIC_URL": "https://x.example/?q=1"},
		{"MCPWRAP_AUTH_SECRET": secret, "MCPWRAP_AUTH_GITHUB_CLIENT_ID": "id-without-secret"},
		{"MCPWRAP_AUTH_SECRET": secret, "MCPWRAP_AUTH_OIDC_CLIENT_ID": "id-without-issuer"},
		{"MCPWRAP_AUTH_GITHUB_CLIENT_ID": "id", "MCPWRAP_AUTH_GITHUB_CLIENT_SECRET": "s", "MCPWRAP_TOKEN": "t"},
	} {
		bad["MCPWRAP_LISTEN"] = "127.0.0.1:9000"
		if _, err := Load([]string{"--", "server"}, vars(bad), io.Discard); !errors.Is(err, ErrUsage) {
			t.Errorf("%v: %v, want a usage error", bad, err)
		}
	}
}
