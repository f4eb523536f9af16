package authserver

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// refreshToken is what a refresh token seals. Each use returns a new one
// with a fresh expiry, so a client in use stays signed in — until the
// family's end (Ends), a fixed time after the sign-in that began it, which
// every token refreshed from it carries unchanged: with nothing stored, a
// rotated-out token cannot be told from the current one, so a stolen one
// would otherwise live as long as someone keeps using it.
type refreshToken struct {
	ID       string `json:"j"`
	ClientID string `json:"c"`
	Scope    string `json:"o"`
	Resource string `json:"a"`
	Subject  string `json:"u"`
	Tenant   string `json:"t"`
	Key      []byte `json:"k,omitempty"` // see grant.Key
	Account  string `json:"i,omitempty"` // see grant.Account
	Expires  int64  `json:"e"`
	Ends     int64  `json:"f,omitempty"` // the family's end; 0 in tokens issued before families ended
}

// accessClaims are an access token's claims (RFC 9068).
type accessClaims struct {
	jwt.Claims
	Tenant   string `json:"mcpwrap_tenant"`
	Scope    string `json:"scope"`
	ClientID string `json:"client_id"`
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
}

// token is the token endpoint: authorization_code and refresh_token grants
// for public clients.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "the body is not a form")
		return
	}
	clientID := r.PostFormValue("client_id")
	if id, _, ok := r.BasicAuth(); ok && clientID == "" {
		// Some clients send a public client's id as Basic with an empty
		// password; there is no secret to check either way.
		clientID, _ = url.QueryUnescape(id)
	}
	// An unknown client hears invalid_client (401), which tells clients
	// such as Claude to register again.
	if clientID != "" {
		if _, err := s.client(r.Context(), clientID); err != nil {
			writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "the client is not registered here")
			return
		}
	}
	if !s.resourceOK(r.PostForm["resource"]) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_target", "resource must be "+s.opts.Resource)
		return
	}
	switch r.PostFormValue("grant_type") {
	case "authorization_code":
		s.redeemCode(w, r, clientID)
	case "refresh_token":
		s.refresh(w, r, clientID)
	case "":
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "grant_type is required")
	default:
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
	}
}

func (s *Server) redeemCode(w http.ResponseWriter, r *http.Request, clientID string) {
	var c authCode
	if err := s.keys.code.open(r.PostFormValue("code"), &c); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "the code is not valid")
		return
	}
	// Only the issuing instance knows whether the code was used: send the
	// request there, unless the proxy already did and it is gone.
	if c.Machine != "" && c.Machine != s.opts.MachineID {
		if r.Header.Get("Fly-Replay-Src") == "" {
			w.Header().Set("Fly-Replay", "instance="+c.Machine)
			writeOAuthError(w, http.StatusMisdirectedRequest, "temporarily_unavailable", "the code is redeemed on the instance that issued it")
			return
		}
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "the instance that issued the code is gone")
		return
	}
	now := s.now()
	if now.Unix() >= c.Expires {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "the code has expired")
		return
	}
	// Any attempt uses the code up, so a wrong verifier cannot be retried.
	fresh, err := s.codes.use(c.ID, unix(c.Expires).Add(time.Second), now)
	if err != nil {
		writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "too many codes in flight")
		return
	}
	if !fresh {
		s.log.Warn().Str("subject", c.Subject).Msg("a code was presented twice")
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "the code was already used")
		return
	}
	if clientID != "" && clientID != c.ClientID {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "the code was issued to another client")
		return
	}
	if uri := r.PostFormValue("redirect_uri"); uri != "" && uri != c.RedirectURI {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri differs from the authorization request's")
		return
	}
	verifier := r.PostFormValue("code_verifier")
	if !verifierOK(verifier) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "code_verifier must be 43 to 128 unreserved characters")
		return
	}
	sum := sha256.Sum256([]byte(verifier))
	if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(c.Challenge)) != 1 {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "code_verifier does not match the code_challenge")
		return
	}
	if clientID == "" {
		if _, err := s.client(r.Context(), c.ClientID); err != nil {
			writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "the client is not registered here")
			return
		}
	}
	s.issueTokens(w, refreshToken{
		ClientID: c.ClientID,
		Scope:    c.Scope,
		Resource: c.Resource,
		Subject:  c.Subject,
		Tenant:   c.Tenant,
		Key:      c.Key,
		Account:  c.Account,
		Ends:     now.Add(RefreshFamilyTTL).Unix(),
	})
}

