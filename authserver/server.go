package authserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"github.com/rs/zerolog"

	"github.com/mcpwrap/mcpwrap/auth"
)

// Options configure the authorization server.
type Options struct {
	// Issuer is the public origin, plus a path prefix if any
	// (MCPWRAP_PUBLIC_URL): https://my-mcp.fly.dev. Every URL the server
	// hands out starts with it.
	Issuer string
	// Resource is the canonical resource (PUBLIC_URL + MCPWRAP_PATH), the
	// audience of every access token.
	Resource string
	// Secret (MCPWRAP_AUTH_SECRET, at least 32 bytes) derives every key;
	// PreviousSecret (MCPWRAP_AUTH_SECRET_PREVIOUS) still opens and
	// verifies what it sealed and signed, so a rotation signs nobody out.
	Secret, PreviousSecret string
	// Tokens are the static tokens the key page accepts: a tenant's, or the
	// deployment's own (MCPWRAP_TOKEN). Nil: no key page.
	Tokens *auth.Tokens
	// Tenant maps an upstream account to the tenant it signs in as, given
	// the names the account goes by, the most lasting first, always lower
	// case: github:id:12345 then github:alice for GitHub, one name
	// (google:bob@corp.com, oidc:…) for the others. False refuses it. Nil
	// refuses every upstream account. auth.Tenants.ForIdentity is one.
	Tenant func(identities ...string) (auth.Tenant, bool)
	// GitHub and OIDC, when set, add upstream sign-in buttons.
	GitHub *GitHub
	OIDC   *OIDC
	// MachineID is this instance (FLY_MACHINE_ID). Codes name it, so that a
	// code redeemed on another instance is replayed here, where its
	// single use is enforced.
	MachineID string
	// HTTPClient talks to the upstream identity providers; nil is
	// http.DefaultClient. Client metadata documents never use it.
	HTTPClient *http.Client
}

// GitHub is an OAuth app on github.com or a GitHub Enterprise server.
type GitHub struct {
	ClientID, ClientSecret string
	// URL is https://github.com (then the API is https://api.github.com) or
	// a GitHub Enterprise server (then the API is URL/api/v3). "" is
	// github.com.
	URL string
}

// OIDC is any OpenID Connect provider, found by discovery from its issuer.
type OIDC struct {
	Issuer, ClientID, ClientSecret string
	// Name labels the button ("Google"); "" is "single sign-on".
	Name string
}

// ErrNoSignIn is a server nobody could sign in to: no static token for the
// key page, and neither GitHub nor OIDC.
var ErrNoSignIn = errors.New("authserver: no way to sign in: set a token (MCPWRAP_TOKEN, MCPWRAP_TENANTS_FILE) or GitHub or OIDC sign-in")

// Lifetimes of what the server issues.
const (
	AccessTokenTTL  = time.Hour
	RefreshTokenTTL = 30 * 24 * time.Hour
	// RefreshFamilyTTL ends every refresh token of a sign-in this long
	// after it, however often they were used.
	RefreshFamilyTTL = 90 * 24 * time.Hour
	CodeTTL          = 60 * time.Second
	// signInTTL bounds a sign-in: from the app's request to the consent.
	signInTTL = 10 * time.Minute
)

const scopeMCP = "mcp"

// Server is the built-in authorization server.
type Server struct {
	opts      Options
	log       zerolog.Logger
	issuer    *url.URL
	prefix    string   // the issuer's path, "" or "/prefix"
	audiences []string // what a resource parameter may say
	secure    bool     // https issuer: __Host- cookies, Secure

	keys struct {
		signing                                     []signingKey
		registration, code, refresh, request, grant keyring
		upstream, csrf                              keyring
	}
	documents *documents
	codes     *usedSet // redeemed codes, until they expire
	states    *usedSet // upstream sign-in states whose code was redeemed, until they expire
	github    *githubProvider
	oidc      *oidcProvider

	now func() time.Time
}

