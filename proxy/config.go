package proxy

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/mcpwrap/mcpwrap/config"
	"github.com/rs/zerolog"
)

// Config is everything `mcpwrap proxy` reads from its flags and environment.
type Config struct {
	Token     string        `env:"MCPWRAP_TOKEN"`
	TokenFile string        `env:"MCPWRAP_TOKEN_FILE"`
	RetryFor  time.Duration `env:"MCPWRAP_PROXY_RETRY_FOR" envDefault:"30s"`
	LogLevel  string        `env:"MCPWRAP_LOG_LEVEL" envDefault:"info"`
	// OAuth sign-in, used when the remote asks for it and no token is set.
	NoBrowser  bool   `env:"MCPWRAP_PROXY_NO_BROWSER"`
	TokenStore string `env:"MCPWRAP_PROXY_TOKEN_STORE" envDefault:"auto"`
	Browser    string `env:"BROWSER"`
	// A client registered ahead of time, or a client ID metadata document
	// (an https URL), for servers that take no dynamic registration.
	ClientID          string `env:"MCPWRAP_PROXY_CLIENT_ID"`
	ClientSecret      string `env:"MCPWRAP_PROXY_CLIENT_SECRET"`
	ClientMetadataURL string `env:"MCPWRAP_PROXY_CLIENT_METADATA_URL"`

	// Header holds the --header values, sent on every request to the remote.
	Header http.Header `env:"-"`
	// URL is the remote MCP endpoint.
	URL *url.URL `env:"-"`
}

// envKeys are the variables Config reads; only these are copied out of
// getenv, so tests can hand in a map and the process environment stays
// untouched.
var envKeys = []string{"MCPWRAP_TOKEN", "MCPWRAP_TOKEN_FILE", "MCPWRAP_PROXY_RETRY_FOR", "MCPWRAP_LOG_LEVEL",
	"MCPWRAP_PROXY_NO_BROWSER", "MCPWRAP_PROXY_TOKEN_STORE", "BROWSER",
	"MCPWRAP_PROXY_CLIENT_ID", "MCPWRAP_PROXY_CLIENT_SECRET", "MCPWRAP_PROXY_CLIENT_METADATA_URL"}

// errUsage marks a configuration mistake; the flag package has already
// printed the usage when it is the cause. It is config.ErrUsage, so that
// mcpwrap exits 2 as for any other usage error.
var errUsage = fmt.Errorf("%w: mcpwrap proxy [flags] URL", config.ErrUsage)

// headerFlags collects repeated --header values.
type headerFlags struct{ h http.Header }

func (f *headerFlags) String() string { return "" }

func (f *headerFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") {
		return errors.New(`want "Name: value"`)
	}
	value = strings.TrimSpace(value)
	if strings.ContainsAny(value, "\r\n") {
		return errors.New("header value must be one line")
	}
	f.h.Add(name, value)
	return nil
}

