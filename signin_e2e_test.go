package main

// Sign-in with real OAuth clients against the real binary running the
// built-in authorization server (MCPWRAP_AUTH_SECRET): the Go SDK's
// AuthorizationCodeHandler here, the TypeScript SDK, mcp-remote and the
// conformance suite's authorization scenarios in signin_node_e2e_test.go. A
// stand-in browser signs in over plain HTTP the way a person would: the
// key page, the consent page, then the redirect to the client's callback.

import (
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"
)

const (
	oauthSecret = "e2e-secret-0123456789abcdef0123456789abcdef"
	oauthKey    = "acme-key-5f1c0e9b" // the acme tenant's static token: what a person pastes on the key page
)

// oauthServer is one mcpwrap with the built-in authorization server, at a
// port chosen before it starts so that a restart keeps its public URL.
type oauthServer struct {
	Base string // http://127.0.0.1:port
	URL  string // the MCP endpoint
	stop func() // SIGTERM, and wait for the exit
}

// freePort is a loopback port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startOAuth runs mcpwrap on port with secret, its public URL publicURL
// ("" for its own address), and the tenants file: acme signs in with
// oauthKey.
func startOAuth(t *testing.T, port int, secret, publicURL string) *oauthServer {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if publicURL == "" {
		publicURL = "http://" + addr
	}
	tenants := filepath.Join(t.TempDir(), "tenants.json")
	if err := os.WriteFile(tenants, []byte(`{"acme": {"token": "`+oauthKey+`", "env": {"ACME": "1"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	w := startWrapper(t, testkit.Options{Env: map[string]string{
		"MCPWRAP_LISTEN":       addr,
		"MCPWRAP_TOKEN":        "",
		"MCPWRAP_TENANTS_FILE": tenants,
		"MCPWRAP_AUTH_SECRET":  secret,
		"MCPWRAP_PUBLIC_URL":   publicURL,
	}})
	return &oauthServer{Base: w.Base, URL: w.URL, stop: func() { w.Stop() }}
}

// browser is a stand-in for the person at a web browser: it keeps cookies,
// shows each page to the test, and follows nothing by itself.
type browser struct {
	key    string
	client *http.Client
}

func newBrowser(key string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{key: key, client: &http.Client{
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// page is one answer the browser got.
type page struct {
	URL      *url.URL // where the page came from: its forms' actions are relative to it
	Status   int
	Body     string
	Location string
}

func (b *browser) do(method, u string, form url.Values) (page, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return page{}, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return page{}, err
	}
	defer resp.Body.Close()
	text, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return page{URL: req.URL, Status: resp.StatusCode, Body: string(text), Location: resp.Header.Get("Location")}, err
}

var (
	formTag   = regexp.MustCompile(`(?s)<form method="post" action="([^"]*)">(.*?)</form>`)
	formField = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
)

// submit fills in the form of p whose hidden fields include want (a
// name=value pair, or "" for the first form) with extra, and posts it.
func (b *browser) submit(p page, want string, extra url.Values) (page, error) {
	for _, m := range formTag.FindAllStringSubmatch(p.Body, -1) {
		form := url.Values{}
		for _, f := range formField.FindAllStringSubmatch(m[2], -1) {
			form.Set(f[1], unescapeHTML(f[2]))
		}
		if k, v, _ := strings.Cut(want, "="); want != "" && form.Get(k) != v {
			continue
		}
		for k, v := range extra {
			form[k] = v
		}
		action, err := p.URL.Parse(unescapeHTML(m[1]))
		if err != nil {
			return page{}, err
		}
		return b.do(http.MethodPost, action.String(), form)
	}
	return page{}, fmt.Errorf("no form with %q on the page (%d):\n%s", want, p.Status, p.Body)
}

