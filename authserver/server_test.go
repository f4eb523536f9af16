package authserver

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mcpwrap/mcpwrap/auth"
)

func TestMetadataAtBothWellKnownPaths(t *testing.T) {
	f := newFixture(t, nil)
	for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		r := get(t, http.DefaultClient, f.base+path)
		if r.status != http.StatusOK || r.header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("%s: %d, CORS %q", path, r.status, r.header.Get("Access-Control-Allow-Origin"))
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(r.body), &m); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"issuer":                                f.issuer,
			"authorization_endpoint":                f.issuer + "/authorize",
			"token_endpoint":                        f.issuer + "/token",
			"registration_endpoint":                 f.issuer + "/register",
			"jwks_uri":                              f.issuer + "/jwks",
			"client_id_metadata_document_supported": true,
			"authorization_response_iss_parameter_supported": true,
		}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("%s: %s = %v, want %v", path, k, m[k], v)
			}
		}
		for k, v := range map[string]string{
			"code_challenge_methods_supported":      `["S256"]`,
			"response_types_supported":              `["code"]`,
			"grant_types_supported":                 `["authorization_code","refresh_token"]`,
			"token_endpoint_auth_methods_supported": `["none"]`,
			"scopes_supported":                      `["mcp"]`,
		} {
			if got, _ := json.Marshal(m[k]); string(got) != v {
				t.Errorf("%s: %s = %s, want %s", path, k, got, v)
			}
		}
	}
	var set struct {
		Keys []struct{ Kty, Crv, Alg, Kid string }
	}
	r := get(t, http.DefaultClient, f.base+"/jwks")
	if err := json.Unmarshal([]byte(r.body), &set); err != nil || len(set.Keys) != 1 ||
		set.Keys[0].Kty != "OKP" || set.Keys[0].Crv != "Ed25519" || set.Keys[0].Alg != "EdDSA" || set.Keys[0].Kid == "" {
		t.Fatalf("jwks: %s", r.body)
	}
}

func TestMetadataUnderAnIssuerPath(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Issuer += "/tenant1"; o.Resource = o.Issuer + "/mcp" })
	origin := strings.TrimSuffix(f.issuer, "/tenant1")
	r := get(t, http.DefaultClient, origin+"/.well-known/oauth-authorization-server/tenant1")
	var m struct {
		Issuer string `json:"issuer"`
		Token  string `json:"token_endpoint"`
	}
	if json.Unmarshal([]byte(r.body), &m) != nil || m.Issuer != origin+"/tenant1" || m.Token != origin+"/tenant1/token" {
		t.Fatalf("%d %s", r.status, r.body)
	}
	// Served with the prefix and without it, as a proxy that strips it
	// hands requests on.
	for _, path := range []string{"/tenant1/.well-known/openid-configuration", "/tenant1/jwks", "/jwks"} {
		if r := get(t, http.DefaultClient, origin+path); r.status != http.StatusOK {
			t.Errorf("%s: %d", path, r.status)
		}
	}
	client := f.register("https://claude.ai/api/mcp/auth_callback")
	p := newPKCE()
	loc := f.signIn(browser(t), f.authorizeURL(client, "https://claude.ai/api/mcp/auth_callback", p, nil))
	if loc.Query().Get("iss") != origin+"/tenant1" {
		t.Errorf("iss %q", loc.Query().Get("iss"))
	}
}

