package proxy

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcpwrap/mcpwrap/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"github.com/rs/zerolog"
	"golang.org/x/oauth2"
)

// signInWindow is how long a sign-in waits for the browser to come back.
// Requests give up sooner (--retry-for); the sign-in goes on, so a user who
// is slower than that still ends up signed in.
const signInWindow = 10 * time.Minute

// expiryLeeway treats an access token as expired a little early, so that it
// does not run out on its way to the remote.
const expiryLeeway = 30 * time.Second

// errSignIn means the stored grant cannot be used any more: only a sign-in
// in the browser helps.
var errSignIn = errors.New("sign-in needed")

// signInNeededError answers a request that waited for a sign-in in vain.
type signInNeededError struct{ authURL string }

func (e *signInNeededError) Error() string {
	msg := "sign-in needed: the remote asks for OAuth and no one has signed in yet; "
	if e.authURL != "" {
		return msg + "finish signing in at " + e.authURL + " (also printed on stderr), or run `mcpwrap proxy login URL`"
	}
	return msg + "run `mcpwrap proxy login URL`"
}

// errRejectedAfterSignIn is a remote that refused the token the shim had
// just obtained for it by a refresh or a sign-in; trying again would only
// loop.
var errRejectedAfterSignIn = &rpcError{
	code: jsonrpc.CodeInternalError,
	msg:  "the remote refused an OAuth access token the shim had just obtained for it (401 Unauthorized); try `mcpwrap proxy logout URL` and sign in again",
}

// oauth signs the shim in to a remote that asks for OAuth, and keeps the
// access token fresh. It holds no tokens of its own beyond a copy of the
// store's: the store is the truth, shared with every shim for the remote.
type oauth struct {
	remote *url.URL
	key    string // the record's name in the store: the remote URL
	store  *store
	client *http.Client // for metadata, registration and token requests
	log    zerolog.Logger
	redact *redactor
	open   func(authURL string) // shows the user the authorization URL
	wait   time.Duration        // how long a request waits for a sign-in
	own    preregistered        // the user's own client, if any

	// base and wg own the sign-ins run in the background; run sets them.
	base context.Context
	wg   *sync.WaitGroup

	mu      sync.Mutex // guards the fields below
	cached  *grant     // the store's current grant as last seen
	signing *attempt   // the sign-in under way, if any
}

// preregistered is a client the user registered ahead of time, or the URL
// of a client ID metadata document.
type preregistered struct {
	ClientID, Secret, MetadataURL string
	// Issuer is the authorization server the client is registered at
	// (--client-issuer); the client is used with no other.
	Issuer string
}

// errClientIssuer is a remote that sends the shim to an authorization
// server its own client (and secret) is not registered at.
var errClientIssuer = errors.New("the pre-registered client is not for this authorization server")

// allows reports whether the client may be used with issuer, the
// authorization server remote sent the shim to: the one named with it, or
// without a name, any for a client without a secret and for one with a
// secret only a server on the remote's own origin — a remote must not be
// able to send the secret wherever it likes.
func (p preregistered) allows(issuer string, remote *url.URL) error {
	switch {
	case p.Issuer != "":
		if strings.TrimSuffix(p.Issuer, "/") == strings.TrimSuffix(issuer, "/") {
			return nil
		}
		return fmt.Errorf("%w: the remote sent the shim to %s; --client-id is registered at %s (--client-issuer)", errClientIssuer, issuer, p.Issuer)
	case p.Secret != "":
		if u, err := url.Parse(issuer); err == nil && sameOrigin(u, remote) {
			return nil
		}
		return fmt.Errorf("%w: the remote sent the shim to %s, not on its own origin; a --client-secret goes only to the authorization server named with --client-issuer, or without one to the remote's origin", errClientIssuer, issuer)
	}
	return nil
}

// attempt is one sign-in in the browser, shared by every request that
// waits for it.
type attempt struct {
	done    chan struct{}
	err     error  // set before done closes
	authURL string // set once known, under oauth.mu
}

// current returns the grant to use, reading the store once.
func (o *oauth) current() (*grant, error) {
	o.mu.Lock()
	g := o.cached
	o.mu.Unlock()
	if g != nil {
		return g, nil
	}
	r, err := o.store.load(o.key)
	if err != nil {
		return nil, err
	}
	g = r.current()
	o.remember(g)
	return g, nil
}

// remember keeps a copy of g as the current grant, and its secrets in the
// redactor.
func (o *oauth) remember(g *grant) {
	var c *grant
	if g != nil {
		cp := *g
		c = &cp
		o.redact.add(g.AccessToken, g.RefreshToken, g.ClientSecret)
	}
	o.mu.Lock()
	o.cached = c
	o.mu.Unlock()
}

