package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
)

// Tokens authenticates the static bearer tokens of tenants.
type Tokens struct {
	tenants []Tenant
	digests [][sha256.Size]byte // of each tenant's token, in tenants order
}

// NewTokens accepts the static token of each tenant that has one.
func NewTokens(tenants []Tenant) *Tokens {
	t := &Tokens{}
	for _, tn := range tenants {
		if tn.Token == "" {
			continue
		}
		t.tenants = append(t.tenants, tn)
		t.digests = append(t.digests, sha256.Sum256([]byte(tn.Token)))
	}
	return t
}

// Len is the number of static tokens.
func (t *Tokens) Len() int { return len(t.digests) }

// Match finds the tenant whose static token is token. Digests are compared
// in constant time and without stopping at the first match, so that neither
// the token nor which token matched leaks through timing.
func (t *Tokens) Match(token string) (Principal, bool) {
	if token == "" {
		return Principal{}, false
	}
	return t.MatchDigest(Digest(token))
}

// Digest is the SHA-256 of a token, by which a token can be recognized
// again without being kept (a sign-in remembers which key it used).
func Digest(token string) [sha256.Size]byte { return sha256.Sum256([]byte(token)) }

// MatchDigest is Match for a token known by its Digest.
func (t *Tokens) MatchDigest(got [sha256.Size]byte) (Principal, bool) {
	match := -1
	for i, d := range t.digests {
		if subtle.ConstantTimeCompare(got[:], d[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return Principal{}, false
	}
	tn := t.tenants[match]
	return Principal{Tenant: tn.Name, Env: tn.Env, Admin: tn.Admin}, true
}

// Authenticate accepts a request bearing one of the static tokens.
func (t *Tokens) Authenticate(r *http.Request) (Principal, error) {
	token := Bearer(r)
	if p, ok := t.Match(token); ok {
		return p, nil
	}
	ref := &Refusal{Status: http.StatusUnauthorized, Challenge: `Bearer realm="mcpwrap"`}
	if token != "" {
		ref.Code, ref.Description = "invalid_token", "the bearer token is not valid"
		ref.Challenge = `Bearer realm="mcpwrap", error="invalid_token"`
	}
	return Principal{}, ref
}
