package auth

import "strings"

// Tenants is the tenants file as sign-in sees it: who may sign in as which
// tenant.
type Tenants struct {
	list []Tenant
}

// NewTenants holds list, in the order a lookup tries them.
func NewTenants(list []Tenant) *Tenants {
	return &Tenants{list: list}
}

// Len is the number of tenants.
func (t *Tenants) Len() int {
	if t == nil {
		return 0
	}
	return len(t.list)
}

// Named is the tenant called name.
func (t *Tenants) Named(name string) (Tenant, bool) {
	if t == nil {
		return Tenant{}, false
	}
	for _, tn := range t.list {
		if tn.Name == name {
			return tn, true
		}
	}
	return Tenant{}, false
}

// identityPrefixes are the identity providers whose names may be globbed:
// "github:*" or "google:*@corp.com". A glob needs one of them, so that a
// bare "*" can never let in everyone from everywhere.
var identityPrefixes = []string{"github:", "google:", "oidc:"}

// ForIdentity finds the tenant an account signs in as, given the names it
// goes by, the most lasting first: a GitHub account is github:id:12345
// (its number, which stays with it) and github:alice (its login, which
// someone else may take after a rename). The first name that a tenant lists
// exactly (ignoring case) decides, the first tenant listing it; else the
// first tenant with a pattern that matches one of them. An exact entry wins
// over a pattern, so one person can be carved out of a domain-wide tenant.
func (t *Tenants) ForIdentity(identities ...string) (Tenant, bool) {
	if t == nil {
		return Tenant{}, false
	}
	for _, id := range identities {
		for _, tn := range t.list {
			for _, u := range tn.Users {
				if id != "" && strings.EqualFold(u, id) {
					return tn, true
				}
			}
		}
	}
	for _, tn := range t.list {
		for _, u := range tn.Users {
			for _, id := range identities {
				if id != "" && globMatch(u, id) {
					return tn, true
				}
			}
		}
	}
	return Tenant{}, false
}

// globMatch reports whether identity matches pattern, where '*' in the part
// after a provider prefix stands for any run of characters. The prefix
// itself is matched literally; everything ignores case.
func globMatch(pattern, identity string) bool {
	pattern, identity = strings.ToLower(pattern), strings.ToLower(identity)
	for _, p := range identityPrefixes {
		rest, ok := strings.CutPrefix(pattern, p)
		if !ok {
			continue
		}
		name, ok := strings.CutPrefix(identity, p)
		if !ok || !strings.Contains(rest, "*") {
			return false
		}
		return wildcard(rest, name)
	}
	return false
}

// wildcard matches s against a pattern whose only special character is '*'.
func wildcard(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	first, last := parts[0], parts[len(parts)-1]
	if !strings.HasPrefix(s, first) {
		return false
	}
	s = s[len(first):]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return strings.HasSuffix(s, last)
}
