package authserver

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mcpwrap/mcpwrap/auth"
)

// authRequest is an application's authorization request once checked. It
// travels sealed in the sign-in forms, so no server keeps it.
type authRequest struct {
	ClientID    string `json:"c"`
	ClientName  string `json:"n,omitempty"`
	Document    string `json:"d,omitempty"` // the metadata document's host, for CIMD clients
	RedirectURI string `json:"r"`
	State       string `json:"s,omitempty"`
	Challenge   string `json:"p"`
	Scope       string `json:"o"`
	Resource    string `json:"a"` // the canonical resource: the token's audience
	Expires     int64  `json:"e"`
}

// grant is a signed-in user's answer waiting for consent.
type grant struct {
	Request authRequest `json:"q"`
	Subject string      `json:"u"`
	Tenant  string      `json:"t"`
	Key     []byte      `json:"k,omitempty"` // the key page's key, as auth.Digest: a refresh checks it still signs in
	// Account is the upstream account's lasting name (github:id:12345),
	// beside Subject, the name it goes by now (github:alice); a refresh
	// checks that either still signs in as Tenant.
	Account string `json:"i,omitempty"`
	Expires int64  `json:"e"`
}

// authorize checks an authorization request and shows the sign-in page.
// Until the client and its redirect URI are known good, errors are shown
// here; after, they go back to the client (RFC 6749 §4.1.2.1).
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c, err := s.client(r.Context(), q.Get("client_id"))
	if err != nil {
		s.log.Info().Err(err).Msg("authorize: unknown client")
		s.messagePage(w, r, http.StatusBadRequest, "This app is not registered",
			"The app that sent you here is not known to this server, or its registration could not be read. Go back to the app and connect again.")
		return
	}
	redirect, ok := c.match(q.Get("redirect_uri"))
	if !ok {
		s.messagePage(w, r, http.StatusBadRequest, "This app asked to return somewhere it did not register",
			"The redirect address in the request is not one of the app's registered addresses, so sign-in stops here.")
		return
	}
	req := authRequest{
		ClientID:    c.ID,
		ClientName:  c.Name,
		Document:    c.Document,
		RedirectURI: redirect,
		State:       q.Get("state"),
		Scope:       scopeMCP,
		Resource:    s.opts.Resource,
		Expires:     s.now().Add(signInTTL).Unix(),
	}
	// Anyone may register a client, so a redirect before the person has
	// done anything would make this origin an open redirector (RFC 9700
	// §4.11.2): a bad request is shown here instead, naming the error.
	fail := func(code, description string) {
		s.messagePage(w, r, http.StatusBadRequest, "This sign-in request is not valid", code+": "+description)
	}
	if q.Get("response_type") != "code" {
		fail("unsupported_response_type", "response_type must be code")
		return
	}
	// PKCE S256 only: plain would let anyone who sees the request redeem
	// the code, and a missing method means plain (RFC 7636 §4.3).
	if q.Get("code_challenge") == "" {
		fail("invalid_request", "code_challenge is required (PKCE S256)")
		return
	}
	if q.Get("code_challenge_method") != "S256" {
		fail("invalid_request", "code_challenge_method must be S256")
		return
	}
	req.Challenge = q.Get("code_challenge")
	if b, err := base64.RawURLEncoding.DecodeString(req.Challenge); err != nil || len(b) != 32 {
		fail("invalid_request", "code_challenge is not a base64url SHA-256 digest")
		return
	}
	if !s.resourceOK(q["resource"]) {
		fail("invalid_target", "resource must be "+s.opts.Resource)
		return
	}
	// Whatever scope was asked (ChatGPT may ask none), the one scope this
	// server defines is what it grants, and the token response says so.
	sealed, err := s.keys.request.seal(req)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.signInPage(w, r, http.StatusOK, sealed, "")
}

// redirect sends the browser back to the client with params, its state and
// the issuer (RFC 9207, so a client talking to several servers can tell
// which one answered).
func (s *Server) redirect(w http.ResponseWriter, r *http.Request, req authRequest, params url.Values) {
	if req.State != "" {
		params.Set("state", req.State)
	}
	params.Set("iss", s.opts.Issuer)
	sep := "?"
	if strings.Contains(req.RedirectURI, "?") {
		sep = "&"
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, req.RedirectURI+sep+params.Encode(), http.StatusFound)
}

// openRequest reads the sealed request a form carries, after checking the
// form's token against the browser's cookie.
func (s *Server) openRequest(w http.ResponseWriter, r *http.Request) (authRequest, string, bool) {
	sealed, ok := s.checkForm(w, r, "request")
	if !ok {
		return authRequest{}, "", false
	}
	var req authRequest
	if err := s.keys.request.open(sealed, &req); err != nil {
		s.messagePage(w, r, http.StatusBadRequest, "This sign-in form is not valid", "Go back to the app and connect again.")
		return authRequest{}, "", false
	}
	if s.now().Unix() >= req.Expires {
		s.expiredPage(w, r)
		return authRequest{}, "", false
	}
	return req, sealed, true
}

// signInWithKey is the key page's answer: a static token of a tenant (or the
// deployment's) signs in as that tenant.
func (s *Server) signInWithKey(w http.ResponseWriter, r *http.Request) {
	req, sealed, ok := s.openRequest(w, r)
	if !ok {
		return
	}
	if s.opts.Tokens == nil || s.opts.Tokens.Len() == 0 {
		s.messagePage(w, r, http.StatusNotFound, "Sign-in with a key is not available", "")
		return
	}
	key := strings.TrimSpace(r.PostFormValue("key"))
	p, ok := s.opts.Tokens.Match(key)
	if !ok {
		s.log.Info().Str("client", req.ClientName).Msg("sign-in: wrong key")
		s.signInPage(w, r, http.StatusUnauthorized, sealed, "That key is not valid here. Check that you pasted the whole key, with nothing added.")
		return
	}
	digest := auth.Digest(key)
	s.consentPage(w, r, req, grant{Subject: "key:" + p.Tenant, Tenant: p.Tenant, Key: digest[:]})
}

