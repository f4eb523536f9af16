package bench

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// config is one run, from flags and the environment.
type config struct {
	url     string   // URL mode target
	command []string // direct mode command and arguments

	sessions     int
	calls        int // per session
	inflight     int // per session
	openInflight int // sessions opening at once; 0 means all

	tool     string
	args     json.RawMessage // tool arguments; built from payload or response when nil
	payload  int
	response int

	token   string
	headers http.Header

	maxDuration time.Duration
	timeout     time.Duration
	hold        time.Duration
	readyFile   string
	maxMessage  int
	childStderr bool

	jsonOut  bool
	quiet    bool
	progress time.Duration
}

// headerFlag collects repeated --header "Name: value" flags.
type headerFlag struct{ h http.Header }

func (f headerFlag) String() string { return "" }

func (f headerFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return fmt.Errorf("header %q: want \"Name: value\"", v)
	}
	f.h.Add(name, strings.TrimSpace(value))
	return nil
}

// errUsage marks a command line the tool cannot run.
var errUsage = errors.New("usage")

func parseArgs(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	cfg := &config{headers: http.Header{}, progress: time.Second}
	fs := flag.NewFlagSet("mcpwrap bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mcpwrap bench [flags] (URL | -- command args...)")
		fs.PrintDefaults()
	}
	fs.IntVar(&cfg.sessions, "sessions", 1, "sessions to open")
	fs.IntVar(&cfg.calls, "calls", 100, "calls per session (0: only open and close)")
	fs.IntVar(&cfg.inflight, "inflight", 1, "calls in flight per session")
	fs.IntVar(&cfg.openInflight, "open-inflight", 0, "sessions opening at once (0: all at once)")
	fs.StringVar(&cfg.tool, "tool", "echo", "tool to call")
	argsJSON := fs.String("args", "", "tool arguments as a JSON object (default: built from --payload or --response)")
	fs.IntVar(&cfg.payload, "payload", 64, "bytes of text sent to echo")
	fs.IntVar(&cfg.response, "response", 0, "bytes of text asked of the big tool (0: call --tool instead)")
	fs.StringVar(&cfg.token, "token", getenv("MCPWRAP_TOKEN"), "bearer token (default $MCPWRAP_TOKEN)")
	fs.Var(headerFlag{cfg.headers}, "header", "extra request header \"Name: value\" (repeatable)")
	fs.DurationVar(&cfg.maxDuration, "max-duration", 5*time.Minute, "cap on the whole run; calls stop when it passes")
	fs.DurationVar(&cfg.timeout, "timeout", 30*time.Second, "cap on one session setup or call")
	fs.DurationVar(&cfg.hold, "hold", 0, "keep the sessions open this long after the calls")
	fs.StringVar(&cfg.readyFile, "ready-file", "", "file written once all sessions are open and the calls done")
	fs.IntVar(&cfg.maxMessage, "max-message", 64<<20, "largest message accepted, in bytes")
	fs.BoolVar(&cfg.childStderr, "child-stderr", false, "direct mode: pass the children's stderr through")
	fs.BoolVar(&cfg.jsonOut, "json", false, "print the report as one JSON object")
	fs.BoolVar(&cfg.quiet, "quiet", false, "no progress lines")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}

	// flag stops at "--" and drops it; seeing it just before the rest is
	// what tells a command from a URL.
	rest := fs.Args()
	consumed := len(args) - len(rest)
	switch {
	case consumed > 0 && args[consumed-1] == "--":
		if len(rest) == 0 {
			return nil, fmt.Errorf("%w: no command after --", errUsage)
		}
		cfg.command = rest
	case len(rest) == 1:
		u, err := url.Parse(rest[0])
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%w: %q is not an http(s) URL", errUsage, rest[0])
		}
		cfg.url = rest[0]
	case len(rest) == 0:
		return nil, fmt.Errorf("%w: want a URL or -- command", errUsage)
	default:
		return nil, fmt.Errorf("%w: unexpected arguments %q (a command goes after --)", errUsage, rest[1:])
	}

	switch {
	case cfg.sessions < 1:
		return nil, fmt.Errorf("%w: --sessions must be at least 1", errUsage)
	case cfg.calls < 0:
		return nil, fmt.Errorf("%w: --calls must not be negative", errUsage)
	case cfg.inflight < 1:
		return nil, fmt.Errorf("%w: --inflight must be at least 1", errUsage)
	case cfg.openInflight < 0:
		return nil, fmt.Errorf("%w: --open-inflight must not be negative", errUsage)
	case cfg.payload < 0 || cfg.response < 0:
		return nil, fmt.Errorf("%w: --payload and --response must not be negative", errUsage)
	case cfg.maxDuration <= 0 || cfg.timeout <= 0 || cfg.hold < 0:
		return nil, fmt.Errorf("%w: --max-duration and --timeout must be positive", errUsage)
	case cfg.maxMessage < 1024:
		return nil, fmt.Errorf("%w: --max-message must be at least 1024", errUsage)
	}
	if cfg.openInflight == 0 {
		cfg.openInflight = cfg.sessions
	}
	if *argsJSON != "" {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(*argsJSON), &obj); err != nil {
			return nil, fmt.Errorf("%w: --args is not a JSON object: %v", errUsage, err)
		}
		cfg.args = json.RawMessage(*argsJSON)
	}
	if cfg.response > 0 && cfg.args == nil {
		cfg.tool = "big"
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
	case cfg.response > 0:
		args = fmt.Appendf(nil, `{"size":%d}`, cfg.response)
		w.wantLen = cfg.response
	default:
		text := payloadText(cfg.payload)
		b, err := json.Marshal(map[string]string{"text": text})
		if err != nil {
			return w, fmt.Errorf("encode payload: %w", err)
		}
		args = b
		if cfg.tool == "echo" {
			w.want, w.wantLen = text, len(text)
		}
	}
	p, err := json.Marshal(struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}{cfg.tool, args})
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
