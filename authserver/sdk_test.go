package authserver

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	sdkauth "github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"
)

// TestGoSDKClientSignsIn runs the official Go SDK client's OAuth support
// against the server: discovery from the 401, registration, PKCE, resource,
// iss, and the token it gets is accepted by a resource that checks it with
// KeySet. The browser is scripted: it signs in on the key page and allows.
func TestGoSDKClientSignsIn(t *testing.T) {
	f := newFixture(t, nil)
	resource := f.srv.opts.Resource
	prm := f.base + "/.well-known/oauth-protected-resource/mcp"

	f.mux.HandleFunc("GET /.well-known/oauth-protected-resource/mcp", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, &oauthex.ProtectedResourceMetadata{
			Resource:             resource,
			AuthorizationServers: []string{f.issuer},
			ScopesSupported:      []string{"mcp"},
		})
	})
	verifier := oidc.NewVerifier(f.issuer, f.srv.KeySet(), &oidc.Config{ClientID: resource, SupportedSigningAlgs: []string{oidc.EdDSA}})
	var tenants atomic.Value
	verify := func(ctx context.Context, token string, _ *http.Request) (*sdkauth.TokenInfo, error) {
		idt, err := verifier.Verify(ctx, token)
		if err != nil {
			return nil, errors.Join(sdkauth.ErrInvalidToken, err)
		}
		var claims struct {
			Scope  string `json:"scope"`
			Tenant string `json:"mcpwrap_tenant"`
		}
		if err := idt.Claims(&claims); err != nil {
			return nil, errors.Join(sdkauth.ErrInvalidToken, err)
		}
		tenants.Store(claims.Tenant)
		return &sdkauth.TokenInfo{Scopes: strings.Fields(claims.Scope), Expiration: idt.Expiry, UserID: idt.Subject}, nil
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "resource", Version: "1"}, nil)
	f.mux.Handle("/mcp", sdkauth.RequireBearerToken(verify, &sdkauth.RequireBearerTokenOptions{ResourceMetadataURL: prm, Scopes: []string{"mcp"}})(
		mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)))

	redirect := "http://127.0.0.1:33418/callback"
	var signIns atomic.Int64
	handler, err := sdkauth.NewAuthorizationCodeHandler(&sdkauth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &sdkauth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			RedirectURIs: []string{redirect},
			ClientName:   "Go SDK",
			GrantTypes:   []string{"authorization_code", "refresh_token"},
		}},
		RedirectURL: redirect,
		AuthorizationCodeFetcher: func(ctx context.Context, args *sdkauth.AuthorizationArgs) (*sdkauth.AuthorizationResult, error) {
			signIns.Add(1)
			u, err := url.Parse(args.URL)
			if err != nil {
				return nil, err
			}
			if got := u.Query().Get("resource"); got != resource {
				t.Errorf("the client asked for resource %q", got)
			}
			back := f.signIn(browser(t), args.URL)
			return &sdkauth.AuthorizationResult{Code: back.Query().Get("code"), State: back.Query().Get("state"), Iss: back.Query().Get("iss")}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "sdk-client", Version: "1"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: f.base + "/mcp", OAuthHandler: handler}, nil)
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	defer cs.Close()
	if err := cs.Ping(t.Context(), nil); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if n := signIns.Load(); n != 1 {
		t.Errorf("%d sign-ins, want 1", n)
	}
	if got, _ := tenants.Load().(string); got != "acme" {
		t.Errorf("the resource saw tenant %q", got)
	}
	// The client's token source refreshes with the rotating refresh token.
	ts, err := handler.TokenSource(t.Context())
	if err != nil || ts == nil {
		t.Fatalf("token source: %v", err)
	}
	tok, err := ts.Token()
	if err != nil || tok.RefreshToken == "" {
		t.Fatalf("token: %v", err)
	}
	// Once the access token expires, golang.org/x/oauth2 (what the SDK
	// refreshes with) gets a new one and a new refresh token.
	clientID, _ := verifyAccess(t, f.srv, tok.AccessToken)["client_id"].(string)
	cfg := oauth2.Config{ClientID: clientID, Endpoint: oauth2.Endpoint{TokenURL: f.base + "/token"}}
	expired := &oauth2.Token{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}
	fresh, err := cfg.TokenSource(t.Context(), expired).Token()
	if err != nil || fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == tok.RefreshToken || fresh.RefreshToken == "" {
		t.Fatalf("refresh: %v", err)
	}
	verifyAccess(t, f.srv, fresh.AccessToken)
}
