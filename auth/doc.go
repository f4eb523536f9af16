// Package auth decides who a request comes from. It holds the ways a
// client proves itself — static bearer tokens of named tenants today, OAuth
// access tokens beside them — and the refusals that tell a client how to
// try again (RFC 6750 challenges). It knows nothing of MCP or sessions:
// package wrap asks it about every request before anything else happens.
package auth
