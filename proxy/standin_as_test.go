package proxy_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// standInAS is an OAuth authorization server and resource server on
// loopback that speaks the protocol the MCP authorization spec asks for:
// protected resource metadata, authorization server metadata with the iss
// parameter, dynamic client registration, the authorization-code grant with
// PKCE and resource indicators, and rotating refresh tokens. Its key page
// takes a tenant token, as mcpwrap's built-in server does. Requests to /mcp
// that carry one of its access tokens go on to the real mcpwrap behind it,
// with that server's static token instead.
type standInAS struct {
	t        *testing.T
	base     string // issuer and origin, e.g. http://127.0.0.1:1234
	upstream *url.URL
	srv      *http.Server

	mu         sync.Mutex // guards the fields below
	gen        int        // the key generation; rotating it forgets everything
	clients    map[string]asClient
	pending    map[string]asPending // authorization requests between pages
	codes      map[string]asPending
	access     map[string]asToken
	refresh    map[string]asToken
	secrets    []string // every token and code issued, to look for in logs
	signIns    int      // codes exchanged
	refreshes  int      // refresh tokens exchanged
	refreshFor []string // the resource parameter of each refresh request
	registered int
	refusals   int  // 401s on /mcp
	rejectAll  bool // refuse every token on /mcp
	ttl        time.Duration
}

type asClient struct {
	gen       int
	redirects []string
}

type asPending struct {
	client, redirect, challenge, resource, state, csrf string
	gen                                                int
}

type asToken struct {
	client string
	gen    int
	exp    time.Time
	used   bool
}

const tenantKey = "tenant-key-0123456789"

func newStandInAS(t *testing.T, upstream string) *standInAS {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	as := &standInAS{
		t: t, base: "http://" + ln.Addr().String(), upstream: u,
		clients: map[string]asClient{}, pending: map[string]asPending{}, codes: map[string]asPending{},
		access: map[string]asToken{}, refresh: map[string]asToken{}, ttl: time.Hour,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-protected-resource/mcp", as.resourceMetadata)
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", as.serverMetadata)
	mux.HandleFunc("POST /register", as.register)
	mux.HandleFunc("GET /authorize", as.authorize)
	mux.HandleFunc("POST /authorize", as.key)
	mux.HandleFunc("POST /consent", as.consent)
	mux.HandleFunc("POST /token", as.token)
	mux.HandleFunc("/mcp", as.mcp)
	as.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go as.srv.Serve(ln)
	t.Cleanup(func() { as.srv.Close() })
	return as
}

func (as *standInAS) resource() string { return as.base + "/mcp" }

// rotate forgets every client, code and token, as a new signing key does.
func (as *standInAS) rotate() {
	as.mu.Lock()
	defer as.mu.Unlock()
	as.gen++
}

// expireAccess makes every access token issued so far run out, while the
// shim still believes in them.
func (as *standInAS) expireAccess() {
	as.mu.Lock()
	defer as.mu.Unlock()
	for k, v := range as.access {
		v.exp = time.Now().Add(-time.Second)
		as.access[k] = v
	}
}

// revokeRefresh spends every refresh token issued so far, as a server does
// when they expire; the registrations stay.
func (as *standInAS) revokeRefresh() {
	as.mu.Lock()
	defer as.mu.Unlock()
	for k, v := range as.refresh {
		v.used = true
		as.refresh[k] = v
	}
}

// refuseAll makes /mcp refuse every token, even fresh ones.
func (as *standInAS) refuseAll() {
	as.mu.Lock()
	defer as.mu.Unlock()
	as.rejectAll = true
}

func (as *standInAS) counts() (signIns, refreshes, registered int) {
	as.mu.Lock()
	defer as.mu.Unlock()
	return as.signIns, as.refreshes, as.registered
}

// refreshResources returns the resource parameter (RFC 8707) each refresh
// request named, "" where it named none.
func (as *standInAS) refreshResources() []string {
	as.mu.Lock()
	defer as.mu.Unlock()
	return slices.Clone(as.refreshFor)
}

// issued returns every token and code handed out.
func (as *standInAS) issued() []string {
	as.mu.Lock()
	defer as.mu.Unlock()
	return slices.Clone(as.secrets)
}

func random() string { return rand.Text() }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func oauthError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code})
}

