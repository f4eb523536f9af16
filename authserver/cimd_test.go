package authserver

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// documentHost serves client metadata documents over TLS on 127.0.0.1 and
// counts the connections that reach it.
type documentHost struct {
	*httptest.Server
	conns, requests atomic.Int64
}

func newDocumentHost(t *testing.T, handler func(base string, w http.ResponseWriter, r *http.Request)) *documentHost {
	t.Helper()
	h := &documentHost{}
	h.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.requests.Add(1)
		handler(h.URL, w, r)
	}))
	h.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			h.conns.Add(1)
		}
	}
	h.StartTLS()
	t.Cleanup(h.Close)
	return h
}

// trusting lets a server's document fetcher reach h: loopback permitted and
// h's certificate trusted. Everything else about the fetcher stays.
func trusting(s *Server, h *documentHost) {
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}}
	s.documents = newDocuments(func(a netip.Addr) bool { return a.IsLoopback() }, transport, s.now)
}

func serveDocument(redirects ...string) func(string, http.ResponseWriter, *http.Request) {
	return func(base string, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"client_id":                  base + r.URL.Path,
			"client_name":                "Document App",
			"redirect_uris":              redirects,
			"token_endpoint_auth_method": "none",
		})
	}
}

func TestClientMetadataDocumentSignIn(t *testing.T) {
	f := newFixture(t, nil)
	host := newDocumentHost(t, serveDocument("http://localhost/callback"))
	trusting(f.srv, host)
	clientID := host.URL + "/oauth/client.json"

	redirect := "http://localhost:41234/callback" // port-less registration, any port
	p := newPKCE()
	c := browser(t)
	page := get(t, c, f.authorizeURL(clientID, redirect, p, nil))
	if page.status != http.StatusOK || !strings.Contains(page.body, "Document App") {
		t.Fatalf("authorize: %d %s", page.status, page.body)
	}
	consent := f.withKey(c, page.body)
	if !strings.Contains(consent.body, "Published by") || !strings.Contains(consent.body, strings.TrimPrefix(host.URL, "https://")) {
		t.Errorf("consent does not name the document's host: %s", consent.body)
	}
	back := post(t, c, f.base+"/authorize/consent", lastForm(consent.body))
	if back.location == nil || back.location.Query().Get("code") == "" {
		t.Fatalf("consent: %d %v", back.status, back.location)
	}
	tok := f.redeem(clientID, redirect, back.location.Query().Get("code"), p.verifier)
	if tok.status != http.StatusOK || verifyAccess(t, f.srv, tok.AccessToken)["client_id"] != clientID {
		t.Fatalf("token: %+v", tok)
	}
	// Cached: the token request and a second authorization fetched nothing new.
	n := host.requests.Load()
	get(t, c, f.authorizeURL(clientID, redirect, newPKCE(), nil))
	if host.requests.Load() != n {
		t.Errorf("the document was fetched again within its cache time")
	}
	f.clock.advance(documentTTL + time.Second)
	get(t, c, f.authorizeURL(clientID, redirect, newPKCE(), nil))
	if host.requests.Load() != n+1 {
		t.Errorf("the document was not fetched again after its cache time")
	}
	// Its redirect URIs bind: another one is refused.
	if r := get(t, c, f.authorizeURL(clientID, "https://evil.example/cb", newPKCE(), nil)); r.status != http.StatusBadRequest {
		t.Errorf("unregistered redirect: %d", r.status)
	}
}

func TestClientMetadataDocumentRefusals(t *testing.T) {
	f := newFixture(t, nil)
	host := newDocumentHost(t, func(base string, w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, base+"/good", http.StatusFound)
		case "/big":
			w.Write([]byte(`{"client_id":"` + base + `/big","redirect_uris":["https://a.example/cb"],"client_name":"` + strings.Repeat("x", documentMaxBytes) + `"}`))
		case "/other-id":
			w.Write([]byte(`{"client_id":"https://elsewhere.example/client.json","redirect_uris":["https://a.example/cb"]}`))
		case "/secret-client":
			w.Write([]byte(`{"client_id":"` + base + `/secret-client","redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt"}`))
		case "/bad-redirect":
			w.Write([]byte(`{"client_id":"` + base + `/bad-redirect","redirect_uris":["http://a.example/cb"]}`))
		default:
			serveDocument("https://a.example/cb")(base, w, r)
		}
	})
	trusting(f.srv, host)
	ctx := t.Context()
	if _, err := f.srv.client(ctx, host.URL+"/good"); err != nil {
		t.Fatalf("good document: %v", err)
	}
	for _, path := range []string{"/redirect", "/big", "/other-id", "/secret-client", "/bad-redirect"} {
		if _, err := f.srv.client(ctx, host.URL+path); !errors.Is(err, errDocument) {
			t.Errorf("%s: %v, want refused", path, err)
		}
	}

	// The real fetcher dials only public addresses: each of these is
	// refused at dial time, after resolution and before any connection.
	real := newDocuments(publicAddr, nil, time.Now)
	port := host.Listener.Addr().(*net.TCPAddr).Port
	before := host.conns.Load()
	for _, id := range []string{
		host.URL + "/good", // 127.0.0.1, listening
		"https://localhost:" + itoa(port) + "/good",
		"https://10.0.0.1/client.json",
		"https://192.168.1.1/client.json",
		"https://169.254.169.254/latest/meta-data",
		"https://[::1]:" + itoa(port) + "/good",
		"https://[fd00::1]/client.json",
		"https://100.64.0.1/client.json",
		"https://0.0.0.0/client.json",
		"https://[64:ff9b::a00:1]/client.json", // NAT64 of 10.0.0.1
		"https://[2002:a00:1::1]/client.json",  // 6to4 of 10.0.0.1
		"https://[::a00:1]/client.json",        // IPv4-compatible 10.0.0.1
	} {
		if _, err := real.get(ctx, id); !errors.Is(err, errForbiddenAddress) {
			t.Errorf("%s: %v, want the dial refused", id, err)
		}
	}
	if n := host.conns.Load() - before; n != 0 {
		t.Errorf("%d connections reached the loopback server", n)
	}
	for _, id := range []string{"http://a.example/client.json", "https://a.example", "https://a.example/", "https://user@a.example/c"} {
		if _, err := real.get(ctx, id); !errors.Is(err, errDocument) {
			t.Errorf("%s: %v, want refused", id, err)
		}
	}
	for _, a := range []string{"8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"} {
		if !publicAddr(netip.MustParseAddr(a).Unmap()) {
			t.Errorf("%s refused", a)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
