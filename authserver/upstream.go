package authserver

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// upstreamState is one sign-in at an upstream provider. It lives sealed in a
// cookie of the browser that started it; only its random State travels in
// the URL, and it is single-use on the instance that issued it.
type upstreamState struct {
	ID       string `json:"j"`
	Machine  string `json:"m,omitempty"`
	Provider string `json:"p"`
	State    string `json:"s"`
	Verifier string `json:"v"`
	Nonce    string `json:"n,omitempty"`
	Request  string `json:"q"` // the sealed authRequest
	Expires  int64  `json:"e"`
}

var errUpstream = errors.New("upstream sign-in failed")

type githubProvider struct {
	authURL, tokenURL, userURL string
	config                     oauth2.Config
}

func newGitHub(g GitHub) *githubProvider {
	base := strings.TrimSuffix(g.URL, "/")
	api := base + "/api/v3"
	if base == "" || base == "https://github.com" {
		base, api = "https://github.com", "https://api.github.com"
	}
	p := &githubProvider{
		authURL:  base + "/login/oauth/authorize",
		tokenURL: base + "/login/oauth/access_token",
		userURL:  api + "/user",
	}
	p.config = oauth2.Config{
		ClientID:     g.ClientID,
		ClientSecret: g.ClientSecret,
		Endpoint:     oauth2.Endpoint{AuthURL: p.authURL, TokenURL: p.tokenURL, AuthStyle: oauth2.AuthStyleInParams},
	}
	return p
}

type oidcProvider struct {
	opts OIDC

	mu sync.Mutex // guards p
	p  *oidc.Provider
}

func newOIDC(o OIDC) *oidcProvider { return &oidcProvider{opts: o} }

func (o *oidcProvider) label() string {
	if o.opts.Name != "" {
		return o.opts.Name
	}
	return "single sign-on"
}

// prefix is the identity prefix: google: for Google's issuer, oidc: for any other.
func (o *oidcProvider) prefix() string {
	if strings.TrimSuffix(o.opts.Issuer, "/") == "https://accounts.google.com" {
		return "google:"
	}
	return "oidc:"
}

// provider discovers the issuer on first use and keeps it; a failure is
// retried on the next sign-in rather than at startup, so a provider that is
// down does not keep mcpwrap from starting.
func (o *oidcProvider) provider(ctx context.Context, hc *http.Client) (*oidc.Provider, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.p != nil {
		return o.p, nil
	}
	if hc != nil {
		ctx = oidc.ClientContext(ctx, hc)
	}
	p, err := oidc.NewProvider(ctx, o.opts.Issuer)
	if err != nil {
		return nil, fmt.Errorf("%w: discovering %s: %w", errUpstream, o.opts.Issuer, err)
	}
	o.p = p
	return p, nil
}

func (o *oidcProvider) config(p *oidc.Provider, redirect string) oauth2.Config {
	return oauth2.Config{
		ClientID:     o.opts.ClientID,
		ClientSecret: o.opts.ClientSecret,
		Endpoint:     p.Endpoint(),
		RedirectURL:  redirect,
		Scopes:       []string{oidc.ScopeOpenID, "email"},
	}
}

func (s *Server) upstreamCookieName() string {
	if s.secure {
		return "__Host-mcpwrap-upstream"
	}
	return "mcpwrap-upstream"
}

// startUpstream sends the browser to GitHub or the OIDC provider, with PKCE
// and a state (and for OIDC a nonce) of its own.
func (s *Server) startUpstream(w http.ResponseWriter, r *http.Request) {
	_, sealedReq, ok := s.openRequest(w, r)
	if !ok {
		return
	}
	st := upstreamState{
		ID:       randomID(),
		Machine:  s.opts.MachineID,
		Provider: r.PostFormValue("provider"),
		State:    randomID(),
		Verifier: oauth2.GenerateVerifier(),
		Request:  sealedReq,
		Expires:  s.now().Add(signInTTL).Unix(),
	}
	var authURL string
	switch {
	case st.Provider == "github" && s.github != nil:
		cfg := s.github.config
		cfg.RedirectURL = s.endpoint("/callback/github")
		authURL = cfg.AuthCodeURL(st.State, oauth2.S256ChallengeOption(st.Verifier))
	case st.Provider == "oidc" && s.oidc != nil:
		p, err := s.oidc.provider(r.Context(), s.opts.HTTPClient)
		if err != nil {
			s.log.Warn().Err(err).Msg("upstream sign-in unavailable")
			s.messagePage(w, r, http.StatusBadGateway, "Sign-in with "+s.oidc.label()+" is unavailable", "Try again in a moment.")
			return
		}
		st.Nonce = randomID()
		cfg := s.oidc.config(p, s.endpoint("/callback/oidc"))
		authURL = cfg.AuthCodeURL(st.State, oauth2.S256ChallengeOption(st.Verifier), oidc.Nonce(st.Nonce))
	default:
		s.messagePage(w, r, http.StatusBadRequest, "This sign-in method is not available", "")
		return
	}
	sealed, err := s.keys.upstream.seal(st)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     s.upstreamCookieName(),
		Value:    sealed,
		Path:     "/",
		MaxAge:   int(signInTTL / time.Second),
		Secure:   s.secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, authURL, http.StatusSeeOther)
}

