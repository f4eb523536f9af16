package wrap_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mcpwrap/mcpwrap/auth"
	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/mcpwrap/mcpwrap/session"
	"github.com/mcpwrap/mcpwrap/wrap"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// oauthServer is mcpwrap's handler behind static tokens and OAuth access
// tokens from a stand-in issuer, with alice and bob both users of tenant
// acme, whose static token is the harness's.
func oauthServer(t *testing.T) (*server, func(email string) string) {
	t.Helper()
	iss := testkit.NewIssuer(t)
	acme := auth.Tenant{Name: "acme", Token: token, Env: []string{"WHO=acme"}, Users: []string{"alice@acme.com", "bob@acme.com"}}
	o, err := auth.NewOAuth(auth.OAuthOptions{
		PublicURL: "https://mcp.example.com",
		Path:      "/mcp",
		Issuer:    iss.URL,
		UserClaim: "email",
		Scopes:    []string{"mcp"},
		Tenants:   auth.NewTenants([]auth.Tenant{acme}),
	})
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, func(_ *session.Options, w *wrap.Options) {
		w.Auth = &auth.Combined{Tokens: auth.NewTokens([]auth.Tenant{acme}), OAuth: o}
	})
	return s, func(email string) string {
		c := iss.Claims("https://mcp.example.com/mcp", "sub-"+email)
		c["email"], c["scope"] = email, "mcp"
		return iss.Token(t, c)
	}
}

// TestSessionBelongsToItsUser: two users of one tenant share its
// environment, never each other's sessions, and the tenant's static token
// reaches neither.
func TestSessionBelongsToItsUser(t *testing.T) {
	s, tokenFor := oauthServer(t)
	alice, bob := "Bearer "+tokenFor("alice@acme.com"), "Bearer "+tokenFor("bob@acme.com")

	resp, body := s.do(t, raw{body: initBody, auth: alice})
	id := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || id == "" {
		t.Fatalf("alice's initialize: %d %s", resp.StatusCode, body)
	}
	ping := `{"jsonrpc":"2.0","id":2,"method":"ping"}`
	for _, tc := range []struct {
		who, auth string
		want      int
	}{
		{"bob", bob, http.StatusNotFound},
		{"the tenant's static token", "Bearer " + token, http.StatusNotFound},
		{"alice", alice, http.StatusOK},
	} {
		resp, body := s.do(t, raw{session: id, version: "2025-06-18", body: ping, auth: tc.auth})
		if resp.StatusCode != tc.want {
			t.Errorf("%s in alice's session: %d %s, want %d", tc.who, resp.StatusCode, body, tc.want)
		}
	}
	resp, body = s.do(t, raw{session: id, method: http.MethodDelete, auth: bob})
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("bob ending alice's session: %d %s, want 404", resp.StatusCode, body)
	}

	// The official SDK client, signed in as alice, gets a session of its own.
	client := mcp.NewClient(&mcp.Implementation{Name: "wrap-test", Version: "1"}, nil)
	cs, err := client.Connect(ctxFor(t), &mcp.StreamableClientTransport{
		Endpoint:   s.URL,
		HTTPClient: &http.Client{Transport: testkit.Bearer{Token: strings.TrimPrefix(alice, "Bearer ")}},
	}, nil)
	if err != nil {
		t.Fatalf("connecting as alice: %v", err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctxFor(t), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi alice"}})
	if err != nil || text(t, res) != "hi alice" {
		t.Fatalf("echo as alice: %v", err)
	}
}

func TestOAuthRefusals(t *testing.T) {
	s, tokenFor := oauthServer(t)
	const metadata = `resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"`

	// No token: the challenge that starts a client's sign-in.
	resp, body := s.do(t, raw{body: initBody, auth: "-"})
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != "Bearer "+metadata+`, scope="mcp"` {
		t.Errorf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if !strings.Contains(body, `"jsonrpc":"2.0"`) {
		t.Errorf("no token: body %q is not JSON-RPC", body)
	}

	// A token that is no good: the same, saying so.
	resp, _ = s.do(t, raw{body: initBody, auth: "Bearer not-a-token"})
	cs, err := oauthex.ParseWWWAuthenticate(resp.Header.Values("WWW-Authenticate"))
	if resp.StatusCode != http.StatusUnauthorized || err != nil || len(cs) != 1 || cs[0].Params["error"] != "invalid_token" {
		t.Errorf("bad token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	// A valid token of a user no tenant lists: 403, and no challenge, since
	// signing in again would not help.
	resp, body = s.do(t, raw{body: initBody, auth: "Bearer " + tokenFor("mallory@evil.com")})
	if resp.StatusCode != http.StatusForbidden || resp.Header.Values("WWW-Authenticate") != nil || !strings.Contains(body, "mallory@evil.com") {
		t.Errorf("a user in no tenant: %d %q %s", resp.StatusCode, resp.Header.Values("WWW-Authenticate"), body)
	}
	if n := s.Reg.Len(); n != 0 {
		t.Errorf("%d sessions after refusals only", n)
	}
}