func TestKeySignInCodeTokenAndRefresh(t *testing.T) {
	f := newFixture(t, nil)
	redirect := "https://claude.ai/api/mcp/auth_callback"
	client := f.register(redirect)
	p := newPKCE()
	loc := f.signIn(browser(t), f.authorizeURL(client, redirect, p, nil))
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != redirect {
		t.Fatalf("redirected to %s", loc)
	}
	if loc.Query().Get("iss") != f.issuer || loc.Query().Get("state") != "st-123" {
		t.Fatalf("redirect lacks iss or state: %s", loc.RawQuery)
	}
	tok := f.redeem(client, redirect, loc.Query().Get("code"), p.verifier)
	if tok.status != http.StatusOK || tok.TokenType != "Bearer" || tok.Scope != "mcp" || tok.ExpiresIn != 3600 || tok.RefreshToken == "" {
		t.Fatalf("token: %+v", tok)
	}
	if tok.header.Get("Cache-Control") != "no-store" || tok.header.Get("Pragma") != "no-cache" {
		t.Errorf("token response headers: %v", tok.header)
	}
	claims := verifyAccess(t, f.srv, tok.AccessToken)
	for k, v := range map[string]any{"iss": f.issuer, "aud": f.srv.opts.Resource, "sub": "key:acme", "mcpwrap_tenant": "acme", "scope": "mcp", "client_id": client} {
		if claims[k] != v {
			t.Errorf("claim %s = %v, want %v", k, claims[k], v)
		}
	}
	header, _, _ := strings.Cut(tok.AccessToken, ".")
	hb, _ := base64.RawURLEncoding.DecodeString(header)
	var h struct{ Typ, Alg, Kid string }
	if json.Unmarshal(hb, &h) != nil || h.Typ != "at+jwt" || h.Alg != "EdDSA" || h.Kid == "" {
		t.Errorf("header %s", hb)
	}

	// Refresh rotates: each use gives a new refresh token and access token.
	f.clock.advance(2 * time.Second)
	ref := tokenAt(t, f.base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {client}})
	if ref.status != http.StatusOK || ref.RefreshToken == "" || ref.RefreshToken == tok.RefreshToken || ref.AccessToken == tok.AccessToken {
		t.Fatalf("refresh: %+v", ref)
	}
	if c := verifyAccess(t, f.srv, ref.AccessToken); c["sub"] != "key:acme" || c["mcpwrap_tenant"] != "acme" {
		t.Errorf("refreshed claims %v", c)
	}
	again := tokenAt(t, f.base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ref.RefreshToken}, "client_id": {client}})
	if again.status != http.StatusOK {
		t.Fatalf("second refresh: %+v", again)
	}
	other := f.register("http://127.0.0.1/cb")
	if r := tokenAt(t, f.base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ref.RefreshToken}, "client_id": {other}}); r.Error != "invalid_grant" {
		t.Errorf("another client's refresh: %+v", r)
	}
	f.clock.advance(RefreshTokenTTL + time.Minute)
	if r := tokenAt(t, f.base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {again.RefreshToken}, "client_id": {client}}); r.Error != "invalid_grant" {
		t.Errorf("expired refresh: %+v", r)
	}
}

func TestWrongKeyStaysOnThePage(t *testing.T) {
	f := newFixture(t, nil)
	redirect := "https://chatgpt.com/connector_platform_oauth_redirect"
	client := f.register(redirect)
	c := browser(t)
	page := get(t, c, f.authorizeURL(client, redirect, newPKCE(), nil))
	form := fields(page.body)
	form.Set("key", "not-the-key")
	r := post(t, c, f.base+"/authorize/key", form)
	if r.status != http.StatusUnauthorized || r.location != nil || !strings.Contains(r.body, "That key is not valid here") {
		t.Fatalf("wrong key: %d %v %s", r.status, r.location, r.body)
	}
	if strings.Contains(r.body, "not-the-key") {
		t.Error("the page echoes the key back")
	}
	// The page it shows works: the right key goes on.
	form = fields(r.body)
	form.Set("key", testKey)
	if r := post(t, c, f.base+"/authorize/key", form); r.status != http.StatusOK || !strings.Contains(r.body, "Allow") {
		t.Fatalf("right key after a wrong one: %d %s", r.status, r.body)
	}
}

func TestFormsNeedTheirBrowsersCookie(t *testing.T) {
	f := newFixture(t, nil)
	redirect := "https://claude.ai/api/mcp/auth_callback"
	client := f.register(redirect)
	page := get(t, browser(t), f.authorizeURL(client, redirect, newPKCE(), nil))
	form := fields(page.body)
	form.Set("key", testKey)
	// Another browser (no cookie, or its own) posts the first one's form.
	other := browser(t)
	if r := post(t, other, f.base+"/authorize/key", form); r.status != http.StatusForbidden {
		t.Fatalf("form without its cookie: %d", r.status)
	}
	get(t, other, f.authorizeURL(client, redirect, newPKCE(), nil))
	if r := post(t, other, f.base+"/authorize/key", form); r.status != http.StatusForbidden {
		t.Fatalf("form with another browser's cookie: %d", r.status)
	}
}

