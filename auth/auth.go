package auth

import (
	"net/http"
	"strings"
)

// A Principal is who a request authenticated as.
type Principal struct {
	Tenant  string   // the tenant's name; "" when no tenants are configured
	Subject string   // the signed-in user; "" for a tenant's own token
	Admin   bool     // the deployment's own token: may see every tenant's figures
	Env     []string // the environment the tenant's children get, K=V
}

// A Tenant is a named group of users sharing one child environment: its
// static token (if any) and who else may sign in as it.
type Tenant struct {
	Name  string
	Admin bool     // its token is the deployment's own (see Principal.Admin)
	Token string   // a static bearer token; "" for none
	Env   []string // K=V for its children
	Users []string // identities that sign in as this tenant ("github:alice", "google:*@corp.com")
}

// Refusal is why a request was not let in, as the client must hear it: a
// status (401 or 403) and the WWW-Authenticate challenge that says what to
// do about it.
type Refusal struct {
	Status int
	// Code is the RFC 6750 error code: "" when no credential was presented
	// (or the server cannot check one now: 503), "invalid_token", or
	// "insufficient_scope"; "access_denied" for a valid token of a user no
	// tenant lists.
	Code        string
	Description string
	// Challenge is the whole WWW-Authenticate value; "" for none (a refusal
	// that signing in again cannot change).
	Challenge string
	// Cause is what went wrong on the server's side (the issuer cannot be
	// reached, say), for the log: it is never shown to the client.
	Cause error
}

func (r *Refusal) Unwrap() error { return r.Cause }

func (r *Refusal) Error() string {
	if r.Description != "" {
		return r.Description
	}
	if r.Code != "" {
		return r.Code
	}
	return "a valid bearer token is required"
}

// Bearer returns the bearer token of r, or "" when r carries none. The
// scheme is case-insensitive (RFC 9110); a token is only ever read from the
// Authorization header, never from the query string.
func Bearer(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}
