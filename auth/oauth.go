package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Leeway is the clock skew tolerated on a token's exp, nbf and iat.
const Leeway = 60 * time.Second

// DefaultAlgorithms are the signature algorithms accepted when none are
// configured: asymmetric only, so a public key can never double as an HMAC
// secret.
var DefaultAlgorithms = []string{oidc.RS256, oidc.ES256, oidc.EdDSA, oidc.PS256}

// asymmetric are the algorithms an allow-list may name.
var asymmetric = []string{
	oidc.RS256, oidc.RS384, oidc.RS512, oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.ES256, oidc.ES384, oidc.ES512, oidc.EdDSA,
}

// TenantClaim is the claim in which the built-in authorization server names
// the tenant it signed a user in as. It is trusted only in tokens verified
// with OAuthOptions.KeySet: any other issuer could write anything there.
const TenantClaim = "mcpwrap_tenant"

// ErrOptions marks OAuthOptions that cannot work.
var ErrOptions = errors.New("invalid OAuth options")

// OAuthOptions configure OAuth access-token validation.
type OAuthOptions struct {
	// PublicURL is the externally visible base URL, e.g.
	// https://my-mcp.fly.dev: scheme, host and an optional path prefix.
	PublicURL string
	// Path is the MCP endpoint's path. PublicURL + Path is the canonical
	// resource (RFC 8707) tokens must be issued for.
	Path string
	// Issuer is the authorization server's issuer identifier. Its metadata
	// (RFC 8414, or OpenID Connect discovery) names its JWKS and
	// introspection endpoint.
	Issuer string
	// KeySet, when set, holds the keys of the built-in authorization server
	// (Issuer is then that server): no discovery, and its tokens'
	// TenantClaim is trusted.
	KeySet oidc.KeySet
	// Audience, when set, is the one audience accepted instead of the
	// canonical resource and its variants.
	Audience string
	// Scopes are the scopes every token must carry.
	Scopes []string
	// UserClaim names the claim that identifies the user (default "sub").
	UserClaim string
	// Algorithms are the accepted signature algorithms (default
	// DefaultAlgorithms); symmetric ones are refused.
	Algorithms []string
	// IntrospectionClientID and IntrospectionClientSecret, when set, let
	// tokens that are not JWTs be checked at the issuer's RFC 7662
	// introspection endpoint.
	IntrospectionClientID     string
	IntrospectionClientSecret string
	// Tenants map users to tenants through their Users. nil means there is
	// no tenants file: every valid token is let in, as tenant "".
	Tenants *Tenants
	// ResourceName is the resource_name of the metadata document (default
	// "mcpwrap").
	ResourceName string
	// Client fetches metadata, keys and introspection answers (default: a
	// client with a 10 s timeout).
	Client *http.Client
}

// OAuth authenticates OAuth access tokens for one resource: JWTs against
// the issuer's keys, other tokens by introspection.
type OAuth struct {
	opts        OAuthOptions
	resource    string
	audiences   []string
	metadataURL string
	client      *http.Client
	cache       *introspectionCache
	jwksRefresh time.Duration

	mu        sync.Mutex // guards the fields below, and serializes discovery
	verifier  *oidc.IDTokenVerifier
	introURL  string // the introspection endpoint; "" when not in use
	triedAt   time.Time
	lastError error
}

