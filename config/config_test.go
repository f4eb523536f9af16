package config

import (
	"errors"
	"fmt"
	"io"
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
