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
//	MCPWRAP_MAX_STARTING            0 (auto)           children starting at once, each until its first output or 1s; auto: 8 per CPU
//	MCPWRAP_SESSION_IDLE_TIMEOUT    30m                end sessions with no request for this long (0: never)
//	MCPWRAP_MAX_MESSAGE_BYTES       16777216           largest request body and child stdout line
//	MCPWRAP_MAX_QUEUED_MESSAGES     1024               deprecated (MCPWRAP_MAX_QUEUED_BYTES bounds queues); still caps a stream's queue
//	MCPWRAP_MAX_QUEUED_BYTES        4194304            bytes held per session for its readers; beyond, the oldest stream messages drop
//	MCPWRAP_MAX_QUEUED_BYTES_TOTAL  268435456          bytes held for readers across all sessions
//	MCPWRAP_SLOW_READER_TIMEOUT     30s                cut a client whose stream does not take a write for this long (0: never)
//	MCPWRAP_MAX_BATCH               100                most messages in one JSON-RPC batch; beyond, 400
//	MCPWRAP_UNUSED_SESSION_TIMEOUT  2m                 end a session that had nothing but initialize for this long (0: never)
//	MCPWRAP_LOG_LINES_PER_SECOND    100                log lines per session a second (child stderr, warnings), bursts of 10x; 0: no bound
//	MCPWRAP_REQUEST_TIMEOUT         0                  give up on a request after this long (0: never)
//	MCPWRAP_KEEPALIVE               25s                SSE comment interval on open streams
//	MCPWRAP_SSE_RETRY               1s                 reconnection delay sent to clients (retry:) on /mcp streams
//	MCPWRAP_SSE_RETENTION           5m                 how long a reply whose connection dropped waits for a resume (Last-Event-ID); 0: discarded
//	MCPWRAP_SSE_POLL_AFTER          0                  close a reply's stream after this long and let the client resume it by GET (2025-11-25; 0: never)
//	MCPWRAP_CLOSE_GRACE             2s                 after closing a child's stdin, wait before SIGTERM
//	MCPWRAP_TERM_GRACE              3s                 after SIGTERM, wait before SIGKILL
//	MCPWRAP_SHUTDOWN_TIMEOUT        9s                 budget for ending every session on SIGTERM
//	MCPWRAP_PTY                     false              give the child a pseudo-terminal (raw mode)
//	MCPWRAP_CHILD_ENV               (none)             extra K=V variables for the child, comma-separated
//	MCPWRAP_CHILD_DIR               (none)             working directory of the child
//	MCPWRAP_TENANTS_FILE            (none)             JSON file of named tokens, each with its child's environment
//	MCPWRAP_EXIT_WHEN_IDLE          0                  exit 0 once no session has existed for this long (0: never)
//	MCPWRAP_WARM_CHILDREN           0                  children kept started ahead of demand, per environment (see README)
//	MCPWRAP_METRICS_LISTEN          (none)             also serve /metrics here, without a token (a private address)
//	MCPWRAP_ALLOWED_HOSTS           (none)             host names served without a token, besides addresses and localhost
//	MCPWRAP_MAX_CONNECTIONS         0 (auto)           open connections; beyond, 503 (auto: half the file descriptor limit)
//	MCPWRAP_MAX_BODY_BYTES_TOTAL    268435456          request-body bytes held at once across requests; beyond, 503
//	MCPWRAP_HTTP_HEADER_TIMEOUT     10s                time to read a request's headers
//	MCPWRAP_HTTP_BODY_TIMEOUT       60s                time to read a request's body
//	MCPWRAP_HTTP_IDLE_TIMEOUT       2m                 close a keep-alive connection idle this long
//	MCPWRAP_PUBLIC_URL              see below          the externally visible base URL (https://my-mcp.fly.dev, or with a path prefix)
//	MCPWRAP_AUTH_ISSUER             (none)             OAuth: the issuer whose access tokens are accepted (an external identity provider)
//	MCPWRAP_AUTH_AUDIENCE           (none)             OAuth: the one audience accepted instead of the resource (PUBLIC_URL + PATH)
//	MCPWRAP_AUTH_SCOPES             (none)             OAuth: scopes every token must carry, comma-separated
//	MCPWRAP_AUTH_USER_CLAIM         sub                OAuth: the claim that names the user (e.g. email), matched against tenants' "users"
//	MCPWRAP_AUTH_ALGORITHMS         RS256,ES256,EdDSA,PS256  OAuth: accepted token signature algorithms (asymmetric only)
//	MCPWRAP_AUTH_INTROSPECTION_CLIENT_ID      (none)   OAuth: with the secret, check opaque tokens at the issuer (RFC 7662)
//	MCPWRAP_AUTH_INTROSPECTION_CLIENT_SECRET  (none)   OAuth: the introspection client's secret
//	MCPWRAP_AUTH_SECRET             (none)             built-in authorization server: every key derives from it, requestState's too (≥ 32 bytes)
//	MCPWRAP_AUTH_SECRET_PREVIOUS    (none)             the secret before a rotation: what it issued stays valid
//	MCPWRAP_AUTH_GITHUB_CLIENT_ID   (none)             sign in with GitHub: the OAuth app's client id
//	MCPWRAP_AUTH_GITHUB_CLIENT_SECRET (none)           … and its client secret
//	MCPWRAP_AUTH_GITHUB_URL         https://github.com GitHub or a GitHub Enterprise server (API at <URL>/api/v3)
//	MCPWRAP_AUTH_OIDC_ISSUER        (none)             sign in with an OpenID Connect provider (e.g. https://accounts.google.com)
//	MCPWRAP_AUTH_OIDC_CLIENT_ID     (none)             … its client id
//	MCPWRAP_AUTH_OIDC_CLIENT_SECRET (none)             … its client secret
//	MCPWRAP_AUTH_OIDC_NAME          (none)             … the sign-in button's label, e.g. Google
//	MCPWRAP_CHILD_ERA               auto               protocol era of the wrapped server: auto (probe once), legacy or modern
//	MCPWRAP_STATELESS_MAX_CHILDREN  100                children serving protocol 2026-07-28 requests, across tenants
//	MCPWRAP_STATELESS_MAX_CHILDREN_PER_TENANT  0 (auto)  the same for one tenant, held or parked ones too; auto: all with one tenant, half with several
//	MCPWRAP_STATELESS_IDLE_TIMEOUT  5m                 stop such a child after it was free this long (0: never)
//	MCPWRAP_STATELESS_QUEUE_TIMEOUT 30s                wait this long for a free child, then 503 with Retry-After (0: as long as the client)
//	MCPWRAP_INPUT_TIMEOUT           10m                how long a call waiting for the client's input keeps its child
//	FLY_MACHINE_ID                  (set by Fly.io)    session ids and requestState name this Machine; others' are replayed there
//
// MCPWRAP_LISTEN defaults to :8080 when a token is configured and to
// 127.0.0.1:8080 otherwise, so that an unauthenticated mcpwrap is reachable
// only from its own machine. Without a token, mcpwrap refuses a non-loopback
// address unless MCPWRAP_NO_AUTH is set.
//
// With MCPWRAP_AUTH_ISSUER, clients may also sign in with OAuth: mcpwrap is
// then a resource server whose canonical resource is MCPWRAP_PUBLIC_URL
// followed by MCPWRAP_PATH. MCPWRAP_PUBLIC_URL is required then, except on
// a loopback address, where it defaults to http:// and the address
// listened on. The tenants file's "users" map signed-in users to tenants:
//
//	{"acme": {"token": "…", "users": ["alice@acme.com", "google:*@acme.com"], "env": {"K": "V"}}}
//
// MCPWRAP_AUTH_SECRET turns on the built-in authorization server instead,
// whose issuer is MCPWRAP_PUBLIC_URL, with the same default on loopback.
// Parse is how every subcommand reads its settings (serve through Load,
// proxy and bench directly): a struct whose tags name each variable and
// flag, read from the environment and then from the command line, with one
// usage error, ErrUsage, for whatever the user has to correct.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"time"
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
	MaxStarting    int           `env:"MAX_STARTING" envDefault:"0" help:"children starting at once, each until its first output or 1s, so that a burst starts in turns (0: 8 per CPU)"`
	IdleTimeout    time.Duration `env:"SESSION_IDLE_TIMEOUT" envDefault:"30m" help:"end a session after this long without a request (0 never)"`
	MaxMessage     int           `env:"MAX_MESSAGE_BYTES" envDefault:"16777216" help:"largest request body or child stdout line, in bytes"`
	MaxQueue       int           `env:"MAX_QUEUED_MESSAGES" envDefault:"1024" help:"deprecated: MAX_QUEUED_BYTES bounds queues; still caps the messages of a stream's queue"`
	MaxQueuedBytes int           `env:"MAX_QUEUED_BYTES" envDefault:"4194304" help:"bytes held per session for its readers; beyond, the oldest stream messages drop"`
	MaxQueuedTotal int           `env:"MAX_QUEUED_BYTES_TOTAL" envDefault:"268435456" help:"bytes held for readers across all sessions"`
	SlowReader     time.Duration `env:"SLOW_READER_TIMEOUT" envDefault:"30s" help:"cut a client whose stream does not take a write for this long (0 never)"`
	MaxBatch       int           `env:"MAX_BATCH" envDefault:"100" help:"most messages in one JSON-RPC batch; beyond, 400"`
	UnusedTimeout  time.Duration `env:"UNUSED_SESSION_TIMEOUT" envDefault:"2m" help:"end a session that had nothing but initialize for this long (0 never)"`
	LogRate        int           `env:"LOG_LINES_PER_SECOND" envDefault:"100" help:"log lines per session a second (child stderr and warnings), in bursts of ten times that; 0 no bound"`
	RequestTimeout time.Duration `env:"REQUEST_TIMEOUT" envDefault:"0" help:"give up on a request after this long (0 never)"`
	KeepAlive      time.Duration `env:"KEEPALIVE" envDefault:"25s" help:"interval of SSE keep-alive comments"`
	SSERetry       time.Duration `env:"SSE_RETRY" envDefault:"1s" help:"reconnection delay sent to clients (retry:) on /mcp streams"`
	SSERetention   time.Duration `env:"SSE_RETENTION" envDefault:"5m" help:"how long a reply whose connection dropped waits for the client to resume it (0 discard at once)"`
	SSEPollAfter   time.Duration `env:"SSE_POLL_AFTER" envDefault:"0" help:"close a reply's stream after this long and let the client resume it by GET, for proxies that cut long connections (0 never)"`
	CloseGrace     time.Duration `env:"CLOSE_GRACE" envDefault:"2s" help:"after closing a child's stdin, wait this long before SIGTERM"`
	TermGrace      time.Duration `env:"TERM_GRACE" envDefault:"3s" help:"after SIGTERM, wait this long before SIGKILL"`
	ShutdownBudget time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"9s" help:"time allowed for ending all sessions on SIGTERM"`
	PTY            bool          `env:"PTY" help:"run the child on a pseudo-terminal in raw mode"`
	ChildEnv       []string      `env:"CHILD_ENV" help:"extra K=V variables for the child, comma-separated"`
	ChildDir       string        `env:"CHILD_DIR" help:"working directory of the child"`
	TenantsFile    string        `env:"TENANTS_FILE" help:"JSON file of named tokens, each with extra environment for its children"`
	ExitWhenIdle   time.Duration `env:"EXIT_WHEN_IDLE" envDefault:"0" help:"exit 0 once no session has existed for this long (0 never)"`
	WarmChildren   int           `env:"WARM_CHILDREN" envDefault:"0" help:"children kept started (not initialized) ahead of demand, per environment"`
	MetricsListen  string        `env:"METRICS_LISTEN" help:"also serve /metrics on this host:port, without a token"`
	AllowedHosts   []string      `env:"ALLOWED_HOSTS" help:"host names served without a token, besides IP addresses and localhost, comma-separated"`
	MaxConns       int           `env:"MAX_CONNECTIONS" envDefault:"0" help:"most open connections, beyond which new ones get 503 (0: half the file descriptor limit)"`
	MaxBodyTotal   int           `env:"MAX_BODY_BYTES_TOTAL" envDefault:"268435456" help:"request-body bytes held at once across requests; beyond, 503"`
	HeaderTimeout  time.Duration `env:"HTTP_HEADER_TIMEOUT" envDefault:"10s" help:"time allowed to read a request's headers"`
	BodyTimeout    time.Duration `env:"HTTP_BODY_TIMEOUT" envDefault:"60s" help:"time allowed to read a request's body"`
	ConnIdle       time.Duration `env:"HTTP_IDLE_TIMEOUT" envDefault:"2m" help:"close a keep-alive connection idle this long"`
	ChildEra       string        `env:"CHILD_ERA" envDefault:"auto" help:"protocol era of the wrapped server: auto, legacy or modern"`
	StatelessMax   int           `env:"STATELESS_MAX_CHILDREN" envDefault:"100" help:"children serving protocol 2026-07-28 requests, across tenants"`
	TenantChildren int           `env:"STATELESS_MAX_CHILDREN_PER_TENANT" envDefault:"0" help:"children serving one tenant's protocol 2026-07-28 requests (0: all of them with one tenant, half with several)"`
	StatelessIdle  time.Duration `env:"STATELESS_IDLE_TIMEOUT" envDefault:"5m" help:"stop a stateless-era child after it was free this long (0 never)"`
	StatelessQueue time.Duration `env:"STATELESS_QUEUE_TIMEOUT" envDefault:"30s" help:"wait this long for a free child, then 503 (0: as long as the client)"`
	InputTimeout   time.Duration `env:"INPUT_TIMEOUT" envDefault:"10m" help:"how long a call waiting for the client's input keeps its child"`

	PublicURL                     string   `env:"PUBLIC_URL" help:"externally visible base URL, e.g. https://my-mcp.fly.dev"`
	AuthIssuer                    string   `env:"AUTH_ISSUER" help:"OAuth issuer whose access tokens are accepted"`
	AuthAudience                  string   `env:"AUTH_AUDIENCE" help:"the one token audience accepted instead of the resource URL"`
	AuthScopes                    []string `env:"AUTH_SCOPES" help:"scopes every access token must carry, comma-separated"`
	AuthUserClaim                 string   `env:"AUTH_USER_CLAIM" envDefault:"sub" help:"access token claim naming the user (sub, email, ...)"`
	AuthAlgorithms                []string `env:"AUTH_ALGORITHMS" envDefault:"RS256,ES256,EdDSA,PS256" help:"accepted access token signature algorithms"`
	AuthIntrospectionClientID     string   `env:"AUTH_INTROSPECTION_CLIENT_ID" help:"client id for introspecting opaque tokens (RFC 7662)"`
	AuthIntrospectionClientSecret string   `env:"AUTH_INTROSPECTION_CLIENT_SECRET" secret:"true" help:"client secret for introspecting opaque tokens"`

	// The built-in authorization server (mode 2).
	AuthSecret             string `env:"AUTH_SECRET" secret:"true" help:"turn on the built-in authorization server; every key (and requestState's) derives from this secret (at least 32 bytes)"`
	AuthSecretPrevious     string `env:"AUTH_SECRET_PREVIOUS" secret:"true" help:"the secret before a rotation, still accepted"`
	AuthGitHubClientID     string `env:"AUTH_GITHUB_CLIENT_ID" help:"sign in with GitHub: the OAuth app's client id"`
	AuthGitHubClientSecret string `env:"AUTH_GITHUB_CLIENT_SECRET" secret:"true" help:"sign in with GitHub: the OAuth app's client secret"`
	AuthGitHubURL          string `env:"AUTH_GITHUB_URL" envDefault:"https://github.com" help:"GitHub, or a GitHub Enterprise server"`
	AuthOIDCIssuer         string `env:"AUTH_OIDC_ISSUER" help:"sign in with this OpenID Connect provider"`
	AuthOIDCClientID       string `env:"AUTH_OIDC_CLIENT_ID" help:"the OpenID Connect client id"`
	AuthOIDCClientSecret   string `env:"AUTH_OIDC_CLIENT_SECRET" secret:"true" help:"the OpenID Connect client secret"`
	AuthOIDCName           string `env:"AUTH_OIDC_NAME" help:"the label of the OpenID Connect sign-in button, e.g. Google"`

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

// serveCommand is the command line Load reads.
var serveCommand = Command{
	Name: "mcpwrap",
	Synopsis: `usage: mcpwrap [flags] -- command [args...]
       mcpwrap proxy [flags] URL
       mcpwrap bench [flags] (URL | -- command [args...])`,
}

// Load reads the environment through getenv, then the flags in args, which
// end at "--"; what follows is the command to wrap. It validates the result
// and reads the token file. usage receives flag errors and -help output.
func Load(args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	var cfg Config
	parsed, err := Parse(&cfg, serveCommand, args, getenv, usage)
	if err != nil {
		return cfg, err
	}
	command := parsed.Command
	if len(parsed.Args) > 0 {
		if command != nil {
			return cfg, fmt.Errorf("%w: unexpected argument %q before --", ErrUsage, parsed.Args[0])
		}
		command = parsed.Args
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
		cfg.Tenants = append(cfg.Tenants, Tenant{Name: fmt.Sprintf("token%d", i+1), Admin: true, Token: t})
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
	cfg.AuthScopes = clean(cfg.AuthScopes)
	cfg.AuthAlgorithms = clean(cfg.AuthAlgorithms)
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8080"
		if len(cfg.Tenants) > 0 || cfg.OAuth() {
			cfg.Listen = ":8080"
		}
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	if cfg.MaxStarting == 0 {
		// Enough to keep every CPU busy with children that also wait on
		// their disk, few enough that a burst does not share the CPU among
		// hundreds of starts until every one of them is late.
		cfg.MaxStarting = 8 * runtime.GOMAXPROCS(0)
	}
	if cfg.TenantChildren == 0 {
		// One tenant may have every child; among several, none may take
		// more than half, so that another always finds room.
		cfg.TenantChildren = cfg.StatelessMax
		if len(cfg.Tenants) > 1 {
			cfg.TenantChildren = max(1, cfg.StatelessMax/2)
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
	if len(c.Tenants) == 0 && !c.OAuth() && !c.NoAuth && !IsLoopback(c.Listen) {
		return fmt.Errorf("%w: no token set and %s is not a loopback address: set MCPWRAP_TOKEN (or MCPWRAP_TOKEN_FILE), listen on 127.0.0.1, or set MCPWRAP_NO_AUTH=true to serve anyone", ErrUsage, c.Listen)
	}
	if err := c.validateRoutes(); err != nil {
		return err
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
	if c.MaxStarting < 0 {
		return fmt.Errorf("%w: MCPWRAP_MAX_STARTING must not be negative", ErrUsage)
	}
	if c.WarmChildren < 0 {
		return fmt.Errorf("%w: MCPWRAP_WARM_CHILDREN must not be negative", ErrUsage)
	}
	if c.MaxQueuedBytes < 1 || c.MaxQueuedTotal < c.MaxQueuedBytes {
		return fmt.Errorf("%w: MCPWRAP_MAX_QUEUED_BYTES must be positive and MCPWRAP_MAX_QUEUED_BYTES_TOTAL at least as large", ErrUsage)
	}
	if c.SSERetry < 0 || c.SSERetention < 0 || c.SSEPollAfter < 0 {
		return fmt.Errorf("%w: MCPWRAP_SSE_RETRY, MCPWRAP_SSE_RETENTION and MCPWRAP_SSE_POLL_AFTER must not be negative", ErrUsage)
	}
	if c.SlowReader < 0 || c.MaxBatch < 1 || c.UnusedTimeout < 0 || c.LogRate < 0 {
		return fmt.Errorf("%w: MCPWRAP_MAX_BATCH must be positive; MCPWRAP_SLOW_READER_TIMEOUT, MCPWRAP_UNUSED_SESSION_TIMEOUT and MCPWRAP_LOG_LINES_PER_SECOND not negative", ErrUsage)
	}
	if !slices.Contains([]string{"auto", "legacy", "modern"}, c.ChildEra) {
		return fmt.Errorf("%w: MCPWRAP_CHILD_ERA %q must be auto, legacy or modern", ErrUsage, c.ChildEra)
	}
	if c.StatelessMax < 1 || c.StatelessIdle < 0 || c.StatelessQueue < 0 || c.InputTimeout <= 0 {
		return fmt.Errorf("%w: MCPWRAP_STATELESS_MAX_CHILDREN and MCPWRAP_INPUT_TIMEOUT must be positive, the stateless timeouts not negative", ErrUsage)
	}
	if c.TenantChildren < 1 || c.TenantChildren > c.StatelessMax {
		return fmt.Errorf("%w: MCPWRAP_STATELESS_MAX_CHILDREN_PER_TENANT (%d) must not be negative nor exceed MCPWRAP_STATELESS_MAX_CHILDREN (%d)", ErrUsage, c.TenantChildren, c.StatelessMax)
	}
	seen := map[string]bool{}
	for _, t := range c.Tenants {
		if seen["name "+t.Name] || t.Token != "" && seen["token "+t.Token] {
			return fmt.Errorf("%w: tenant %q: every tenant needs its own name and its own token", ErrUsage, t.Name)
		}
		seen["name "+t.Name], seen["token "+t.Token] = true, true
	}
	for _, kv := range c.ChildEnv {
		if !strings.Contains(kv, "=") {
			return fmt.Errorf("%w: MCPWRAP_CHILD_ENV entry %q is not K=V", ErrUsage, kv)
		}
	}
	if err := c.validatePublicURL(); err != nil {
		return err
	}
	if c.AuthIssuer != "" && c.AuthSecret != "" {
		return fmt.Errorf("%w: MCPWRAP_AUTH_ISSUER (an external identity provider) and MCPWRAP_AUTH_SECRET (the built-in one) exclude each other: set one", ErrUsage)
	}
	if err := c.validateOAuth(); err != nil {
		return err
	}
	return c.validateAuthServer()
}

// validatePublicURL checks MCPWRAP_PUBLIC_URL: an http(s) base URL, https
// unless the host is loopback, since tokens travel to it.
func (c Config) validatePublicURL() error {
	if c.PublicURL == "" {
		return nil
	}
	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%w: MCPWRAP_PUBLIC_URL %q is not an http(s) base URL without query or fragment", ErrUsage, c.PublicURL)
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		return fmt.Errorf("%w: MCPWRAP_PUBLIC_URL %q: https is required except on a loopback host", ErrUsage, c.PublicURL)
	}
	return nil
}

// minSecret is the shortest MCPWRAP_AUTH_SECRET: the keys derived from it
// are 32 bytes, and a shorter secret would be the weaker link.
const minSecret = 32

func (c Config) validateAuthServer() error {
	upstream := c.AuthGitHubClientID != "" || c.AuthGitHubClientSecret != "" || c.AuthOIDCIssuer != "" || c.AuthOIDCClientID != ""
	if c.AuthSecret == "" {
		if c.AuthSecretPrevious != "" || upstream {
			return fmt.Errorf("%w: MCPWRAP_AUTH_SECRET_PREVIOUS, MCPWRAP_AUTH_GITHUB_* and MCPWRAP_AUTH_OIDC_* need MCPWRAP_AUTH_SECRET", ErrUsage)
		}
		return nil
	}
	if len(c.AuthSecret) < minSecret || c.AuthSecretPrevious != "" && len(c.AuthSecretPrevious) < minSecret {
		return fmt.Errorf("%w: MCPWRAP_AUTH_SECRET (and MCPWRAP_AUTH_SECRET_PREVIOUS) must be at least %d bytes: openssl rand -base64 32", ErrUsage, minSecret)
	}
	if c.PublicURL == "" && !IsLoopback(c.Listen) {
		return fmt.Errorf("%w: MCPWRAP_AUTH_SECRET needs MCPWRAP_PUBLIC_URL, the address clients reach this server at (e.g. https://my-mcp.fly.dev)", ErrUsage)
	}
	if (c.AuthGitHubClientID == "") != (c.AuthGitHubClientSecret == "") {
		return fmt.Errorf("%w: GitHub sign-in needs both MCPWRAP_AUTH_GITHUB_CLIENT_ID and MCPWRAP_AUTH_GITHUB_CLIENT_SECRET", ErrUsage)
	}
	if (c.AuthOIDCIssuer == "") != (c.AuthOIDCClientID == "") {
		return fmt.Errorf("%w: OpenID Connect sign-in needs both MCPWRAP_AUTH_OIDC_ISSUER and MCPWRAP_AUTH_OIDC_CLIENT_ID", ErrUsage)
	}
	for name, raw := range map[string]string{"MCPWRAP_AUTH_GITHUB_URL": c.AuthGitHubURL, "MCPWRAP_AUTH_OIDC_ISSUER": c.AuthOIDCIssuer} {
		if raw == "" {
			continue
		}
		if u, err := url.Parse(raw); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("%w: %s %q is not an http(s) URL", ErrUsage, name, raw)
		}
	}
	return nil
}

// OAuth reports whether clients may sign in with OAuth: with tokens of an
// external issuer (MCPWRAP_AUTH_ISSUER) or of the built-in authorization
// server (MCPWRAP_AUTH_SECRET).
func (c Config) OAuth() bool { return c.AuthIssuer != "" || c.AuthSecret != "" }

// validateOAuth checks the settings of an external issuer's tokens.
func (c Config) validateOAuth() error {
	if c.AuthIssuer == "" {
		return nil
	}
	if c.PublicURL == "" && !IsLoopback(c.Listen) {
		return fmt.Errorf("%w: OAuth needs MCPWRAP_PUBLIC_URL, the URL clients reach this server at (e.g. https://my-mcp.fly.dev)", ErrUsage)
	}
	u, err := url.Parse(c.AuthIssuer)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname()))) {
		return fmt.Errorf("%w: MCPWRAP_AUTH_ISSUER %q is not an https URL (http only on loopback)", ErrUsage, c.AuthIssuer)
	}
	if strings.TrimSpace(c.AuthUserClaim) == "" {
		return fmt.Errorf("%w: MCPWRAP_AUTH_USER_CLAIM is empty", ErrUsage)
	}
	if (c.AuthIntrospectionClientID == "") != (c.AuthIntrospectionClientSecret == "") {
		return fmt.Errorf("%w: set both MCPWRAP_AUTH_INTROSPECTION_CLIENT_ID and MCPWRAP_AUTH_INTROSPECTION_CLIENT_SECRET, or neither", ErrUsage)
	}
	for _, s := range c.AuthScopes {
		if s == "offline_access" {
			return fmt.Errorf("%w: MCPWRAP_AUTH_SCOPES: offline_access is for the client to ask for, not for the server to require", ErrUsage)
		}
	}
	return nil
}

// fixedRoutes are the paths served beside the configurable ones, always on
// the same listener.
var fixedRoutes = []string{"/healthz", "/metrics"}

// validateRoutes checks the endpoint paths before they become ServeMux
// patterns: two equal patterns make ServeMux panic at start, and a space, a
// brace or a bad escape turns a path into a pattern of another kind.
func (c Config) validateRoutes() error {
	routes := []struct{ setting, path string }{
		{"MCPWRAP_PATH (--path)", c.Path},
		{"MCPWRAP_SSE_PATH (--sse-path)", c.SSEPath},
		{"MCPWRAP_MESSAGE_PATH (--message-path)", c.MessagePath},
	}
	for _, p := range fixedRoutes {
		routes = append(routes, struct{ setting, path string }{"the fixed " + strings.TrimPrefix(p, "/") + " endpoint", p})
	}
	for i, r := range routes {
		if !strings.HasPrefix(r.path, "/") {
			return fmt.Errorf("%w: %s %q must start with /", ErrUsage, r.setting, r.path)
		}
		if strings.ContainsAny(r.path, " \t\r\n{}") {
			return fmt.Errorf("%w: %s %q must be a plain path, without spaces or braces", ErrUsage, r.setting, r.path)
		}
		if _, err := url.PathUnescape(r.path); err != nil {
			return fmt.Errorf("%w: %s %q: %v", ErrUsage, r.setting, r.path, err)
		}
		for _, earlier := range routes[:i] {
			if earlier.path == r.path {
				return fmt.Errorf("%w: %s and %s are both %q; every endpoint needs a path of its own", ErrUsage, earlier.setting, r.setting, r.path)
			}
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
	return isLoopbackHost(host)
}

func isLoopbackHost(host string) bool {
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
			if f.Tag.Get("secret") == "true" {
				val = v.Field(i).String() != "" // whether it is set, never what
			}
			if d, ok := val.(time.Duration); ok {
				val = d.String()
			}
			name, ok := flagName(f)
			if !ok {
				name = strings.ToLower(f.Name)
			}
			m[name] = val
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
	Admin bool     // a deployment token (MCPWRAP_TOKEN, MCPWRAP_TOKEN_FILE): it may also read /metrics
	Token string   // "" for a tenant whose users only sign in
	Env   []string // K=V
	Users []string // identities that sign in as this tenant: "alice@corp.com", "github:id:12345" (survives a rename), "github:alice", "google:*@corp.com"
}

// readTenants reads a tenants file: a JSON object from name to token,
// users and environment, so one deployment can serve several users, each
// child seeing only its own user's credentials. A tenant needs a token, or
// users who sign in (OAuth), or both:
//
//	{"alice": {"token": "…", "env": {"GITHUB_TOKEN": "…"}},
//	 "corp": {"users": ["google:*@corp.com"], "env": {"K": "V"}}}
func readTenants(path string) ([]Tenant, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: reading MCPWRAP_TENANTS_FILE: %v", ErrUsage, err)
	}
	var file map[string]struct {
		Token string            `json:"token"`
		Env   map[string]string `json:"env"`
		Users []string          `json:"users"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		// The decoder's message may quote the file; it holds secrets.
		return nil, fmt.Errorf("%w: MCPWRAP_TENANTS_FILE %s is not a JSON object of name → {token, users, env}", ErrUsage, path)
	}
	var tenants []Tenant
	for _, name := range slices.Sorted(maps.Keys(file)) {
		t := file[name]
		users := clean(t.Users)
		if strings.TrimSpace(t.Token) == "" && len(users) == 0 {
			return nil, fmt.Errorf("%w: tenant %q in MCPWRAP_TENANTS_FILE has neither a token nor users", ErrUsage, name)
		}
		tenant := Tenant{Name: name, Token: strings.TrimSpace(t.Token), Users: users}
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
