// Package bridge is the stateless side of mcpwrap's children: it serves
// requests of protocol 2026-07-28, which carry no session, from pools of
// child processes, and never touches HTTP (package wrap validates requests
// and turns what Serve returns into responses).
//
// What a child speaks is found once, by sending the first child
// server/discover (or forced with Options.Era):
//
//   - A child of the stateless era gets requests passed through. Such a
//     child keeps no client state, so one per tenant serves every request
//     at once; mcpwrap gives each request an id and a progress token of its
//     own, relays progress and log messages to the request they belong to,
//     and tells the child notifications/cancelled when a client leaves.
//
//   - A child of the initialize-based era is bridged. Its pools are kept per
//     tenant (the environment its children get) and per set of client
//     capabilities, which mcpwrap initializes each child with, since such a
//     server may decide what it offers from them. tools/call, prompts/get and
//     resources/read take a child for themselves, so every request the child
//     sends the client and every log line meanwhile belongs to that call.
//     A request to the client becomes an input_required result; the child
//     stays parked on the call until the client retries with the answers,
//     which are handed to the child as its responses. The requestState that
//     names the parked call is signed (HMAC-SHA256 under a key derived with
//     HKDF from Options.Secret, or drawn at boot), bound to the caller, the
//     request and a deadline, and accepted once; one issued by another
//     instance is an *Elsewhere error naming it. Lists come from any child of
//     the pool, or a cache that list_changed clears.
//
// subscriptions/listen is acknowledged first, then relays the change
// notifications the client asked for from every child of its tenant, and
// ends with a result when the bridge closes.
//
// A pool holds *child.Child values started by one function (Options.Start)
// and made ready by the bridge (the era probe, then initialize for a legacy
// child, with the pool's capabilities) before they join it. Children started
// ahead of demand fit in between: when MCPWRAP_WARM_CHILDREN is set,
// Options.Start takes a child from the same child.Warm sets as sessions do
// (kept per environment, so per tenant, since a child's environment is fixed
// when it starts), and the pool makes it ready like any other; MaxChildren
// counts it once taken.
//
// Two limits bound the children: MaxChildren across every pool, and
// MaxPerTenant across one tenant's pools, so that one tenant's calls, held
// or parked, cannot take every child from the others. A child counts from
// the moment it is being started until it ends, whatever it does. A request
// that finds no free child and no room under either limit first stops an
// idle child it may replace (one of another pool, or of the tenant's own
// other pools when the tenant's limit is in the way), then waits for one to
// come free, for at most QueueTimeout, and is refused with ErrBusy (or
// ErrTenantBusy, which is an ErrBusy) after that.
package bridge