func expired(g *grant) bool {
	return !g.Expiry.IsZero() && time.Now().Add(expiryLeeway).After(g.Expiry)
}

// accessToken returns the token to send, refreshing it first when it has
// run out. It returns "" when there is none: the remote's 401 then starts a
// sign-in.
func (o *oauth) accessToken(ctx context.Context) (string, error) {
	g, err := o.current()
	if err != nil || g == nil || g.AccessToken == "" {
		return "", err
	}
	if !expired(g) {
		return g.AccessToken, nil
	}
	tok, err := o.refresh(ctx, g.AccessToken)
	if errors.Is(err, errSignIn) {
		return "", nil
	}
	return tok, err
}

// refresh replaces the access token the remote refused (or that ran out),
// under the store's lock. Another shim may have done it already; then its
// token is used and the refresh token, which rotates, is left alone.
func (o *oauth) refresh(ctx context.Context, stale string) (string, error) {
	var fresh *grant
	err := o.store.update(o.key, func(r *record) (bool, error) {
		g := r.current()
		if g == nil {
			return false, errSignIn
		}
		if g.AccessToken != "" && g.AccessToken != stale && !expired(g) {
			fresh = g
			return false, nil
		}
		if g.RefreshToken == "" {
			return false, errSignIn
		}
		if o.own.Secret != "" && subtle.ConstantTimeCompare([]byte(g.ClientSecret), []byte(o.own.Secret)) == 1 {
			if err := o.own.allows(g.Issuer, o.remote); err != nil {
				// Kept by a sign-in from before the client was bound to
				// its server: the secret does not go there again.
				o.log.Warn().Err(err).Msg("not refreshing with the client secret; signing in again")
				delete(r.Grants, r.Current)
				return true, errSignIn
			}
		}
		cctx := context.WithValue(ctx, oauth2.HTTPClient, withResource(o.client, g.TokenURL, g.Resource))
		tok, err := g.config().TokenSource(cctx, &oauth2.Token{RefreshToken: g.RefreshToken}).Token()
		var re *oauth2.RetrieveError
		switch {
		case errors.As(err, &re) && (re.ErrorCode == "invalid_grant" || re.ErrorCode == "invalid_client" ||
			re.ErrorCode == "unauthorized_client" || re.ErrorCode == "invalid_target"):
			// The registration goes with the tokens. invalid_grant does not
			// prove the server still knows the client: a server may look
			// at the refresh token first (mcpwrap's own does, and after a
			// key rotation both are void), and a stale client id strands
			// the user on the server's error page, never to come back to
			// the callback. A new registration costs one request.
			o.log.Info().Str("error", re.ErrorCode).Msg("the authorization server refused the refresh; registering and signing in again")
			delete(r.Grants, r.Current)
			return true, errSignIn
		case err != nil:
			return false, fmt.Errorf("refresh the access token: %w", err)
		}
		g.AccessToken, g.TokenType, g.Expiry = tok.AccessToken, tok.TokenType, tok.Expiry
		if tok.RefreshToken != "" {
			g.RefreshToken = tok.RefreshToken
		}
		fresh = g
		o.log.Info().Time("expiry", tok.Expiry).Msg("refreshed the access token")
		return true, nil
	})
	if errors.Is(err, errSignIn) {
		o.remember(fresh)
		return "", errSignIn
	}
	if err != nil {
		return "", err
	}
	o.remember(fresh)
	return fresh.AccessToken, nil
}

// wantsAuth reports a response that the authorization flow can fix: a 401,
// or a 403 asking for more scope (step-up).
func wantsAuth(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return true
	case http.StatusForbidden:
		cs, _ := oauthex.ParseWWWAuthenticate(resp.Header.Values("WWW-Authenticate"))
		for _, c := range cs {
			if c.Scheme == "bearer" && c.Params["error"] == "insufficient_scope" {
				return true
			}
		}
	}
	return false
}

// recover deals with the remote refusing sent: a refresh when that can
// help, else a sign-in, waited for at most o.wait. A nil return means the
// request should go again.
func (o *oauth) recover(ctx context.Context, status int, header http.Header, sent string) error {
	if status == http.StatusUnauthorized {
		if sent != "" {
			_, err := o.refresh(ctx, sent)
			if !errors.Is(err, errSignIn) {
				return err
			}
		} else {
			// Another shim may have signed in since this one looked.
			o.remember(nil)
			if g, err := o.current(); err == nil && g != nil && g.AccessToken != "" && !expired(g) {
				return nil
			}
		}
	}
	a := o.startSignIn(status, header)
	t := time.NewTimer(o.wait)
	defer t.Stop()
	select {
	case <-a.done:
		return a.err
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		o.mu.Lock()
		u := a.authURL
		o.mu.Unlock()
		return &rpcError{code: jsonrpc.CodeInternalError, msg: (&signInNeededError{authURL: u}).Error()}
	}
}