func (as *standInAS) resourceMetadata(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"resource":                 as.resource(),
		"authorization_servers":    []string{as.base},
		"scopes_supported":         []string{"mcp"},
		"bearer_methods_supported": []string{"header"},
	})
}

func (as *standInAS) serverMetadata(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                         as.base,
		"authorization_endpoint":                         as.base + "/authorize",
		"token_endpoint":                                 as.base + "/token",
		"registration_endpoint":                          as.base + "/register",
		"response_types_supported":                       []string{"code"},
		"grant_types_supported":                          []string{"authorization_code", "refresh_token"},
		"code_challenge_methods_supported":               []string{"S256"},
		"token_endpoint_auth_methods_supported":          []string{"none"},
		"scopes_supported":                               []string{"mcp"},
		"authorization_response_iss_parameter_supported": true,
	})
}

func (as *standInAS) register(w http.ResponseWriter, r *http.Request) {
	var req struct {
		RedirectURIs []string `json:"redirect_uris"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.RedirectURIs) == 0 {
		oauthError(w, http.StatusBadRequest, "invalid_client_metadata")
		return
	}
	as.mu.Lock()
	as.registered++
	id := fmt.Sprintf("client-%d-%d", as.gen, as.registered)
	as.clients[id] = asClient{gen: as.gen, redirects: req.RedirectURIs}
	as.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{
		"client_id": id, "redirect_uris": req.RedirectURIs, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
	})
}

// client returns the registration of id, if it is of the current key.
func (as *standInAS) client(id string) (asClient, bool) {
	c, ok := as.clients[id]
	return c, ok && c.gen == as.gen
}

var asPages = template.Must(template.New("key").Parse(`<!doctype html><title>Sign in</title>
<form method="post" action="/authorize"><input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="request" value="{{.ID}}">
<label>Key <input type="password" name="token"></label><button type="submit">Continue</button></form>
{{define "consent"}}<!doctype html><title>Allow</title>
<form method="post" action="/consent"><input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="request" value="{{.ID}}">
<button type="submit" name="decision" value="deny">Deny</button><button type="submit" name="decision" value="allow">Allow</button></form>{{end}}`))

func (as *standInAS) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	as.mu.Lock()
	defer as.mu.Unlock()
	c, ok := as.client(q.Get("client_id"))
	switch {
	case !ok:
		http.Error(w, "unknown client", http.StatusBadRequest)
		return
	case !slices.Contains(c.redirects, q.Get("redirect_uri")):
		http.Error(w, "redirect_uri not registered", http.StatusBadRequest)
		return
	case q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" ||
		q.Get("state") == "" || q.Get("resource") != as.resource():
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	id, csrf := random(), random()
	as.pending[id] = asPending{client: q.Get("client_id"), redirect: q.Get("redirect_uri"), challenge: q.Get("code_challenge"),
		resource: q.Get("resource"), state: q.Get("state"), csrf: csrf, gen: as.gen}
	http.SetCookie(w, &http.Cookie{Name: "csrf", Value: csrf, Path: "/", HttpOnly: true})
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = asPages.Execute(w, struct{ CSRF, ID string }{csrf, id})
}

// form checks the CSRF token of a page's form and returns its request.
func (as *standInAS) form(w http.ResponseWriter, r *http.Request) (asPending, string, bool) {
	cookie, err := r.Cookie("csrf")
	id := r.PostFormValue("request")
	p, ok := as.pending[id]
	if err != nil || !ok || cookie.Value != p.csrf || r.PostFormValue("csrf") != p.csrf || p.gen != as.gen {
		http.Error(w, "bad form", http.StatusBadRequest)
		return p, "", false
	}
	return p, id, true
}

func (as *standInAS) key(w http.ResponseWriter, r *http.Request) {
	as.mu.Lock()
	defer as.mu.Unlock()
	p, id, ok := as.form(w, r)
	if !ok {
		return
	}
	if r.PostFormValue("token") != tenantKey {
		http.Error(w, "wrong key", http.StatusForbidden)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = asPages.ExecuteTemplate(w, "consent", struct{ CSRF, ID string }{p.csrf, id})
}

func (as *standInAS) consent(w http.ResponseWriter, r *http.Request) {
	as.mu.Lock()
	defer as.mu.Unlock()
	p, id, ok := as.form(w, r)
	if !ok {
		return
	}
	delete(as.pending, id)
	back, _ := url.Parse(p.redirect)
	q := url.Values{"state": {p.state}, "iss": {as.base}}
	if r.PostFormValue("decision") != "allow" {
		q.Set("error", "access_denied")
	} else {
		code := random()
		as.codes[code] = p
		as.secrets = append(as.secrets, code)
		q.Set("code", code)
	}
	back.RawQuery = q.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

// issue hands out a new access and refresh token pair; as.mu is held.
func (as *standInAS) issue(w http.ResponseWriter, client string) {
	at, rt := "at-"+random(), "rt-"+random()
	as.access[at] = asToken{client: client, gen: as.gen, exp: time.Now().Add(as.ttl)}
	as.refresh[rt] = asToken{client: client, gen: as.gen}
	as.secrets = append(as.secrets, at, rt)
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": at, "token_type": "Bearer", "expires_in": int(as.ttl.Seconds()), "refresh_token": rt, "scope": "mcp",
	})
}

func (as *standInAS) token(w http.ResponseWriter, r *http.Request) {
	as.mu.Lock()
	defer as.mu.Unlock()
	id := r.PostFormValue("client_id")
	// The client first, as RFC 6749 has it: a forgotten client is
	// invalid_client whatever the grant.
	if _, ok := as.client(id); !ok {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	switch r.PostFormValue("grant_type") {
	case "authorization_code":
		code := r.PostFormValue("code")
		p, ok := as.codes[code]
		delete(as.codes, code)
		sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
		if !ok || p.client != id || p.gen != as.gen || p.redirect != r.PostFormValue("redirect_uri") ||
			base64.RawURLEncoding.EncodeToString(sum[:]) != p.challenge || r.PostFormValue("resource") != p.resource {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		as.signIns++
		as.issue(w, id)
	case "refresh_token":
		rt := r.PostFormValue("refresh_token")
		tok, ok := as.refresh[rt]
		if !ok || tok.used || tok.client != id || tok.gen != as.gen {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		tok.used = true
		as.refresh[rt] = tok
		as.refreshes++
		as.refreshFor = append(as.refreshFor, r.PostFormValue("resource"))
		as.issue(w, id)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
	}
}

func (as *standInAS) mcp(w http.ResponseWriter, r *http.Request) {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	as.mu.Lock()
	at, ok := as.access[tok]
	ok = ok && !as.rejectAll && strings.EqualFold(scheme, "bearer") && at.gen == as.gen && time.Now().Before(at.exp)
	if !ok {
		as.refusals++
	}
	as.mu.Unlock()
	if !ok {
		challenge := fmt.Sprintf(`Bearer resource_metadata="%s/.well-known/oauth-protected-resource/mcp", scope="mcp"`, as.base)
		if tok != "" {
			challenge += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
		writeJSON(w, http.StatusUnauthorized, map[string]any{"jsonrpc": "2.0", "id": nil, "error": map[string]any{"code": -32001, "message": "unauthorized"}})
		return
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(as.upstream)
			pr.Out.URL.Path = as.upstream.Path
			pr.Out.Header.Set("Authorization", "Bearer "+testToken)
		},
		FlushInterval: -1,
	}
	rp.ServeHTTP(w, r)
}