// New checks the options and derives every key from the secret.
func New(opts Options, log zerolog.Logger) (*Server, error) {
	if len(opts.Secret) < MinSecretLen || opts.PreviousSecret != "" && len(opts.PreviousSecret) < MinSecretLen {
		return nil, ErrShortSecret
	}
	iss, err := url.Parse(strings.TrimSuffix(opts.Issuer, "/"))
	if err != nil || (iss.Scheme != "https" && iss.Scheme != "http") || iss.Host == "" ||
		iss.RawQuery != "" || iss.Fragment != "" || iss.User != nil {
		return nil, fmt.Errorf("authserver: issuer %q is not an http(s) origin with an optional path", opts.Issuer)
	}
	if iss.Scheme == "http" && !isLoopbackHost(iss.Hostname()) {
		return nil, fmt.Errorf("authserver: issuer %q: http only on a loopback host", opts.Issuer)
	}
	if (opts.Tokens == nil || opts.Tokens.Len() == 0) && opts.GitHub == nil && opts.OIDC == nil {
		return nil, ErrNoSignIn
	}
	if _, err := url.Parse(opts.Resource); err != nil || !strings.HasPrefix(opts.Resource, iss.Scheme+"://") {
		return nil, fmt.Errorf("authserver: resource %q is not a URL", opts.Resource)
	}
	s := &Server{
		opts:   opts,
		log:    log.With().Str("component", "authserver").Logger(),
		issuer: iss,
		prefix: iss.Path,
		secure: iss.Scheme == "https",
		codes:  newUsedSet(100_000),
		states: newUsedSet(100_000),
		now:    time.Now,
	}
	s.opts.Issuer = iss.String()
	origin := iss.Scheme + "://" + iss.Host
	res := strings.TrimSuffix(opts.Resource, "/")
	s.audiences = []string{res, res + "/", origin, origin + "/"}

	secrets := [][]byte{[]byte(opts.Secret)}
	if opts.PreviousSecret != "" {
		secrets = append(secrets, []byte(opts.PreviousSecret))
	}
	s.keys.signing = newSigningKeys(secrets)
	s.keys.registration = newKeyring(secrets, infoRegistration)
	s.keys.code = newKeyring(secrets, infoCode)
	s.keys.refresh = newKeyring(secrets, infoRefresh)
	s.keys.request = newKeyring(secrets, infoRequest)
	s.keys.grant = newKeyring(secrets, infoGrant)
	s.keys.upstream = newKeyring(secrets, infoUpstream)
	s.keys.csrf = newKeyring(secrets, infoCSRF)
	s.documents = newDocuments(publicAddr, nil, func() time.Time { return s.now() })

	if opts.GitHub != nil {
		if opts.GitHub.ClientID == "" || opts.GitHub.ClientSecret == "" {
			return nil, errors.New("authserver: GitHub sign-in needs a client id and a client secret")
		}
		s.github = newGitHub(*opts.GitHub)
	}
	if opts.OIDC != nil {
		if opts.OIDC.Issuer == "" || opts.OIDC.ClientID == "" {
			return nil, errors.New("authserver: OIDC sign-in needs an issuer and a client id")
		}
		s.oidc = newOIDC(*opts.OIDC)
	}
	return s, nil
}

// Issuer is the issuer identifier: the iss of every token.
func (s *Server) Issuer() string { return s.opts.Issuer }

// KeySet verifies the access tokens this server signs (and signed under the
// previous secret), so the resource side checks them locally.
func (s *Server) KeySet() oidc.KeySet {
	return &oidc.StaticKeySet{PublicKeys: publicKeys(s.keys.signing)}
}

// Handler serves the server's endpoints: both metadata documents, /jwks,
// /register, /token, /authorize and its pages, and the upstream callbacks.
// Under an issuer with a path (https://host/prefix), each is served both
// with the prefix and without it, as a proxy that strips the prefix hands
// them on. Mount it on the same origin as the resource.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, path := range s.wellKnownPaths() {
		mux.HandleFunc("GET "+path, cors(s.metadata))
		mux.HandleFunc("OPTIONS "+path, cors(nil))
	}
	for _, p := range s.prefixes() {
		mux.HandleFunc("GET "+p+"/jwks", cors(s.jwks))
		mux.HandleFunc("OPTIONS "+p+"/jwks", cors(nil))
		mux.HandleFunc("POST "+p+"/register", cors(s.register))
		mux.HandleFunc("OPTIONS "+p+"/register", cors(nil))
		mux.HandleFunc("POST "+p+"/token", cors(s.token))
		mux.HandleFunc("OPTIONS "+p+"/token", cors(nil))
		mux.HandleFunc("GET "+p+"/authorize", s.authorize)
		mux.HandleFunc("POST "+p+"/authorize/key", s.signInWithKey)
		mux.HandleFunc("POST "+p+"/authorize/consent", s.consent)
		mux.HandleFunc("POST "+p+"/authorize/upstream", s.startUpstream)
		mux.HandleFunc("GET "+p+"/callback/github", s.githubCallback)
		mux.HandleFunc("GET "+p+"/callback/oidc", s.oidcCallback)
	}
	return mux
}