// finishUpstream checks a callback against the browser's state cookie and
// that its state is not used up. It answers the request itself when that
// fails. The state is used up by useState, once the provider has redeemed
// the code: anyone can start a sign-in and come back with a made-up code,
// and such callbacks must not fill the set of used states.
func (s *Server) finishUpstream(w http.ResponseWriter, r *http.Request, provider string) (upstreamState, authRequest, bool) {
	var st upstreamState
	c, err := r.Cookie(s.upstreamCookieName())
	if err != nil || s.keys.upstream.open(c.Value, &st) != nil || st.Provider != provider ||
		subtle.ConstantTimeCompare([]byte(st.State), []byte(r.URL.Query().Get("state"))) != 1 {
		s.messagePage(w, r, http.StatusBadRequest, "This sign-in is not valid",
			"It was started in another browser, or it was already finished. Go back to the app and connect again.")
		return st, authRequest{}, false
	}
	if st.Machine != "" && st.Machine != s.opts.MachineID && r.Header.Get("Fly-Replay-Src") == "" {
		w.Header().Set("Fly-Replay", "instance="+st.Machine)
		s.messagePage(w, r, http.StatusMisdirectedRequest, "One moment", "This sign-in continues on the server instance that started it.")
		return st, authRequest{}, false
	}
	http.SetCookie(w, &http.Cookie{Name: s.upstreamCookieName(), Value: "", Path: "/", MaxAge: -1, Secure: s.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	now := s.now()
	if now.Unix() >= st.Expires {
		s.expiredPage(w, r)
		return st, authRequest{}, false
	}
	if s.states.used(st.ID, now) {
		s.alreadyUsedPage(w, r)
		return st, authRequest{}, false
	}
	var req authRequest
	if err := s.keys.request.open(st.Request, &req); err != nil || now.Unix() >= req.Expires {
		s.expiredPage(w, r)
		return st, authRequest{}, false
	}
	if e := r.URL.Query().Get("error"); e != "" {
		// The person cancelled at the provider, or it refused them: the
		// app hears access_denied and can offer to try again.
		s.log.Info().Str("provider", provider).Msg("upstream sign-in cancelled")
		s.redirect(w, r, req, url.Values{"error": {"access_denied"}, "error_description": {"sign-in at the identity provider did not complete"}})
		return st, authRequest{}, false
	}
	return st, req, true
}

// useState uses st up, after the provider redeemed the code it came back
// with, so that each entry in the set stands for a finished sign-in. It
// answers the request itself when st was used already (two callbacks raced
// with one code), or when the set is full.
func (s *Server) useState(w http.ResponseWriter, r *http.Request, st upstreamState) bool {
	fresh, err := s.states.use(st.ID, unix(st.Expires).Add(time.Second), s.now())
	switch {
	case err != nil:
		s.log.Warn().Err(err).Msg("upstream sign-in refused")
		s.messagePage(w, r, http.StatusServiceUnavailable, "Too many sign-ins at once", "Try again in a few minutes.")
		return false
	case !fresh:
		s.alreadyUsedPage(w, r)
		return false
	}
	return true
}

func (s *Server) alreadyUsedPage(w http.ResponseWriter, r *http.Request) {
	s.messagePage(w, r, http.StatusBadRequest, "This sign-in was already used", "Go back to the app and connect again.")
}

func (s *Server) upstreamContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	if s.opts.HTTPClient != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, s.opts.HTTPClient)
	}
	return ctx, cancel
}

func (s *Server) githubCallback(w http.ResponseWriter, r *http.Request) {
	if s.github == nil {
		http.NotFound(w, r)
		return
	}
	st, req, ok := s.finishUpstream(w, r, "github")
	if !ok {
		return
	}
	ctx, cancel := s.upstreamContext(r)
	defer cancel()
	user, err := s.githubUser(ctx, st, r.URL.Query().Get("code"))
	if err != nil {
		s.log.Warn().Err(err).Msg("GitHub sign-in failed")
		s.messagePage(w, r, http.StatusBadGateway, "Sign-in with GitHub failed", "Go back to the app and connect again.")
		return
	}
	if !s.useState(w, r, st) {
		return
	}
	// GitHub logins are case-insensitive; identities are lower case. The
	// login may pass to someone else after a rename; the id never does.
	s.signedIn(w, r, req, "github:"+strings.ToLower(user.Login), "github:id:"+strconv.FormatInt(user.ID, 10))
}

