// Package config reads mcpwrap's settings from MCPWRAP_* environment
// variables and from matching command-line flags (a flag wins over its
// variable). Every setting has both: MCPWRAP_MAX_SESSIONS is --max-sessions.
//
//	variable                        default            meaning
//	MCPWRAP_LISTEN                  see below          host:port to listen on
//	MCPWRAP_PATH                    /mcp               Streamable HTTP endpoint
//	MCPWRAP_SSE_PATH                /sse               HTTP+SSE (2024-11-05) stream endpoint
//	MCPWRAP_MESSAGE_PATH            /message           HTTP+SSE (2024-11-05) POST endpoint
//	MCPWRAP_TOKEN                   (none)             bearer token(s), comma-separated
//	MCPWRAP_TOKEN_FILE              (none)             file with one token per line
//	MCPWRAP_NO_AUTH                 false              serve without a token on a non-loopback address
//	MCPWRAP_ALLOWED_ORIGINS         (none)             extra allowed Origin values, comma-separated; * allows any
//	MCPWRAP_LOG_LEVEL               info               debug, info, warn, error
//	MCPWRAP_LOG_FORMAT              auto               json, console, or auto (console on a terminal)
//	MCPWRAP_MAX_SESSIONS            1000               concurrent sessions; beyond it 503 with Retry-After
//	MCPWRAP_SESSION_IDLE_TIMEOUT    30m                end sessions with no request for this long (0: never)
//	MCPWRAP_MAX_MESSAGE_BYTES       16777216           largest request body and child stdout line
//	MCPWRAP_MAX_QUEUED_MESSAGES     1024               messages held per session for a stream nobody reads
//	MCPWRAP_REQUEST_TIMEOUT         0                  give up on a request after this long (0: never)
//	MCPWRAP_KEEPALIVE               25s                SSE comment interval on open streams
//	MCPWRAP_CLOSE_GRACE             2s                 after closing a child's stdin, wait before SIGTERM
//	MCPWRAP_TERM_GRACE              3s                 after SIGTERM, wait before SIGKILL
//	MCPWRAP_SHUTDOWN_TIMEOUT        9s                 budget for ending every session on SIGTERM
//	MCPWRAP_PTY                     false              give the child a pseudo-terminal (raw mode)
//	MCPWRAP_CHILD_ENV               (none)             extra K=V variables for the child, comma-separated
//	MCPWRAP_CHILD_DIR               (none)             working directory of the child
//	MCPWRAP_TENANTS_FILE            (none)             JSON file of named tokens, each with its child's environment
//	MCPWRAP_EXIT_WHEN_IDLE          0                  exit 0 once no session has existed for this long (0: never)
//	MCPWRAP_METRICS_LISTEN          (none)             also serve /metrics here, without a token (a private address)
//	MCPWRAP_ALLOWED_HOSTS           (none)             host names served without a token, besides addresses and localhost
//	MCPWRAP_MAX_CONNECTIONS         0 (auto)           open connections; beyond, 503 (auto: half the file descriptor limit)
//	MCPWRAP_MAX_BODY_BYTES_TOTAL    268435456          request-body bytes held at once across requests; beyond, 503
//	MCPWRAP_HTTP_HEADER_TIMEOUT     10s                time to read a request's headers
//	MCPWRAP_HTTP_BODY_TIMEOUT       60s                time to read a request's body
//	MCPWRAP_HTTP_IDLE_TIMEOUT       2m                 close a keep-alive connection idle this long
//	MCPWRAP_CHILD_ERA               auto               protocol era of the wrapped server: auto (probe once), legacy or modern
//	MCPWRAP_STATELESS_MAX_CHILDREN  100                children serving protocol 2026-07-28 requests, across tenants
//	MCPWRAP_STATELESS_IDLE_TIMEOUT  5m                 stop such a child after it was free this long (0: never)
//	MCPWRAP_STATELESS_QUEUE_TIMEOUT 30s                wait this long for a free child, then 503 with Retry-After (0: as long as the client)
//	MCPWRAP_INPUT_TIMEOUT           10m                how long a call waiting for the client's input keeps its child
//	MCPWRAP_AUTH_SECRET             (none)             secret that keys requestState (HKDF); the same on every instance (default: a key per boot)
//	FLY_MACHINE_ID                  (set by Fly.io)    session ids and requestState name this Machine; others' are replayed there
//
// MCPWRAP_LISTEN defaults to :8080 when a token is configured and to
// 127.0.0.1:8080 otherwise, so that an unauthenticated mcpwrap is reachable
// only from its own machine. Without a token, mcpwrap refuses a non-loopback
// address unless MCPWRAP_NO_AUTH is set.
package config

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Config is the whole of mcpwrap's configuration.
type Config struct {
	Listen         string        `env:"LISTEN" help:"host:port to listen on (default :8080 with a token, 127.0.0.1:8080 without)"`
	Path           string        `env:"PATH" envDefault:"/mcp" help:"Streamable HTTP endpoint path"`
	SSEPath        string        `env:"SSE_PATH" envDefault:"/sse" help:"HTTP+SSE (2024-11-05) stream path"`
	MessagePath    string        `env:"MESSAGE_PATH" envDefault:"/message" help:"HTTP+SSE (2024-11-05) message path"`
	Tokens         []string      `env:"TOKEN" help:"bearer token(s), comma-separated"`
	TokenFile      string        `env:"TOKEN_FILE" help:"file holding bearer tokens, one per line"`
	NoAuth         bool          `env:"NO_AUTH" help:"serve without a token on a non-loopback address"`
	AllowedOrigins []string      `env:"ALLOWED_ORIGINS" help:"extra allowed Origin values, comma-separated (* allows any)"`
	LogLevel       string        `env:"LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`
	LogFormat      string        `env:"LOG_FORMAT" envDefault:"auto" help:"json, console or auto"`
	MaxSessions    int           `env:"MAX_SESSIONS" envDefault:"1000" help:"most concurrent sessions"`
	IdleTimeout    time.Duration `env:"SESSION_IDLE_TIMEOUT" envDefault:"30m" help:"end a session after this long without a request (0 never)"`
	MaxMessage     int           `env:"MAX_MESSAGE_BYTES" envDefault:"16777216" help:"largest request body or child stdout line, in bytes"`
	MaxQueue       int           `env:"MAX_QUEUED_MESSAGES" envDefault:"1024" help:"messages held per session for a stream nobody reads"`
	RequestTimeout time.Duration `env:"REQUEST_TIMEOUT" envDefault:"0" help:"give up on a request after this long (0 never)"`
	KeepAlive      time.Duration `env:"KEEPALIVE" envDefault:"25s" help:"interval of SSE keep-alive comments"`
	CloseGrace     time.Duration `env:"CLOSE_GRACE" envDefault:"2s" help:"after closing a child's stdin, wait this long before SIGTERM"`
	TermGrace      time.Duration `env:"TERM_GRACE" envDefault:"3s" help:"after SIGTERM, wait this long before SIGKILL"`
	ShutdownBudget time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"9s" help:"time allowed for ending all sessions on SIGTERM"`
	PTY            bool          `env:"PTY" help:"run the child on a pseudo-terminal in raw mode"`
	ChildEnv       []string      `env:"CHILD_ENV" help:"extra K=V variables for the child, comma-separated"`
	ChildDir       string        `env:"CHILD_DIR" help:"working directory of the child"`
	TenantsFile    string        `env:"TENANTS_FILE" help:"JSON file of named tokens, each with extra environment for its children"`
	ExitWhenIdle   time.Duration `env:"EXIT_WHEN_IDLE" envDefault:"0" help:"exit 0 once no session has existed for this long (0 never)"`
	MetricsListen  string        `env:"METRICS_LISTEN" help:"also serve /metrics on this host:port, without a token"`
	AllowedHosts   []string      `env:"ALLOWED_HOSTS" help:"host names served without a token, besides IP addresses and localhost, comma-separated"`
	MaxConns       int           `env:"MAX_CONNECTIONS" envDefault:"0" help:"most open connections, beyond which new ones get 503 (0: half the file descriptor limit)"`
	MaxBodyTotal   int           `env:"MAX_BODY_BYTES_TOTAL" envDefault:"268435456" help:"request-body bytes held at once across requests; beyond, 503"`
	HeaderTimeout  time.Duration `env:"HTTP_HEADER_TIMEOUT" envDefault:"10s" help:"time allowed to read a request's headers"`
	BodyTimeout    time.Duration `env:"HTTP_BODY_TIMEOUT" envDefault:"60s" help:"time allowed to read a request's body"`
	ConnIdle       time.Duration `env:"HTTP_IDLE_TIMEOUT" envDefault:"2m" help:"close a keep-alive connection idle this long"`
	ChildEra       string        `env:"CHILD_ERA" envDefault:"auto" help:"protocol era of the wrapped server: auto, legacy or modern"`
	StatelessMax   int           `env:"STATELESS_MAX_CHILDREN" envDefault:"100" help:"children serving protocol 2026-07-28 requests, across tenants"`
	StatelessIdle  time.Duration `env:"STATELESS_IDLE_TIMEOUT" envDefault:"5m" help:"stop a stateless-era child after it was free this long (0 never)"`
	StatelessQueue time.Duration `env:"STATELESS_QUEUE_TIMEOUT" envDefault:"30s" help:"wait this long for a free child, then 503 (0: as long as the client)"`
	InputTimeout   time.Duration `env:"INPUT_TIMEOUT" envDefault:"10m" help:"how long a call waiting for the client's input keeps its child"`
	AuthSecret     string        `env:"AUTH_SECRET" help:"secret keying requestState; the same on every instance (default: a key per boot)"`

	// Tenants are the tokens by name: MCPWRAP_TOKEN and MCPWRAP_TOKEN_FILE
	// give unnamed ones (token1, token2, ...), MCPWRAP_TENANTS_FILE named
	// ones with an environment of their own.
	Tenants []Tenant `env:"-"`
	// MachineID is FLY_MACHINE_ID: the instance this process runs on.
	MachineID string `env:"-"`

	// Command is what follows "--": the wrapped server and its arguments.
	Command []string `env:"-"`
}

const prefix = "MCPWRAP_"

// ErrUsage marks a configuration the user has to correct.
var ErrUsage = errors.New("usage")

// Load reads the environment through getenv, then the flags in args, which
// end at "--"; what follows is the command to wrap. It validates the result
// and reads the token file. usage receives flag errors and -help output.
func Load(args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	var cfg Config
	opts := env.Options{Prefix: prefix, Environment: map[string]string{}}
	params, err := env.GetFieldParamsWithOptions(&cfg, opts)
	if err != nil {
		return cfg, err
	}
	for _, p := range params {
		if v := getenv(p.Key); v != "" {
			opts.Environment[p.Key] = v
		}
	}
	if err := env.ParseWithOptions(&cfg, opts); err != nil {
		return cfg, fmt.Errorf("%w: %v", ErrUsage, err)
	}

	flagArgs, command := args, []string(nil)
	for i, a := range args {
		if a == "--" {
			flagArgs, command = args[:i], args[i+1:]
			break
		}
	}
	fs := flag.NewFlagSet("mcpwrap", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.Usage = func() {
		fmt.Fprintf(usage, "usage: mcpwrap [flags] -- command [args...]\n       mcpwrap proxy [flags] URL\n       mcpwrap bench [flags] (URL | -- command [args...])\n\nflags (each also read from MCPWRAP_<NAME>):\n")
		fs.PrintDefaults()
	}
	registerFlags(fs, &cfg)
	if err := fs.Parse(flagArgs); err != nil {
		return cfg, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		if command != nil {
			return cfg, fmt.Errorf("%w: unexpected argument %q before --", ErrUsage, fs.Arg(0))
		}
		command = fs.Args()
	}
	cfg.Command = command

	if cfg.TokenFile != "" {
		tokens, err := readTokenFile(cfg.TokenFile)
		if err != nil {
			return cfg, err
		}
		cfg.Tokens = append(cfg.Tokens, tokens...)
	}
	for i, t := range clean(cfg.Tokens) {
		cfg.Tenants = append(cfg.Tenants, Tenant{Name: fmt.Sprintf("token%d", i+1), Token: t})
	}
	if cfg.TenantsFile != "" {
		tenants, err := readTenants(cfg.TenantsFile)
		if err != nil {
			return cfg, err
		}
		cfg.Tenants = append(cfg.Tenants, tenants...)
	}
	cfg.Tokens = nil // from here on, Tenants is the one list
	cfg.MachineID = getenv("FLY_MACHINE_ID")
	cfg.AllowedOrigins = clean(cfg.AllowedOrigins)
	cfg.AllowedHosts = clean(cfg.AllowedHosts)
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8080"
		if len(cfg.Tenants) > 0 {
			cfg.Listen = ":8080"
		}
	}
	return cfg, cfg.validate()
}

func (c Config) validate() error {
	if len(c.Command) == 0 {
		return fmt.Errorf("%w: no command to wrap: mcpwrap [flags] -- command [args...]", ErrUsage)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("%w: MCPWRAP_LISTEN %q: %v", ErrUsage, c.Listen, err)
	}
	if len(c.Tenants) == 0 && !c.NoAuth && !IsLoopback(c.Listen) {
		return fmt.Errorf("%w: no token set and %s is not a loopback address: set MCPWRAP_TOKEN (or MCPWRAP_TOKEN_FILE), listen on 127.0.0.1, or set MCPWRAP_NO_AUTH=true to serve anyone", ErrUsage, c.Listen)
	}
	for _, p := range []string{c.Path, c.SSEPath, c.MessagePath} {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("%w: path %q must start with /", ErrUsage, p)
		}
	}
	if c.MaxBodyTotal <= c.MaxMessage {
		return fmt.Errorf("%w: MCPWRAP_MAX_BODY_BYTES_TOTAL (%d) must exceed MCPWRAP_MAX_MESSAGE_BYTES (%d)", ErrUsage, c.MaxBodyTotal, c.MaxMessage)
	}
	if c.HeaderTimeout <= 0 || c.ConnIdle <= 0 || c.BodyTimeout < 0 || c.MaxConns < 0 {
		return fmt.Errorf("%w: MCPWRAP_HTTP_HEADER_TIMEOUT and MCPWRAP_HTTP_IDLE_TIMEOUT must be positive, MCPWRAP_HTTP_BODY_TIMEOUT and MCPWRAP_MAX_CONNECTIONS not negative", ErrUsage)
	}
	if c.MaxSessions < 1 || c.MaxMessage < 1024 || c.MaxQueue < 1 {
		return fmt.Errorf("%w: MCPWRAP_MAX_SESSIONS, MCPWRAP_MAX_QUEUED_MESSAGES must be positive and MCPWRAP_MAX_MESSAGE_BYTES at least 1024", ErrUsage)
	}
	if !slices.Contains([]string{"auto", "legacy", "modern"}, c.ChildEra) {
		return fmt.Errorf("%w: MCPWRAP_CHILD_ERA %q must be auto, legacy or modern", ErrUsage, c.ChildEra)
	}
	if c.StatelessMax < 1 || c.StatelessIdle < 0 || c.StatelessQueue < 0 || c.InputTimeout <= 0 {
		return fmt.Errorf("%w: MCPWRAP_STATELESS_MAX_CHILDREN and MCPWRAP_INPUT_TIMEOUT must be positive, the stateless timeouts not negative", ErrUsage)
	}
	seen := map[string]bool{}
	for _, t := range c.Tenants {
		if seen["name "+t.Name] || seen["token "+t.Token] {
			return fmt.Errorf("%w: tenant %q: every tenant needs its own name and its own token", ErrUsage, t.Name)
		}
		seen["name "+t.Name], seen["token "+t.Token] = true, true
	}
	for _, kv := range c.ChildEnv {
		if !strings.Contains(kv, "=") {
			return fmt.Errorf("%w: MCPWRAP_CHILD_ENV entry %q is not K=V", ErrUsage, kv)
		}
	}
	return nil
}

// IsLoopback reports whether a listen address can be reached only from this
// machine: 127.0.0.0/8, ::1 or localhost. An empty host means every
// interface, which is not loopback.
func IsLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ChildEnviron is the environment the wrapped command sees: mcpwrap's own
// minus every MCPWRAP_ variable (tokens among them), plus MCPWRAP_CHILD_ENV.
func (c Config) ChildEnviron(environ []string) []string {
	out := make([]string, 0, len(environ)+len(c.ChildEnv))
	for _, kv := range environ {
		if !strings.HasPrefix(kv, prefix) {
			out = append(out, kv)
		}
	}
	return append(out, c.ChildEnv...)
}

// Redacted is the configuration as it may be logged: token values never
// appear, only how many there are.
func (c Config) Redacted() map[string]any {
	m := map[string]any{}
	v := reflect.ValueOf(c)
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		switch f.Name {
		case "Tokens":
		case "AuthSecret":
			m["auth_secret_set"] = c.AuthSecret != ""
		case "Tenants":
			names := make([]string, 0, len(c.Tenants))
			for _, t := range c.Tenants {
				names = append(names, t.Name)
			}
			m["tokens"] = names
		case "ChildEnv":
			keys := make([]string, 0, len(c.ChildEnv))
			for _, kv := range c.ChildEnv {
				k, _, _ := strings.Cut(kv, "=")
				keys = append(keys, k)
			}
			m["child_env"] = keys
		default:
			val := v.Field(i).Interface()
			if d, ok := val.(time.Duration); ok {
				val = d.String()
			}
			m[flagName(f)] = val
		}
	}
	return m
}

func readTokenFile(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: reading MCPWRAP_TOKEN_FILE: %v", ErrUsage, err)
	}
	var tokens []string
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			tokens = append(tokens, line)
		}
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("%w: MCPWRAP_TOKEN_FILE %s holds no token", ErrUsage, path)
	}
	return tokens, nil
}

// Tenant is one accepted token, the name logs and metrics know it by, and
// the environment its sessions' children get on top of the common one.
type Tenant struct {
	Name  string
	Token string
	Env   []string // K=V
}

// readTenants reads a tenants file: a JSON object from name to token and
// environment, so one deployment can serve several users, each child seeing
// only its own user's credentials:
//
//	{"alice": {"token": "…", "env": {"GITHUB_TOKEN": "…"}}}
func readTenants(path string) ([]Tenant, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: reading MCPWRAP_TENANTS_FILE: %v", ErrUsage, err)
	}
	var file map[string]struct {
		Token string            `json:"token"`
		Env   map[string]string `json:"env"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		// The decoder's message may quote the file; it holds secrets.
		return nil, fmt.Errorf("%w: MCPWRAP_TENANTS_FILE %s is not a JSON object of name → {token, env}", ErrUsage, path)
	}
	var tenants []Tenant
	for _, name := range slices.Sorted(maps.Keys(file)) {
		t := file[name]
		if strings.TrimSpace(t.Token) == "" {
			return nil, fmt.Errorf("%w: tenant %q in MCPWRAP_TENANTS_FILE has no token", ErrUsage, name)
		}
		tenant := Tenant{Name: name, Token: strings.TrimSpace(t.Token)}
		for _, k := range slices.Sorted(maps.Keys(t.Env)) {
			tenant.Env = append(tenant.Env, k+"="+t.Env[k])
		}
		tenants = append(tenants, tenant)
	}
	return tenants, nil
}

