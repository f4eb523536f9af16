package config_test

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
)

// TestUsageErrorsExitTwo runs the real binary: every subcommand's usage
// error, including a path collision that used to panic in ServeMux at
// start, exits 2 with the reason and a pointer to -h.
func TestUsageErrorsExitTwo(t *testing.T) {
	bins, err := testkit.Build(t.TempDir(), testkit.Mcpwrap)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  []string
		want []string // in stderr
	}{
		{"serve: SSE path on the MCP path", []string{"--", "true"}, []string{"MCPWRAP_SSE_PATH=/mcp"}, []string{"MCPWRAP_PATH", "MCPWRAP_SSE_PATH", `"/mcp"`, "mcpwrap -h"}},
		{"serve: message path on /healthz", []string{"--message-path", "/healthz", "--", "true"}, nil, []string{"MCPWRAP_MESSAGE_PATH", "healthz", "mcpwrap -h"}},
		{"serve: no command", nil, nil, []string{"no command to wrap", "mcpwrap -h"}},
		{"proxy: no URL", []string{"proxy"}, nil, []string{"want exactly one URL", "mcpwrap proxy -h"}},
		{"bench: no target", []string{"bench"}, nil, []string{"want a URL or -- command", "mcpwrap bench -h"}},
		{"bench: bad value", []string{"bench", "--sessions", "0", "http://127.0.0.1:1/mcp"}, nil, []string{"--sessions", "mcpwrap bench -h"}},
		{"bench: unknown flag", []string{"bench", "--frobnicate", "http://127.0.0.1:1/mcp"}, nil, []string{"frobnicate", "mcpwrap bench -h"}},
		{"bench: bad header", []string{"bench", "--header", "novalue", "http://127.0.0.1:1/mcp"}, nil, []string{"Name: value", "mcpwrap bench -h"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bins[0], tt.args...)
			cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, tt.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("exit: %v, want status 2; stderr:\n%s", err, stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			if strings.Contains(stderr.String(), "panic") {
				t.Errorf("stderr shows a panic:\n%s", stderr.String())
			}
		})
	}
}