// githubAccount is what GitHub's /user says about who signed in.
type githubAccount struct {
	Login string `json:"login"`
	ID    int64  `json:"id"`
}

// githubUser redeems the code and asks GitHub who signed in.
func (s *Server) githubUser(ctx context.Context, st upstreamState, code string) (githubAccount, error) {
	var user githubAccount
	cfg := s.github.config
	cfg.RedirectURL = s.endpoint("/callback/github")
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		return user, fmt.Errorf("%w: exchanging the code: %w", errUpstream, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.github.userURL, nil)
	if err != nil {
		return user, fmt.Errorf("%w: %w", errUpstream, err)
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	resp, err := cfg.Client(ctx, tok).Do(req)
	if err != nil {
		return user, fmt.Errorf("%w: reading the user: %w", errUpstream, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return user, fmt.Errorf("%w: reading the user: %s", errUpstream, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&user); err != nil {
		return user, fmt.Errorf("%w: reading the user: %w", errUpstream, err)
	}
	// A login never holds a colon; one that did could pass for the
	// github:id: form.
	if user.Login == "" || strings.Contains(user.Login, ":") || user.ID <= 0 {
		return user, fmt.Errorf("%w: the user has no login or id", errUpstream)
	}
	return user, nil
}

func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request) {
	if s.oidc == nil {
		http.NotFound(w, r)
		return
	}
	st, req, ok := s.finishUpstream(w, r, "oidc")
	if !ok {
		return
	}
	ctx, cancel := s.upstreamContext(r)
	defer cancel()
	email, err := s.oidcEmail(ctx, st, r.URL.Query().Get("code"))
	if err != nil {
		s.log.Warn().Err(err).Msg("OIDC sign-in failed")
		s.messagePage(w, r, http.StatusBadGateway, "Sign-in with "+s.oidc.label()+" failed", "Go back to the app and connect again.")
		return
	}
	if !s.useState(w, r, st) {
		return
	}
	s.signedIn(w, r, req, s.oidc.prefix()+email, "")
}

// oidcEmail redeems the code and returns the verified email of the ID token.
func (s *Server) oidcEmail(ctx context.Context, st upstreamState, code string) (string, error) {
	p, err := s.oidc.provider(ctx, s.opts.HTTPClient)
	if err != nil {
		return "", err
	}
	cfg := s.oidc.config(p, s.endpoint("/callback/oidc"))
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		return "", fmt.Errorf("%w: exchanging the code: %w", errUpstream, err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return "", fmt.Errorf("%w: no id_token", errUpstream)
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: s.oidc.opts.ClientID}).Verify(ctx, raw)
	if err != nil {
		return "", fmt.Errorf("%w: %w", errUpstream, err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(st.Nonce)) != 1 {
		return "", fmt.Errorf("%w: the ID token's nonce is not this sign-in's", errUpstream)
	}
	var claims struct {
		Email    string `json:"email"`
		Verified any    `json:"email_verified"`
		HD       string `json:"hd"`
	}
	if err := idt.Claims(&claims); err != nil {
		return "", fmt.Errorf("%w: %w", errUpstream, err)
	}
	// Some providers send the flag as a string.
	if claims.Email == "" || (claims.Verified != true && claims.Verified != "true") {
		return "", fmt.Errorf("%w: no verified email in the ID token", errUpstream)
	}
	email := strings.ToLower(claims.Email)
	if s.oidc.prefix() == "google:" && !googleVouches(email, claims.HD) {
		return "", fmt.Errorf("%w: Google does not manage the domain of %s (no matching hd claim)", errUpstream, email)
	}
	return email, nil
}

// googleVouches reports whether Google is the authority for an email
// address: its own domains, or a domain whose Workspace account issued the
// token (the hd claim). Anyone can make a Google account for an address at
// any other domain and have it verified once, so without hd such an
// address says nothing about who holds it today — and google:*@corp.com
// must not admit it.
func googleVouches(email, hd string) bool {
	_, domain, ok := strings.Cut(email, "@")
	if !ok || domain == "" {
		return false
	}
	if domain == "gmail.com" || domain == "googlemail.com" {
		return true
	}
	return hd != "" && strings.EqualFold(hd, domain)
}
