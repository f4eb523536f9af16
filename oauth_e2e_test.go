package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// TestOAuthResourceServer runs mcpwrap in mode 1 against a stand-in issuer:
// the official Go SDK client, holding an access token for alice, reaches a
// child with her tenant's environment and without her token; the static
// token keeps working beside it; discovery documents and challenges point
// at the right places.
func TestOAuthResourceServer(t *testing.T) {
	iss := testkit.NewIssuer(t)
	tenants := filepath.Join(t.TempDir(), "tenants.json")
	if err := os.WriteFile(tenants, []byte(`{"acme": {"users": ["alice@acme.com"], "env": {"E2E_TENANT": "acme"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	w := startWrapper(t, testkit.Options{Env: map[string]string{
		"MCPWRAP_AUTH_ISSUER":     iss.URL,
		"MCPWRAP_AUTH_USER_CLAIM": "email",
		"MCPWRAP_AUTH_SCOPES":     "mcp",
		"MCPWRAP_TENANTS_FILE":    tenants,
	}})
	tokenFor := func(email string) string {
		c := iss.Claims(w.URL, "sub-"+email) // the default public URL: the address bound
		c["email"], c["scope"] = email, "mcp"
		return iss.Token(t, c)
	}
	alice := tokenFor("alice@acme.com")

	client := mcp.NewClient(&mcp.Implementation{Name: "mcpwrap-e2e", Version: "1"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{
		Endpoint:   w.URL,
		HTTPClient: &http.Client{Transport: testkit.Bearer{Token: alice}},
	}, nil)
	if err != nil {
		t.Fatalf("connecting with alice's access token: %v\n%s", err, w.Logs.Dump())
	}
	defer cs.Close()
	pid := testkit.AskPid(t, cs)
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	if !slices.Contains(env, "E2E_TENANT=acme") {
		t.Errorf("the child lacks its tenant's environment")
	}
	for _, secret := range []string{alice, e2eToken, iss.ClientSecret} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("a credential reached the child's environment")
		}
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "MCPWRAP_") {
			t.Errorf("child environment holds %s", kv)
		}
	}

	// The static token works beside OAuth.
	testkit.MustCall(t, w.Connect(t), "echo", map[string]any{"text": "static"})

	// What a client without a token learns: where to sign in.
	status, header, _ := w.Send(t, testkit.Request{Body: testkit.InitBody, Headers: map[string]string{"Authorization": ""}})
	metadataURL := w.Base + "/.well-known/oauth-protected-resource/mcp"
	if want := `Bearer resource_metadata="` + metadataURL + `", scope="mcp"`; status != http.StatusUnauthorized || header.Get("WWW-Authenticate") != want {
		t.Errorf("no token: %d %q, want 401 %q", status, header.Get("WWW-Authenticate"), want)
	}
	for _, u := range []string{metadataURL, w.Base + "/.well-known/oauth-protected-resource"} {
		meta, err := oauthex.GetProtectedResourceMetadata(t.Context(), u, w.URL, nil)
		if err != nil {
			t.Errorf("%s: %v", u, err)
			continue
		}
		if !slices.Equal(meta.AuthorizationServers, []string{iss.URL}) || !slices.Equal(meta.ScopesSupported, []string{"mcp"}) {
			t.Errorf("%s: %+v", u, meta)
		}
	}

	// A user no tenant lists: refused, and told why.
	status, header, body := w.Send(t, testkit.Request{Body: testkit.InitBody, Token: tokenFor("mallory@evil.com")})
	if status != http.StatusForbidden || header.Get("WWW-Authenticate") != "" {
		t.Errorf("a user in no tenant: %d %q %s", status, header.Get("WWW-Authenticate"), body)
	}
	var rpc struct {
		Error struct{ Message string } `json:"error"`
	}
	if json.Unmarshal([]byte(body), &rpc) != nil || !strings.Contains(rpc.Error.Message, "mallory@evil.com") {
		t.Errorf("refusal body %q does not name the user", body)
	}
	// A token for another resource is refused as invalid.
	c := iss.Claims("https://elsewhere.example.com/mcp", "x")
	c["email"], c["scope"] = "alice@acme.com", "mcp"
	status, header, _ = w.Send(t, testkit.Request{Body: testkit.InitBody, Token: iss.Token(t, c)})
	if status != http.StatusUnauthorized || !strings.Contains(header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("a token for another resource: %d %q", status, header.Get("WWW-Authenticate"))
	}
}

// TestOAuthConfigErrors: settings OAuth cannot work with stop mcpwrap at
// start with exit status 2, before it serves anyone.
func TestOAuthConfigErrors(t *testing.T) {
	for _, env := range [][]string{
		{"MCPWRAP_LISTEN=0.0.0.0:0", "MCPWRAP_AUTH_ISSUER=https://login.example.com"}, // no public URL
		{"MCPWRAP_LISTEN=127.0.0.1:0", "MCPWRAP_AUTH_ISSUER=https://login.example.com", "MCPWRAP_AUTH_ALGORITHMS=HS256"},
		// Endpoints where sign-in lives.
		{"MCPWRAP_LISTEN=127.0.0.1:0", "MCPWRAP_TOKEN=t", "MCPWRAP_AUTH_SECRET=" + strings.Repeat("s", 40), "MCPWRAP_PATH=/token"},
		{"MCPWRAP_LISTEN=127.0.0.1:0", "MCPWRAP_TOKEN=t", "MCPWRAP_AUTH_SECRET=" + strings.Repeat("s", 40), "MCPWRAP_SSE_PATH=/authorize/sse"},
		{"MCPWRAP_LISTEN=127.0.0.1:0", "MCPWRAP_AUTH_ISSUER=https://login.example.com", "MCPWRAP_MESSAGE_PATH=/.well-known/oauth-protected-resource"},
	} {
		bin, fixture := testkit.Programs(t)
		// One that starts serving instead is killed, and fails the test.
		ctx, cancel := context.WithTimeout(t.Context(), testkit.Patience)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "--", fixture)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || strings.Contains(string(out), "panic") {
			t.Errorf("%v: %v, want exit status 2 without a panic\n%s", env, err, out)
		}
	}
}
