package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStatelessSettings(t *testing.T) {
	cfg, err := Load([]string{"--", "server"}, vars(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ChildEra != "auto" || cfg.StatelessMax != 100 || cfg.StatelessIdle != 5*time.Minute ||
		cfg.StatelessQueue != 30*time.Second || cfg.InputTimeout != 10*time.Minute || cfg.AuthSecret != "" {
		t.Errorf("defaults: era %q, max %d, idle %v, queue %v, input %v", cfg.ChildEra, cfg.StatelessMax, cfg.StatelessIdle, cfg.StatelessQueue, cfg.InputTimeout)
	}
	for _, bad := range []map[string]string{
		{"MCPWRAP_CHILD_ERA": "newest"},
		{"MCPWRAP_STATELESS_MAX_CHILDREN": "0"},
		{"MCPWRAP_INPUT_TIMEOUT": "0"},
		{"MCPWRAP_STATELESS_QUEUE_TIMEOUT": "-1s"},
		{"MCPWRAP_STATELESS_MAX_CHILDREN_PER_TENANT": "-1"},
		{"MCPWRAP_STATELESS_MAX_CHILDREN_PER_TENANT": "11", "MCPWRAP_STATELESS_MAX_CHILDREN": "10"},
	} {
		if _, err := Load([]string{"--", "server"}, vars(bad), io.Discard); !errors.Is(err, ErrUsage) {
			t.Errorf("%v: %v, want a usage error", bad, err)
		}
	}
	cfg, err = Load([]string{"--", "server"}, vars(map[string]string{"MCPWRAP_AUTH_SECRET": "hush-hush-9f2-0123456789abcdef0123456789", "MCPWRAP_LISTEN": "127.0.0.1:8080"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AuthSecret != "hush-hush-9f2-0123456789abcdef0123456789" {
		t.Errorf("AuthSecret = %q", cfg.AuthSecret)
	}
	if logged := fmt.Sprint(cfg.Redacted()); strings.Contains(logged, "hush-hush-9f2-0123456789abcdef0123456789") {
		t.Errorf("the secret appears in the logged configuration: %s", logged)
	}
}

// TestTenantChildren: each tenant's share of the stateless children is all
// of them for one tenant, and half of them among several unless set.
func TestTenantChildren(t *testing.T) {
	tenants := filepath.Join(t.TempDir(), "tenants.json")
	if err := os.WriteFile(tenants, []byte(`{"a":{"token":"a-token"},"b":{"token":"b-token"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		env  map[string]string
		args []string
		want int
	}{
		{nil, nil, 100},
		{map[string]string{"MCPWRAP_TOKEN": "one"}, nil, 100},
		{map[string]string{"MCPWRAP_TOKEN": "one", "MCPWRAP_STATELESS_MAX_CHILDREN": "7"}, nil, 7},
		{map[string]string{"MCPWRAP_TENANTS_FILE": tenants}, nil, 50},
		{map[string]string{"MCPWRAP_TENANTS_FILE": tenants, "MCPWRAP_STATELESS_MAX_CHILDREN": "1"}, nil, 1},
		{map[string]string{"MCPWRAP_TENANTS_FILE": tenants, "MCPWRAP_STATELESS_MAX_CHILDREN_PER_TENANT": "80"}, nil, 80},
		{map[string]string{"MCPWRAP_STATELESS_MAX_CHILDREN_PER_TENANT": "80"}, []string{"--stateless-max-children-per-tenant", "3"}, 3},
	} {
		cfg, err := Load(append(c.args, "--", "server"), vars(c.env), io.Discard)
		if err != nil {
			t.Fatalf("%v %v: %v", c.env, c.args, err)
		}
		if cfg.TenantChildren != c.want {
			t.Errorf("%v %v: %d children per tenant, want %d", c.env, c.args, cfg.TenantChildren, c.want)
		}
	}
}
