// Command mcpwrap serves a stdio MCP server over HTTP: every client session
// gets its own child process running the wrapped command.
//
//	mcpwrap [flags] -- command [args...]     serve (settings: package config)
//	mcpwrap proxy [flags] URL                 a stdio client's bridge to a remote server
//	mcpwrap bench [flags] (URL | -- command)  measure a server, or a command directly
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mcpwrap/mcpwrap/auth"
	"github.com/mcpwrap/mcpwrap/authserver"
	"github.com/mcpwrap/mcpwrap/bench"
	"github.com/mcpwrap/mcpwrap/bridge"
	"github.com/mcpwrap/mcpwrap/child"
	"github.com/mcpwrap/mcpwrap/config"
	"github.com/mcpwrap/mcpwrap/metrics"
	"github.com/mcpwrap/mcpwrap/proxy"
	"github.com/mcpwrap/mcpwrap/session"
	"github.com/mcpwrap/mcpwrap/wrap"
	"github.com/rs/zerolog"
)

func main() {
	ctx := context.Background()
	err := run(ctx, os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, config.ErrUsage):
		fmt.Fprintln(os.Stderr, "mcpwrap:", err)
		fmt.Fprintf(os.Stderr, "run '%s -h' for usage\n", commandName(os.Args[1:]))
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "mcpwrap:", err)
		os.Exit(1)
	}
}

// commandName is how usage errors name the subcommand args ran.
func commandName(args []string) string {
	if len(args) > 0 && (args[0] == "proxy" || args[0] == "bench") {
		return "mcpwrap " + args[0]
	}
	return "mcpwrap"
}