func TestPageHeaders(t *testing.T) {
	f := newFixture(t, nil)
	redirect := "cursor://anysphere.cursor-mcp/oauth/callback"
	client := f.register(redirect)
	c := browser(t)
	page := get(t, c, f.authorizeURL(client, redirect, newPKCE(), nil))
	csp := page.header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if page.header.Get("X-Frame-Options") != "DENY" || page.header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("headers %v", page.header)
	}
	consent := f.withKey(c, page.body)
	if csp := consent.header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' cursor:;") {
		t.Errorf("consent CSP %q does not let the form's redirect reach the app", csp)
	}
	if !strings.Contains(consent.body, "cursor://anysphere.cursor-mcp") || !strings.Contains(consent.body, "Test App") {
		t.Errorf("consent page does not name the app and where it returns: %s", consent.body)
	}
}

func TestAuthorizeRefusals(t *testing.T) {
	f := newFixture(t, nil)
	redirect := "https://claude.ai/api/mcp/auth_callback"
	client := f.register(redirect)
	c := browser(t)
	// Before the person has done anything, nothing goes back to the
	// client: a page shows the error, so that an open registration cannot
	// make this origin redirect anywhere.
	for _, tc := range []struct {
		name  string
		extra url.Values
		code  string // the error the page names; "" for any
	}{
		{"plain PKCE", url.Values{"code_challenge_method": {"plain"}}, "invalid_request"},
		{"no PKCE method", url.Values{"code_challenge_method": nil}, "invalid_request"},
		{"no PKCE", url.Values{"code_challenge": nil}, "invalid_request"},
		{"token response", url.Values{"response_type": {"token"}}, "unsupported_response_type"},
		{"another resource", url.Values{"resource": {"https://elsewhere.example/mcp"}}, "invalid_target"},
		{"foreign redirect URI", url.Values{"redirect_uri": {"https://evil.example/cb"}}, ""},
		{"unknown client", url.Values{"client_id": {"forged"}}, ""},
	} {
		r := get(t, c, f.authorizeURL(client, redirect, newPKCE(), tc.extra))
		if r.status != http.StatusBadRequest || r.location != nil || !strings.Contains(r.body, tc.code) {
			t.Errorf("%s: %d %v, want a 400 page naming %q", tc.name, r.status, r.location, tc.code)
		}
	}
	// Tolerated resource variants.
	for _, res := range []string{f.srv.opts.Resource + "/", f.issuer, f.issuer + "/"} {
		if r := get(t, c, f.authorizeURL(client, redirect, newPKCE(), url.Values{"resource": {res}})); r.status != http.StatusOK {
			t.Errorf("resource %s: %d", res, r.status)
		}
	}
}

func TestDenyTellsTheClient(t *testing.T) {
	f := newFixture(t, nil)
	redirect := "https://claude.ai/api/mcp/auth_callback"
	client := f.register(redirect)
	c := browser(t)
	consent := f.withKey(c, get(t, c, f.authorizeURL(client, redirect, newPKCE(), nil)).body)
	r := post(t, c, f.base+"/authorize/consent", fields(consent.body)) // the first form is Cancel
	if r.location == nil || r.location.Query().Get("error") != "access_denied" || r.location.Query().Get("iss") != f.issuer {
		t.Fatalf("deny: %d %v", r.status, r.location)
	}
}

