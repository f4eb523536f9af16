package auth_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/mcpwrap/mcpwrap/auth"
	"github.com/mcpwrap/mcpwrap/internal/testkit"
)

const (
	publicURL = "https://mcp.example.com"
	resource  = publicURL + "/mcp"
	metaURL   = publicURL + "/.well-known/oauth-protected-resource/mcp"
)

// door is a server on 127.0.0.1 that answers who a request authenticated
// as, the way wrap's guard does: the refusal's status and challenge, or 200
// with the principal.
func door(t *testing.T, a interface {
	Authenticate(*http.Request) (auth.Principal, error)
}) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.Authenticate(r)
		if err != nil {
			var ref *auth.Refusal
			if !errors.As(err, &ref) {
				t.Errorf("Authenticate failed with %T %v, not a refusal", err, err)
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			if ref.Challenge != "" {
				w.Header().Set("WWW-Authenticate", ref.Challenge)
			}
			w.WriteHeader(ref.Status)
			_ = json.NewEncoder(w).Encode(map[string]string{"code": ref.Code, "description": ref.Description})
			return
		}
		_ = json.NewEncoder(w).Encode(p)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

type answer struct {
	status    int
	challenge string
	p         auth.Principal
	body      map[string]string
}

func ask(t *testing.T, url, token string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/mcp", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, challenge: resp.Header.Get("WWW-Authenticate")}
	if resp.StatusCode == http.StatusOK {
		err = json.NewDecoder(resp.Body).Decode(&a.p)
	} else {
		err = json.NewDecoder(resp.Body).Decode(&a.body)
	}
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return a
}

func newOAuth(t *testing.T, opts auth.OAuthOptions) *auth.OAuth {
	t.Helper()
	if opts.PublicURL == "" {
		opts.PublicURL = publicURL
	}
	if opts.Path == "" {
		opts.Path = "/mcp"
	}
	o, err := auth.NewOAuth(opts)
	if err != nil {
		t.Fatalf("NewOAuth: %v", err)
	}
	return o
}

// challengeParams parses a challenge the way the Go SDK's client does.
func challengeParams(t *testing.T, challenge string) map[string]string {
	t.Helper()
	cs, err := oauthex.ParseWWWAuthenticate([]string{challenge})
	if err != nil || len(cs) != 1 || cs[0].Scheme != "bearer" {
		t.Fatalf("challenge %q: %v %+v", challenge, err, cs)
	}
	return cs[0].Params
}

func TestJWTAccessTokens(t *testing.T) {
	iss := testkit.NewIssuer(t)
	o := newOAuth(t, auth.OAuthOptions{Issuer: iss.URL})
	url := door(t, &auth.Combined{OAuth: o})

	claims := func(change func(c map[string]any)) map[string]any {
		c := iss.Claims(resource, "alice")
		if change != nil {
			change(c)
		}
		return c
	}
	hour := time.Hour
	at := func(d time.Duration) int64 { return time.Now().Add(d).Unix() }
	stranger := testkit.NewIssuerKey(t, "key-1") // same kid, another key
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := iss.Token(t, claims(nil))
	parts := strings.Split(good, ".")
	sig := []byte(parts[2])
	// Another base64url letter in the middle: real signature bits change.
	if sig[len(sig)/2] == 'A' {
		sig[len(sig)/2] = 'B'
	} else {
		sig[len(sig)/2] = 'A'
	}
	tampered := parts[0] + "." + parts[1] + "." + string(sig)

	for _, tc := range []struct {
		name     string
		token    string
		wantDesc string // "" when accepted
	}{
		{"valid", good, ""},
		{"audience with a trailing slash", iss.Token(t, claims(func(c map[string]any) { c["aud"] = resource + "/" })), ""},
		{"bare origin audience", iss.Token(t, claims(func(c map[string]any) { c["aud"] = publicURL })), ""},
		{"bare origin audience with a slash", iss.Token(t, claims(func(c map[string]any) { c["aud"] = []string{"other", publicURL + "/"} })), ""},
		{"expired within the leeway", iss.Token(t, claims(func(c map[string]any) { c["exp"] = at(-30 * time.Second) })), ""},
		{"nbf within the leeway", iss.Token(t, claims(func(c map[string]any) { c["nbf"] = at(30 * time.Second) })), ""},
		{"another audience", iss.Token(t, claims(func(c map[string]any) { c["aud"] = "https://other.example.com/mcp" })), "another resource"},
		{"another path on the same origin", iss.Token(t, claims(func(c map[string]any) { c["aud"] = publicURL + "/other" })), "another resource"},
		{"no audience", iss.Token(t, claims(func(c map[string]any) { delete(c, "aud") })), "another resource"},
		{"expired", iss.Token(t, claims(func(c map[string]any) { c["exp"] = at(-2 * time.Minute) })), "expired"},
		{"no expiry", iss.Token(t, claims(func(c map[string]any) { delete(c, "exp") })), "no expiry"},
		{"not yet valid", iss.Token(t, claims(func(c map[string]any) { c["nbf"] = at(2 * time.Minute) })), "not valid yet"},
		{"issued in the future", iss.Token(t, claims(func(c map[string]any) { c["iat"] = at(hour) })), "not valid yet"},
		{"another issuer", iss.Token(t, claims(func(c map[string]any) { c["iss"] = "https://evil.example.com" })), "another authorization server"},
		{"HS256 with the public key as secret", testkit.SignJWT(t, jose.SigningKey{Algorithm: jose.HS256, Key: iss.PublicKeyDER(t)}, claims(nil)), "signature"},
		{"an allowed algorithm the issuer does not use", testkit.SignJWT(t, jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: ecKey, KeyID: "key-1"}}, claims(nil)), "signature"},
		{"unknown kid", testkit.SignJWT(t, jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: stranger.Private, KeyID: "nope"}}, claims(nil)), "signature"},
		{"another key under the issuer's kid", testkit.SignJWT(t, jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: stranger.Private, KeyID: "key-1"}}, claims(nil)), "signature"},
		{"tampered signature", tampered, "signature"},
		{"tampered payload", parts[0] + "." + strings.TrimRight(parts[1], "=") + "e30" + "." + parts[2], "signature"},
		{"not a JWT", "opaque-token", "not a JWT"},
		{"no user", iss.Token(t, claims(func(c map[string]any) { delete(c, "sub") })), "no user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := ask(t, url, tc.token)
			if tc.wantDesc == "" {
				if a.status != http.StatusOK || a.p.Subject != "alice" || a.p.Tenant != "" {
					t.Fatalf("refused or wrong principal: %d %+v %v %q", a.status, a.p, a.body, a.challenge)
				}
				return
			}
			if a.status != http.StatusUnauthorized || a.body["code"] != "invalid_token" {
				t.Fatalf("got %d %v, want 401 invalid_token", a.status, a.body)
			}
			if !strings.Contains(a.body["description"], tc.wantDesc) {
				t.Errorf("description %q, want it to say %q", a.body["description"], tc.wantDesc)
			}
			p := challengeParams(t, a.challenge)
			if p["error"] != "invalid_token" || p["resource_metadata"] != metaURL || p["error_description"] != a.body["description"] {
				t.Errorf("challenge %q", a.challenge)
			}
			if _, ok := p["scope"]; ok {
				t.Errorf("challenge %q names a scope though none is required", a.challenge)
			}
		})
	}
	if n := iss.JWKSFetches.Load(); n < 1 || n > 2 {
		t.Errorf("%d JWKS fetches; want 1, or 2 for the unknown kid, however many tokens came", n)
	}
}

