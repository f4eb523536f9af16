package wrap

import (
	"net/http"

	"github.com/mcpwrap/mcpwrap/jsonrpc"
)

// An era is the generation of the protocol a request to the Streamable HTTP
// endpoint speaks. The HTTP+SSE door serves only 2024-11-05 and needs no
// such decision.
type era int

const (
	// stateful is 2025-03-26 to 2025-11-25: initialize opens a session,
	// and every later request names it.
	stateful era = iota
	// modern is 2026-07-28 and later: no sessions; every request carries
	// its protocol version in MCP-Protocol-Version and in _meta.
	modern
)

// modernVersion is the first revision of the stateless era; revisions
// compare as strings, as their dates allow.
const modernVersion = "2026-07-28"

// metaVersion is where a stateless request names its protocol version.
const metaVersion = "io.modelcontextprotocol/protocolVersion"

// eraOf decides the era of a POST: from its MCP-Protocol-Version header
// when that names a stateless revision, else, outside a session, from the
// _meta of its first message (msgs may be nil before the body is read).
// This is the one place that decides it.
func eraOf(r *http.Request, msgs []jsonrpc.Message) era {
	if r.Header.Get(headerVersion) >= modernVersion {
		return modern
	}
	if len(msgs) > 0 && r.Header.Get(headerSessionID) == "" {
		if _, _, _, ok := jsonrpc.Lookup(msgs[0].Params, "_meta", metaVersion); ok {
			return modern
		}
	}
	return stateful
}

// serveModern answers a request of the stateless era: through the bridge
// when there is one (see modernPost; msgs is nil while the body is unread).
// Without one mcpwrap serves the stateful era only, and answers the way a
// server of that era does, with a 400 that is no stateless-era error: a
// dual-era client probing with server/discover then falls back to
// initialize.
func (h *Handler) serveModern(w http.ResponseWriter, r *http.Request, msgs []jsonrpc.Message, release func()) {
	if h.opts.Stateless != nil {
		h.modernPost(w, r, msgs, release)
		return
	}
	writeError(w, http.StatusBadRequest, nil, codeBadRequest,
		"Bad Request: this server speaks protocol 2025-11-25 and earlier; initialize a session (unsupported MCP-Protocol-Version "+r.Header.Get(headerVersion)+")")
}