// NewOAuth checks opts and prepares validation. It does not reach the
// issuer: that happens on Discover or on the first token.
func NewOAuth(opts OAuthOptions) (*OAuth, error) {
	if opts.UserClaim == "" {
		opts.UserClaim = "sub"
	}
	if len(opts.Algorithms) == 0 {
		opts.Algorithms = DefaultAlgorithms
	}
	if opts.ResourceName == "" {
		opts.ResourceName = "mcpwrap"
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 10 * time.Second}
	}
	base, err := url.Parse(opts.PublicURL)
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" || base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("%w: public URL %q is not an http(s) URL without query or fragment", ErrOptions, opts.PublicURL)
	}
	if !strings.HasPrefix(opts.Path, "/") {
		return nil, fmt.Errorf("%w: path %q must start with /", ErrOptions, opts.Path)
	}
	if u, err := url.Parse(opts.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%w: issuer %q is not an http(s) URL", ErrOptions, opts.Issuer)
	}
	for _, alg := range opts.Algorithms {
		if !slices.Contains(asymmetric, alg) {
			return nil, fmt.Errorf("%w: algorithm %q is not one of %s", ErrOptions, alg, strings.Join(asymmetric, ", "))
		}
	}
	for _, s := range opts.Scopes {
		if !isScopeToken(s) || s == "offline_access" {
			return nil, fmt.Errorf("%w: scope %q cannot be required", ErrOptions, s)
		}
	}
	if (opts.IntrospectionClientID == "") != (opts.IntrospectionClientSecret == "") {
		return nil, fmt.Errorf("%w: introspection needs both a client id and a client secret", ErrOptions)
	}
	if opts.KeySet != nil && opts.IntrospectionClientID != "" {
		return nil, fmt.Errorf("%w: the built-in server's tokens are never introspected", ErrOptions)
	}

	prefix := strings.TrimSuffix(base.String(), "/")
	o := &OAuth{
		opts:        opts,
		resource:    prefix + opts.Path,
		metadataURL: prefix + wellKnownResource + opts.Path,
		client:      opts.Client,
		cache:       newIntrospectionCache(introspectionCacheSize, introspectionCacheTTL),
		jwksRefresh: jwksRefresh,
	}
	if opts.Audience != "" {
		o.audiences = []string{opts.Audience}
	} else {
		// What real clients send as the resource indicator: the resource
		// itself, with a trailing slash, or just the base URL. Nothing else,
		// so that a token for another resource never fits.
		r := strings.TrimSuffix(o.resource, "/")
		o.audiences = []string{r, r + "/", prefix, prefix + "/"}
	}
	if opts.KeySet != nil {
		o.verifier = o.newVerifier(opts.KeySet)
	}
	return o, nil
}

// Resource is the canonical resource URI.
func (o *OAuth) Resource() string { return o.resource }

// Issuer is the authorization server tokens come from.
func (o *OAuth) Issuer() string { return o.opts.Issuer }

// Scopes are the scopes every token must carry.
func (o *OAuth) Scopes() []string { return slices.Clone(o.opts.Scopes) }

func (o *OAuth) newVerifier(keys oidc.KeySet) *oidc.IDTokenVerifier {
	return oidc.NewVerifier(o.opts.Issuer, keys, &oidc.Config{
		SupportedSigningAlgs: o.opts.Algorithms,
		// An access token's audience is the resource, not a client id, and
		// its times get a leeway go-oidc does not offer: claims are checked
		// below, with go-jose's validation.
		SkipClientIDCheck: true,
		SkipExpiryCheck:   true,
		SkipIssuerCheck:   true,
	})
}

// discoveryRetry is how long after a failed discovery the next request
// tries again rather than failing at once.
const discoveryRetry = 5 * time.Second

// ErrDiscovery marks a failure to read the issuer's metadata.
var ErrDiscovery = errors.New("cannot discover the authorization server")

// Discover reads the issuer's metadata now, so that a wrong issuer shows
// at start. Validation discovers by itself when this was not called or
// failed.
func (o *OAuth) Discover(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.discoverLocked(ctx)
}

func (o *OAuth) ready(ctx context.Context) (*oidc.IDTokenVerifier, string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.verifier == nil {
		if time.Since(o.triedAt) < discoveryRetry && o.lastError != nil {
			return nil, "", o.lastError
		}
		if err := o.discoverLocked(ctx); err != nil {
			return nil, "", err
		}
	}
	return o.verifier, o.introURL, nil
}

func (o *OAuth) discoverLocked(ctx context.Context) error {
	if o.verifier != nil {
		return nil
	}
	o.triedAt = time.Now()
	meta, err := fetchServerMetadata(ctx, o.client, o.opts.Issuer)
	if err != nil {
		o.lastError = fmt.Errorf("%w %s: %w", ErrDiscovery, o.opts.Issuer, err)
		return o.lastError
	}
	if o.opts.IntrospectionClientID != "" {
		if meta.IntrospectionEndpoint == "" {
			o.lastError = fmt.Errorf("%w %s: introspection is configured but its metadata names no introspection_endpoint", ErrDiscovery, o.opts.Issuer)
			return o.lastError
		}
		o.introURL = meta.IntrospectionEndpoint
	}
	if meta.JWKSURI == "" {
		// An issuer of opaque tokens only: every token is introspected.
		o.verifier = o.newVerifier(noKeys{})
	} else {
		// The key set refetches the JWKS when a token names a key it does
		// not hold: that is how the issuer's key rotation reaches us.
		ctx := oidc.ClientContext(context.Background(), o.jwksClient())
		o.verifier = o.newVerifier(oidc.NewRemoteKeySet(ctx, meta.JWKSURI))
	}
	o.lastError = nil
	return nil
}