func TestNoTokenGetsTheChallenge(t *testing.T) {
	iss := testkit.NewIssuer(t)
	o := newOAuth(t, auth.OAuthOptions{Issuer: iss.URL, Scopes: []string{"mcp"}})
	a := ask(t, door(t, &auth.Combined{OAuth: o}), "")
	if a.status != http.StatusUnauthorized {
		t.Fatalf("status %d", a.status)
	}
	want := `Bearer resource_metadata="` + metaURL + `", scope="mcp"`
	if a.challenge != want {
		t.Errorf("challenge %q, want %q", a.challenge, want)
	}
}

func TestKeyRotation(t *testing.T) {
	iss := testkit.NewIssuer(t)
	o := newOAuth(t, auth.OAuthOptions{Issuer: iss.URL})
	auth.SetJWKSRefresh(o, 0)
	url := door(t, o)
	if a := ask(t, url, iss.Token(t, iss.Claims(resource, "alice"))); a.status != http.StatusOK {
		t.Fatalf("before rotation: %d %v", a.status, a.body)
	}
	iss.Rotate(t, "key-2")
	if a := ask(t, url, iss.Token(t, iss.Claims(resource, "alice"))); a.status != http.StatusOK {
		t.Fatalf("a token signed with the new key: %d %v", a.status, a.body)
	}
}