// Paths are the paths Handler serves, for mounting it on an outer mux.
func (s *Server) Paths() []string {
	paths := s.wellKnownPaths()
	for _, p := range s.prefixes() {
		paths = append(paths, p+"/jwks", p+"/register", p+"/token", p+"/authorize", p+"/authorize/", p+"/callback/")
	}
	return paths
}

func (s *Server) prefixes() []string {
	if s.prefix == "" {
		return []string{""}
	}
	return []string{s.prefix, ""}
}

// wellKnownPaths are where the metadata is looked for: RFC 8414 inserts the
// well-known part before the issuer's path, OpenID Connect discovery appends
// it (and a proxy that strips the prefix hands that on without it).
func (s *Server) wellKnownPaths() []string {
	p := s.prefix
	paths := []string{"/.well-known/oauth-authorization-server" + p, "/.well-known/openid-configuration" + p}
	if p != "" {
		paths = append(paths, p+"/.well-known/openid-configuration")
	}
	return paths
}

func (s *Server) endpoint(path string) string { return s.opts.Issuer + path }

func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, &oauthex.AuthServerMeta{
		Issuer:                                     s.opts.Issuer,
		AuthorizationEndpoint:                      s.endpoint("/authorize"),
		TokenEndpoint:                              s.endpoint("/token"),
		RegistrationEndpoint:                       s.endpoint("/register"),
		JWKSURI:                                    s.endpoint("/jwks"),
		ScopesSupported:                            []string{scopeMCP},
		ResponseTypesSupported:                     []string{"code"},
		ResponseModesSupported:                     []string{"query"},
		GrantTypesSupported:                        []string{"authorization_code", "refresh_token"},
		TokenEndpointAuthMethodsSupported:          []string{"none"},
		CodeChallengeMethodsSupported:              []string{"S256"},
		ClientIDMetadataDocumentSupported:          true,
		AuthorizationResponseIssParameterSupported: true,
	})
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	var set jose.JSONWebKeySet
	for _, k := range s.keys.signing {
		set.Keys = append(set.Keys, k.jwk())
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, &set)
}

// cors lets browser-based clients (the MCP Inspector) read metadata, register
// and redeem codes. None of these endpoints reads a cookie, so any origin
// may call them. A nil h answers a preflight.
func cors(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if h == nil {
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "Content-Type, Authorization, MCP-Protocol-Version")
			w.Header().Set("Access-Control-Max-Age", "86400")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeOAuthError writes an RFC 6749 §5.2 error body. The description is
// for a developer reading it; it never holds a secret.
func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	body := map[string]string{"error": code}
	if description != "" {
		body["error_description"] = description
	}
	writeJSON(w, status, body)
}

// usedSet remembers single-use ids until they expire, up to a bound: when it
// is full of live entries, nothing new is accepted, which refuses rather than
// forgets.
type usedSet struct {
	max int

	mu  sync.Mutex // guards ids
	ids map[string]time.Time
}

func newUsedSet(max int) *usedSet { return &usedSet{max: max, ids: map[string]time.Time{}} }

var errBusy = errors.New("too many sign-ins in flight")

// used reports whether id is used (and not yet expired).
func (u *usedSet) used(id string, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	exp, ok := u.ids[id]
	return ok && now.Before(exp)
}

// use marks id used until expires. It reports false when id was used before.
func (u *usedSet) use(id string, expires, now time.Time) (bool, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if exp, ok := u.ids[id]; ok && now.Before(exp) {
		return false, nil
	}
	if len(u.ids) >= u.max {
		for k, exp := range u.ids {
			if !now.Before(exp) {
				delete(u.ids, k)
			}
		}
		if len(u.ids) >= u.max {
			return false, errBusy
		}
	}
	u.ids[id] = expires
	return true, nil
}

// resourceOK checks resource parameters (RFC 8707): each must be this
// server's resource or a variant real clients send (a trailing slash, the
// bare origin).
func (s *Server) resourceOK(resources []string) bool {
	for _, r := range resources {
		found := false
		for _, a := range s.audiences {
			if r == a {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