func clean(list []string) []string {
	var out []string
	for _, s := range list {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// registerFlags gives every field with an env tag a flag of the same name in
// lower case with dashes, so the two can never drift apart.
func registerFlags(fs *flag.FlagSet, cfg *Config) {
	v := reflect.ValueOf(cfg).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Tag.Get("env") == "-" {
			continue
		}
		fs.Var(fieldValue{v.Field(i)}, flagName(f), f.Tag.Get("help")+" ("+prefix+f.Tag.Get("env")+")")
	}
}

func flagName(f reflect.StructField) string {
	name := f.Tag.Get("env")
	if name == "-" || name == "" {
		return strings.ToLower(f.Name)
	}
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// fieldValue is a flag.Value over one Config field, parsed the way the
// environment variable is.
type fieldValue struct{ v reflect.Value }

func (f fieldValue) String() string {
	if !f.v.IsValid() {
		return ""
	}
	if f.v.Kind() == reflect.Slice {
		if f.v.Len() > 0 && f.v.Type().Elem().Kind() == reflect.String {
			return "…"
		}
		return ""
	}
	return fmt.Sprint(f.v.Interface())
}

func (f fieldValue) IsBoolFlag() bool { return f.v.IsValid() && f.v.Kind() == reflect.Bool }

func (f fieldValue) Set(s string) error {
	switch {
	case f.v.Type() == reflect.TypeFor[time.Duration]():
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		f.v.SetInt(int64(d))
	case f.v.Kind() == reflect.String:
		f.v.SetString(s)
	case f.v.Kind() == reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		f.v.SetInt(int64(n))
	case f.v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		f.v.SetBool(b)
	case f.v.Kind() == reflect.Slice:
		f.v.Set(reflect.ValueOf(strings.Split(s, ",")))
	default:
		return fmt.Errorf("unsupported setting type %s", f.v.Type())
	}
	return nil
}
