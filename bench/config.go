package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	mcpconfig "github.com/mcpwrap/mcpwrap/config"
)

// config is one run, from flags and the environment (config.Parse).
type config struct {
	Sessions     int `flag:"sessions" envDefault:"1" help:"sessions to open"`
	Calls        int `flag:"calls" envDefault:"100" help:"calls per session (0: only open and close)"`
	Inflight     int `flag:"inflight" envDefault:"1" help:"calls in flight per session"`
	OpenInflight int `flag:"open-inflight" envDefault:"0" help:"sessions opening at once (0: all at once)"`
	// OpenEvery paces the opening: session i starts no sooner than i times
	// this after the first, as users arriving one by one would.
	OpenEvery time.Duration `flag:"open-every" envDefault:"0s" help:"start one session this often rather than as fast as allowed"`
	Tool      string        `flag:"tool" envDefault:"echo" help:"tool to call"`
	ArgsJSON  string        `flag:"args" help:"tool arguments as a JSON object (default: built from --payload or --response)"`
	Payload   int           `flag:"payload" envDefault:"64" help:"bytes of text sent to echo"`
	Response  int           `flag:"response" envDefault:"0" help:"bytes of text asked of the big tool (0: call --tool instead)"`

	Token   string      `env:"TOKEN" help:"bearer token"`
	Headers http.Header `flag:"header" help:"extra request header 'Name: value', repeatable"`

	MaxDuration time.Duration `flag:"max-duration" envDefault:"5m" help:"cap on the whole run; calls stop when it passes"`
	Timeout     time.Duration `flag:"timeout" envDefault:"30s" help:"cap on one session setup or call"`
	Hold        time.Duration `flag:"hold" envDefault:"0s" help:"keep the sessions open this long after the calls"`
	ReadyFile   string        `flag:"ready-file" help:"file written once all sessions are open and the calls done"`
	MaxMessage  int           `flag:"max-message" envDefault:"67108864" help:"largest message accepted, in bytes"`
	ChildStderr bool          `flag:"child-stderr" help:"direct mode: pass the children's stderr through"`
	JSON        bool          `flag:"json" help:"print the report as one JSON object"`
	Quiet       bool          `flag:"quiet" help:"no progress lines"`

	url      string          // URL mode target
	command  []string        // direct mode command and arguments
	args     json.RawMessage // tool arguments; built from Payload or Response when nil
	progress time.Duration
}

// commandLine is bench's command line for config.Parse.
var commandLine = mcpconfig.Command{
	Name:     "mcpwrap bench",
	Synopsis: "usage: mcpwrap bench [flags] (URL | -- command [args...])",
}

func parseArgs(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	cfg := &config{progress: time.Second}
	parsed, err := mcpconfig.Parse(cfg, commandLine, args, getenv, stderr)
	if err != nil {
		return nil, err
	}
	if cfg.Headers == nil {
		cfg.Headers = http.Header{}
	}

	switch rest := parsed.Args; {
	case parsed.Command != nil && len(rest) > 0:
		return nil, fmt.Errorf("%w: give a URL or -- command, not both", mcpconfig.ErrUsage)
	case parsed.Command != nil:
		if len(parsed.Command) == 0 {
			return nil, fmt.Errorf("%w: no command after --", mcpconfig.ErrUsage)
		}
		cfg.command = parsed.Command
	case len(rest) == 1:
		u, err := url.Parse(rest[0])
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%w: %q is not an http(s) URL", mcpconfig.ErrUsage, rest[0])
		}
		cfg.url = rest[0]
	case len(rest) == 0:
		return nil, fmt.Errorf("%w: want a URL or -- command", mcpconfig.ErrUsage)
	default:
		return nil, fmt.Errorf("%w: unexpected arguments %q (a command goes after --)", mcpconfig.ErrUsage, rest[1:])
	}

	switch {
	case cfg.Sessions < 1:
		return nil, fmt.Errorf("%w: --sessions must be at least 1", mcpconfig.ErrUsage)
	case cfg.Calls < 0:
		return nil, fmt.Errorf("%w: --calls must not be negative", mcpconfig.ErrUsage)
	case cfg.Inflight < 1:
		return nil, fmt.Errorf("%w: --inflight must be at least 1", mcpconfig.ErrUsage)
	case cfg.OpenEvery < 0:
		return nil, fmt.Errorf("%w: --open-every must not be negative", mcpconfig.ErrUsage)
	case cfg.OpenInflight < 0:
		return nil, fmt.Errorf("%w: --open-inflight must not be negative", mcpconfig.ErrUsage)
	case cfg.Payload < 0 || cfg.Response < 0:
		return nil, fmt.Errorf("%w: --payload and --response must not be negative", mcpconfig.ErrUsage)
	case cfg.MaxDuration <= 0 || cfg.Timeout <= 0 || cfg.Hold < 0:
		return nil, fmt.Errorf("%w: --max-duration and --timeout must be positive", mcpconfig.ErrUsage)
	case cfg.MaxMessage < 1024:
		return nil, fmt.Errorf("%w: --max-message must be at least 1024", mcpconfig.ErrUsage)
	}
	if cfg.OpenInflight == 0 {
		cfg.OpenInflight = cfg.Sessions
	}
	if cfg.ArgsJSON != "" {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(cfg.ArgsJSON), &obj); err != nil {
			return nil, fmt.Errorf("%w: --args is not a JSON object: %v", mcpconfig.ErrUsage, err)
		}
		cfg.args = json.RawMessage(cfg.ArgsJSON)
	}
	if cfg.Response > 0 && cfg.args == nil {
		cfg.Tool = "big"
	}
	return cfg, nil
}

// workload is what every call sends and what it must get back.
type workload struct {
	params  []byte // tools/call params, encoded once
	want    string // exact text expected back, if known
	wantLen int    // length of the text expected back, or -1
}

func (cfg *config) workload() (workload, error) {
	w := workload{wantLen: -1}
	args := cfg.args
	switch {
	case args != nil:
	case cfg.Response > 0:
		args = fmt.Appendf(nil, `{"size":%d}`, cfg.Response)
		w.wantLen = cfg.Response
	default:
		text := payloadText(cfg.Payload)
		b, err := json.Marshal(map[string]string{"text": text})
		if err != nil {
			return w, fmt.Errorf("encode payload: %w", err)
		}
		args = b
		if cfg.Tool == "echo" {
			w.want, w.wantLen = text, len(text)
		}
	}
	p, err := json.Marshal(struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}{cfg.Tool, args})
	if err != nil {
		return w, fmt.Errorf("encode params: %w", err)
	}
	w.params = p
	return w, nil
}

// payloadText is ASCII that JSON carries unescaped, so n bytes of text are
// n bytes on the wire.
func payloadText(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b strings.Builder
	b.Grow(n)
	for i := range n {
		b.WriteByte(alphabet[i%len(alphabet)])
	}
	return b.String()
}
