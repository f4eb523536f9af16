package proxy

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/mcpwrap/mcpwrap/config"
)

// storeDir is where the shim keeps its OAuth state: mcpwrap/proxy under the
// user's configuration directory. On the systems that follow XDG it is read
// through getenv, so tests can point it at a temporary directory.
func storeDir(getenv func(string) string) (string, error) {
	var base string
	switch runtime.GOOS {
	case "darwin", "windows", "ios", "plan9":
		d, err := os.UserConfigDir()
		if err != nil {
			return "", fmt.Errorf("find the configuration directory: %w", err)
		}
		base = d
	default:
		base = getenv("XDG_CONFIG_HOME")
		if base == "" || !filepath.IsAbs(base) {
			home := getenv("HOME")
			if home == "" {
				return "", errors.New("find the configuration directory: neither $XDG_CONFIG_HOME nor $HOME is set")
			}
			base = filepath.Join(home, ".config")
		}
	}
	return filepath.Join(base, "mcpwrap", "proxy"), nil
}

// staticAuth reports whether the user gave credentials of their own; they
// win, and the shim then never signs in.
func staticAuth(cfg Config) bool {
	return cfg.Token != "" || cfg.Header.Get("Authorization") != ""
}

// newOAuth sets up signing in to cfg.URL.
func newOAuth(cfg Config, getenv func(string) string, stderr io.Writer, s *shim) (*oauth, error) {
	dir, err := storeDir(getenv)
	if err != nil {
		return nil, err
	}
	st, err := openStore(dir, cfg.TokenStore)
	if err != nil {
		return nil, err
	}
	o := &oauth{
		remote: cfg.URL,
		key:    cfg.URL.String(),
		store:  st,
		// Token requests carry the refresh token and a client secret:
		// like every request of the shim, they follow no redirect to
		// another origin.
		client: &http.Client{Timeout: 30 * time.Second, CheckRedirect: followWithinOrigin},
		log:    s.log,
		redact: s.redact,
		open:   browserOpener(cfg.Browser, cfg.NoBrowser, stderr, s.log),
		wait:   cfg.RetryFor,
		own:    preregistered{ClientID: cfg.ClientID, Secret: cfg.ClientSecret, Issuer: cfg.ClientIssuer, MetadataURL: cfg.ClientMetadataURL},
		base:   context.Background(),
		wg:     &s.wg,
	}
	s.log.Debug().Str("store", st.v.where()).Msg("OAuth sign-in ready, should the remote ask for it")
	return o, nil
}

// useOAuth lets the shim sign in when the remote asks, unless the user gave
// a token.
func (s *shim) useOAuth(getenv func(string) string, stderr io.Writer) error {
	if staticAuth(s.cfg) {
		return nil
	}
	o, err := newOAuth(s.cfg, getenv, stderr, s)
	if err != nil {
		return err
	}
	s.oauth = o
	return nil
}

// runAccount is `mcpwrap proxy login URL` and `mcpwrap proxy logout URL`.
func runAccount(ctx context.Context, verb string, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log, redact := newLogger(cfg, stderr)
	s := newShim(cfg, log, io.Discard)
	s.redact = redact
	s.ctx = ctx
	if staticAuth(cfg) {
		return fmt.Errorf("%w: a token is configured (MCPWRAP_TOKEN, --token, --token-file or an Authorization header); the shim uses it and never signs in", config.ErrUsage)
	}
	o, err := newOAuth(cfg, getenv, stderr, s)
	if err != nil {
		return err
	}
	if verb == "logout" {
		if err := o.store.forget(o.key); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "mcpwrap proxy: signed out of %s (tokens and client registration removed from %s)\n", cfg.URL.Redacted(), o.store.v.where())
		return nil
	}

	// A sign-in takes as long as the user needs, up to the window.
	o.wait = signInWindow
	o.base = ctx
	s.oauth = o
	err = s.probe(ctx)
	s.wg.Wait()
	if err != nil {
		return err
	}
	if g, err := o.current(); err != nil || g == nil {
		fmt.Fprintf(stderr, "mcpwrap proxy: %s let the shim in without signing in; nothing to keep\n", cfg.URL.Redacted())
		return err
	}
	fmt.Fprintf(stderr, "mcpwrap proxy: signed in to %s (kept in %s)\n", cfg.URL.Redacted(), o.store.v.where())
	return nil
}

// probeInit is the initialize that login sends to learn whether the remote
// takes the shim's token.
const probeInit = `{"jsonrpc":"2.0","id":"mcpwrap-proxy-login","method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"mcpwrap-proxy-login","version":"1"}}}`

// probe sends an initialize, signing in or refreshing as the answer asks,
// and ends the session it made.
func (s *shim) probe(ctx context.Context) error {
	h := s.baseHeader()
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json, text/event-stream")
	resp, err := s.do(ctx, request{method: http.MethodPost, url: s.cfg.URL, header: h, body: []byte(probeInit)}, s.cfg.RetryFor)
	if err != nil {
		return err
	}
	drain(resp)
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return fmt.Errorf("the remote answered %s even after signing in", resp.Status)
	}
	if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
		h := s.baseHeader()
		h.Set("Mcp-Session-Id", id)
		if r, err := s.do(ctx, request{method: http.MethodDelete, url: s.cfg.URL, header: h}, shutdownGrace); err == nil {
			drain(r)
		}
	}
	return nil
}
