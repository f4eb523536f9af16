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
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mcpwrap/mcpwrap/bench"
	"github.com/mcpwrap/mcpwrap/bridge"
	"github.com/mcpwrap/mcpwrap/child"
	"github.com/mcpwrap/mcpwrap/config"
	"github.com/mcpwrap/mcpwrap/internal/ratelog"
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
	signIn := signInRoutes(oauth, as)
	if err := routesApart(cfg, signIn); err != nil {
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
	// Children started ahead of demand serve both eras: a session's child
	// and a stateless pool's come from the same warm sets.
	var warm *child.Warm
	if cfg.WarmChildren > 0 {
		wopts := childOpts
		wopts.LogLimit = ratelog.New(cfg.LogRate, 10*cfg.LogRate)
		warm = child.NewWarm(cfg.WarmChildren, wopts, log)
		defer warm.Close(context.Background()) // when run returns before shutdown
		// The command as it runs without a tenant's environment is warmed
		// from boot when someone may use it; a tenant's own environment
		// gets its set at that tenant's first session.
		plain := func(t config.Tenant) bool { return len(t.Env) == 0 }
		if len(cfg.Tenants) == 0 || slices.ContainsFunc(cfg.Tenants, plain) {
			warm.Prime(command)
		}
	}
	reg = session.NewRegistry(session.Options{
		Command:             command,
		Child:               childOpts,
		MaxSessions:         cfg.MaxSessions,
		MaxStarting:         cfg.MaxStarting,
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
		Warm:                warm,
	}, log)
	// Protocol 2026-07-28 has no sessions: its requests go to pools of
	// children of their own.
	var startStateless func(child.Command) (*child.Child, error)
	if warm != nil {
		startStateless = func(cmd child.Command) (*child.Child, error) { return warm.Start(cmd, nil, log) }
	}
	stateless, err := bridge.New(bridge.Options{
		Command:      command,
		ChildOptions: childOpts,
		Start:        startStateless,
		Era:          cfg.ChildEra,
		MaxChildren:  cfg.StatelessMax,
		MaxPerTenant: cfg.TenantChildren,
		IdleTimeout:  cfg.StatelessIdle,
		QueueTimeout: cfg.StatelessQueue,
		StateTTL:     cfg.InputTimeout,
		Secret:       cfg.AuthSecret,
		MachineID:    cfg.MachineID,
		Observer:     stats,
	}, log)
	if err != nil {
		return err
	}
	stats.WatchStateless(func() metrics.StatelessChildren {
		c := stateless.Census()
		return metrics.StatelessChildren{Era: c.Era, Starting: c.Starting, Idle: c.Idle, Busy: c.Busy, Parked: c.Parked, Waiting: c.Waiting}
	})
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
	for p, h := range signIn {
		mux.Handle(p, h)
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
	return shutdown(srv, reg, stateless, warm, cfg.ShutdownBudget, signals, why, log)
}

// shutdown stops accepting, ends every session in parallel (which ends their
// streams), and returns within budget: nil when every session ended in time,
// an error (exit status 1) when the budget or a second signal cut it short
// and the children left were killed.
func shutdown(srv *http.Server, reg *session.Registry, stateless *bridge.Bridge, warm *child.Warm, budget time.Duration, signals <-chan os.Signal, why string, log zerolog.Logger) error {
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
	warmDone := make(chan error, 1)
	go func() {
		if warm != nil {
			warmDone <- warm.Close(ctx)
			return
		}
		warmDone <- nil
	}()
	regErr := errors.Join(reg.Close(ctx), <-bridgeDone, <-warmDone)
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
