// Package bench is the load tool behind `mcpwrap bench`: it measures an MCP
// deployment, and the same stdio server talked to directly over its pipes,
// so that what a wrapper adds can be read as a ratio from one run.
//
// Usage:
//
//	mcpwrap bench [flags] URL               Streamable HTTP deployment
//	mcpwrap bench [flags] -- command args   the command spawned per session
//
// A run opens --sessions sessions (initialize, then
// notifications/initialized), all at once unless --open-inflight says
// otherwise; then every session makes --calls tools/call requests with
// --inflight of them in flight; then the sessions are held for --hold and
// closed (DELETE over HTTP; closed stdin, then SIGTERM and SIGKILL to the
// process group in direct mode). The report gives setup and call latency
// p50/p90/p99, calls per second over the call phase, and errors by kind.
// A progress line goes to stderr every second on runs longer than that.
// Run returns an error wrapping ErrCallsFailed when anything failed.
//
// A paced opening (--open-every) measures setup as users arriving one by
// one see it: against mcpwrap with MCPWRAP_WARM_CHILDREN, each arrives to a
// warm child when the pause lets the set refill.
//
// Flags:
//
//	--sessions N        sessions to open (1)
//	--calls M           calls per session; 0 only opens and closes (100)
//	--inflight K        calls in flight per session (1)
//	--open-inflight N   sessions opening at once; 0 means all (0)
//	--open-every D      start session i no sooner than i×D after the first (0)
//	--tool NAME         tool to call (echo)
//	--payload BYTES     size of the echo text argument (64)
//	--response BYTES    call the big tool for a text of this size instead
//	--args JSON         tool arguments, instead of the two above
//	--token T           bearer token; default $MCPWRAP_TOKEN
//	--header "N: V"     extra request header, repeatable
//	--timeout D         cap on one setup or call (30s)
//	--max-duration D    cap on the whole run; calls stop when it passes (5m)
//	--hold D            keep the sessions open this long after the calls
//	--ready-file PATH   written once the sessions are open and calls done
//	--max-message BYTES largest message accepted (64 MiB)
//	--child-stderr      direct mode: pass the children's stderr through
//	--json              one flat JSON object instead of text
//	--quiet             no progress lines
//
// Environment: MCPWRAP_TOKEN, the bearer token when --token is not given.
//
// The echo and big tools are those of bench/echoserver, whose replies are
// checked: a wrong echo counts as a bad_response error. Other tools are
// only checked for JSON-RPC and tool errors.
package bench
