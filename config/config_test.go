package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
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
	for i, tn := range cfg.Tenants {
		if admin := i < 4; tn.Admin != admin {
			t.Errorf("%s: admin %v, want %v (only the deployment's own tokens are)", tn.Name, tn.Admin, admin)
		}
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
	if _, err := Load([]string{"--", "server"}, vars(map[string]string{"MCPWRAP_AUTH_SECRET": secret, "MCPWRAP_AUTH_ISSUER": "https://login.example.com", "MCPWRAP_LISTEN": "127.0.0.1:0"}), io.Discard); !errors.Is(err, ErrUsage) {
		t.Errorf("an external issuer and the built-in server at once: %v, want ErrUsage", err)
	}
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

// TestParseReadsAnySettingsStruct: the one mechanism every subcommand uses.
func TestParseReadsAnySettingsStruct(t *testing.T) {
	var s struct {
		Retry   time.Duration `env:"X_RETRY" flag:"retry" envDefault:"30s" help:"retry for"`
		Level   string        `env:"X_LEVEL" envDefault:"info" help:"level"`
		Count   int           `flag:"count" envDefault:"3" help:"flag only"`
		Header  http.Header   `flag:"header" help:"headers"`
		Derived string        `env:"-"`
	}
	var help strings.Builder
	parsed, err := Parse(&s, Command{Name: "t", Synopsis: "usage: t [flags] ARG"},
		[]string{"--header", "A: 1", "--header", "a:2", "--retry", "2s", "arg", "--", "cmd", "x"},
		vars(map[string]string{"MCPWRAP_X_RETRY": "1m", "MCPWRAP_X_LEVEL": "warn", "MCPWRAP_COUNT": "9"}), &help)
	if err != nil {
		t.Fatal(err)
	}
	if s.Retry != 2*time.Second || s.Level != "warn" || s.Count != 3 {
		t.Errorf("retry %v (flag wins), level %q (env), count %d (default; no variable)", s.Retry, s.Level, s.Count)
	}
	if got := s.Header.Values("A"); !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("header A = %q", got)
	}
	if !parsed.Given("retry") || parsed.Given("x-level") || !slices.Equal(parsed.Args, []string{"arg"}) || !slices.Equal(parsed.Command, []string{"cmd", "x"}) {
		t.Errorf("parsed %+v", parsed)
	}
	for _, args := range [][]string{{"--header", "no colon"}, {"--header", "A: b\r\nEvil: 1"}, {"--count", "x"}, {"--derived", "x"}} {
		if _, err := Parse(&s, Command{Name: "t"}, args, vars(nil), io.Discard); !errors.Is(err, ErrUsage) {
			t.Errorf("%q: err = %v, want a usage error", args, err)
		}
	}
	_, err = Parse(&s, Command{Name: "t", Synopsis: "usage: t [flags] ARG"}, []string{"-h"}, vars(nil), &help)
	if !errors.Is(err, flag.ErrHelp) || !errors.Is(err, ErrUsage) {
		t.Errorf("-h: err = %v", err)
	}
	for _, want := range []string{"usage: t [flags] ARG", "-retry", "MCPWRAP_X_RETRY", "-x-level", "-count", "-header"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("-h output lacks %q:\n%s", want, help.String())
		}
	}
}

// TestCollidingPathsAreAUsageError: the endpoints share one ServeMux with
// /healthz and /metrics, which panics at start on two equal patterns.
func TestCollidingPathsAreAUsageError(t *testing.T) {
	tests := []struct {
		env       map[string]string
		wantNames []string
	}{
		{map[string]string{"MCPWRAP_SSE_PATH": "/mcp"}, []string{"MCPWRAP_PATH", "MCPWRAP_SSE_PATH"}},
		{map[string]string{"MCPWRAP_MESSAGE_PATH": "/sse"}, []string{"MCPWRAP_SSE_PATH", "MCPWRAP_MESSAGE_PATH"}},
		{map[string]string{"MCPWRAP_PATH": "/healthz"}, []string{"MCPWRAP_PATH", "healthz"}},
		{map[string]string{"MCPWRAP_MESSAGE_PATH": "/metrics"}, []string{"MCPWRAP_MESSAGE_PATH", "metrics"}},
		{map[string]string{"MCPWRAP_PATH": "/x", "MCPWRAP_SSE_PATH": "/x", "MCPWRAP_MESSAGE_PATH": "/x"}, []string{"MCPWRAP_PATH", "MCPWRAP_SSE_PATH"}},
	}
	for _, tt := range tests {
		_, err := Load([]string{"--", "server"}, vars(tt.env), io.Discard)
		if !errors.Is(err, ErrUsage) {
			t.Errorf("%v: err = %v, want a usage error", tt.env, err)
			continue
		}
		for _, name := range tt.wantNames {
			if !strings.Contains(err.Error(), name) {
				t.Errorf("%v: error %q does not name %s", tt.env, err, name)
			}
		}
	}
	// Flags collide as their variables do.
	if _, err := Load([]string{"--sse-path", "/mcp", "--", "server"}, vars(nil), io.Discard); !errors.Is(err, ErrUsage) {
		t.Errorf("--sse-path /mcp: err = %v, want a usage error", err)
	}
}

// TestAcceptedPathsRegister: every path configuration Load accepts can be
// registered the way wrap does without ServeMux panicking.
func TestAcceptedPathsRegister(t *testing.T) {
	candidates := []string{"/mcp", "/mcp/", "/a b", "/{id}", "/x%zz", "/x%20y", "GET /x", "/ü", "/sse", "/", "/metrics/", "/healthz/x", "no-slash", "/a/../b", "/a\tb"}
	for _, p := range candidates {
		for _, setting := range []string{"MCPWRAP_PATH", "MCPWRAP_SSE_PATH", "MCPWRAP_MESSAGE_PATH"} {
			cfg, err := Load([]string{"--", "server"}, vars(map[string]string{setting: p}), io.Discard)
			if err != nil {
				if !errors.Is(err, ErrUsage) {
					t.Errorf("%s=%q: err = %v, want a usage error", setting, p, err)
				}
				continue
			}
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("%s=%q accepted, but ServeMux panics: %v", setting, p, r)
					}
				}()
				mux := http.NewServeMux()
				for _, route := range append([]string{cfg.Path, cfg.SSEPath, cfg.MessagePath}, fixedRoutes...) {
					mux.HandleFunc(route, func(http.ResponseWriter, *http.Request) {})
				}
			}()
		}
	}
}

func TestQueueBatchAndTimeoutBounds(t *testing.T) {
	cfg, err := Load([]string{"--", "server"}, vars(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxQueuedBytes != 4<<20 || cfg.MaxQueuedTotal != 256<<20 || cfg.SlowReader != 30*time.Second ||
		cfg.MaxBatch != 100 || cfg.UnusedTimeout != 2*time.Minute || cfg.LogRate != 100 || cfg.MaxQueue != 1024 {
		t.Errorf("defaults: %+v", cfg)
	}
	for _, bad := range []map[string]string{
		{"MCPWRAP_MAX_QUEUED_BYTES": "8388608", "MCPWRAP_MAX_QUEUED_BYTES_TOTAL": "4194304"},
		{"MCPWRAP_MAX_BATCH": "-1"},
		{"MCPWRAP_SLOW_READER_TIMEOUT": "-1s"},
		{"MCPWRAP_LOG_LINES_PER_SECOND": "-5"},
	} {
		if _, err := Load([]string{"--", "server"}, vars(bad), io.Discard); !errors.Is(err, ErrUsage) {
			t.Errorf("%v: %v, want a usage error", bad, err)
		}
	}
}