// noKeys verifies nothing: the issuer publishes no keys.
type noKeys struct{}

func (noKeys) VerifySignature(context.Context, string) ([]byte, error) {
	return nil, errors.New("the issuer publishes no keys")
}

// Authenticate accepts a request bearing a valid access token.
func (o *OAuth) Authenticate(r *http.Request) (Principal, error) {
	token := Bearer(r)
	if token == "" {
		return Principal{}, o.refuse(http.StatusUnauthorized, "", "")
	}
	return o.Verify(r.Context(), token)
}

// Verify checks an access token and says whom it lets in. It fails with a
// *Refusal.
func (o *OAuth) Verify(ctx context.Context, token string) (Principal, error) {
	verifier, introURL, err := o.ready(ctx)
	if err != nil {
		return Principal{}, &Refusal{Status: http.StatusServiceUnavailable, Description: "the authorization server cannot be reached; try again later", Cause: err}
	}
	// A compact JWS has exactly three dot-separated parts; go-jose parses
	// it. Anything else can only be an opaque token.
	if strings.Count(token, ".") != 2 || introURL != "" && !o.isJWT(token) {
		if introURL == "" {
			return Principal{}, o.invalid("the token is not a JWT and cannot be introspected")
		}
		return o.introspect(ctx, introURL, token)
	}
	idt, err := verifier.Verify(ctx, token)
	if err != nil {
		return Principal{}, o.invalid("the token's signature cannot be verified")
	}
	if o.opts.KeySet != nil && !isAccessTokenType(token) {
		// The built-in server marks its access tokens (RFC 9068 §2.1), so
		// nothing else it might ever sign can pass for one.
		return Principal{}, o.invalid("the token is not an access token")
	}
	var c claims
	if err := idt.Claims(&c); err != nil {
		return Principal{}, o.invalid("the token's claims cannot be read")
	}
	var all map[string]any
	if err := idt.Claims(&all); err != nil {
		return Principal{}, o.invalid("the token's claims cannot be read")
	}
	if ref := o.checkClaims(c.Claims, true); ref != nil {
		return Principal{}, ref
	}
	return o.principal(c, all, o.opts.KeySet != nil)
}

// isJWT reports whether go-jose can parse token as a signed JWT with an
// allowed algorithm at all, without checking the signature. With
// introspection on, a token that is not one goes there instead.
func (o *OAuth) isJWT(token string) bool {
	_, err := jwt.ParseSigned(token, joseAlgorithms(o.opts.Algorithms))
	return err == nil
}

// isAccessTokenType reports whether a verified token's typ header says it
// is an access token (RFC 9068: "at+jwt", or in full "application/at+jwt").
func isAccessTokenType(token string) bool {
	jws, err := jose.ParseSignedCompact(token, joseAlgorithms(asymmetric))
	if err != nil || len(jws.Signatures) != 1 {
		return false
	}
	typ, _ := jws.Signatures[0].Header.ExtraHeaders[jose.HeaderType].(string)
	typ = strings.ToLower(typ)
	return typ == "at+jwt" || typ == "application/at+jwt"
}

func joseAlgorithms(names []string) []jose.SignatureAlgorithm {
	algs := make([]jose.SignatureAlgorithm, len(names))
	for i, a := range names {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	return algs
}

// claims are what a token or an introspection answer says.
type claims struct {
	jwt.Claims
	Scope  string          `json:"scope"`
	Scp    json.RawMessage `json:"scp"` // a list (or a string) some issuers use instead of scope
	Tenant *string         `json:"mcpwrap_tenant"`
}

func (c claims) scopes() []string {
	out := strings.Fields(c.Scope)
	var list []string
	var one string
	switch {
	case json.Unmarshal(c.Scp, &list) == nil:
		out = append(out, list...)
	case json.Unmarshal(c.Scp, &one) == nil:
		out = append(out, strings.Fields(one)...)
	}
	return out
}

// checkClaims checks issuer, audience and times. exp is required of a JWT
// (an introspection answer may leave it out: active is what counts there).
func (o *OAuth) checkClaims(c jwt.Claims, needExpiry bool) *Refusal {
	if needExpiry && c.Expiry == nil {
		return o.invalid("the token has no expiry")
	}
	err := c.ValidateWithLeeway(jwt.Expected{Issuer: o.opts.Issuer, AnyAudience: o.audiences}, Leeway)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jwt.ErrExpired):
		return o.invalid("the token has expired")
	case errors.Is(err, jwt.ErrNotValidYet), errors.Is(err, jwt.ErrIssuedInTheFuture):
		return o.invalid("the token is not valid yet")
	case errors.Is(err, jwt.ErrInvalidAudience):
		return o.invalid("the token was issued for another resource")
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return o.invalid("the token was issued by another authorization server")
	default:
		return o.invalid("the token's claims are not valid")
	}
}

