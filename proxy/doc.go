// Package proxy is `mcpwrap proxy`, the local shim: an MCP client that can
// only launch stdio servers launches it, and it carries the client's
// JSON-RPC lines to a remote MCP server over Streamable HTTP, falling back to
// the older HTTP+SSE transport when the remote answers an initialize the way
// the spec's backward-compatibility section describes (400, 404 or 405, then
// a GET stream opening with an endpoint event).
//
//	mcpwrap proxy [flags] URL
//	mcpwrap proxy login [flags] URL    sign in ahead of time
//	mcpwrap proxy logout [flags] URL   forget the tokens and the client registration
//
//	flag                 variable                   default  meaning
//	--token              MCPWRAP_TOKEN              (none)   bearer token for the remote
//	--token-file         MCPWRAP_TOKEN_FILE         (none)   file holding the token (surrounding space trimmed)
//	--header 'K: V'      -                          -        extra request header, repeatable
//	--retry-for          MCPWRAP_PROXY_RETRY_FOR    30s      how long to retry a remote that is unreachable or answers 502/503/504, and how long a request waits for a sign-in
//	--read-idle          MCPWRAP_PROXY_READ_IDLE    75s      an SSE stream silent this long is taken for dead and resumed (Last-Event-ID); mcpwrap sends a keep-alive every MCPWRAP_KEEPALIVE (25s); 0: never
//	--log-level          MCPWRAP_LOG_LEVEL          info     debug, info, warn or error
//	--no-browser         MCPWRAP_PROXY_NO_BROWSER   false    print the sign-in URL to stderr instead of opening a browser
//	--token-store        MCPWRAP_PROXY_TOKEN_STORE  auto     where OAuth tokens live: auto (keychain if any, else file), keyring or file
//	-                    BROWSER                    (none)   the browser command; it gets the URL as its argument (%s stands for it if present)
//	--client-id          MCPWRAP_PROXY_CLIENT_ID    (none)   an OAuth client registered ahead of time, for servers without dynamic registration
//	--client-secret      MCPWRAP_PROXY_CLIENT_SECRET (none)  … its secret, if it has one
//	--client-issuer      MCPWRAP_PROXY_CLIENT_ISSUER (none)  … the authorization server it is registered at: it is used with no other; without this, a client with a secret is used only with a server on the remote's own origin
//	--client-metadata-url MCPWRAP_PROXY_CLIENT_METADATA_URL (none) https URL of a client ID metadata document, used where the server takes them
//
// A flag wins over its variable; a token beats a token file from the same
// source. stdout carries only MCP messages; logs go to stderr, and neither
// ever shows the token.
//
// What the shim keeps from the client:
//   - A remote that is starting (connection refused, 502, 503, 504) costs
//     latency, not an error, until --retry-for has passed; then each waiting
//     request gets a JSON-RPC error.
//   - A remote that forgets the session (404: restarted, reaped) gets a new
//     one built from the client's own initialize, followed by
//     notifications/initialized, the client's last logging/setLevel and its
//     resource subscriptions, and a new GET stream; then the message that
//     met the 404 is sent again, since the remote never processed it. The
//     client keeps its session. A request whose answer was lost with the
//     old session, mid-stream, gets an error instead: it may have run.
//     The new session is made when the client next sends, not when the GET
//     stream finds the old one gone, so an idle shim does not keep an
//     auto-stopping machine awake.
//   - With a static token, a 401 answers each request with an error saying
//     the token was rejected; the shim keeps running.
//   - Without one, a 401 (or a 403 asking for more scope) starts OAuth
//     sign-in through the SDK's authorization-code handler (signin.go):
//     the browser, a loopback callback (callback.go), tokens and the client
//     registration kept per remote and authorization server in the OS
//     keychain or a 0600 file, refreshed under a lock shared by every shim
//     for the remote (store.go). Credentials only go to the remote's origin.
//   - When stdin ends, the remote session ends with DELETE and Run returns
//     nil.
//
// Messages up to 64 MiB pass in either direction; a longer line from the
// client is dropped with a log line.
package proxy
