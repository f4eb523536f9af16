package main

// Sign-in wiring: the tenants, the built-in authorization server, the
// authenticator that checks every request, and the paths OAuth needs.

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/mcpwrap/mcpwrap/auth"
	"github.com/mcpwrap/mcpwrap/authserver"
	"github.com/mcpwrap/mcpwrap/config"
	"github.com/mcpwrap/mcpwrap/wrap"
	"github.com/rs/zerolog"
)

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

// signInRoutes are the paths OAuth needs beside the MCP endpoints: the
// protected resource metadata, and the built-in authorization server's.
func signInRoutes(oauth *auth.OAuth, as *authserver.Server) map[string]http.Handler {
	routes := map[string]http.Handler{}
	if oauth != nil {
		for _, p := range oauth.MetadataPaths() {
			routes[p] = oauth.MetadataHandler()
		}
	}
	if as != nil {
		h := as.Handler()
		for _, p := range as.Paths() {
			routes[p] = h
		}
	}
	return routes
}

// routesApart refuses endpoint paths that sign-in would take over: the
// same path, or one under a sign-in subtree ("/authorize/"), would send
// MCP requests to the wrong handler, or make ServeMux panic.
func routesApart(cfg config.Config, signIn map[string]http.Handler) error {
	for setting, path := range map[string]string{"MCPWRAP_PATH": cfg.Path, "MCPWRAP_SSE_PATH": cfg.SSEPath, "MCPWRAP_MESSAGE_PATH": cfg.MessagePath} {
		for p := range signIn {
			if path == p || strings.HasSuffix(p, "/") && strings.HasPrefix(path, p) {
				return fmt.Errorf("%w: %s %q is a path that sign-in needs (%s): choose another", config.ErrUsage, setting, path, p)
			}
		}
	}
	return nil
}