// run is mcpwrap without the process around it. It takes the whole
// environment, not a getenv, because the wrapped command inherits it.
func run(ctx context.Context, args, environ []string, stdin io.Reader, stdout, stderr io.Writer) error {
	getenv := func(key string) string {
		for _, kv := range environ {
			if k, v, ok := strings.Cut(kv, "="); ok && k == key {
				return v
			}
		}
		return ""
	}
	if len(args) > 0 {
		switch args[0] {
		case "proxy":
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return proxy.Run(ctx, args[1:], getenv, stdin, stdout, stderr)
		case "bench":
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return bench.Run(ctx, args[1:], getenv, stdout, stderr)
		}
	}

	cfg, err := config.Load(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)

	// Signals first: a SIGTERM that arrives while the listener opens must
	// still mean a clean shutdown.
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)

	// Every goroutine run starts is stopped and waited for before it
	// returns: the defers below run last to first.
	var background sync.WaitGroup
	defer background.Wait()
	bgCtx, stopBackground := context.WithCancel(ctx)
	defer stopBackground()

	if os.Getpid() == 1 {
		// As a container's init, orphaned grandchildren are ours to reap.
		background.Go(func() { child.ReapOrphans(bgCtx, log) })
	}

	// Listen first: on loopback, the public URL OAuth needs defaults to the
	// address actually bound.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	defer ln.Close()
	if cfg.PublicURL == "" && cfg.OAuth() {
		cfg.PublicURL = "http://" + ln.Addr().String() // config allows this on loopback only
	}
	tenants := authTenants(cfg.Tenants)
	as, err := newAuthServer(cfg, tenants, log)
	if err != nil {
		return err
	}
	authn, oauth, err := authenticator(cfg, tenants, as)
	if err != nil {
		return err
	}

	var reg *session.Registry
	stats := metrics.New(func() int { return reg.Len() })
	command := child.Command{
		Path: cfg.Command[0],
		Args: cfg.Command[1:],
		Env:  cfg.ChildEnviron(environ),
		Dir:  cfg.ChildDir,
		PTY:  cfg.PTY,
	}
	childOpts := child.Options{
		MaxLine:    cfg.MaxMessage,
		CloseGrace: cfg.CloseGrace,
		TermGrace:  cfg.TermGrace,
	}
	reg = session.NewRegistry(session.Options{
		Command:             command,
		Child:               childOpts,
		MaxSessions:         cfg.MaxSessions,
		MaxQueue:            cfg.MaxQueue,
		MaxQueuedBytes:      int64(cfg.MaxQueuedBytes),
		MaxQueuedBytesTotal: int64(cfg.MaxQueuedTotal),
		IdleTimeout:         cfg.IdleTimeout,
		UnusedTimeout:       cfg.UnusedTimeout,
		RequestTimeout:      cfg.RequestTimeout,
		Retention:           cfg.SSERetention,
		LogRate:             cfg.LogRate,
		LogBurst:            10 * cfg.LogRate,
		MachineID:           cfg.MachineID,
		Observer:            stats,
	}, log)
	// Protocol 2026-07-28 has no sessions: its requests go to pools of
	// children of their own.
	stateless, err := bridge.New(bridge.Options{
		Command:      command,
		ChildOptions: childOpts,
		Era:          cfg.ChildEra,
		MaxChildren:  cfg.StatelessMax,
		IdleTimeout:  cfg.StatelessIdle,
		QueueTimeout: cfg.StatelessQueue,
		StateTTL:     cfg.InputTimeout,
		Secret:       cfg.AuthSecret,
		MachineID:    cfg.MachineID,
	}, log)
	if err != nil {
		return err
	}
	handler := wrap.New(wrap.Options{
		Path:              cfg.Path,
		SSEPath:           cfg.SSEPath,
		MessagePath:       cfg.MessagePath,
		Auth:              authn,
		AllowedOrigins:    cfg.AllowedOrigins,
		MaxMessage:        cfg.MaxMessage,
		MaxBodyBytes:      int64(cfg.MaxBodyTotal),
		BodyTimeout:       cfg.BodyTimeout,
		Hosts:             allowedHosts(cfg),
		KeepAlive:         cfg.KeepAlive,
		SSERetry:          cfg.SSERetry,
		SSEPollAfter:      cfg.SSEPollAfter,
		RequestTimeout:    cfg.RequestTimeout,
		SlowReaderTimeout: cfg.SlowReader,
		MaxBatch:          cfg.MaxBatch,
		MachineID:         cfg.MachineID,
		Stateless:         stateless,
		Metrics:           stats,
	}, reg, log)

	if cfg.MetricsListen != "" {
		mln, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			return fmt.Errorf("listening for metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", wrap.MetricsHandler(stats))
		msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		background.Go(func() { _ = msrv.Serve(mln) })
		defer msrv.Close()
	}
	// The MCP endpoints; beside them what OAuth clients discover first, and
	// the built-in authorization server when there is one.
	mux := http.NewServeMux()
	mux.Handle("/", handler)
	if oauth != nil {
		for _, p := range oauth.MetadataPaths() {
			mux.Handle(p, oauth.MetadataHandler())
		}
	}
	if as != nil {
		ash := as.Handler()
		for _, p := range as.Paths() {
			mux.Handle(p, ash)
		}
	}
	ln = wrap.LimitConnections(ln, maxConnections(cfg.MaxConns), log)
	// No WriteTimeout or ReadTimeout: either would cut every live SSE
	// stream. Bodies have a deadline of their own (wrap.Options.BodyTimeout).
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: cfg.HeaderTimeout, IdleTimeout: cfg.ConnIdle}
	served := make(chan error, 1)
	background.Go(func() { served <- srv.Serve(ln) })
	defer srv.Close() // when run returns before shutdown, Serve must end too
	background.Go(func() { reg.ReapIdle(bgCtx) })
	background.Go(func() { stateless.Run(bgCtx) })
	defer stateless.Close(context.Background()) // when run returns before shutdown

	log.Info().Str("addr", ln.Addr().String()).Interface("config", cfg.Redacted()).Msg("mcpwrap listening")
	if len(cfg.Tenants) == 0 && oauth == nil {
		log.Warn().Msg("no token configured: anyone who can reach " + ln.Addr().String() + " can use the server")
	}
	if oauth != nil {
		log.Info().Str("resource", oauth.Resource()).Str("issuer", oauth.Issuer()).Msg("OAuth sign-in accepted")
		// A wrong issuer should show now, not at the first sign-in; tokens
		// retry discovery by themselves.
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := oauth.Discover(dctx); err != nil {
			log.Warn().Err(err).Msg("the authorization server cannot be discovered yet")
		}
		cancel()
	}

	// With MCPWRAP_EXIT_WHEN_IDLE, a process nobody uses exits by itself, so
	// the machine under it can stop even without a proxy that stops it.
	var idle <-chan time.Time
	if cfg.ExitWhenIdle > 0 {
		tick := time.NewTicker(min(cfg.ExitWhenIdle/4, 10*time.Second))
		defer tick.Stop()
		idle = tick.C
	}
	var why string
	for why == "" {
		select {
		case err := <-served:
			return fmt.Errorf("serving: %w", err)
		case sig := <-signals:
			why = "signal " + sig.String()
		case <-ctx.Done():
			why = "stopped"
		case <-idle:
			if d := min(reg.IdleFor(), stateless.IdleFor()); d >= cfg.ExitWhenIdle {
				why = "no session for " + d.Round(time.Second).String() + " and no stateless request either"
			}
		}
	}
	return shutdown(srv, reg, stateless, cfg.ShutdownBudget, signals, why, log)
}

