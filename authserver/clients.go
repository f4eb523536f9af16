package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// A client is an application that may ask for tokens: registered by DCR
// (its id is the sealed registration) or named by the https URL of its
// Client ID Metadata Document.
type client struct {
	ID           string
	Name         string // as the client gave it; unverified for DCR
	RedirectURIs []string
	// Document is the host that serves the metadata document, whose owner
	// vouches for the redirect URIs; "" for a DCR registration.
	Document string
}

// registration is what a DCR client id seals. It never expires: clients keep
// their client_id for months and several never register again.
type registration struct {
	RedirectURIs    []string `json:"r"`
	Name            string   `json:"n,omitempty"`
	ApplicationType string   `json:"a,omitempty"`
	IssuedAt        int64    `json:"i"`
}

var (
	errUnknownClient = errors.New("unknown client")
	errRedirectURI   = errors.New("redirect URI not allowed")
)

// checkRedirectURI accepts the redirect URIs a registration may name: https,
// http on a loopback host (RFC 8252 §7.3), or a private-use scheme such as
// cursor:// (RFC 8252 §7.1). Never a fragment, never a scheme a browser
// would run or read locally.
func checkRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("%w: %q is not an absolute URI without a fragment", errRedirectURI, raw)
	}
	switch scheme := strings.ToLower(u.Scheme); scheme {
	case "https":
		if u.Host == "" || u.User != nil {
			return fmt.Errorf("%w: %q has no host", errRedirectURI, raw)
		}
	case "http":
		if !isLoopbackHost(u.Hostname()) || u.User != nil {
			return fmt.Errorf("%w: %q: http only on a loopback host (127.0.0.1, [::1], localhost)", errRedirectURI, raw)
		}
	case "javascript", "data", "file", "vbscript", "about", "blob", "filesystem", "ws", "wss", "ftp":
		return fmt.Errorf("%w: %q: scheme %s", errRedirectURI, raw, scheme)
	default:
		for _, c := range scheme {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '.' || c == '-') {
				return fmt.Errorf("%w: %q: scheme", errRedirectURI, raw)
			}
		}
	}
	return nil
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// match finds the registered redirect URI that uri stands for: the same
// string, or for a loopback registration the same URI on any port (RFC 8252
// §7.3: a native app gets whatever port is free). An empty uri stands for the
// only registered one.
func (c *client) match(uri string) (string, bool) {
	if uri == "" {
		if len(c.RedirectURIs) == 1 {
			return c.RedirectURIs[0], true
		}
		return "", false
	}
	for _, reg := range c.RedirectURIs {
		if reg == uri {
			return uri, true
		}
	}
	got, err := url.Parse(uri)
	if err != nil || got.Scheme != "http" || !isLoopbackHost(got.Hostname()) {
		return "", false
	}
	for _, reg := range c.RedirectURIs {
		want, err := url.Parse(reg)
		if err != nil || want.Scheme != "http" || !isLoopbackHost(want.Hostname()) {
			continue
		}
		if got.Hostname() == want.Hostname() && got.EscapedPath() == want.EscapedPath() &&
			got.RawQuery == want.RawQuery && got.User == nil && got.Fragment == "" {
			return uri, true
		}
	}
	return "", false
}

// register answers RFC 7591 dynamic client registration for public clients.
func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var meta oauthex.ClientRegistrationMetadata
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&meta); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_client_metadata", "the body is not a JSON client registration")
		return
	}
	if len(meta.RedirectURIs) == 0 || len(meta.RedirectURIs) > 20 {
		writeOAuthError(w, http.StatusBadRequest, "invalid_redirect_uri", "redirect_uris must name 1 to 20 URIs")
		return
	}
	for _, u := range meta.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			writeOAuthError(w, http.StatusBadRequest, "invalid_redirect_uri", err.Error())
			return
		}
	}
	// Grants beyond the two this server has (VS Code asks for the device
	// code grant too) are left out of the answer (RFC 7591 §3.2.1: the
	// server may replace what was asked); a client that cannot do without
	// them is refused.
	if len(meta.GrantTypes) > 0 && !slices.Contains(meta.GrantTypes, "authorization_code") {
		writeOAuthError(w, http.StatusBadRequest, "invalid_client_metadata", "grant_types must include authorization_code")
		return
	}
	if len(meta.ResponseTypes) > 0 && !slices.Contains(meta.ResponseTypes, "code") {
		writeOAuthError(w, http.StatusBadRequest, "invalid_client_metadata", "response_types must include code")
		return
	}
	switch meta.ApplicationType {
	case "", "web", "native":
	default:
		writeOAuthError(w, http.StatusBadRequest, "invalid_client_metadata", "application_type is web or native")
		return
	}
	now := s.now()
	reg := registration{
		RedirectURIs:    meta.RedirectURIs,
		Name:            truncate(meta.ClientName, 100),
		ApplicationType: meta.ApplicationType,
		IssuedAt:        now.Unix(),
	}
	id, err := s.keys.registration.seal(reg)
	if err != nil {
		s.log.Error().Err(err).Msg("sealing a registration")
		writeOAuthError(w, http.StatusInternalServerError, "server_error", "")
		return
	}
	// Public clients only (RFC 7591 §2: the server may replace what was
	// asked): no secret, PKCE proves who redeems a code.
	resp := oauthex.ClientRegistrationResponse{
		ClientRegistrationMetadata: oauthex.ClientRegistrationMetadata{
			RedirectURIs:            reg.RedirectURIs,
			TokenEndpointAuthMethod: "none",
			GrantTypes:              []string{"authorization_code", "refresh_token"},
			ResponseTypes:           []string{"code"},
			ClientName:              reg.Name,
			Scope:                   scopeMCP,
			ApplicationType:         reg.ApplicationType,
		},
		ClientID:         id,
		ClientIDIssuedAt: time.Unix(reg.IssuedAt, 0),
	}
	s.log.Info().Str("client", reg.Name).Strs("redirect_uris", reg.RedirectURIs).Msg("client registered")
	writeJSON(w, http.StatusCreated, &resp)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// client finds the client an id names: a metadata document URL, or a sealed
