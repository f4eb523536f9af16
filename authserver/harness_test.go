package authserver

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/rs/zerolog"

	"github.com/mcpwrap/mcpwrap/auth"
)

const (
	testSecret   = "0123456789abcdef0123456789abcdef-current"
	testPrevious = "0123456789abcdef0123456789abcdef-previous"
	testKey      = "acme-static-token-1234"
)

// fixture is one authorization server on a loopback port.
type fixture struct {
	t     *testing.T
	srv   *Server
	http  *httptest.Server
	mux   *http.ServeMux // the server's handler at /; a test may add beside it
	clock *clock
	// issuer is the issuer the server names; base is where this one
	// listens: the two differ when several servers share a public URL.
	issuer, base string
}

// clock is a settable time for expiry tests; it starts at the real time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newFixture starts a server; edit may change its options, whose Issuer and
// Resource are set to the listener's address first.
func newFixture(t *testing.T, edit func(*Options)) *fixture {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	issuer := "http://" + ts.Listener.Addr().String()
	opts := Options{
		Issuer:   issuer,
		Resource: issuer + "/mcp",
		Secret:   testSecret,
		Tokens:   auth.NewTokens([]auth.Tenant{{Name: "acme", Token: testKey}}),
		Tenant:   auth.NewTenants([]auth.Tenant{{Name: "acme", Users: []string{"github:alice", "oidc:bob@corp.example"}}}).ForIdentity,
	}
	if edit != nil {
		edit(&opts)
	}
	s, err := New(opts, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Now()}
	s.now = c.now
	mux := http.NewServeMux()
	mux.Handle("/", s.Handler())
	ts.Config.Handler = mux
	ts.Start()
	t.Cleanup(ts.Close)
	base := "http://" + ts.Listener.Addr().String() + s.prefix
	return &fixture{t: t, srv: s, http: ts, mux: mux, issuer: s.Issuer(), base: base, clock: c}
}

// browser is an HTTP client with cookies that stops at every redirect, as a
// test needs to see where each one goes.
func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (f *fixture) register(redirects ...string) string {
	f.t.Helper()
	body, _ := json.Marshal(map[string]any{"redirect_uris": redirects, "client_name": "Test App", "application_type": "native"})
	resp, err := http.Post(f.base+"/register", "application/json", strings.NewReader(string(body)))
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ClientID string `json:"client_id"`
		Method   string `json:"token_endpoint_auth_method"`
	}
	if resp.StatusCode != http.StatusCreated || json.NewDecoder(resp.Body).Decode(&out) != nil || out.ClientID == "" {
		f.t.Fatalf("register: %s", resp.Status)
	}
	if out.Method != "none" {
		f.t.Fatalf("token_endpoint_auth_method %q, want none", out.Method)
	}
	return out.ClientID
}

type pkce struct{ verifier, challenge string }

func newPKCE() pkce {
	v := strings.Repeat("v", 20) + randomID() // 46 unreserved characters
	sum := sha256.Sum256([]byte(v))
	return pkce{v, base64.RawURLEncoding.EncodeToString(sum[:])}
}

func (f *fixture) authorizeURL(clientID, redirect string, p pkce, extra url.Values) string {
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {clientID},
		"redirect_uri":          {redirect},
		"code_challenge":        {p.challenge},
		"code_challenge_method": {"S256"},
		"state":                 {"st-123"},
		"scope":                 {"mcp"},
		"resource":              {f.srv.opts.Resource},
	}
	for k, v := range extra {
		if v == nil {
			q.Del(k)
		} else {
			q[k] = v
		}
	}
	return f.base + "/authorize?" + q.Encode()
}

type response struct {
	status   int
	header   http.Header
	body     string
	location *url.URL
}

func do(t *testing.T, c *http.Client, req *http.Request) response {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, body: string(b)}
	if loc := resp.Header.Get("Location"); loc != "" {
		r.location, _ = resp.Location()
	}
	return r
}

func get(t *testing.T, c *http.Client, u string) response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return do(t, c, req)
}

func post(t *testing.T, c *http.Client, u string, form url.Values) response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, c, req)
}

var hiddenField = regexp.MustCompile(`name="([a-z]+)" value="([^"]*)"`)

// fields are the hidden fields of the first form of a page.
func fields(body string) url.Values {
	v := url.Values{}
	end := strings.Index(body, "</form>")
	if end < 0 {
		return v
	}
	for _, m := range hiddenField.FindAllStringSubmatch(body[:end], -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

// lastForm are the hidden fields of the last form (the consent page's Allow).
func lastForm(body string) url.Values {
	start := strings.LastIndex(body, "<form")
	return fields(body[start:])
}

// signIn drives the key page and consent with an HTTP client and returns the
// redirect back to the client.
func (f *fixture) signIn(c *http.Client, authorize string) *url.URL {
	f.t.Helper()
	page := get(f.t, c, authorize)
	if page.status != http.StatusOK {
		f.t.Fatalf("authorize: %d %s", page.status, page.body)
	}
	consent := f.withKey(c, page.body)
	if consent.status != http.StatusOK || !strings.Contains(consent.body, "Allow") {
		f.t.Fatalf("key: %d %s", consent.status, consent.body)
	}
	back := post(f.t, c, f.base+"/authorize/consent", lastForm(consent.body))
	if back.status != http.StatusFound || back.location == nil {
		f.t.Fatalf("consent: %d %s", back.status, back.body)
	}
	return back.location
}

// withKey posts the deployment's key in the form of a sign-in page and
// returns the page that follows (consent, when the key is right).
func (f *fixture) withKey(c *http.Client, page string) response {
	f.t.Helper()
	form := fields(page)
	form.Set("key", testKey)
	return post(f.t, c, f.base+"/authorize/key", form)
}

// code signs in and returns a fresh code for clientID.
func (f *fixture) code(clientID, redirect string, p pkce) string {
	f.t.Helper()
	loc := f.signIn(browser(f.t), f.authorizeURL(clientID, redirect, p, nil))
	code := loc.Query().Get("code")
	if code == "" {
		f.t.Fatalf("no code in %s", loc)
	}
	return code
}

type tokenReply struct {
	status int
	header http.Header
	Error  string `json:"error"`
	Desc   string `json:"error_description"`

	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
	Scope        string `json:"scope"`
}

func tokenAt(t *testing.T, base string, form url.Values) tokenReply {
	t.Helper()
	r := post(t, http.DefaultClient, base+"/token", form)
	var out tokenReply
	if err := json.Unmarshal([]byte(r.body), &out); err != nil {
		t.Fatalf("token: %d %q", r.status, r.body)
	}
	out.status, out.header = r.status, r.header
	return out
}

func (f *fixture) redeem(clientID, redirect, code, verifier string) tokenReply {
	f.t.Helper()
	return tokenAt(f.t, f.base, url.Values{
		"grant_type":    {"authorization_code"},
		"client_id":     {clientID},
		"redirect_uri":  {redirect},
		"code":          {code},
		"code_verifier": {verifier},
		"resource":      {f.srv.opts.Resource},
	})
}

// verifyAccess checks an access token as the resource side will: the key
// set, the issuer and the audience.
func verifyAccess(t *testing.T, s *Server, token string) map[string]any {
	t.Helper()
	v := oidc.NewVerifier(s.Issuer(), s.KeySet(), &oidc.Config{ClientID: s.opts.Resource, SupportedSigningAlgs: []string{oidc.EdDSA}})
	idt, err := v.Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("access token: %v", err)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	return claims
}
