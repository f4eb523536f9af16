package proxy

import (
	"strings"
	"sync"
)

// maxSecrets bounds what a long-lived shim remembers to hide: every refresh
// adds two tokens, and the oldest are long dead.
const maxSecrets = 64

// redactor hides secrets in text bound for logs and for the client. The
// static token and header values are known at the start; OAuth tokens,
// codes and client secrets are added as they appear.
type redactor struct {
	mu      sync.RWMutex // guards the fields below
	fixed   []string     // never dropped
	secrets []string
	r       *strings.Replacer
}

// minSecret is the length below which a value is not hidden: short values
// are not secrets, and hiding them would garble every line holding them.
const minSecret = 8

func (rd *redactor) Replace(s string) string {
	rd.mu.RLock()
	r := rd.r
	rd.mu.RUnlock()
	if r == nil {
		return s
	}
	return r.Replace(s)
}

// add hides more secrets from now on.
func (rd *redactor) add(secrets ...string) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	changed := false
	for _, s := range secrets {
		if len(s) < minSecret || contains(rd.fixed, s) || contains(rd.secrets, s) {
			continue
		}
		rd.secrets = append(rd.secrets, s)
		changed = true
	}
	if !changed {
		return
	}
	if len(rd.secrets) > maxSecrets {
		rd.secrets = rd.secrets[len(rd.secrets)-maxSecrets:]
	}
	pairs := make([]string, 0, 2*(len(rd.fixed)+len(rd.secrets)))
	for _, s := range append(append([]string(nil), rd.fixed...), rd.secrets...) {
		pairs = append(pairs, s, "[redacted]")
	}
	rd.r = strings.NewReplacer(pairs...)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