func TestCodeRefusals(t *testing.T) {
	f := newFixture(t, nil)
	redirect := "https://claude.ai/api/mcp/auth_callback"
	client := f.register(redirect)

	p := newPKCE()
	code := f.code(client, redirect, p)
	if r := f.redeem(client, redirect, code, newPKCE().verifier); r.status != http.StatusBadRequest || r.Error != "invalid_grant" {
		t.Errorf("wrong verifier: %+v", r)
	}
	if r := f.redeem(client, redirect, code, p.verifier); r.Error != "invalid_grant" {
		t.Errorf("a code tried once with a wrong verifier still works: %+v", r)
	}

	code = f.code(client, redirect, p)
	if r := f.redeem(client, redirect, code, p.verifier); r.status != http.StatusOK {
		t.Fatalf("first redemption: %+v", r)
	}
	if r := f.redeem(client, redirect, code, p.verifier); r.Error != "invalid_grant" {
		t.Errorf("replayed code: %+v", r)
	}

	code = f.code(client, redirect, p)
	f.clock.advance(CodeTTL + time.Second)
	if r := f.redeem(client, redirect, code, p.verifier); r.Error != "invalid_grant" {
		t.Errorf("expired code: %+v", r)
	}

	code = f.code(client, redirect, p)
	if r := f.redeem(client, "https://claude.ai/other", code, p.verifier); r.Error != "invalid_grant" {
		t.Errorf("another redirect_uri: %+v", r)
	}
	code = f.code(client, redirect, p)
	if r := f.redeem(f.register(redirect), redirect, code, p.verifier); r.Error != "invalid_grant" {
		t.Errorf("another client: %+v", r)
	}
	code = f.code(client, redirect, p)
	if r := tokenAt(t, f.base, url.Values{"grant_type": {"authorization_code"}, "client_id": {client}, "code": {code}, "code_verifier": {p.verifier}, "resource": {"https://elsewhere.example/"}}); r.Error != "invalid_target" {
		t.Errorf("another resource: %+v", r)
	}
	code = f.code(client, redirect, p)
	if r := f.redeem("forged-client", redirect, code, p.verifier); r.status != http.StatusUnauthorized || r.Error != "invalid_client" {
		t.Errorf("unknown client: %+v", r)
	}
	if r := tokenAt(t, f.base, url.Values{"grant_type": {"password"}}); r.Error != "unsupported_grant_type" {
		t.Errorf("password grant: %+v", r)
	}
	if r := tokenAt(t, f.base, url.Values{"grant_type": {"authorization_code"}, "code": {"forged"}, "code_verifier": {p.verifier}}); r.Error != "invalid_grant" || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("forged code: %+v", r)
	}
}

func TestLoopbackRedirectMatchesAnyPort(t *testing.T) {
	f := newFixture(t, nil)
	client := f.register("http://127.0.0.1/callback", "http://localhost/cb", "http://[::1]:9/x")
	for _, uri := range []string{"http://127.0.0.1:53682/callback", "http://127.0.0.1/callback", "http://localhost:3334/cb", "http://[::1]:40000/x"} {
		p := newPKCE()
		loc := f.signIn(browser(t), f.authorizeURL(client, uri, p, nil))
		if got := loc.Scheme + "://" + loc.Host + loc.Path; got != uri {
			t.Errorf("%s: redirected to %s", uri, loc)
		}
		if r := f.redeem(client, uri, loc.Query().Get("code"), p.verifier); r.status != http.StatusOK {
			t.Errorf("%s: %+v", uri, r)
		}
	}
	c := browser(t)
	for _, uri := range []string{"http://127.0.0.1:53682/other", "http://localhost:3334/callback", "http://evil.example:3334/callback", "https://127.0.0.1:5/callback"} {
		if r := get(t, c, f.authorizeURL(client, uri, newPKCE(), nil)); r.status != http.StatusBadRequest || r.location != nil {
			t.Errorf("%s: %d %v, want refused", uri, r.status, r.location)
		}
	}
}