// startSignIn returns the sign-in under way, or starts one. It runs on its
// own, not on the request's context: the user may finish after the request
// has given up.
func (o *oauth) startSignIn(status int, header http.Header) *attempt {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.signing != nil {
		return o.signing
	}
	a := &attempt{done: make(chan struct{})}
	o.signing = a
	o.wg.Go(func() {
		ctx, cancel := context.WithTimeout(o.base, signInWindow)
		defer cancel()
		err := o.signIn(ctx, status, header, a)
		if err != nil {
			o.log.Warn().Err(err).Msg("sign-in failed")
		}
		o.mu.Lock()
		o.signing = nil
		a.err = err
		o.mu.Unlock()
		close(a.done)
	})
	return a
}

// signIn runs the authorization-code flow with the SDK's handler: it finds
// the authorization server, registers (or reuses the stored registration),
// has the user sign in through the browser and the loopback listener, and
// saves what it got.
func (o *oauth) signIn(ctx context.Context, status int, header http.Header, a *attempt) error {
	challenges, _ := oauthex.ParseWWWAuthenticate(header.Values("WWW-Authenticate"))
	issuer, err := o.discover(ctx, challenges)
	if err != nil {
		return err
	}
	rec, err := o.store.load(o.key)
	if err != nil {
		return err
	}
	var reg *grant
	if rec != nil && rec.Grants != nil {
		reg = rec.Grants[issuer]
	}
	if o.own.ClientID != "" && (reg == nil || reg.ClientID != o.own.ClientID) {
		// The user's own registration; its redirect URI is the server's
		// business (loopback ports are free to vary, RFC 8252 7.3).
		reg = nil
	}
	if o.own.ClientID != "" {
		if err := o.own.allows(issuer, o.remote); err != nil {
			return err
		}
	}
	var reuse string
	if reg != nil && reg.ClientID != "" {
		reuse = reg.RedirectURI
	}
	cb, err := listenCallback(reuse, o.redact)
	if err != nil && reuse != "" {
		// The port the registration names is taken: register anew.
		reg = nil
		cb, err = listenCallback("", o.redact)
	}
	if err != nil {
		return err
	}
	defer cb.close()

	var got struct {
		cfg      *oauth2.Config
		tok      *oauth2.Token
		resource string // the resource indicator the sign-in named
	}
	hc := &auth.AuthorizationCodeHandlerConfig{
		RedirectURL:         cb.redirectURI,
		Client:              o.client,
		RequestRefreshToken: true,
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			o.mu.Lock()
			a.authURL = args.URL
			o.mu.Unlock()
			if u, err := url.Parse(args.URL); err == nil {
				got.resource = u.Query().Get("resource")
			}
			if err := cb.expect(args.URL); err != nil {
				return nil, err
			}
			o.open(args.URL)
			return cb.wait(ctx)
		},
		NewTokenSource: func(_ context.Context, c *oauth2.Config, tok *oauth2.Token) (oauth2.TokenSource, error) {
			got.cfg, got.tok = c, tok
			return oauth2.StaticTokenSource(tok), nil
		},
	}
	if o.own.MetadataURL != "" {
		// Used when the server takes client ID metadata documents; else
		// the SDK goes on to the registrations below.
		hc.ClientIDMetadataDocumentConfig = &auth.ClientIDMetadataDocumentConfig{URL: o.own.MetadataURL}
	}
	if reg == nil && o.own.ClientID != "" {
		reg = &grant{ClientID: o.own.ClientID, ClientSecret: o.own.Secret}
	}
	if reg != nil && reg.ClientID != "" {
		creds := &oauthex.ClientCredentials{ClientID: reg.ClientID}
		if reg.Issuer != "" || o.own.ClientID != "" {
			// The SDK finds the server again; this makes it refuse one
			// other than the server checked above.
			creds.Issuer = issuer
		}
		if reg.ClientSecret != "" {
			creds.ClientSecretAuth = &oauthex.ClientSecretAuth{ClientSecret: reg.ClientSecret}
		}
		hc.PreregisteredClient = creds
		if status == http.StatusForbidden {
			// Step-up: ask for what the remote wants on top of what was
			// granted, not instead of it.
			granted := reg.Scopes
			hc.ScopeFilter = func(want []string) []string {
				out := slices.Clone(granted)
				for _, s := range want {
					if !slices.Contains(out, s) {
						out = append(out, s)
					}
				}
				return out
			}
		}
	} else {
		hc.DynamicClientRegistrationConfig = &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			RedirectURIs:            []string{cb.redirectURI},
			TokenEndpointAuthMethod: "none",
			GrantTypes:              []string{"authorization_code", "refresh_token"},
			ResponseTypes:           []string{"code"},
			ClientName:              "mcpwrap proxy",
		}}
	}
	h, err := auth.NewAuthorizationCodeHandler(hc)
	if err != nil {
		return fmt.Errorf("sign-in: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.remote.String(), http.NoBody)
	if err != nil {
		return fmt.Errorf("sign-in: %w", err)
	}
	resp := &http.Response{StatusCode: status, Header: header, Body: http.NoBody, Request: req}
	if err := h.Authorize(ctx, req, resp); err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_client" && reg != nil {
			// The stored registration is gone from the server; forget it,
			// so that the next sign-in registers anew.
			_ = o.store.update(o.key, func(r *record) (bool, error) {
				delete(r.Grants, issuer)
				return true, nil
			})
		}
		return fmt.Errorf("sign-in: %w", err)
	}
	if got.tok == nil {
		return errors.New("sign-in: the authorization server gave no token")
	}
	if got.resource == "" {
		got.resource = o.remote.String()
	}
	g := &grant{
		Issuer:       issuer,
		Resource:     got.resource,
		AuthURL:      got.cfg.Endpoint.AuthURL,
		TokenURL:     got.cfg.Endpoint.TokenURL,
		ClientID:     got.cfg.ClientID,
		ClientSecret: got.cfg.ClientSecret,
		AuthStyle:    int(got.cfg.Endpoint.AuthStyle),
		RedirectURI:  cb.redirectURI,
		Scopes:       got.cfg.Scopes,
		AccessToken:  got.tok.AccessToken,
		TokenType:    got.tok.TokenType,
		RefreshToken: got.tok.RefreshToken,
		Expiry:       got.tok.Expiry,
	}
	o.redact.add(g.AccessToken, g.RefreshToken, g.ClientSecret)
	err = o.store.update(o.key, func(r *record) (bool, error) {
		r.Current = issuer
		r.Grants[issuer] = g
		return true, nil
	})
	if err != nil {
		return err
	}
	o.remember(g)
	o.log.Info().Str("issuer", issuer).Str("store", o.store.v.where()).Msg("signed in")
	return nil
}

