package authserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// upstreamCode is what a stand-in provider remembers about a code it issued.
type upstreamCode struct {
	clientID, redirect, challenge, nonce string
}

// standIn is the shared part of the stand-in providers: an authorize
// endpoint that signs the configured user in at once and codes checked with
// PKCE, as the real providers check them.
type standIn struct {
	t            *testing.T
	clientID     string
	clientSecret string

	mu         sync.Mutex // guards the fields below
	user       string     // who signs in next: a GitHub login or an email
	unverified bool       // the next ID token says email_verified false
	codes      map[string]upstreamCode
}

func (s *standIn) setUser(u string) {
	s.mu.Lock()
	s.user = u
	s.mu.Unlock()
}

// authorize redirects straight back with a code, as a provider does for a
// user who is signed in and approved the app before.
func (s *standIn) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != s.clientID || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("state") == "" {
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	code := rand.Text()
	s.mu.Lock()
	s.codes[code] = upstreamCode{clientID: q.Get("client_id"), redirect: q.Get("redirect_uri"), challenge: q.Get("code_challenge"), nonce: q.Get("nonce")}
	s.mu.Unlock()
	back, _ := url.Parse(q.Get("redirect_uri"))
	bq := back.Query()
	bq.Set("code", code)
	bq.Set("state", q.Get("state"))
	back.RawQuery = bq.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

// redeem checks a token request's client, code and PKCE verifier, and
// returns the code's record and the user it signed in.
func (s *standIn) redeem(w http.ResponseWriter, r *http.Request) (upstreamCode, string, bool) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return upstreamCode{}, "", false
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	s.mu.Lock()
	c, found := s.codes[r.PostFormValue("code")]
	delete(s.codes, r.PostFormValue("code"))
	user := s.user
	s.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
	if id != s.clientID || secret != s.clientSecret || !found || c.redirect != r.PostFormValue("redirect_uri") ||
		base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":"invalid_grant"}`))
		return upstreamCode{}, "", false
	}
	return c, user, true
}

// githubStandIn speaks GitHub's OAuth app protocol and the /user API as
// GitHub Enterprise serves them (/login/oauth/…, /api/v3/user). Like
// GitHub, it knows each account by a number that stays with it, and by a
// login that may change.
type githubStandIn struct {
	standIn
	*httptest.Server

	tokensMu sync.Mutex        // guards the fields below
	tokens   map[string]string // access token → login
	ids      map[string]int64  // login → account number
}

// setAccount makes the account with number id, called login now, the
// one that signs in next.
func (g *githubStandIn) setAccount(login string, id int64) {
	g.tokensMu.Lock()
	g.ids[login] = id
	g.tokensMu.Unlock()
	g.setUser(login)
}

func newGitHubStandIn(t *testing.T) *githubStandIn {
	g := &githubStandIn{standIn: standIn{t: t, clientID: "gh-client", clientSecret: "gh-secret", user: "Alice", codes: map[string]upstreamCode{}}, tokens: map[string]string{}, ids: map[string]int64{"Alice": 1001}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/oauth/authorize", g.authorize)
	mux.HandleFunc("POST /login/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		_, user, ok := g.redeem(w, r)
		if !ok {
			return
		}
		tok := "gho_" + rand.Text()
		g.tokensMu.Lock()
		g.tokens[tok] = user
		g.tokensMu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"access_token": tok, "token_type": "bearer", "scope": ""})
	})
	mux.HandleFunc("GET /api/v3/user", func(w http.ResponseWriter, r *http.Request) {
		g.tokensMu.Lock()
		login, ok := g.tokens[bearerOf(r)]
		id, known := g.ids[login]
		if ok && !known {
			// A login the test never numbered: number it, once.
			id = int64(2000 + len(g.ids))
			g.ids[login] = id
		}
		g.tokensMu.Unlock()
		if !ok {
			http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"login": login, "id": id})
	})
	g.Server = httptest.NewServer(mux)
	t.Cleanup(g.Close)
	return g
}

func bearerOf(r *http.Request) string {
	h := r.Header.Get("Authorization")
	for _, p := range []string{"Bearer ", "bearer ", "token "} {
		if len(h) > len(p) && h[:len(p)] == p {
			return h[len(p):]
		}
	}
	return ""
}

// oidcStandIn is an OpenID Connect provider: discovery, JWKS, authorize, and
// a token endpoint issuing ES256-signed ID tokens.
type oidcStandIn struct {
	standIn
	*httptest.Server
	key *ecdsa.PrivateKey
}

func newOIDCStandIn(t *testing.T) *oidcStandIn {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	o := &oidcStandIn{standIn: standIn{t: t, clientID: "oidc-client", clientSecret: "oidc-secret", user: "Bob@corp.example", codes: map[string]upstreamCode{}}, key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                o.URL,
			"authorization_endpoint":                o.URL + "/authorize",
			"token_endpoint":                        o.URL + "/token",
			"jwks_uri":                              o.URL + "/jwks",
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"ES256"},
			"code_challenge_methods_supported":      []string{"S256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	mux.HandleFunc("GET /authorize", o.authorize)
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		c, user, ok := o.redeem(w, r)
		if !ok {
			return
		}
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
		if err != nil {
			t.Error(err)
			return
		}
		o.mu.Lock()
		verified := !o.unverified
		o.mu.Unlock()
		now := time.Now()
		idToken, err := jwt.Signed(signer).Claims(map[string]any{
			"iss": o.URL, "sub": "u-123", "aud": o.clientID, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
			"nonce": c.nonce, "email": user, "email_verified": verified,
		}).Serialize()
		if err != nil {
			t.Error(err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": rand.Text(), "token_type": "Bearer", "expires_in": 3600, "id_token": idToken})
	})
	o.Server = httptest.NewServer(mux)
	t.Cleanup(o.Close)
	return o
}

// withUpstreams points a fixture's options at the stand-ins.
func withUpstreams(g *githubStandIn, o *oidcStandIn) func(*Options) {
	return func(opts *Options) {
		if g != nil {
			opts.GitHub = &GitHub{ClientID: g.clientID, ClientSecret: g.clientSecret, URL: g.URL}
		}
		if o != nil {
			opts.OIDC = &OIDC{Issuer: o.URL, ClientID: o.clientID, ClientSecret: o.clientSecret, Name: "Corp SSO"}
		}
	}
}