// registration.
func (s *Server) client(ctx context.Context, id string) (*client, error) {
	if strings.HasPrefix(id, "https://") {
		return s.documents.get(ctx, id)
	}
	var reg registration
	if err := s.keys.registration.open(id, &reg); err != nil {
		return nil, errUnknownClient
	}
	return &client{ID: id, Name: reg.Name, RedirectURIs: reg.RedirectURIs}, nil
}

// Client ID Metadata Documents are fetched from wherever a client_id points,
// so the fetch is fenced: only public addresses, no redirects, a short
// timeout and a small size cap.
const (
	documentTimeout  = 5 * time.Second
	documentMaxBytes = 64 << 10
	documentTTL      = 5 * time.Minute
	documentCacheMax = 1000
)

var (
	errForbiddenAddress = errors.New("address not allowed: private, loopback or link-local")
	errDocument         = errors.New("client metadata document refused")
)

// documents fetches and briefly caches client metadata documents.
type documents struct {
	client *http.Client

	mu    sync.Mutex // guards cache
	cache map[string]cachedDocument
	now   func() time.Time
}

type cachedDocument struct {
	client  *client
	expires time.Time
}

// newDocuments fetches documents over a transport that dials only addresses
// permit accepts, checked on the resolved IP at dial time, so DNS cannot
// point a public name at a private address between check and use.
func newDocuments(permit func(netip.Addr) bool, transport *http.Transport, now func() time.Time) *documents {
	dialer := &net.Dialer{
		Timeout: documentTimeout,
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !permit(ap.Addr().Unmap()) {
				return fmt.Errorf("dialing %s: %w", address, errForbiddenAddress)
			}
			return nil
		},
	}
	if transport == nil {
		transport = &http.Transport{}
	}
	transport.Proxy = nil
	transport.DialContext = dialer.DialContext
	transport.MaxResponseHeaderBytes = 16 << 10
	return &documents{
		client: &http.Client{
			Transport: transport,
			Timeout:   documentTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		cache: map[string]cachedDocument{},
		now:   now,
	}
}

// refused are ranges a public address never is, or that carry an IPv4
// address inside an IPv6 one (NAT64, 6to4, IPv4-compatible), which a
// gateway would turn into a private one.
var refused = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"), // shared (CGNAT)
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("2002::/16"),      // 6to4
	netip.MustParsePrefix("::/96"),          // IPv4-compatible
}

// publicAddr is the default permit: no loopback, private (RFC 1918, fc00::/7),
// link-local, shared, multicast or unspecified address, and no IPv6 address
// that embeds an IPv4 one.
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || !a.IsGlobalUnicast() || a.IsPrivate() {
		return false
	}
	for _, p := range refused {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

func (d *documents) get(ctx context.Context, id string) (*client, error) {
	now := d.now()
	d.mu.Lock()
	if c, ok := d.cache[id]; ok && now.Before(c.expires) {
		d.mu.Unlock()
		return c.client, nil
	}
	d.mu.Unlock()

	c, err := d.fetch(ctx, id)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.cache) >= documentCacheMax {
		for k, v := range d.cache {
			if !now.Before(v.expires) {
				delete(d.cache, k)
			}
		}
		if len(d.cache) >= documentCacheMax {
			clear(d.cache)
		}
	}
	d.cache[id] = cachedDocument{client: c, expires: now.Add(documentTTL)}
	return c, nil
}

func (d *documents) fetch(ctx context.Context, id string) (*client, error) {
	u, err := url.Parse(id)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" || u.Path == "" || u.Path == "/" {
		return nil, fmt.Errorf("%w: client_id %q is not an https URL with a path", errDocument, id)
	}
	ctx, cancel := context.WithTimeout(ctx, documentTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, id, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errDocument, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: fetching %s: %w", errDocument, id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s answered %s (redirects are not followed)", errDocument, id, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, documentMaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %w", errDocument, id, err)
	}
	if len(body) > documentMaxBytes {
		return nil, fmt.Errorf("%w: %s is over %d bytes", errDocument, id, documentMaxBytes)
	}
	var doc struct {
		ClientID string `json:"client_id"`
		oauthex.ClientRegistrationMetadata
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("%w: %s is not a JSON client metadata document", errDocument, id)
	}
	if doc.ClientID != id {
		return nil, fmt.Errorf("%w: its client_id is not its own URL %s", errDocument, id)
	}
	switch doc.TokenEndpointAuthMethod {
	case "", "none":
	default:
		return nil, fmt.Errorf("%w: token_endpoint_auth_method %q: only public clients (none)", errDocument, doc.TokenEndpointAuthMethod)
	}
	if len(doc.RedirectURIs) == 0 {
		return nil, fmt.Errorf("%w: no redirect_uris", errDocument)
	}
	for _, r := range doc.RedirectURIs {
		if err := checkRedirectURI(r); err != nil {
			return nil, fmt.Errorf("%w: %w", errDocument, err)
		}
	}
	return &client{ID: id, Name: truncate(doc.ClientName, 100), RedirectURIs: doc.RedirectURIs, Document: u.Host}, nil
}