// discover finds the authorization server the remote trusts, the way the
// SDK's handler will: the challenge's resource_metadata, then the
// well-known places, then the remote's origin as its own server (the
// 2025-03-26 fallback). The issuer names the stored registration.
func (o *oauth) discover(ctx context.Context, challenges []oauthex.Challenge) (string, error) {
	resource := o.remote.String()
	origin := &url.URL{Scheme: o.remote.Scheme, Host: o.remote.Host}
	type place struct{ meta, resource string }
	var places []place
	for _, c := range challenges {
		if u := c.Params["resource_metadata"]; u != "" {
			places = append(places, place{u, resource})
			break
		}
	}
	withPath := *origin
	withPath.Path = "/.well-known/oauth-protected-resource/" + strings.TrimLeft(o.remote.Path, "/")
	root := *origin
	root.Path = "/.well-known/oauth-protected-resource"
	places = append(places, place{withPath.String(), resource}, place{root.String(), origin.String()})
	issuer := origin.String()
	for _, p := range places {
		prm, err := oauthex.GetProtectedResourceMetadata(ctx, p.meta, p.resource, o.client)
		if err == nil && prm != nil && len(prm.AuthorizationServers) > 0 {
			issuer = prm.AuthorizationServers[0]
			break
		}
	}
	asm, err := auth.GetAuthServerMetadata(ctx, issuer, o.client)
	if err != nil {
		return "", fmt.Errorf("authorization server metadata: %w", err)
	}
	if asm != nil && asm.Issuer != "" {
		issuer = asm.Issuer
	}
	return issuer, nil
}

// withResource is c, with the resource indicator (RFC 8707) added to the
// form of every POST to tokenURL: x/oauth2 sends none with a refresh, and
// without it an authorization server may issue a token for another
// audience than the remote, or refuse.
func withResource(c *http.Client, tokenURL, resource string) *http.Client {
	if resource == "" {
		return c
	}
	out := *c
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	out.Transport = &resourceParam{next: next, tokenURL: tokenURL, resource: resource}
	return &out
}

type resourceParam struct {
	next               http.RoundTripper
	tokenURL, resource string
}

func (p *resourceParam) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || req.Body == nil || req.URL.String() != p.tokenURL {
		return p.next.RoundTrip(req)
	}
	b, err := io.ReadAll(io.LimitReader(req.Body, 64<<10))
	req.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("token request: %w", err)
	}
	form, err := url.ParseQuery(string(b))
	if err != nil {
		return nil, fmt.Errorf("token request: %w", err)
	}
	form.Set("resource", p.resource)
	body := form.Encode()
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(strings.NewReader(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
	out.ContentLength = int64(len(body))
	return p.next.RoundTrip(out)
}
