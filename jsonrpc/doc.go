// Package jsonrpc owns the JSON-RPC 2.0 wire format for mcpwrap: it checks that
// a message is well formed and finds the few members needed to route it (id,
// method, params, result or error) without decoding the payload.
//
// Messages of several MiB pass through unchanged; every byte slice returned
// aliases the input. Acceptance of JSON text is the same as encoding/json.Valid,
// including its nesting limit and its tolerance of invalid UTF-8 inside strings,
// so a message accepted here is one that the Go SDK (and most other decoders)
// would also read.
//
// Duplicate names: a message that repeats one of the members "jsonrpc", "id",
// "method", "params", "result" or "error" is rejected as an invalid request,
// because decoders disagree about which copy wins and routing on one copy
// while the child reads the other would misdeliver responses. Other repeated
// names are left alone. Lookup, which reads inside payloads, returns the last
// copy, as encoding/json and JavaScript's JSON.parse do.
package jsonrpc