// verifierOK checks RFC 7636 §4.1: 43 to 128 characters of [A-Za-z0-9-._~].
func verifierOK(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request, clientID string) {
	var rt refreshToken
	if err := s.keys.refresh.open(r.PostFormValue("refresh_token"), &rt); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "the refresh token is not valid")
		return
	}
	now := s.now()
	if now.Unix() >= rt.Expires {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "the refresh token has expired")
		return
	}
	if rt.Ends == 0 {
		// A token from before families ended: its family starts now.
		rt.Ends = now.Add(RefreshFamilyTTL).Unix()
	}
	if now.Unix() >= rt.Ends {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "the sign-in behind this refresh token is too old; sign in again")
		return
	}
	if clientID != "" && clientID != rt.ClientID {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "the refresh token was issued to another client")
		return
	}
	if clientID == "" {
		if _, err := s.client(r.Context(), rt.ClientID); err != nil {
			writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "the client is not registered here")
			return
		}
	}
	if !s.stillSignsIn(rt) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "the sign-in behind this refresh token is no longer allowed; sign in again")
		return
	}
	// A narrower scope may be asked; this server has one, so the grant
	// stays what it was.
	s.issueTokens(w, rt)
}

// stillSignsIn reports whether what signed in to make rt would still sign
// in as the same tenant: the same key, or an account the tenant still
// lists by either of its names. A refresh is where this server sees a sign-in again, so changing a
// tenant's token or users ends the sign-ins they made within one access
// token's lifetime, without any state kept.
func (s *Server) stillSignsIn(rt refreshToken) bool {
	if strings.HasPrefix(rt.Subject, "key:") {
		if s.opts.Tokens == nil || len(rt.Key) != sha256.Size {
			return false
		}
		p, ok := s.opts.Tokens.MatchDigest([sha256.Size]byte(rt.Key))
		return ok && p.Tenant == rt.Tenant
	}
	t, ok := s.tenantOf(rt.Subject, rt.Account)
	return ok && t.Name == rt.Tenant
}

// issueTokens answers with a new access token and a new refresh token for
// the same grant.
func (s *Server) issueTokens(w http.ResponseWriter, g refreshToken) {
	now := s.now()
	access, err := s.signAccessToken(g, now)
	if err != nil {
		s.log.Error().Err(err).Msg("signing an access token")
		writeOAuthError(w, http.StatusInternalServerError, "server_error", "")
		return
	}
	g.ID = randomID()
	g.Expires = min(now.Add(RefreshTokenTTL).Unix(), g.Ends)
	refresh, err := s.keys.refresh.seal(g)
	if err != nil {
		s.log.Error().Err(err).Msg("sealing a refresh token")
		writeOAuthError(w, http.StatusInternalServerError, "server_error", "")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, &tokenResponse{
		AccessToken:  access,
		TokenType:    "Bearer",
		ExpiresIn:    int64(AccessTokenTTL / time.Second),
		RefreshToken: refresh,
		Scope:        g.Scope,
	})
}

func (s *Server) signAccessToken(g refreshToken, now time.Time) (string, error) {
	key := s.keys.signing[0]
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: key.private},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", key.kid))
	if err != nil {
		return "", err
	}
	claims := accessClaims{
		Claims: jwt.Claims{
			Issuer:    s.opts.Issuer,
			Subject:   g.Subject,
			Audience:  jwt.Audience{g.Resource},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			Expiry:    jwt.NewNumericDate(now.Add(AccessTokenTTL)),
			ID:        randomID(),
		},
		Tenant:   g.Tenant,
		Scope:    g.Scope,
		ClientID: g.ClientID,
	}
	return jwt.Signed(signer).Claims(claims).Serialize()
}
