package proxy

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// secretAS is an authorization server on loopback that takes any client,
// signs in at once and records every client secret its token endpoint
// sees: what a server a hostile remote names would do. Its /mcp is a
// remote that sends the shim to whichever server names says.
type secretAS struct {
	*httptest.Server
	names string // the issuer the remote's metadata names; "" is itself

	mu      sync.Mutex // guards secrets
	secrets []string
}

func newSecretAS(t *testing.T) *secretAS {
	as := &secretAS{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-protected-resource/mcp", func(w http.ResponseWriter, r *http.Request) {
		names := as.names
		if names == "" {
			names = as.URL
		}
		writeTestJSON(w, map[string]any{"resource": as.URL + "/mcp", "authorization_servers": []string{names}})
	})
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		writeTestJSON(w, map[string]any{
			"issuer": as.URL, "authorization_endpoint": as.URL + "/authorize", "token_endpoint": as.URL + "/token",
			"response_types_supported": []string{"code"}, "code_challenge_methods_supported": []string{"S256"},
			"token_endpoint_auth_methods_supported": []string{"client_secret_post"},
		})
	})
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		back, _ := url.Parse(q.Get("redirect_uri"))
		back.RawQuery = url.Values{"code": {"code-" + rand16()}, "state": {q.Get("state")}}.Encode()
		http.Redirect(w, r, back.String(), http.StatusFound)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		_, secret, ok := r.BasicAuth()
		if !ok {
			secret = r.PostFormValue("client_secret")
		}
		as.mu.Lock()
		as.secrets = append(as.secrets, secret)
		as.mu.Unlock()
		writeTestJSON(w, map[string]any{"access_token": "at-" + rand16(), "token_type": "Bearer", "expires_in": 3600, "refresh_token": "rt-" + rand16()})
	})
	as.Server = httptest.NewServer(mux)
	t.Cleanup(as.Close)
	return as
}

func (as *secretAS) seen() []string {
	as.mu.Lock()
	defer as.mu.Unlock()
	return append([]string(nil), as.secrets...)
}

func writeTestJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func rand16() string { return rand.Text()[:16] }

// testOAuth is the sign-in of a shim configured with own for the remote
// url, with a browser that follows the authorization URL back to the shim.
func testOAuth(t *testing.T, remote string, own preregistered) *oauth {
	t.Helper()
	u, _ := url.Parse(remote)
	st, err := openStore(t.TempDir(), "file")
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	o := &oauth{
		remote: u, key: remote, store: st, client: client, log: zerolog.Nop(), redact: &redactor{},
		wait: time.Minute, own: own, base: t.Context(), wg: &sync.WaitGroup{},
		open: func(authURL string) {
			go func() {
				if resp, err := client.Get(authURL); err == nil {
					resp.Body.Close()
				}
			}()
		},
	}
	return o
}

// signInTo runs one sign-in of testOAuth, as the remote's first 401 starts
// it.
func signInTo(t *testing.T, remote string, own preregistered) error {
	t.Helper()
	o := testOAuth(t, remote, own)
	u := o.remote
	header := http.Header{"Www-Authenticate": {`Bearer resource_metadata="` + u.Scheme + "://" + u.Host + `/.well-known/oauth-protected-resource/mcp"`}}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	return o.signIn(ctx, http.StatusUnauthorized, header, &attempt{done: make(chan struct{})})
}

// A client registered ahead of time with a secret is bound to one
// authorization server: a remote that names another gets no secret from
// the shim, and the refusal names that server, never the secret.
func TestClientSecretStaysWithItsIssuer(t *testing.T) {
	const secret = "pre-registered-secret-0123456789"
	good, evil := newSecretAS(t), newSecretAS(t)

	// The remote (on good's origin) sends the shim to evil.
	good.names = evil.URL
	err := signInTo(t, good.URL+"/mcp", preregistered{ClientID: "mine", Secret: secret, Issuer: good.URL})
	if !errors.Is(err, errClientIssuer) || !strings.Contains(err.Error(), evil.URL) || strings.Contains(err.Error(), secret) {
		t.Errorf("sign-in sent to another issuer: %v", err)
	}
	// Without --client-issuer, the remote's own origin is the bound.
	err = signInTo(t, good.URL+"/mcp", preregistered{ClientID: "mine", Secret: secret})
	if !errors.Is(err, errClientIssuer) || !strings.Contains(err.Error(), evil.URL) {
		t.Errorf("sign-in sent off the remote's origin, no issuer given: %v", err)
	}
	if s := evil.seen(); len(s) != 0 {
		t.Fatalf("the other authorization server got %d token requests, secrets included", len(s))
	}

	// The server the client is registered at gets it.
	good.names = ""
	if err := signInTo(t, good.URL+"/mcp", preregistered{ClientID: "mine", Secret: secret, Issuer: good.URL}); err != nil {
		t.Fatalf("sign-in at the client's own issuer: %v", err)
	}
	if err := signInTo(t, good.URL+"/mcp", preregistered{ClientID: "mine", Secret: secret}); err != nil {
		t.Fatalf("sign-in at the remote's own origin: %v", err)
	}
	if s := good.seen(); len(s) != 2 || s[0] != secret || s[1] != secret {
		t.Errorf("the client's own issuer saw secrets %q", s)
	}
}

// A grant kept from before the client was bound, at a server it is not
// registered at, is not refreshed with the secret: the shim signs in again
// instead, which then refuses that server.
func TestKeptClientSecretIsNotRefreshedElsewhere(t *testing.T) {
	const secret = "pre-registered-secret-0123456789"
	good, evil := newSecretAS(t), newSecretAS(t)
	o := testOAuth(t, good.URL+"/mcp", preregistered{ClientID: "mine", Secret: secret, Issuer: good.URL})
	err := o.store.update(o.key, func(r *record) (bool, error) {
		r.Current = evil.URL
		r.Grants[evil.URL] = &grant{Issuer: evil.URL, TokenURL: evil.URL + "/token", ClientID: "mine", ClientSecret: secret,
			AuthStyle: 1, AccessToken: "at-stale", RefreshToken: "rt-kept-0123456789"}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.refresh(t.Context(), "at-stale"); !errors.Is(err, errSignIn) {
		t.Errorf("refresh at the other server = %v, want errSignIn", err)
	}
	if s := evil.seen(); len(s) != 0 {
		t.Errorf("the other authorization server got %d token requests", len(s))
	}
	if r, err := o.store.load(o.key); err != nil || r.current() != nil {
		t.Errorf("the grant is still kept: %v", err)
	}
}
