package proxy

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/config"
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigFlagsWinOverEnvironment(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env-token")
	flagFile := filepath.Join(dir, "flag-token")
	if err := os.WriteFile(envFile, []byte("from-env-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(flagFile, []byte("  from-flag-file \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"MCPWRAP_TOKEN":           "from-env",
		"MCPWRAP_TOKEN_FILE":      envFile,
		"MCPWRAP_PROXY_RETRY_FOR": "5s",
		"MCPWRAP_LOG_LEVEL":       "warn",
	}
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		wantToken string
		wantRetry time.Duration
		wantLevel string
	}{
		{"environment only", nil, env, "from-env", 5 * time.Second, "warn"},
		{"env token file alone", nil, map[string]string{"MCPWRAP_TOKEN_FILE": envFile}, "from-env-file", 30 * time.Second, "info"},
		{"flag token beats env", []string{"--token", "from-flag"}, env, "from-flag", 5 * time.Second, "warn"},
		{"flag token file beats env token", []string{"--token-file", flagFile}, env, "from-flag-file", 5 * time.Second, "warn"},
		{"flags beat retry and level", []string{"--retry-for", "2m", "--log-level", "debug"}, env, "from-env", 2 * time.Minute, "debug"},
		{"nothing set", nil, nil, "", 30 * time.Second, "info"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig(append(tt.args, "https://example.test/mcp"), envMap(tt.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Token != tt.wantToken || cfg.RetryFor != tt.wantRetry || cfg.LogLevel != tt.wantLevel {
				t.Errorf("got token %q retry %v level %q, want %q %v %q", cfg.Token, cfg.RetryFor, cfg.LogLevel, tt.wantToken, tt.wantRetry, tt.wantLevel)
			}
			if cfg.URL.String() != "https://example.test/mcp" {
				t.Errorf("URL = %s", cfg.URL)
			}
		})
	}
}

func TestConfigHeaders(t *testing.T) {
	cfg, err := parseConfig([]string{"--header", "X-One: 1", "--header", "X-Two:two words ", "--header", "X-One: again", "http://127.0.0.1:1/mcp"}, envMap(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Header.Values("X-One"); len(got) != 2 || got[0] != "1" || got[1] != "again" {
		t.Errorf("X-One = %q", got)
	}
	if got := cfg.Header.Get("X-Two"); got != "two words" {
		t.Errorf("X-Two = %q", got)
	}
}

func TestConfigRejects(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
	}{
		{"no URL", nil},
		{"two URLs", []string{"http://a/mcp", "http://b/mcp"}},
		{"not http", []string{"ftp://a/mcp"}},
		{"no host", []string{"http:///mcp"}},
		{"bad header", []string{"--header", "no colon", "http://a/mcp"}},
		{"token and token file", []string{"--token", "x", "--token-file", empty, "http://a/mcp"}},
		{"empty token file", []string{"--token-file", empty, "http://a/mcp"}},
		{"missing token file", []string{"--token-file", empty + "-missing", "http://a/mcp"}},
		{"bad level", []string{"--log-level", "loud", "http://a/mcp"}},
		{"negative retry", []string{"--retry-for", "-1s", "http://a/mcp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseConfig(tt.args, envMap(nil), io.Discard); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestConfigErrorsHideSecrets(t *testing.T) {
	_, err := parseConfig([]string{"http://user:hunter2@[::1/mcp"}, envMap(nil), io.Discard)
	if err == nil || !errors.Is(err, config.ErrUsage) {
		t.Fatalf("err = %v, want a usage error", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error shows the URL's password: %v", err)
	}
	_, err = parseConfig([]string{"--token", "line1\nline2", "http://a/mcp"}, envMap(nil), io.Discard)
	if err == nil || strings.Contains(err.Error(), "line1") {
		t.Errorf("err = %v, want a rejection that does not show the token", err)
	}
}