func TestRegistrationRefusals(t *testing.T) {
	f := newFixture(t, nil)
	for _, uris := range [][]string{
		nil,
		{"http://example.com/cb"},
		{"https://example.com/cb#frag"},
		{"javascript:alert(1)"},
		{"data:text/html,hi"},
		{"file:///etc/passwd"},
		{"/relative"},
		{"https://claude.ai/api/mcp/auth_callback", "http://10.0.0.1/cb"},
	} {
		body, _ := json.Marshal(map[string]any{"redirect_uris": uris})
		req, _ := http.NewRequest(http.MethodPost, f.base+"/register", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		r := do(t, http.DefaultClient, req)
		var e struct{ Error string }
		if r.status != http.StatusBadRequest || json.Unmarshal([]byte(r.body), &e) != nil || e.Error != "invalid_redirect_uri" {
			t.Errorf("%q: %d %s", uris, r.status, r.body)
		}
	}
	for _, body := range []string{`{"redirect_uris":["https://a.example/cb"],"grant_types":["client_credentials"]}`, `{"redirect_uris":["https://a.example/cb"],"response_types":["token"]}`, `not json`, `{"redirect_uris":["https://a.example/cb"],"application_type":"toaster"}`} {
		req, _ := http.NewRequest(http.MethodPost, f.base+"/register", strings.NewReader(body))
		if r := do(t, http.DefaultClient, req); r.status != http.StatusBadRequest || !strings.Contains(r.body, "invalid_client_metadata") {
			t.Errorf("%s: %d %s", body, r.status, r.body)
		}
	}
	// A grant this server lacks is left out, not refused.
	req, _ := http.NewRequest(http.MethodPost, f.base+"/register", strings.NewReader(`{"redirect_uris":["http://127.0.0.1:33418/"],"grant_types":["authorization_code","refresh_token","urn:ietf:params:oauth:grant-type:device_code"],"token_endpoint_auth_method":"client_secret_post"}`))
	r := do(t, http.DefaultClient, req)
	var reg struct {
		GrantTypes []string `json:"grant_types"`
		Method     string   `json:"token_endpoint_auth_method"`
	}
	if r.status != http.StatusCreated || json.Unmarshal([]byte(r.body), &reg) != nil || len(reg.GrantTypes) != 2 || reg.Method != "none" {
		t.Errorf("device code grant asked: %d %s", r.status, r.body)
	}
	// Everything real clients register.
	f.register("https://claude.ai/api/mcp/auth_callback", "https://claude.com/api/mcp/auth_callback",
		"https://chatgpt.com/connector_platform_oauth_redirect", "cursor://anysphere.cursor-mcp/oauth/callback",
		"http://127.0.0.1:33418/", "https://vscode.dev/redirect", "http://localhost:6274/oauth/callback")
}

func TestSecretRotation(t *testing.T) {
	old := newFixture(t, nil)
	redirect := "https://claude.ai/api/mcp/auth_callback"
	client := old.register(redirect)
	p := newPKCE()
	code := old.code(client, redirect, p)
	tok := old.redeem(client, redirect, old.code(client, redirect, p), p.verifier)

	// The same secret on another instance (or after a restart) accepts the
	// first one's registrations, codes, refresh and access tokens.
	public := func(o *Options) { o.Issuer, o.Resource = old.issuer, old.srv.opts.Resource }
	same := newFixture(t, public)
	if r := same.redeem(client, redirect, code, p.verifier); r.status != http.StatusOK {
		t.Fatalf("code on a second server: %+v", r)
	}
	verifyAccess(t, same.srv, tok.AccessToken)
	if r := tokenAt(t, same.base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {client}}); r.status != http.StatusOK {
		t.Fatalf("refresh on a second server: %+v", r)
	}

	// Rotated: the old secret is the previous one and still opens.
	rotated := newFixture(t, func(o *Options) { public(o); o.Secret, o.PreviousSecret = testPrevious, testSecret })
	verifyAccess(t, rotated.srv, tok.AccessToken)
	r := tokenAt(t, rotated.base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {client}})
	if r.status != http.StatusOK {
		t.Fatalf("refresh after rotation: %+v", r)
	}
	if _, err := old.srv.KeySet().VerifySignature(t.Context(), r.AccessToken); err == nil {
		t.Errorf("the rotated server signs with the old key")
	}

	// Another secret refuses all of it.
	other := newFixture(t, func(o *Options) { public(o); o.Secret = testPrevious })
	if _, err := other.srv.KeySet().VerifySignature(t.Context(), tok.AccessToken); err == nil {
		t.Error("another secret verifies the access token")
	}
	// The client's registration is the first thing that does not open:
	// invalid_client tells it to register again.
	if r := tokenAt(t, other.base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {client}}); r.Error != "invalid_client" {
		t.Errorf("refresh under another secret: %+v", r)
	}
	if r := tokenAt(t, other.base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}); r.Error != "invalid_grant" {
		t.Errorf("refresh under another secret, no client_id: %+v", r)
	}
	if r := get(t, browser(t), other.authorizeURL(client, redirect, p, nil)); r.status != http.StatusBadRequest {
		t.Errorf("registration under another secret: %d", r.status)
	}
	if _, err := New(Options{Issuer: "http://127.0.0.1:1", Resource: "http://127.0.0.1:1/mcp", Secret: "short"}, old.srv.log); !errors.Is(err, ErrShortSecret) {
		t.Errorf("short secret: %v", err)
	}
	if _, err := New(Options{Issuer: "http://127.0.0.1:1", Resource: "http://127.0.0.1:1/mcp", Secret: testSecret}, old.srv.log); !errors.Is(err, ErrNoSignIn) {
		t.Errorf("no sign-in method: %v", err)
	}
}