// signedIn continues an upstream sign-in: an account in a tenant goes on to
// consent, anyone else is refused here. account is its lasting name, if the
// provider has one (github:id:12345); identity the name it goes by.
func (s *Server) signedIn(w http.ResponseWriter, r *http.Request, req authRequest, identity, account string) {
	t, ok := s.tenantOf(identity, account)
	if !ok {
		s.refusedPage(w, r, identity, account)
		return
	}
	s.consentPage(w, r, req, grant{Subject: identity, Account: account, Tenant: t.Name})
}

// tenantOf is the tenant an upstream account signs in as, its lasting name
// tried first.
func (s *Server) tenantOf(identity, account string) (auth.Tenant, bool) {
	if s.opts.Tenant == nil {
		return auth.Tenant{}, false
	}
	if account != "" {
		return s.opts.Tenant(account, identity)
	}
	return s.opts.Tenant(identity)
}

// consent answers the consent page: allow issues a code, deny tells the
// client so. Either way the browser goes back to the client.
func (s *Server) consent(w http.ResponseWriter, r *http.Request) {
	sealed, ok := s.checkForm(w, r, "grant")
	if !ok {
		return
	}
	var g grant
	if err := s.keys.grant.open(sealed, &g); err != nil {
		s.messagePage(w, r, http.StatusBadRequest, "This consent form is not valid", "Go back to the app and connect again.")
		return
	}
	if s.now().Unix() >= g.Expires {
		s.expiredPage(w, r)
		return
	}
	if r.PostFormValue("action") != "allow" {
		s.log.Info().Str("client", g.Request.ClientName).Str("subject", g.Subject).Msg("consent denied")
		s.redirect(w, r, g.Request, url.Values{"error": {"access_denied"}, "error_description": {"the user did not allow access"}})
		return
	}
	code, err := s.issueCode(g)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.log.Info().Str("client", g.Request.ClientName).Str("subject", g.Subject).Str("tenant", g.Tenant).Msg("consent given")
	s.redirect(w, r, g.Request, url.Values{"code": {code}})
}

// authCode is what a code seals: everything the token endpoint needs, and
// the instance that must see it redeemed.
type authCode struct {
	ID          string `json:"j"`
	Machine     string `json:"m,omitempty"`
	ClientID    string `json:"c"`
	RedirectURI string `json:"r"`
	Challenge   string `json:"p"`
	Scope       string `json:"o"`
	Resource    string `json:"a"`
	Subject     string `json:"u"`
	Tenant      string `json:"t"`
	Key         []byte `json:"k,omitempty"`
	Account     string `json:"i,omitempty"`
	Expires     int64  `json:"e"`
}

func (s *Server) issueCode(g grant) (string, error) {
	return s.keys.code.seal(authCode{
		ID:          randomID(),
		Machine:     s.opts.MachineID,
		ClientID:    g.Request.ClientID,
		RedirectURI: g.Request.RedirectURI,
		Challenge:   g.Request.Challenge,
		Scope:       g.Request.Scope,
		Resource:    g.Request.Resource,
		Subject:     g.Subject,
		Tenant:      g.Tenant,
		Key:         g.Key,
		Account:     g.Account,
		Expires:     s.now().Add(CodeTTL).Unix(),
	})
}

func randomID() string {
	return rand.Text()
}

// Forms carry a token bound to a cookie of the browser and to the sealed
// value the form posts: a page rendered for one browser cannot be posted
// from another, nor its token reused with another request.
func (s *Server) csrfCookieName() string {
	if s.secure {
		return "__Host-mcpwrap-csrf"
	}
	return "mcpwrap-csrf"
}

// browserCookie returns the browser's CSRF cookie, setting a new one when it
// has none.
func (s *Server) browserCookie(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(s.csrfCookieName()); err == nil && len(c.Value) >= 26 && len(c.Value) <= 64 {
		return c.Value
	}
	v := rand.Text()
	http.SetCookie(w, &http.Cookie{
		Name:     s.csrfCookieName(),
		Value:    v,
		Path:     "/",
		Secure:   s.secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
	return v
}

var errForm = errors.New("form token does not match")

// checkForm parses a posted form and returns its sealed field after checking
// the form token, or answers the request itself.
func (s *Server) checkForm(w http.ResponseWriter, r *http.Request, field string) (string, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.messagePage(w, r, http.StatusBadRequest, "This form could not be read", "")
		return "", false
	}
	sealed := r.PostFormValue(field)
	c, err := r.Cookie(s.csrfCookieName())
	if err != nil || sealed == "" || !s.keys.csrf.verifyMAC(r.PostFormValue("csrf"), c.Value, field, sealed) {
		s.log.Info().Err(errForm).Str("path", r.URL.Path).Msg("form refused")
		s.messagePage(w, r, http.StatusForbidden, "This form has expired",
			"The page was opened in another browser or its cookie is gone. Go back to the app and connect again.")
		return "", false
	}
	return sealed, true
}

func (s *Server) formToken(w http.ResponseWriter, r *http.Request, field, sealed string) string {
	return s.keys.csrf.mac(s.browserCookie(w, r), field, sealed)
}

func unix(t int64) time.Time { return time.Unix(t, 0) }