// shutdown stops accepting, ends every session in parallel (which ends their
// streams), and returns within budget: nil when every session ended in time,
// an error (exit status 1) when the budget or a second signal cut it short
// and the children left were killed.
func shutdown(srv *http.Server, reg *session.Registry, stateless *bridge.Bridge, budget time.Duration, signals <-chan os.Signal, why string, log zerolog.Logger) error {
	start := time.Now()
	log.Info().Str("reason", why).Int("sessions", reg.Len()).Dur("budget_ms", budget).Msg("shutting down")
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	go func() {
		select {
		case s := <-signals:
			log.Warn().Stringer("signal", s).Msg("second signal: stopping now")
			cancel()
		case <-ctx.Done():
		}
	}()

	srv.SetKeepAlivesEnabled(false)
	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.Shutdown(ctx) }()
	bridgeDone := make(chan error, 1)
	go func() { bridgeDone <- stateless.Close(ctx) }() // ends listen streams too
	regErr := errors.Join(reg.Close(ctx), <-bridgeDone)
	httpErr := <-httpDone
	if httpErr != nil {
		_ = srv.Close() // streams still open past the budget
	}
	if regErr != nil || httpErr != nil {
		// Exit non-zero: sessions were cut off rather than ended.
		log.Warn().Dur("took_ms", time.Since(start)).Msg("shutdown cut short: remaining children killed")
		return fmt.Errorf("shutdown cut short after %s: remaining children killed", time.Since(start).Round(time.Millisecond))
	}
	log.Info().Dur("took_ms", time.Since(start)).Msg("shutdown complete")
	return nil
}

// authTenants are the tenants as package auth knows them.
func authTenants(in []config.Tenant) []auth.Tenant {
	tenants := make([]auth.Tenant, len(in))
	for i, t := range in {
		tenants[i] = auth.Tenant{Name: t.Name, Admin: t.Admin, Token: t.Token, Env: t.Env, Users: t.Users}
	}
	return tenants
}

// newAuthServer is the built-in authorization server (MCPWRAP_AUTH_SECRET),
// or nil without one: its key page accepts the tenants' static tokens, and
// GitHub or OIDC identities sign in as the tenant that lists them.
func newAuthServer(cfg config.Config, tenants []auth.Tenant, log zerolog.Logger) (*authserver.Server, error) {
	if cfg.AuthSecret == "" {
		return nil, nil
	}
	opts := authserver.Options{
		Issuer:         cfg.PublicURL,
		Resource:       cfg.PublicURL + cfg.Path,
		Secret:         cfg.AuthSecret,
		PreviousSecret: cfg.AuthSecretPrevious,
		Tokens:         auth.NewTokens(tenants),
		Tenant:         auth.NewTenants(tenants).ForIdentity,
		MachineID:      cfg.MachineID,
	}
	if cfg.AuthGitHubClientID != "" {
		opts.GitHub = &authserver.GitHub{ClientID: cfg.AuthGitHubClientID, ClientSecret: cfg.AuthGitHubClientSecret, URL: cfg.AuthGitHubURL}
	}
	if cfg.AuthOIDCIssuer != "" {
		opts.OIDC = &authserver.OIDC{Issuer: cfg.AuthOIDCIssuer, ClientID: cfg.AuthOIDCClientID, ClientSecret: cfg.AuthOIDCClientSecret, Name: cfg.AuthOIDCName}
	}
	as, err := authserver.New(opts, log)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", config.ErrUsage, err)
	}
	return as, nil
}

