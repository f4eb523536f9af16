package auth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

const (
	// introspectionCacheTTL is how long an introspection answer is reused:
	// short, since a token revoked at the issuer stays accepted until then.
	introspectionCacheTTL = 30 * time.Second
	// introspectionCacheSize bounds the entries held.
	introspectionCacheSize = 1024
)

// introspect asks the issuer about an opaque token (RFC 7662). Answers,
// refusals included, are cached briefly, so that a client's burst of
// requests costs the issuer one call, and a flood of bad tokens costs it
// one per token.
func (o *OAuth) introspect(ctx context.Context, endpoint, token string) (Principal, error) {
	key := sha256.Sum256([]byte(token))
	if p, ok, err := o.cache.get(key); ok {
		return p, err
	}
	p, expiry, err := o.askIssuer(ctx, endpoint, token)
	// Trouble reaching the issuer is not an answer about the token.
	if ref := (*Refusal)(nil); !errors.As(err, &ref) || ref.Status != http.StatusServiceUnavailable {
		o.cache.put(key, p, err, expiry)
	}
	return p, err
}

// askIssuer returns the principal or refusal, and when the token expires
// (zero when the answer does not say).
func (o *OAuth) askIssuer(ctx context.Context, endpoint, token string) (Principal, time.Time, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return Principal{}, time.Time{}, o.unreachable(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: the client id and secret are form-encoded before
	// they go into Basic authentication.
	req.SetBasicAuth(url.QueryEscape(o.opts.IntrospectionClientID), url.QueryEscape(o.opts.IntrospectionClientSecret))
	resp, err := o.client.Do(req)
	if err != nil {
		return Principal{}, time.Time{}, o.unreachable(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := decodeJSON(resp, &raw); err != nil {
		return Principal{}, time.Time{}, o.unreachable(err)
	}
	var answer struct {
		claims
		Active bool `json:"active"`
	}
	var all map[string]any
	if err := errors.Join(json.Unmarshal(raw, &answer), json.Unmarshal(raw, &all)); err != nil {
		return Principal{}, time.Time{}, o.unreachable(err)
	}
	if !answer.Active {
		return Principal{}, time.Time{}, o.invalid("the token is not active")
	}
	var expiry time.Time
	if answer.Expiry != nil {
		expiry = answer.Expiry.Time()
	}
	// iss and aud are optional in an answer; when present they must fit.
	c := answer.Claims
	if c.Issuer == "" {
		c.Issuer = o.opts.Issuer
	}
	if len(c.Audience) == 0 && o.opts.Audience != "" {
		// The operator named the one audience the issuer's tokens carry,
		// so an issuer that leaves aud out of its answers is trusted to
		// mean it. Otherwise an answer without aud could be about a token
		// minted for any other resource (RFC 8707), and is refused.
		c.Audience = o.audiences[:1]
	}
	if ref := o.checkClaims(c, false); ref != nil {
		return Principal{}, expiry, ref
	}
	p, err := o.principal(answer.claims, all, false)
	return p, expiry, err
}

func (o *OAuth) unreachable(cause error) *Refusal {
	return &Refusal{Status: http.StatusServiceUnavailable, Description: "the authorization server cannot check the token now; try again later", Cause: fmt.Errorf("introspection: %w", cause)}
}

// introspectionCache holds recent introspection answers by the token's
// digest, never the token itself.
type introspectionCache struct {
	size int
	ttl  time.Duration

	mu      sync.Mutex // guards entries
	entries map[[sha256.Size]byte]cached
}

type cached struct {
	p     Principal
	err   error
	until time.Time
}

func newIntrospectionCache(size int, ttl time.Duration) *introspectionCache {
	return &introspectionCache{size: size, ttl: ttl, entries: map[[sha256.Size]byte]cached{}}
}

func (c *introspectionCache) get(key [sha256.Size]byte) (Principal, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || time.Now().After(e.until) {
		delete(c.entries, key)
		return Principal{}, false, nil
	}
	return e.p, true, e.err
}

// put keeps an answer for the cache's TTL, or until the token expires if
// that is sooner. When full, expired entries go first, then any.
func (c *introspectionCache) put(key [sha256.Size]byte, p Principal, err error, expiry time.Time) {
	now := time.Now()
	until := now.Add(c.ttl)
	if !expiry.IsZero() && expiry.Before(until) {
		until = expiry
	}
	if !until.After(now) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.size {
		for k, e := range c.entries {
			if now.After(e.until) {
				delete(c.entries, k)
			}
		}
	}
	for k := range c.entries {
		if len(c.entries) < c.size {
			break
		}
		delete(c.entries, k)
	}
	c.entries[key] = cached{p: p, err: err, until: until}
}
