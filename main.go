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
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/rs/zerolog"

	"github.com/mcpwrap/mcpwrap/auth"
	"github.com/mcpwrap/mcpwrap/authserver"
	"github.com/mcpwrap/mcpwrap/bench"
	"github.com/mcpwrap/mcpwrap/config"
	"github.com/mcpwrap/mcpwrap/metrics"
	"github.com/mcpwrap/mcpwrap/proxy"
	"github.com/mcpwrap/mcpwrap/session"
	"github.com/mcpwrap/mcpwrap/wrap"
)

func main() {
	ctx := context.Background()
	err := run(ctx, os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, config.ErrUsage):
		fmt.Fprintln(os.Stderr, "mcpwrap:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "mcpwrap:", err)
		os.Exit(1)
	}
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

	if os.Getpid() == 1 {
		// As a container's init, orphaned grandchildren are ours to reap.
		reapCtx, stopReaping := context.WithCancel(ctx)
		defer stopReaping()
		go session.ReapOrphans(reapCtx, log)
	}

	// Listen first: on loopback, the public URL OAuth needs defaults to the
	// address actually bound.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	defer ln.Close()
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + ln.Addr().String()
	}
	var as *authserver.Server
	if cfg.AuthSecret != "" {
		if as, err = newAuthServer(cfg, log); err != nil {
			return err
		}
	}
	authn, oauth, err := authenticator(cfg, as)
	if err != nil {
		return err
	}

	var reg *session.Registry
	stats := metrics.New(func() int { return reg.Len() })
	reg = session.NewRegistry(session.Options{
		Command: session.Command{
			Path: cfg.Command[0],
			Args: cfg.Command[1:],
			Env:  cfg.ChildEnviron(environ),
			Dir:  cfg.ChildDir,
			PTY:  cfg.PTY,
		},
		Process: session.ProcessOptions{
			MaxLine:    cfg.MaxMessage,
			CloseGrace: cfg.CloseGrace,
			TermGrace:  cfg.TermGrace,
		},
		MaxSessions: cfg.MaxSessions,
		MaxQueue:    cfg.MaxQueue,
		IdleTimeout: cfg.IdleTimeout,
		IDPrefix:    idPrefix(cfg.MachineID),
		Observer:    stats,
	}, log)
	handler := wrap.New(wrap.Options{
		Path:           cfg.Path,
		SSEPath:        cfg.SSEPath,
		MessagePath:    cfg.MessagePath,
		Auth:           authn,
		AllowedOrigins: cfg.AllowedOrigins,
		MaxMessage:     cfg.MaxMessage,
		KeepAlive:      cfg.KeepAlive,
		RequestTimeout: cfg.RequestTimeout,
		MachineID:      cfg.MachineID,
		Metrics:        stats,
	}, reg, log)

	if cfg.MetricsListen != "" {
		mln, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			return fmt.Errorf("listening for metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", wrap.MetricsHandler(stats))
		msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = msrv.Serve(mln) }()
		defer msrv.Close()
	}
	// The MCP endpoints, and beside them what OAuth clients discover first.
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
	// No WriteTimeout: it would cut every live SSE stream.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	runCtx, stopRunning := context.WithCancel(ctx)
	defer stopRunning()
	go reg.Run(runCtx)

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
			if d := reg.IdleFor(); d >= cfg.ExitWhenIdle {
				why = "no session for " + d.Round(time.Second).String()
			}
		}
	}
	return shutdown(srv, reg, cfg.ShutdownBudget, signals, why, log)
}

// shutdown stops accepting, ends every session in parallel (which ends their
// streams), and returns within budget: nil when every session ended in time,
// an error (exit status 1) when the budget or a second signal cut it short
// and the children left were killed.
func shutdown(srv *http.Server, reg *session.Registry, budget time.Duration, signals <-chan os.Signal, why string, log zerolog.Logger) error {
	start := time.Now()
	log.Info().Str("reason", why).Int("sessions", reg.Len()).Dur("budget", budget).Msg("shutting down")
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
	regErr := reg.Close(ctx)
	httpErr := <-httpDone
	if httpErr != nil {
		_ = srv.Close() // streams still open past the budget
	}
	if regErr != nil || httpErr != nil {
		// Exit non-zero: sessions were cut off rather than ended.
		log.Warn().Dur("took", time.Since(start)).Msg("shutdown cut short: remaining children killed")
		return fmt.Errorf("shutdown cut short after %s: remaining children killed", time.Since(start).Round(time.Millisecond))
	}
	log.Info().Dur("took", time.Since(start)).Msg("shutdown complete")
	return nil
}

// idPrefix makes session ids name the instance that owns them, so that a
// request reaching another instance can be sent on (wrap.Options.MachineID).
func idPrefix(machineID string) string {
	if machineID == "" {
		return ""
	}
	return machineID + "."
}

// authenticator is who may use the server: the tenants' static tokens and,
// with an issuer or the built-in authorization server (as), OAuth access
// tokens; or anyone when neither is configured (config allows that on
// loopback only).
func authenticator(cfg config.Config, as *authserver.Server) (wrap.Authenticator, *auth.OAuth, error) {
	tenants := authTenants(cfg.Tenants)
	if !cfg.OAuth() && as == nil {
		if len(tenants) == 0 {
			return nil, nil, nil
		}
		return auth.NewTokens(tenants), nil, nil
	}
	var users *auth.Tenants // without a tenants file, any signed-in user
	if cfg.TenantsFile != "" || as != nil {
		// The built-in server names the tenant in its tokens; it must be
		// one of these.
		users = auth.NewTenants(tenants)
	}
	issuer, scopes := cfg.AuthIssuer, cfg.AuthScopes
	var keys oidc.KeySet
	if as != nil {
		issuer, keys = as.Issuer(), as.KeySet()
		if len(scopes) == 0 {
			scopes = []string{"mcp"}
		}
	}
	oauth, err := auth.NewOAuth(auth.OAuthOptions{
		PublicURL:                 cfg.PublicURL,
		Path:                      cfg.Path,
		Issuer:                    issuer,
		KeySet:                    keys,
		Audience:                  cfg.AuthAudience,
		Scopes:                    scopes,
		UserClaim:                 cfg.AuthUserClaim,
		Algorithms:                cfg.AuthAlgorithms,
		IntrospectionClientID:     cfg.AuthIntrospectionClientID,
		IntrospectionClientSecret: cfg.AuthIntrospectionClientSecret,
		Tenants:                   users,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", config.ErrUsage, err)
	}
	return &auth.Combined{Tokens: auth.NewTokens(tenants), OAuth: oauth}, oauth, nil
}

func authTenants(in []config.Tenant) []auth.Tenant {
	tenants := make([]auth.Tenant, len(in))
	for i, t := range in {
		tenants[i] = auth.Tenant{Name: t.Name, Token: t.Token, Env: t.Env, Users: t.Users}
	}
	return tenants
}

// newAuthServer is the built-in authorization server (MCPWRAP_AUTH_SECRET):
// the key page accepts the tenants' static tokens, and upstream identities
// sign in as the tenant whose "users" list them.
func newAuthServer(cfg config.Config, log zerolog.Logger) (*authserver.Server, error) {
	tenants := auth.NewTenants(authTenants(cfg.Tenants))
	opts := authserver.Options{
		Issuer:         cfg.PublicURL,
		Resource:       cfg.PublicURL + cfg.Path,
		Secret:         cfg.AuthSecret,
		PreviousSecret: cfg.AuthSecretPrevious,
		Tokens:         auth.NewTokens(authTenants(cfg.Tenants)),
		Tenant:         tenants.ForIdentity,
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
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}