// authenticator is who may use the server: the tenants' static tokens and,
// with OAuth, access tokens of an external issuer or of the built-in
// server as; or anyone when none is configured (config allows that on
// loopback only).
func authenticator(cfg config.Config, tenants []auth.Tenant, as *authserver.Server) (wrap.Authenticator, *auth.OAuth, error) {
	if !cfg.OAuth() {
		if len(tenants) == 0 {
			return nil, nil, nil
		}
		return auth.NewTokens(tenants), nil, nil
	}
	opts := auth.OAuthOptions{
		PublicURL:                 cfg.PublicURL,
		Path:                      cfg.Path,
		Issuer:                    cfg.AuthIssuer,
		Audience:                  cfg.AuthAudience,
		Scopes:                    cfg.AuthScopes,
		UserClaim:                 cfg.AuthUserClaim,
		Algorithms:                cfg.AuthAlgorithms,
		IntrospectionClientID:     cfg.AuthIntrospectionClientID,
		IntrospectionClientSecret: cfg.AuthIntrospectionClientSecret,
	}
	if cfg.TenantsFile != "" {
		opts.Tenants = auth.NewTenants(tenants) // else any signed-in user, as tenant ""
	}
	if as != nil {
		// The built-in server's tokens name their tenant, which may be one
		// of the deployment's own tokens' too (the key page).
		opts.Issuer, opts.KeySet, opts.Tenants = as.Issuer(), as.KeySet(), auth.NewTenants(tenants)
		if len(opts.Scopes) == 0 {
			opts.Scopes = []string{"mcp"}
		}
	}
	oauth, err := auth.NewOAuth(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", config.ErrUsage, err)
	}
	return &auth.Combined{Tokens: auth.NewTokens(tenants), OAuth: oauth}, oauth, nil
}

// allowedHosts are the host names served without a token: the configured
// ones and that of the public URL.
func allowedHosts(cfg config.Config) []string {
	hosts := slices.Clone(cfg.AllowedHosts)
	if u, err := url.Parse(cfg.PublicURL); err == nil && u.Hostname() != "" {
		hosts = append(hosts, u.Hostname())
	}
	return hosts
}

// maxConnections is the connection cap: the configured one, or half of
// the file descriptors the process may open, so that the other half stays
// for the children's pipes and a flood of connections cannot starve them.
func maxConnections(configured int) int {
	if configured > 0 {
		return configured
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<20 {
		return 1 << 19
	}
	return max(int(lim.Cur/2), 8)
}

// newLogger is the one root logger: JSON by default, console on a terminal.
func newLogger(cfg config.Config, w io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil || cfg.LogLevel == "" {
		level = zerolog.InfoLevel
	}
	format := cfg.LogFormat
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				format = "console"
			}
		}
	}
	if format == "console" {
		// Field values with control characters are quoted already; the
		// message (a child's stderr line among them) is not, and a
		// terminal would obey the escape sequences in it.
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, FormatMessage: func(i any) string {
			if i == nil {
				return ""
			}
			return escapeControls(fmt.Sprint(i))
		}}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

// escapeControls writes control characters and invalid UTF-8 in s as Go
// escapes (\x1b, \u0085), so that a log line cannot move the cursor, clear
// the screen or forge another line on a terminal.
func escapeControls(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsControl(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
