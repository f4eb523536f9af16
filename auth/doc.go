// Package auth decides who a request comes from. It holds the ways a
// client proves itself — static bearer tokens of named tenants (Tokens),
// and OAuth access tokens (OAuth: JWTs checked against the issuer's keys,
// opaque tokens by RFC 7662 introspection) — the tenants users sign in as
// (Tenants), the refusals that tell a client how to try again (RFC 6750
// challenges pointing at RFC 9728 metadata), and that metadata document.
// Combined puts static tokens and OAuth side by side. It knows nothing of
// MCP or sessions: package wrap asks it about every request before anything
// else happens.
package auth