func TestForgedKeyIDsDoNotFloodTheIssuer(t *testing.T) {
	iss := testkit.NewIssuer(t)
	o := newOAuth(t, auth.OAuthOptions{Issuer: iss.URL})
	url := door(t, o)
	stranger := testkit.NewIssuerKey(t, "x")
	for i := range 20 {
		key := jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: stranger.Private, KeyID: "forged-" + string(rune('a'+i))}}
		if a := ask(t, url, testkit.SignJWT(t, key, iss.Claims(resource, "mallory"))); a.status != http.StatusUnauthorized {
			t.Fatalf("forged token: %d", a.status)
		}
	}
	if n := iss.JWKSFetches.Load(); n > 2 {
		t.Errorf("20 forged tokens cost the issuer %d JWKS fetches", n)
	}
}

func TestScopes(t *testing.T) {
	iss := testkit.NewIssuer(t)
	o := newOAuth(t, auth.OAuthOptions{Issuer: iss.URL, Scopes: []string{"mcp", "tools"}})
	url := door(t, o)
	for _, tc := range []struct {
		name  string
		set   func(c map[string]any)
		allow bool
	}{
		{"scope string", func(c map[string]any) { c["scope"] = "openid tools mcp" }, true},
		{"scp list", func(c map[string]any) { c["scp"] = []string{"mcp", "tools"} }, true},
		{"one missing", func(c map[string]any) { c["scope"] = "mcp" }, false},
		{"none", func(c map[string]any) {}, false},
	} {
		c := iss.Claims(resource, "alice")
		tc.set(c)
		a := ask(t, url, iss.Token(t, c))
		if tc.allow {
			if a.status != http.StatusOK {
				t.Errorf("%s: %d %v", tc.name, a.status, a.body)
			}
			continue
		}
		if a.status != http.StatusForbidden || a.body["code"] != "insufficient_scope" {
			t.Errorf("%s: %d %v, want 403 insufficient_scope", tc.name, a.status, a.body)
			continue
		}
		want := `Bearer error="insufficient_scope", scope="mcp tools", resource_metadata="` + metaURL + `"`
		if a.challenge != want {
			t.Errorf("%s: challenge %q, want %q", tc.name, a.challenge, want)
		}
	}
}

func TestIntrospection(t *testing.T) {
	iss := testkit.NewIssuer(t)
	o := newOAuth(t, auth.OAuthOptions{
		Issuer:                    iss.URL,
		IntrospectionClientID:     iss.ClientID,
		IntrospectionClientSecret: iss.ClientSecret,
		UserClaim:                 "username",
	})
	url := door(t, o)
	iss.Opaque("opaque-alice", map[string]any{"active": true, "username": "alice", "aud": resource + "/", "exp": time.Now().Add(time.Hour).Unix()})
	iss.Opaque("opaque-elsewhere", map[string]any{"active": true, "username": "bob", "aud": "https://other.example.com"})
	iss.Opaque("opaque-expired", map[string]any{"active": true, "username": "bob", "exp": time.Now().Add(-time.Hour).Unix()})

	if a := ask(t, url, "opaque-alice"); a.status != http.StatusOK || a.p.Subject != "alice" {
		t.Fatalf("active token: %d %+v %v", a.status, a.p, a.body)
	}
	calls := iss.Introspections.Load()
	if calls != 1 {
		t.Fatalf("%d introspection calls, want 1", calls)
	}
	if a := ask(t, url, "opaque-alice"); a.status != http.StatusOK {
		t.Fatalf("second use: %d", a.status)
	}
	if n := iss.Introspections.Load(); n != calls {
		t.Errorf("the second use called the issuer again (%d calls)", n)
	}
	for _, token := range []string{"unknown", "opaque-elsewhere", "opaque-expired"} {
		if a := ask(t, url, token); a.status != http.StatusUnauthorized || a.body["code"] != "invalid_token" {
			t.Errorf("%s: %d %v, want 401 invalid_token", token, a.status, a.body)
		}
	}
	calls = iss.Introspections.Load()
	if a := ask(t, url, "unknown"); a.status != http.StatusUnauthorized {
		t.Errorf("unknown again: %d", a.status)
	}
	if n := iss.Introspections.Load(); n != calls {
		t.Errorf("an inactive token's second try called the issuer again")
	}
	// JWTs are still verified locally, never introspected.
	if a := ask(t, url, iss.Token(t, map[string]any{"iss": iss.URL, "aud": resource, "username": "carol", "exp": time.Now().Add(time.Hour).Unix()})); a.status != http.StatusOK || a.p.Subject != "carol" {
		t.Errorf("a JWT beside introspection: %d %v", a.status, a.body)
	}
	if n := iss.Introspections.Load(); n != calls {
		t.Errorf("a JWT was introspected")
	}
}

