package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mcpwrap/mcpwrap/config"
	"github.com/rs/zerolog"
)

// Config is everything `mcpwrap proxy` reads from its flags and environment
// (config.Parse: a flag wins over its variable).
type Config struct {
	Token     string        `env:"TOKEN" help:"bearer token for the remote"`
	TokenFile string        `env:"TOKEN_FILE" help:"file holding the bearer token"`
	Header    http.Header   `flag:"header" help:"extra request header 'Name: value', repeatable"`
	RetryFor  time.Duration `env:"PROXY_RETRY_FOR" flag:"retry-for" envDefault:"30s" help:"keep retrying an unreachable or starting remote this long"`
	ReadIdle  time.Duration `env:"PROXY_READ_IDLE" flag:"read-idle" envDefault:"75s" help:"take an SSE stream silent this long for dead and resume it (0 never)"`
	LogLevel  string        `env:"LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`

	// OAuth sign-in, used when the remote asks for it and no token is set.
	NoBrowser  bool   `env:"PROXY_NO_BROWSER" flag:"no-browser" help:"print the sign-in URL instead of opening a browser"`
	TokenStore string `env:"PROXY_TOKEN_STORE" flag:"token-store" envDefault:"auto" help:"where OAuth tokens are kept: auto, keyring or file"`
	// A client registered ahead of time, or a client ID metadata document
	// (an https URL), for servers that take no dynamic registration.
	ClientID          string `env:"PROXY_CLIENT_ID" flag:"client-id" help:"OAuth client id registered ahead of time"`
	ClientSecret      string `env:"PROXY_CLIENT_SECRET" flag:"client-secret" help:"its client secret, if any"`
	ClientIssuer      string `env:"PROXY_CLIENT_ISSUER" flag:"client-issuer" help:"the authorization server (issuer) the client is registered at; it is used there only (default: with a secret, the remote's own origin)"`
	ClientMetadataURL string `env:"PROXY_CLIENT_METADATA_URL" flag:"client-metadata-url" help:"https URL of a client ID metadata document"`
	// Browser is $BROWSER: the usual way, outside mcpwrap's own settings,
	// to name the browser that opens the sign-in page.
	Browser string `env:"-"`

	// URL is the remote MCP endpoint.
	URL *url.URL `env:"-"`
}

// commandLine is the proxy's command line for config.Parse.
var commandLine = config.Command{Name: "mcpwrap proxy", Synopsis: "usage: mcpwrap proxy [flags] URL"}

// parseConfig reads the environment through getenv and then the flags in args;
// a flag that is given wins over its variable.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	var cfg Config
	parsed, err := config.Parse(&cfg, commandLine, args, getenv, stderr)
	if err != nil {
		return cfg, err
	}
	// A token given directly beats a token file from the same source, and a
	// flag of either kind beats both variables.
	switch {
	case parsed.Given("token") && parsed.Given("token-file"):
		return cfg, fmt.Errorf("%w: give --token or --token-file, not both", config.ErrUsage)
	case parsed.Given("token"):
		cfg.TokenFile = ""
	case parsed.Given("token-file"):
		cfg.Token = ""
	}
	if cfg.Header == nil {
		cfg.Header = http.Header{}
	}
	cfg.Browser = getenv("BROWSER")
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
	if cfg.ReadIdle < 0 {
		return cfg, fmt.Errorf("%w: --read-idle must not be negative", config.ErrUsage)
	}
	if cfg.RetryFor < 0 {
		return cfg, fmt.Errorf("%w: --retry-for must not be negative", config.ErrUsage)
	}
	if cfg.ClientSecret != "" && cfg.ClientID == "" {
		return cfg, fmt.Errorf("%w: --client-secret needs --client-id", config.ErrUsage)
	}
	if cfg.ClientIssuer != "" {
		if u, err := url.Parse(cfg.ClientIssuer); cfg.ClientID == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return cfg, fmt.Errorf("%w: --client-issuer needs --client-id and must be an http(s) URL", config.ErrUsage)
		}
	}
	if u, err := url.Parse(cfg.ClientMetadataURL); cfg.ClientMetadataURL != "" && (err != nil || u.Scheme != "https" || u.Host == "" || u.Path == "" || u.Path == "/") {
		return cfg, fmt.Errorf("%w: --client-metadata-url must be an https URL with a path", config.ErrUsage)
	}
	if !slices.Contains(storeKinds, cfg.TokenStore) {
		return cfg, fmt.Errorf("%w: --token-store must be one of %s", config.ErrUsage, strings.Join(storeKinds, ", "))
	}
	if _, err := zerolog.ParseLevel(cfg.LogLevel); err != nil {
		return cfg, fmt.Errorf("%w: --log-level: %w", config.ErrUsage, err)
	}

	if len(parsed.Args) != 1 || parsed.Command != nil {
		return cfg, fmt.Errorf("%w: want exactly one URL, got %d arguments", config.ErrUsage, len(parsed.Args)+len(parsed.Command))
	}
	u, err := url.Parse(parsed.Args[0])
	if err != nil {
		// url.Error repeats the whole URL, which may carry a password.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return cfg, fmt.Errorf("%w: bad URL: %w", config.ErrUsage, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cfg, fmt.Errorf("%w: URL must be http:// or https:// with a host, got %s", config.ErrUsage, u.Redacted())
	}
	cfg.URL = u
	return cfg, nil
}