// parseConfig reads the environment through getenv and then the flags in args;
// a flag that is given wins over its variable.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	environ := make(map[string]string, len(envKeys))
	for _, k := range envKeys {
		if v := getenv(k); v != "" {
			environ[k] = v
		}
	}
	var cfg Config
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: environ}); err != nil {
		return cfg, fmt.Errorf("read environment: %w", err)
	}

	fs := flag.NewFlagSet("mcpwrap proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mcpwrap proxy [flags] URL")
		fs.PrintDefaults()
	}
	headers := &headerFlags{h: http.Header{}}
	token := fs.String("token", "", "bearer token for the remote (env MCPWRAP_TOKEN)")
	tokenFile := fs.String("token-file", "", "file holding the bearer token (env MCPWRAP_TOKEN_FILE)")
	fs.Var(headers, "header", "extra request header `'Name: value'`, repeatable")
	retryFor := fs.Duration("retry-for", cfg.RetryFor, "keep retrying an unreachable or starting remote this long (env MCPWRAP_PROXY_RETRY_FOR)")
	logLevel := fs.String("log-level", cfg.LogLevel, "debug, info, warn or error (env MCPWRAP_LOG_LEVEL)")
	noBrowser := fs.Bool("no-browser", cfg.NoBrowser, "print the sign-in URL instead of opening a browser (env MCPWRAP_PROXY_NO_BROWSER)")
	tokenStore := fs.String("token-store", cfg.TokenStore, "where OAuth tokens are kept: auto, keyring or file (env MCPWRAP_PROXY_TOKEN_STORE)")
	clientID := fs.String("client-id", cfg.ClientID, "OAuth client id registered ahead of time (env MCPWRAP_PROXY_CLIENT_ID)")
	clientSecret := fs.String("client-secret", cfg.ClientSecret, "its client secret, if any (env MCPWRAP_PROXY_CLIENT_SECRET)")
	clientMetadataURL := fs.String("client-metadata-url", cfg.ClientMetadataURL, "https URL of a client ID metadata document (env MCPWRAP_PROXY_CLIENT_METADATA_URL)")
	if err := fs.Parse(args); err != nil {
		return cfg, fmt.Errorf("%w: %w", errUsage, err)
	}

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case set["token"] && set["token-file"]:
		return cfg, fmt.Errorf("%w: give --token or --token-file, not both", errUsage)
	case set["token"]:
		cfg.Token, cfg.TokenFile = *token, ""
	case set["token-file"]:
		cfg.Token, cfg.TokenFile = "", *tokenFile
	}
	cfg.RetryFor = *retryFor
	cfg.LogLevel = *logLevel
	cfg.NoBrowser = *noBrowser
	cfg.TokenStore = *tokenStore
	cfg.ClientID, cfg.ClientSecret, cfg.ClientMetadataURL = *clientID, *clientSecret, *clientMetadataURL
	cfg.Header = headers.h

	// A token given directly beats a token file from the same source; the
	// switch above already let flags beat variables.
	if cfg.Token == "" && cfg.TokenFile != "" {
		b, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return cfg, fmt.Errorf("read token file: %w", err)
		}
		cfg.Token = strings.TrimSpace(string(b))
		if cfg.Token == "" {
			return cfg, fmt.Errorf("token file %s is empty", cfg.TokenFile)
		}
	}
	if strings.ContainsAny(cfg.Token, "\r\n") {
		// Never echo the value: it is a secret.
		return cfg, errors.New("token must be one line")
	}
	if cfg.RetryFor < 0 {
		return cfg, fmt.Errorf("%w: --retry-for must not be negative", errUsage)
	}
	if cfg.ClientSecret != "" && cfg.ClientID == "" {
		return cfg, fmt.Errorf("%w: --client-secret needs --client-id", errUsage)
	}
	if u, err := url.Parse(cfg.ClientMetadataURL); cfg.ClientMetadataURL != "" && (err != nil || u.Scheme != "https" || u.Host == "" || u.Path == "" || u.Path == "/") {
		return cfg, fmt.Errorf("%w: --client-metadata-url must be an https URL with a path", errUsage)
	}
	if !slices.Contains(storeKinds, cfg.TokenStore) {
		return cfg, fmt.Errorf("%w: --token-store must be one of %s", errUsage, strings.Join(storeKinds, ", "))
	}
	if _, err := zerolog.ParseLevel(cfg.LogLevel); err != nil {
		return cfg, fmt.Errorf("%w: --log-level: %w", errUsage, err)
	}

	if fs.NArg() != 1 {
		fs.Usage()
		return cfg, fmt.Errorf("%w: want exactly one URL, got %d arguments", errUsage, fs.NArg())
	}
	u, err := url.Parse(fs.Arg(0))
	if err != nil {
		// url.Error repeats the whole URL, which may carry a password.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return cfg, fmt.Errorf("%w: bad URL: %w", errUsage, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cfg, fmt.Errorf("%w: URL must be http:// or https:// with a host, got %s", errUsage, u.Redacted())
	}
	cfg.URL = u
	return cfg, nil
}