func TestUsersMapToTenants(t *testing.T) {
	iss := testkit.NewIssuer(t)
	tenants := auth.NewTenants([]auth.Tenant{
		{Name: "acme", Token: "acme-static", Env: []string{"WHO=acme"}, Users: []string{"alice@acme.com"}},
		{Name: "corp", Env: []string{"WHO=corp"}, Users: []string{"bob@corp.com"}},
	})
	o := newOAuth(t, auth.OAuthOptions{Issuer: iss.URL, UserClaim: "email", Tenants: tenants})
	url := door(t, &auth.Combined{Tokens: auth.NewTokens([]auth.Tenant{{Name: "acme", Token: "acme-static", Env: []string{"WHO=acme"}}}), OAuth: o})
	token := func(email string) string {
		c := iss.Claims(resource, "sub-"+email)
		c["email"] = email
		return iss.Token(t, c)
	}
	for _, tc := range []struct{ email, tenant, env string }{
		{"alice@acme.com", "acme", "WHO=acme"},
		{"Bob@Corp.com", "corp", "WHO=corp"},
	} {
		a := ask(t, url, token(tc.email))
		if a.status != http.StatusOK || a.p.Tenant != tc.tenant || a.p.Subject != tc.email || !slices.Equal(a.p.Env, []string{tc.env}) {
			t.Errorf("%s: %d %+v %v", tc.email, a.status, a.p, a.body)
		}
	}
	c := iss.Claims(resource, "sub-x")
	for _, unverified := range []any{false, "false"} { // some providers send a string
		c["email"], c["email_verified"] = "alice@acme.com", unverified
		if a := ask(t, url, iss.Token(t, c)); a.status != http.StatusForbidden || a.p.Tenant != "" {
			t.Errorf("an unverified (%#v) email address: %d %+v, want 403", unverified, a.status, a.p)
		}
	}
	c["email_verified"] = true
	if a := ask(t, url, iss.Token(t, c)); a.status != http.StatusOK || a.p.Tenant != "acme" {
		t.Errorf("a verified email address: %d %+v", a.status, a.p)
	}
	a := ask(t, url, token("mallory@evil.com"))
	if a.status != http.StatusForbidden || a.challenge != "" || !strings.Contains(a.body["description"], "mallory@evil.com") {
		t.Errorf("a user in no tenant: %d %q %v; want 403 without a challenge, naming the user", a.status, a.challenge, a.body)
	}
	// The static token still works beside OAuth, as its tenant.
	if a := ask(t, url, "acme-static"); a.status != http.StatusOK || a.p.Tenant != "acme" || a.p.Subject != "" {
		t.Errorf("static token: %d %+v", a.status, a.p)
	}
	if a := ask(t, url, "acme-static-wrong"); a.status != http.StatusUnauthorized || challengeParams(t, a.challenge)["resource_metadata"] != metaURL {
		t.Errorf("wrong static token: %d %q", a.status, a.challenge)
	}
}

func TestStaticTokensAloneKeepTheirChallenge(t *testing.T) {
	url := door(t, &auth.Combined{Tokens: auth.NewTokens([]auth.Tenant{{Name: "acme", Token: "acme-static"}})})
	if a := ask(t, url, ""); a.status != http.StatusUnauthorized || a.challenge != `Bearer realm="mcpwrap"` {
		t.Errorf("no token: %d %q", a.status, a.challenge)
	}
	if a := ask(t, url, "acme-static"); a.status != http.StatusOK || a.p.Tenant != "acme" {
		t.Errorf("static token: %d %+v", a.status, a.p)
	}
}

