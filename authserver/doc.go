// Package authserver is mcpwrap's built-in OAuth 2.1 authorization server
// (mode 2, MCPWRAP_AUTH_SECRET): metadata (RFC 8414, and the same document
// as OpenID configuration), client registration by DCR (RFC 7591) and by
// Client ID Metadata Documents, the sign-in and consent pages, and the token
// endpoint for public clients with PKCE S256. People sign in with a key (a
// tenant's static token, or the deployment's) or upstream with GitHub or an
// OpenID Connect provider, whose identities map to tenants.
//
// It keeps no database. Every key derives from the secret (HKDF, one info
// string per purpose), so any instance, after any restart, opens and
// verifies what any other issued: client ids are sealed registrations;
// codes, refresh tokens and the sign-in's own state are sealed (JWE, dir +
// A256GCM); access tokens are JWTs signed with Ed25519 (RFC 9068). A
// previous secret still opens and verifies, so rotating it signs nobody out.
//
// What cannot be enforced without shared state: a refresh token cannot be
// revoked before it expires (30 days after the use that issued it), and its
// reuse after rotation is not detected — each use returns a new one, but
// the old one stays valid until it expires, on every instance. (That also
// spares a client that loses a rotated token in a race between two of its
// own processes.) What bounds a stolen one is the family's end, sealed in
// every token of it: 90 days after the sign-in, however often it was used. A code's single use is enforced in memory on the instance
// that issued it, to which other instances replay its redemption
// (fly-replay); a restart of that instance within the code's 60 seconds
// forgets which codes were used. Replacing the secret without keeping it
// as the previous one revokes everything at once: clients then register
// and sign in again.
package authserver
