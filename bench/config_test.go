package bench

import (
	"encoding/json"
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	mcpconfig "github.com/mcpwrap/mcpwrap/config"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseArgs(t *testing.T) {
	noEnv := env(nil)
	t.Run("URL with flags", func(t *testing.T) {
		cfg, err := parseArgs([]string{"--sessions", "50", "--calls=10", "--inflight", "8", "--payload", "1048576",
			"--header", "X-API-Key: k1", "--json", "http://127.0.0.1:9/mcp"}, noEnv, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.url != "http://127.0.0.1:9/mcp" || cfg.command != nil {
			t.Errorf("url %q command %q", cfg.url, cfg.command)
		}
		if cfg.Sessions != 50 || cfg.Calls != 10 || cfg.Inflight != 8 || cfg.Payload != 1<<20 || !cfg.JSON {
			t.Errorf("numbers not read: %+v", cfg)
		}
		if cfg.OpenInflight != 50 {
			t.Errorf("openInflight = %d, want all 50 sessions at once", cfg.OpenInflight)
		}
		if got := cfg.Headers.Get("X-Api-Key"); got != "k1" {
			t.Errorf("header X-API-Key = %q", got)
		}
	})
	t.Run("command after --", func(t *testing.T) {
		cfg, err := parseArgs([]string{"--calls", "3", "--", "bin/echo", "--flag", "x"}, noEnv, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(cfg.command, []string{"bin/echo", "--flag", "x"}) || cfg.url != "" {
			t.Errorf("command %q url %q", cfg.command, cfg.url)
		}
	})
	t.Run("token from the environment, flag wins", func(t *testing.T) {
		e := env(map[string]string{"MCPWRAP_TOKEN": "from-env"})
		cfg, err := parseArgs([]string{"http://h/mcp"}, e, io.Discard)
		if err != nil || cfg.Token != "from-env" {
			t.Errorf("token %q, err %v", cfg.Token, err)
		}
		cfg, err = parseArgs([]string{"--token", "from-flag", "http://h/mcp"}, e, io.Discard)
		if err != nil || cfg.Token != "from-flag" {
			t.Errorf("token %q, err %v", cfg.Token, err)
		}
	})
	t.Run("response selects the big tool", func(t *testing.T) {
		cfg, err := parseArgs([]string{"--response", "4096", "http://h/mcp"}, noEnv, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		w, err := cfg.workload()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Tool != "big" || w.wantLen != 4096 || string(w.params) != `{"name":"big","arguments":{"size":4096}}` {
			t.Errorf("tool %q wantLen %d params %s", cfg.Tool, w.wantLen, w.params)
		}
	})
	t.Run("payload is sent and expected back exactly", func(t *testing.T) {
		cfg, err := parseArgs([]string{"--payload", "100", "http://h/mcp"}, noEnv, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		w, err := cfg.workload()
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			Name      string
			Arguments struct{ Text string }
		}
		if err := json.Unmarshal(w.params, &p); err != nil {
			t.Fatal(err)
		}
		if p.Name != "echo" || len(p.Arguments.Text) != 100 || p.Arguments.Text != w.want || len(w.params) != 100+len(`{"name":"echo","arguments":{"text":""}}`) {
			t.Errorf("params %.80s, want %.20q", w.params, w.want)
		}
	})
	t.Run("args are passed as given and not checked", func(t *testing.T) {
		cfg, err := parseArgs([]string{"--tool", "search", "--args", `{"q":"x"}`, "http://h/mcp"}, noEnv, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		w, err := cfg.workload()
		if err != nil {
			t.Fatal(err)
		}
		if string(w.params) != `{"name":"search","arguments":{"q":"x"}}` || w.want != "" || w.wantLen != -1 {
			t.Errorf("params %s want %q wantLen %d", w.params, w.want, w.wantLen)
		}
	})
	t.Run("durations", func(t *testing.T) {
		cfg, err := parseArgs([]string{"--max-duration", "90s", "--timeout", "2s", "--hold", "1s", "--open-every", "250ms", "http://h/mcp"}, noEnv, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.MaxDuration != 90*time.Second || cfg.Timeout != 2*time.Second || cfg.Hold != time.Second || cfg.OpenEvery != 250*time.Millisecond {
			t.Errorf("durations %v %v %v %v", cfg.MaxDuration, cfg.Timeout, cfg.Hold, cfg.OpenEvery)
		}
	})
}

func TestParseArgsRejects(t *testing.T) {
	tests := map[string][]string{
		"nothing":             {},
		"not a URL":           {"127.0.0.1:8080"},
		"ftp URL":             {"ftp://h/mcp"},
		"two targets":         {"http://a/mcp", "http://b/mcp"},
		"empty command":       {"--"},
		"zero sessions":       {"--sessions", "0", "http://h/mcp"},
		"zero inflight":       {"--inflight", "0", "http://h/mcp"},
		"negative pacing":     {"--open-every", "-1s", "http://h/mcp"},
		"negative calls":      {"--calls", "-1", "http://h/mcp"},
		"negative payload":    {"--payload", "-5", "http://h/mcp"},
		"zero max duration":   {"--max-duration", "0s", "http://h/mcp"},
		"args not an object":  {"--args", "[1]", "http://h/mcp"},
		"header without name": {"--header", "novalue", "http://h/mcp"},
		"unknown flag":        {"--frobnicate", "http://h/mcp"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			var stderr strings.Builder
			// The usage error every subcommand shares, so mcpwrap exits 2.
			if _, err := parseArgs(args, env(nil), &stderr); !errors.Is(err, mcpconfig.ErrUsage) {
				t.Errorf("parseArgs(%q) = %v, want a usage error", args, err)
			}
		})
	}
	t.Run("help is not an error to Run", func(t *testing.T) {
		var stderr strings.Builder
		_, err := parseArgs([]string{"--help"}, env(nil), &stderr)
		if !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("err = %v, want flag.ErrHelp", err)
		}
		if !strings.Contains(stderr.String(), "--sessions") && !strings.Contains(stderr.String(), "-sessions") {
			t.Errorf("help text lacks the flags: %q", stderr.String())
		}
	})
}