func unescapeHTML(s string) string {
	return strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&quot;", `"`).Replace(s)
}

// signIn does what a person does with the authorize URL an app opened:
// paste the key, allow the app. It returns where the server sent the
// browser back to (the app's redirect URI with code, state and iss).
func (b *browser) signIn(authorizeURL string) (*url.URL, error) {
	p, err := b.do(http.MethodGet, authorizeURL, nil)
	if err != nil {
		return nil, err
	}
	if p.Status != http.StatusOK {
		return nil, fmt.Errorf("authorize page: %d %s", p.Status, p.Body)
	}
	consent, err := b.submit(p, "", url.Values{"key": {b.key}})
	if err != nil {
		return nil, err
	}
	if consent.Status != http.StatusOK || !strings.Contains(consent.Body, "Allow") {
		return nil, fmt.Errorf("after the key: %d %s", consent.Status, consent.Body)
	}
	back, err := b.submit(consent, "action=allow", nil)
	if err != nil {
		return nil, err
	}
	if back.Status != http.StatusFound && back.Status != http.StatusSeeOther {
		return nil, fmt.Errorf("consent: %d %s", back.Status, back.Body)
	}
	return url.Parse(back.Location)
}

// open signs in and then follows the redirect to the app's callback, as a
// browser would.
func (b *browser) open(authorizeURL string) error {
	back, err := b.signIn(authorizeURL)
	if err != nil {
		return err
	}
	// Errors name the callback without its query: the code stays out of logs.
	where := back.Scheme + "://" + back.Host + back.Path
	p, err := b.do(http.MethodGet, back.String(), nil)
	if err != nil {
		return fmt.Errorf("the app's callback %s: %w", where, errors.Unwrap(err))
	}
	if p.Status >= 400 {
		return fmt.Errorf("the app's callback %s: %d %s", where, p.Status, p.Body)
	}
	return nil
}

// goSDKClient is the Go SDK's OAuth client as an app would set it up: DCR
// with a loopback callback it serves itself, refresh tokens wanted.
type goSDKClient struct {
	handler   *auth.AuthorizationCodeHandler
	signIns   atomic.Int32   // how often the browser was opened
	config    *oauth2.Config // as the handler built it, for refreshing by hand
	lastToken atomic.Pointer[oauth2.Token]
}

func newGoSDKClient(t *testing.T, b *browser) *goSDKClient {
	t.Helper()
	codes := make(chan *auth.AuthorizationResult, 1)
	callback := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		select {
		case codes <- &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}:
		default:
		}
		io.WriteString(w, "signed in; you may close this window")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go callback.Serve(ln)
	t.Cleanup(func() { callback.Close() })
	redirect := "http://" + ln.Addr().String() + "/callback"

	c := &goSDKClient{}
	c.handler, err = auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			ClientName:              "mcpwrap e2e (Go SDK)",
			RedirectURIs:            []string{redirect},
			GrantTypes:              []string{"authorization_code", "refresh_token"},
			ResponseTypes:           []string{"code"},
			TokenEndpointAuthMethod: "none",
		}},
		RedirectURL:         redirect,
		RequestRefreshToken: true,
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			c.signIns.Add(1)
			if err := b.open(args.URL); err != nil {
				return nil, err
			}
			select {
			case res := <-codes:
				return res, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
		NewTokenSource: func(ctx context.Context, cfg *oauth2.Config, tok *oauth2.Token) (oauth2.TokenSource, error) {
			c.config = cfg
			c.lastToken.Store(tok)
			return cfg.TokenSource(ctx, tok), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// connect opens a session with the handler's tokens (signing in first when
// it has none) and calls echo.
func (c *goSDKClient) connect(t *testing.T, endpoint string) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpwrap-e2e", Version: "1"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: endpoint, OAuthHandler: c.handler}, nil)
	if err != nil {
		t.Fatalf("connecting to %s: %v", endpoint, err)
	}
	t.Cleanup(func() { cs.Close() })
	echo(t, cs, "signed in")
	return cs
}

func echo(t *testing.T, cs *mcp.ClientSession, text string) {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": text}})
	if err != nil {
		t.Fatalf("calling echo: %v", err)
	}
	if got := res.Content[0].(*mcp.TextContent).Text; res.IsError || got != text {
		t.Fatalf("echo answered %q (error %v), want %q", got, res.IsError, text)
	}
}

// bearerSession opens a session with one fixed access token.
func bearerSession(ctx context.Context, endpoint, token string) (*mcp.ClientSession, error) {
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpwrap-e2e", Version: "1"}, nil)
	return client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   endpoint,
		HTTPClient: &http.Client{Transport: withToken{token}},
	}, nil)
}

// withToken sends every request with one bearer token.
type withToken struct{ token string }

func (w withToken) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+w.token)
	return http.DefaultTransport.RoundTrip(r)
}

// TestOAuthGoSDKClient signs in with the Go SDK's AuthorizationCodeHandler
// (discovery from the 401, DCR, PKCE, resource, iss) and shows that what it
// got outlives the process: a restart with the same secret, a refresh, a
// second instance with the same secret; and that another secret refuses it.
func TestOAuthGoSDKClient(t *testing.T) {
	port := freePort(t)
	s := startOAuth(t, port, oauthSecret, "")
	c := newGoSDKClient(t, newBrowser(oauthKey))
	c.connect(t, s.URL)
	if n := c.signIns.Load(); n != 1 {
		t.Fatalf("the browser opened %d times, want once", n)
	}
	tok := c.lastToken.Load()
	if tok == nil || tok.RefreshToken == "" {
		t.Fatalf("no refresh token: %+v", tok)
	}
	claims := accessClaims(t, tok.AccessToken)
	if claims["iss"] != s.Base || claims["aud"] != s.URL || claims["mcpwrap_tenant"] != "acme" || claims["sub"] != "key:acme" {
		t.Errorf("access token claims %v", claims)
	}

	// A restart with the same secret: the same client goes on, no sign-in.
	s.stop()
	s = startOAuth(t, port, oauthSecret, "")
	c.connect(t, s.URL)
	if n := c.signIns.Load(); n != 1 {
		t.Errorf("after a restart the browser opened again (%d times)", n)
	}

	// Refresh, through the SDK's own OAuth configuration (endpoint, client
	// id): a new access token, and a rotated refresh token.
	refreshed, err := c.config.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refreshing: %v", err)
	}
	if refreshed.AccessToken == tok.AccessToken || refreshed.RefreshToken == "" || refreshed.RefreshToken == tok.RefreshToken {
		t.Errorf("refresh gave the same tokens back, or no refresh token")
	}
	cs, err := bearerSession(t.Context(), s.URL, refreshed.AccessToken)
	if err != nil {
		t.Fatalf("the refreshed access token: %v", err)
	}
	echo(t, cs, "refreshed")
	cs.Close()

	// A second instance with the same secret and public URL accepts the
	// token; one with another secret refuses it.
	twin := startOAuth(t, freePort(t), oauthSecret, s.Base)
	cs, err = bearerSession(t.Context(), twin.URL, tok.AccessToken)
	if err != nil {
		t.Fatalf("a second instance with the same secret: %v", err)
	}
	echo(t, cs, "twin")
	cs.Close()
	stranger := startOAuth(t, freePort(t), strings.Repeat("z", 40), s.Base)
	expectInvalidToken(t, stranger.URL, tok.AccessToken)
	expectInvalidToken(t, stranger.URL, refreshed.AccessToken)
}

// expectInvalidToken posts initialize with token and wants 401 with a
// challenge that names invalid_token and where the metadata is.
func expectInvalidToken(t *testing.T, endpoint, token string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	challenge := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) || !strings.Contains(challenge, "resource_metadata=") {
		t.Errorf("%s: %s %q, want 401 invalid_token with resource_metadata", endpoint, resp.Status, challenge)
	}
}

// accessClaims reads an access token's claims without checking them: the
// test only looks, mcpwrap is what checks.
func accessClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatalf("access token: %v", err)
	}
	var claims map[string]any
	if err := parsed.UnsafeClaimsWithoutVerification(&claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// mintAccessToken signs claims with the key mcpwrap derives from secret
// (HKDF-SHA256, see authserver/keys.go), as mcpwrap itself would: the only way to hold a
// correctly signed token that is expired, or for another audience, without
// waiting an hour or trusting the server to make one.
func mintAccessToken(t *testing.T, base, secret string, claims map[string]any) string {
	t.Helper()
	seed, err := hkdf.Key(sha256.New, []byte(secret), nil, "mcpwrap access token signing", ed25519.SeedSize)
	if err != nil {
		t.Fatal(err)
	}
	var jwks jose.JSONWebKeySet
	resp, err := http.Get(base + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&jwks); err != nil {
		t.Fatalf("/jwks: %v", err)
	}
	if len(jwks.Keys) == 0 {
		t.Fatal("no key at /jwks")
	}
	key := ed25519.NewKeyFromSeed(seed)
	if !jwks.Keys[0].Key.(ed25519.PublicKey).Equal(key.Public()) {
		t.Fatal("the derived key is not the one at /jwks")
	}
	return testkit.SignJWT(t, jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: key, KeyID: jwks.Keys[0].KeyID}}, claims)
}

// TestOAuthRefusals: each way a sign-in or a token can be wrong is refused,
// with the error a client can act on.
func TestOAuthRefusals(t *testing.T) {
	s := startOAuth(t, freePort(t), oauthSecret, "")
	redirect := "http://127.0.0.1:49152/callback"
	var reg struct {
		ClientID string `json:"client_id"`
	}
	body := `{"redirect_uris":["` + redirect + `"],"client_name":"refusals","token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"]}`
	resp, err := http.Post(s.Base+"/register", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(resp.Body).Decode(&reg); err != nil || resp.StatusCode != http.StatusCreated || reg.ClientID == "" {
		t.Fatalf("registering: %s %v", resp.Status, err)
	}
	resp.Body.Close()

	verifier := base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("v", 40)))
	sum := sha256.Sum256([]byte(verifier))
	authorize := func(redirectURI string) string {
		return s.Base + "/authorize?" + url.Values{
			"response_type": {"code"}, "client_id": {reg.ClientID}, "redirect_uri": {redirectURI},
			"state": {"st"}, "scope": {"mcp"}, "resource": {s.URL},
			"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		}.Encode()
	}
	code := func(t *testing.T) string {
		t.Helper()
		back, err := newBrowser(oauthKey).signIn(authorize(redirect))
		if err != nil {
			t.Fatal(err)
		}
		if back.Query().Get("iss") != s.Base || back.Query().Get("state") != "st" {
			t.Errorf("redirect %s lacks iss or state", back.Redacted())
		}
		return back.Query().Get("code")
	}
	redeem := func(t *testing.T, code, verifier string) (int, map[string]any) {
		t.Helper()
		resp, err := http.PostForm(s.Base+"/token", url.Values{
			"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier},
			"client_id": {reg.ClientID}, "redirect_uri": {redirect}, "resource": {s.URL},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}

	t.Run("wrong key", func(t *testing.T) {
		b := newBrowser("not-the-key")
		p, err := b.do(http.MethodGet, authorize(redirect), nil)
		if err != nil || p.Status != http.StatusOK {
			t.Fatalf("authorize: %d %v", p.Status, err)
		}
		p, err = b.submit(p, "", url.Values{"key": {"not-the-key"}})
		if err != nil {
			t.Fatal(err)
		}
		if p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "That key is not valid here") || p.Location != "" {
			t.Errorf("a wrong key: %d %q, want 401 and the page saying so", p.Status, p.Body)
		}
	})
	t.Run("wrong PKCE verifier", func(t *testing.T) {
		status, out := redeem(t, code(t), base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("w", 40))))
		if status != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Errorf("a wrong verifier: %d %v, want 400 invalid_grant", status, out)
		}
	})
	t.Run("replayed code", func(t *testing.T) {
		c := code(t)
		if status, out := redeem(t, c, verifier); status != http.StatusOK || out["access_token"] == nil {
			t.Fatalf("first use of the code: %d %v", status, out)
		}
		if status, out := redeem(t, c, verifier); status != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Errorf("the code again: %d %v, want 400 invalid_grant", status, out)
		}
	})
	t.Run("foreign redirect URI", func(t *testing.T) {
		p, err := newBrowser(oauthKey).do(http.MethodGet, authorize("https://attacker.example/callback"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if p.Status != http.StatusBadRequest || p.Location != "" || !strings.Contains(p.Body, "did not register") {
			t.Errorf("a foreign redirect URI: %d location %q %q, want an error page and no redirect", p.Status, p.Location, p.Body)
		}
	})

	now := time.Now()
	good := map[string]any{
		"iss": s.Base, "aud": s.URL, "sub": "key:acme", "mcpwrap_tenant": "acme", "scope": "mcp",
		"client_id": reg.ClientID, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": "e2e-1",
	}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for k, v := range good {
			m[k] = v
		}
		m[k] = v
		return m
	}
	t.Run("minted token is accepted", func(t *testing.T) {
		// Holds the two below to account: a token minted this way is good
		// unless the one claim they change is wrong.
		cs, err := bearerSession(t.Context(), s.URL, mintAccessToken(t, s.Base, oauthSecret, good))
		if err != nil {
			t.Fatalf("a well-formed token: %v", err)
		}
		echo(t, cs, "minted")
		cs.Close()
	})
	t.Run("audience variants real clients send", func(t *testing.T) {
		for _, aud := range []string{s.URL + "/", s.Base, s.Base + "/"} {
			cs, err := bearerSession(t.Context(), s.URL, mintAccessToken(t, s.Base, oauthSecret, with("aud", aud)))
			if err != nil {
				t.Errorf("a token for %s: %v", aud, err)
				continue
			}
			cs.Close()
		}
	})
	t.Run("another audience", func(t *testing.T) {
		expectInvalidToken(t, s.URL, mintAccessToken(t, s.Base, oauthSecret, with("aud", "https://other.example/mcp")))
	})
	t.Run("expired", func(t *testing.T) {
		expectInvalidToken(t, s.URL, mintAccessToken(t, s.Base, oauthSecret, with("exp", now.Add(-10*time.Minute).Unix())))
	})
}