// principal turns checked claims into who is let in: the scopes first
// (a client can fix those by asking again), then the user's tenant.
func (o *OAuth) principal(c claims, all map[string]any, builtIn bool) (Principal, error) {
	user, _ := all[o.opts.UserClaim].(string)
	if user == "" {
		return Principal{}, o.invalid("the token names no user in its " + o.opts.UserClaim + " claim")
	}
	if v := all["email_verified"]; (v == false || v == "false") && o.opts.UserClaim == "email" {
		// Some providers let a user type in any address: one nobody has
		// verified must not sign anyone in as the tenant that lists it.
		return Principal{}, &Refusal{
			Status:      http.StatusForbidden,
			Code:        "access_denied",
			Description: fmt.Sprintf("the email address %s is not verified", user),
		}
	}
	granted := c.scopes()
	for _, s := range o.opts.Scopes {
		if !slices.Contains(granted, s) {
			return Principal{}, o.refuse(http.StatusForbidden, "insufficient_scope", "the token lacks a scope this server requires")
		}
	}
	p := Principal{Subject: user}
	switch {
	case builtIn && c.Tenant != nil:
		// The built-in server has already decided the tenant.
		if *c.Tenant == "" {
			return p, nil
		}
		tn, ok := o.opts.Tenants.Named(*c.Tenant)
		if !ok {
			return Principal{}, noTenant(user)
		}
		p.Tenant, p.Env = tn.Name, tn.Env
	case o.opts.Tenants == nil:
		// No tenants file: every valid token is let in alike.
	default:
		tn, ok := o.opts.Tenants.ForIdentity(user)
		if !ok {
			return Principal{}, noTenant(user)
		}
		p.Tenant, p.Env = tn.Name, tn.Env
	}
	return p, nil
}

// noTenant refuses a user who signed in fine but whom no tenant lists. It
// carries no challenge: signing in again would change nothing.
func noTenant(user string) *Refusal {
	return &Refusal{
		Status:      http.StatusForbidden,
		Code:        "access_denied",
		Description: fmt.Sprintf("%s is signed in, but no tenant of this server lists that user", user),
	}
}

func (o *OAuth) invalid(description string) *Refusal {
	return o.refuse(http.StatusUnauthorized, "invalid_token", description)
}

// refuse builds a refusal with the challenge RFC 6750 and RFC 9728 ask for:
// where the resource metadata is, which scopes to ask for, and what was
// wrong with the token when one was sent.
func (o *OAuth) refuse(status int, code, description string) *Refusal {
	scope := strings.Join(o.opts.Scopes, " ")
	var b strings.Builder
	b.WriteString("Bearer ")
	if code == "insufficient_scope" {
		fmt.Fprintf(&b, `error="insufficient_scope", scope=%q, resource_metadata=%q`, scope, o.metadataURL)
	} else {
		fmt.Fprintf(&b, "resource_metadata=%q", o.metadataURL)
		if scope != "" {
			fmt.Fprintf(&b, ", scope=%q", scope)
		}
		if code != "" {
			fmt.Fprintf(&b, ", error=%q, error_description=%q", code, description)
		}
	}
	return &Refusal{Status: status, Code: code, Description: description, Challenge: b.String()}
}

// isScopeToken reports whether s is a scope-token of RFC 6749 §3.3, which
// also makes it safe inside a quoted challenge parameter.
func isScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < 0x21 || c == '"' || c == '\\' || c > 0x7e {
			return false
		}
	}
	return true
}
