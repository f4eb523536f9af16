package config

import (
	"errors"
	"fmt"
	"io"
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