func TestCodeFromAnotherMachineIsReplayed(t *testing.T) {
	a := newFixture(t, func(o *Options) { o.MachineID = "m1" })
	b := newFixture(t, func(o *Options) { o.MachineID = "m2" })
	redirect := "https://claude.ai/api/mcp/auth_callback"
	client := a.register(redirect)
	p := newPKCE()
	code := a.code(client, redirect, p)
	r := b.redeem(client, redirect, code, p.verifier)
	if r.status != http.StatusMisdirectedRequest || r.header.Get("Fly-Replay") != "instance=m1" {
		t.Fatalf("code from m1 on m2: %d %v", r.status, r.header)
	}
	// The proxy's replay reaches m1, which redeems it.
	if r := a.redeem(client, redirect, code, p.verifier); r.status != http.StatusOK {
		t.Fatalf("on m1: %+v", r)
	}
}

func TestCookiesOnAnHTTPSIssuer(t *testing.T) {
	s, err := New(Options{
		Issuer:   "https://my-mcp.example",
		Resource: "https://my-mcp.example/mcp",
		Secret:   testSecret,
		Tokens:   auth.NewTokens([]auth.Tenant{{Name: "acme", Token: testKey}}),
	}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	reg, err := s.keys.registration.seal(registration{RedirectURIs: []string{"https://claude.ai/api/mcp/auth_callback"}})
	if err != nil {
		t.Fatal(err)
	}
	p := newPKCE()
	q := url.Values{"response_type": {"code"}, "client_id": {reg}, "code_challenge": {p.challenge}, "code_challenge_method": {"S256"}}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://my-mcp.example/authorize?"+q.Encode(), nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("authorize: %d %s", rec.Code, rec.Body)
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies %v", cookies)
	}
	c := cookies[0]
	if c.Name != "__Host-mcpwrap-csrf" || !c.Secure || !c.HttpOnly || c.Path != "/" || c.Domain != "" || c.SameSite != http.SameSiteLaxMode {
		t.Errorf("cookie %+v", c)
	}
}

func TestSignInExpires(t *testing.T) {
	f := newFixture(t, nil)
	redirect := "https://claude.ai/api/mcp/auth_callback"
	client := f.register(redirect)
	c := browser(t)
	form := fields(get(t, c, f.authorizeURL(client, redirect, newPKCE(), nil)).body)
	form.Set("key", testKey)
	f.clock.advance(signInTTL + time.Second)
	if r := post(t, c, f.base+"/authorize/key", form); r.status != http.StatusBadRequest || !strings.Contains(r.body, "expired") {
		t.Errorf("key after the sign-in expired: %d", r.status)
	}

	consent := f.withKey(c, get(t, c, f.authorizeURL(client, redirect, newPKCE(), nil)).body)
	f.clock.advance(signInTTL + time.Second)
	if r := post(t, c, f.base+"/authorize/consent", lastForm(consent.body)); r.status != http.StatusBadRequest || r.location != nil {
		t.Errorf("consent after it expired: %d %v", r.status, r.location)
	}
}