// TestBuiltInServerNamesTheTenant is mode 2 as auth sees it: a key set
// handed in, and the tenant claim trusted from it alone.
func TestBuiltInServerNamesTheTenant(t *testing.T) {
	iss := testkit.NewIssuer(t)
	tenants := auth.NewTenants([]auth.Tenant{{Name: "acme", Env: []string{"WHO=acme"}}})
	keys := &oidc.StaticKeySet{PublicKeys: []crypto.PublicKey{&iss.Key().Private.PublicKey}}
	builtIn := newOAuth(t, auth.OAuthOptions{Issuer: iss.URL, KeySet: keys, Tenants: tenants, Scopes: []string{"mcp"}})
	external := newOAuth(t, auth.OAuthOptions{Issuer: iss.URL, Tenants: tenants, Scopes: []string{"mcp"}})
	c := iss.Claims(resource, "github:alice")
	c["scope"], c["mcpwrap_tenant"] = "mcp", "acme"
	token := iss.Token(t, c)
	if a := ask(t, door(t, builtIn), token); a.status != http.StatusOK || a.p.Tenant != "acme" || a.p.Subject != "github:alice" || !slices.Equal(a.p.Env, []string{"WHO=acme"}) {
		t.Errorf("built-in: %d %+v %v", a.status, a.p, a.body)
	}
	if a := ask(t, door(t, external), token); a.status != http.StatusForbidden {
		t.Errorf("an external issuer's tenant claim was trusted: %d %+v", a.status, a.p)
	}
	// A JWT the built-in server's key signed that is not marked as an
	// access token is not one.
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: iss.Key().Private}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	if a := ask(t, door(t, builtIn), plain); a.status != http.StatusUnauthorized {
		t.Errorf("a JWT of typ JWT from the built-in server: %d %+v", a.status, a.p)
	}
	c["mcpwrap_tenant"] = "gone"
	if a := ask(t, door(t, builtIn), iss.Token(t, c)); a.status != http.StatusForbidden {
		t.Errorf("a tenant no longer in the file: %d %+v", a.status, a.p)
	}
	if iss.JWKSFetches.Load() > 1 {
		t.Errorf("the built-in key set was bypassed")
	}
}

func TestMetadataDocument(t *testing.T) {
	o := newOAuth(t, auth.OAuthOptions{Issuer: "https://login.example.com", Scopes: []string{"mcp"}})
	mux := http.NewServeMux()
	for _, p := range o.MetadataPaths() {
		mux.Handle(p, o.MetadataHandler())
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	if got := o.MetadataPaths(); !slices.Equal(got, []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"}) {
		t.Errorf("paths %v", got)
	}
	for _, p := range o.MetadataPaths() {
		// The SDK client's own fetch checks the resource and the schemes; a
		// foreign Host (as behind a proxy) changes nothing.
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+p, nil)
		req.Host = "internal.fly.local:8080"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		err = json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %v", p, resp.StatusCode, err)
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: headers %v", p, resp.Header)
		}
		want := map[string]any{
			"resource":                 resource,
			"authorization_servers":    []any{"https://login.example.com"},
			"scopes_supported":         []any{"mcp"},
			"bearer_methods_supported": []any{"header"},
			"resource_name":            "mcpwrap",
		}
		for k, v := range want {
			if b1, _ := json.Marshal(doc[k]); string(b1) != mustJSON(v) {
				t.Errorf("%s: %s = %s, want %s", p, k, b1, mustJSON(v))
			}
		}
		meta, err := oauthex.GetProtectedResourceMetadata(t.Context(), srv.URL+p, resource, nil)
		if err != nil || meta.Resource != resource {
			t.Errorf("%s: the SDK client's fetch: %+v %v", p, meta, err)
		}
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions} {
		req, _ := http.NewRequestWithContext(t.Context(), m, srv.URL+o.MetadataPaths()[0], nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d Allow %q", m, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
	resp, err := http.Head(srv.URL + o.MetadataPaths()[1])
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD: %v %v", resp, err)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestOptionsAreChecked(t *testing.T) {
	for _, tc := range []auth.OAuthOptions{
		{PublicURL: "my-mcp.fly.dev", Path: "/mcp", Issuer: "https://login.example.com"},
		{PublicURL: publicURL, Path: "mcp", Issuer: "https://login.example.com"},
		{PublicURL: publicURL, Path: "/mcp", Issuer: "login.example.com"},
		{PublicURL: publicURL, Path: "/mcp", Issuer: "https://login.example.com", Algorithms: []string{"HS256"}},
		{PublicURL: publicURL, Path: "/mcp", Issuer: "https://login.example.com", Algorithms: []string{"none"}},
		{PublicURL: publicURL, Path: "/mcp", Issuer: "https://login.example.com", Scopes: []string{"offline_access"}},
		{PublicURL: publicURL, Path: "/mcp", Issuer: "https://login.example.com", Scopes: []string{`a"b`}},
		{PublicURL: publicURL, Path: "/mcp", Issuer: "https://login.example.com", IntrospectionClientID: "id"},
	} {
		if _, err := auth.NewOAuth(tc); !errors.Is(err, auth.ErrOptions) {
			t.Errorf("%+v: err %v, want ErrOptions", tc, err)
		}
	}
}

func TestUnreachableIssuer(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // nothing listens there any more
	o := newOAuth(t, auth.OAuthOptions{Issuer: srv.URL})
	if err := o.Discover(t.Context()); !errors.Is(err, auth.ErrDiscovery) {
		t.Errorf("Discover: %v", err)
	}
	iss := testkit.NewIssuer(t)
	a := ask(t, door(t, o), iss.Token(t, iss.Claims(resource, "alice")))
	if a.status != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503 while the issuer cannot be reached", a.status)
	}
}

