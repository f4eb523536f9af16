package testkit

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Issuer is a stand-in OAuth authorization server on 127.0.0.1, as an
// external identity provider looks to a resource server: RFC 8414 metadata,
// a JWKS of RSA keys it can rotate, and RFC 7662 introspection of the
// opaque tokens a test registers. It signs access tokens with go-jose.
type Issuer struct {
	URL string // the issuer identifier, http://127.0.0.1:port

	// Introspection's client credentials (HTTP Basic).
	ClientID, ClientSecret string

	JWKSFetches    atomic.Int64
	Introspections atomic.Int64

	mu     sync.Mutex // guards the fields below
	keys   []*IssuerKey
	opaque map[string]map[string]any
}

// An IssuerKey is one signing key and the id the JWKS names it by.
type IssuerKey struct {
	ID      string
	Private *rsa.PrivateKey
}

// NewIssuer starts an issuer with one published key; the test's end stops it.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	iss := &Issuer{ClientID: "resource", ClientSecret: "s3cret:&=+", opaque: map[string]map[string]any{}}
	iss.keys = []*IssuerKey{NewIssuerKey(t, "key-1")}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{
			"issuer":                   iss.URL,
			"authorization_endpoint":   iss.URL + "/authorize",
			"token_endpoint":           iss.URL + "/token",
			"jwks_uri":                 iss.URL + "/jwks",
			"introspection_endpoint":   iss.URL + "/introspect",
			"response_types_supported": []string{"code"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		iss.JWKSFetches.Add(1)
		iss.mu.Lock()
		var set jose.JSONWebKeySet
		for _, k := range iss.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.Private.PublicKey, KeyID: k.ID, Algorithm: "RS256", Use: "sig"})
		}
		iss.mu.Unlock()
		writeJSON(w, set)
	})
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		iss.Introspections.Add(1)
		// RFC 6749 §2.3.1: both are form-encoded inside Basic.
		id, secret, ok := r.BasicAuth()
		id, err1 := url.QueryUnescape(id)
		secret, err2 := url.QueryUnescape(secret)
		if !ok || err1 != nil || err2 != nil || id != iss.ClientID || secret != iss.ClientSecret {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		iss.mu.Lock()
		answer, known := iss.opaque[r.PostFormValue("token")]
		iss.mu.Unlock()
		if !known {
			answer = map[string]any{"active": false}
		}
		writeJSON(w, answer)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	iss.URL = srv.URL
	return iss
}

// NewIssuerKey makes a 2048-bit RSA key.
func NewIssuerKey(t testing.TB, id string) *IssuerKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &IssuerKey{ID: id, Private: k}
}

// Key is the key tokens are signed with now.
func (iss *Issuer) Key() *IssuerKey {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	return iss.keys[len(iss.keys)-1]
}

// Rotate publishes a new key in place of the old ones and signs with it
// from now on.
func (iss *Issuer) Rotate(t testing.TB, id string) {
	k := NewIssuerKey(t, id)
	iss.mu.Lock()
	iss.keys = []*IssuerKey{k}
	iss.mu.Unlock()
}

// PublicKeyDER is the current public key as PKIX DER: what an attacker who
// read the JWKS can try as an HMAC secret.
func (iss *Issuer) PublicKeyDER(t testing.TB) []byte {
	der, err := x509.MarshalPKIXPublicKey(&iss.Key().Private.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// Claims are an access token's usual claims for audience and subject,
// valid for an hour from now.
func (iss *Issuer) Claims(audience, subject string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": iss.URL, "aud": audience, "sub": subject,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"client_id": "test-client", "jti": rand.Text(),
	}
}

// Token signs claims with the current key (RS256, typ at+jwt, RFC 9068).
func (iss *Issuer) Token(t testing.TB, claims map[string]any) string {
	k := iss.Key()
	return SignJWT(t, jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: k.Private, KeyID: k.ID}}, claims)
}

// SignJWT signs claims with any key: tests forge tokens with it.
func SignJWT(t testing.TB, key jose.SigningKey, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(key, (&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// Opaque registers an opaque token and the introspection answer for it;
// unregistered tokens are inactive.
func (iss *Issuer) Opaque(token string, answer map[string]any) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.opaque[token] = maps.Clone(answer)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, fmt.Sprint(err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}