// A refresh is where a sign-in is seen again: once the key it used no
// longer signs in as its tenant (the tenant's token changed), or the
// identity is no longer one of the tenant's users, the refresh is refused
// and the client must sign in anew. Servers that share the secret stand in
// for one server before and after its configuration changed.
func TestRefreshRechecksWhoSignedIn(t *testing.T) {
	before := newFixture(t, nil)
	redirect := "http://127.0.0.1/cb"
	client := before.register(redirect)
	p := newPKCE()
	loc := before.signIn(browser(t), before.authorizeURL(client, redirect, p, nil))
	tok := before.redeem(client, redirect, loc.Query().Get("code"), p.verifier)
	if tok.status != http.StatusOK || tok.RefreshToken == "" {
		t.Fatalf("token: %+v", tok)
	}
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {client}}

	same := newFixture(t, nil)
	if r := tokenAt(t, same.base, refresh); r.status != http.StatusOK {
		t.Fatalf("refresh with the key unchanged: %+v", r)
	}
	rotated := newFixture(t, func(o *Options) {
		o.Tokens = auth.NewTokens([]auth.Tenant{{Name: "acme", Token: "acme-new-token-5678"}})
	})
	if r := tokenAt(t, rotated.base, refresh); r.Error != "invalid_grant" {
		t.Errorf("refresh after the tenant's token changed: %+v, want invalid_grant", r)
	}
	moved := newFixture(t, func(o *Options) {
		o.Tokens = auth.NewTokens([]auth.Tenant{{Name: "globex", Token: testKey}})
	})
	if r := tokenAt(t, moved.base, refresh); r.Error != "invalid_grant" {
		t.Errorf("refresh after the key moved to another tenant: %+v, want invalid_grant", r)
	}

	// An upstream identity: still listed, listed elsewhere, or gone.
	github := refreshToken{Subject: "github:alice", Tenant: "acme"}
	if !before.srv.stillSignsIn(github) {
		t.Error("github:alice, still acme's user, is refused")
	}
	elsewhere := newFixture(t, func(o *Options) {
		o.Tenant = func(...string) (auth.Tenant, bool) { return auth.Tenant{Name: "globex"}, true }
	})
	if elsewhere.srv.stillSignsIn(github) {
		t.Error("github:alice, now globex's user, still refreshes as acme")
	}
	gone := newFixture(t, func(o *Options) {
		o.Tenant = func(...string) (auth.Tenant, bool) { return auth.Tenant{}, false }
	})
	if gone.srv.stillSignsIn(github) {
		t.Error("github:alice, in no tenant now, still refreshes")
	}
}

// A refresh token family — every token refreshed from one sign-in — ends a
// fixed time after the sign-in however often it is used, so a stolen
// refresh token kept alive by use still runs out.
func TestRefreshFamilyEndsAfterItsAbsoluteLifetime(t *testing.T) {
	f := newFixture(t, nil)
	redirect := "http://127.0.0.1/cb"
	client := f.register(redirect)
	p := newPKCE()
	loc := f.signIn(browser(t), f.authorizeURL(client, redirect, p, nil))
	tok := f.redeem(client, redirect, loc.Query().Get("code"), p.verifier)
	if tok.status != http.StatusOK || tok.RefreshToken == "" {
		t.Fatalf("token: %+v", tok)
	}
	refresh := tok.RefreshToken
	step := RefreshTokenTTL - time.Hour
	var used time.Duration
	for used+step < RefreshFamilyTTL {
		f.clock.advance(step)
		used += step
		r := tokenAt(t, f.base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {client}})
		if r.status != http.StatusOK {
			t.Fatalf("refresh %v after the sign-in: %+v", used, r)
		}
		refresh = r.RefreshToken
	}
	f.clock.advance(RefreshFamilyTTL - used + time.Second)
	if r := tokenAt(t, f.base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {client}}); r.Error != "invalid_grant" {
		t.Errorf("refresh past the family's lifetime: %+v, want invalid_grant", r)
	}
}