// TestDiscovery: an issuer with a path that serves only OpenID Connect
// discovery is found there; metadata that names another issuer is refused
// (RFC 8414 §3.3), or any document could redirect us to any keys.
func TestDiscovery(t *testing.T) {
	iss := testkit.NewIssuer(t) // its keys sign, and serve the JWKS
	var base string
	var paths []string
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.Path)
		var issuer string
		switch r.URL.Path {
		case "/tenant/.well-known/openid-configuration":
			issuer = base + "/tenant"
		case "/liar/.well-known/openid-configuration":
			issuer = base + "/tenant"
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": issuer, "jwks_uri": iss.URL + "/jwks"})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	base = srv.URL

	o := newOAuth(t, auth.OAuthOptions{Issuer: base + "/tenant"})
	if err := o.Discover(t.Context()); err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if want := []string{"/.well-known/oauth-authorization-server/tenant", "/tenant/.well-known/openid-configuration"}; !slices.Equal(paths, want) {
		t.Errorf("looked at %v, want %v", paths, want)
	}
	c := iss.Claims(resource, "alice")
	c["iss"] = base + "/tenant"
	if a := ask(t, door(t, o), iss.Token(t, c)); a.status != http.StatusOK {
		t.Errorf("a token of the discovered issuer: %d %v", a.status, a.body)
	}

	liar := newOAuth(t, auth.OAuthOptions{Issuer: base + "/liar"})
	if err := liar.Discover(t.Context()); !errors.Is(err, auth.ErrDiscovery) {
		t.Errorf("metadata naming another issuer: %v", err)
	}
}

// TestAudienceOverride: an issuer that names its APIs by identifier (an
// Auth0 "API audience", say) is matched by that alone.
func TestAudienceOverride(t *testing.T) {
	iss := testkit.NewIssuer(t)
	o := newOAuth(t, auth.OAuthOptions{Issuer: iss.URL, Audience: "urn:my-mcp"})
	url := door(t, o)
	if a := ask(t, url, iss.Token(t, iss.Claims("urn:my-mcp", "alice"))); a.status != http.StatusOK {
		t.Errorf("the configured audience: %d %v", a.status, a.body)
	}
	if a := ask(t, url, iss.Token(t, iss.Claims(resource, "alice"))); a.status != http.StatusUnauthorized {
		t.Errorf("the resource URL beside a configured audience: %d", a.status)
	}
	if o.Metadata().Resource != resource {
		t.Errorf("metadata resource %q, want the canonical %q", o.Metadata().Resource, resource)
	}
}

// An introspection answer without aud says nothing about which resource
// the token was minted for: it is refused, unless the operator named the
// one audience the issuer's tokens are for.
func TestIntrospectionWithoutAudience(t *testing.T) {
	iss := testkit.NewIssuer(t)
	answer := map[string]any{"active": true, "username": "dave", "exp": time.Now().Add(time.Hour).Unix()}
	iss.Opaque("opaque-no-aud", answer)
	for _, tc := range []struct {
		audience string
		want     int
	}{
		{"", http.StatusUnauthorized},
		{resource, http.StatusOK},
	} {
		o := newOAuth(t, auth.OAuthOptions{
			Issuer:                    iss.URL,
			Audience:                  tc.audience,
			IntrospectionClientID:     iss.ClientID,
			IntrospectionClientSecret: iss.ClientSecret,
			UserClaim:                 "username",
		})
		if a := ask(t, door(t, o), "opaque-no-aud"); a.status != tc.want {
			t.Errorf("audience option %q: %d %v, want %d", tc.audience, a.status, a.body, tc.want)
		}
	}
}
