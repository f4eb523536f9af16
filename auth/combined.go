package auth

import "net/http"

// Combined lets in both kinds of client: those holding a tenant's static
// token (Claude Code, VS Code and the stdio shim send one as a header) and
// those signed in by OAuth (Claude.ai, ChatGPT, and anyone the issuer
// knows).
type Combined struct {
	Tokens *Tokens // the static tokens; nil for none
	OAuth  *OAuth  // nil without OAuth: static tokens only
}

// Authenticate tries the static tokens first: a token equal to one of them
// is that tenant. Any other token must be a valid access token. Without
// OAuth, the challenge stays the static tokens' own.
func (c *Combined) Authenticate(r *http.Request) (Principal, error) {
	tokens := c.Tokens
	if tokens == nil {
		tokens = NewTokens(nil)
	}
	if c.OAuth == nil {
		return tokens.Authenticate(r)
	}
	if p, ok := tokens.Match(Bearer(r)); ok {
		return p, nil
	}
	return c.OAuth.Authenticate(r)
}
