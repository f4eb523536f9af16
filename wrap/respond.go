package wrap

import (
	"errors"
	"mime"
	"net/http"
	"strings"

	"github.com/mcpwrap/mcpwrap/jsonrpc"
)

// codeBadRequest is the JSON-RPC error code that accompanies transport-level
// refusals (wrong session, headers, auth) — the same code other MCP servers
// use there, and deliberately not one of the 2026-07-28 "modern" codes, so a
// dual-era client probing for stateless support falls back to initialize.
const codeBadRequest = -32000

// writeError answers with an HTTP status and a JSON-RPC error about id (nil
// when the request could not be read far enough to know it).
func writeError(w http.ResponseWriter, status int, id []byte, code int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(jsonrpc.ErrorResponse(id, code, message))
}

// parseError answers a body that is not JSON-RPC.
func parseError(w http.ResponseWriter, err error) {
	var rpcErr *jsonrpc.Error
	if errors.As(err, &rpcErr) {
		writeError(w, http.StatusBadRequest, nil, rpcErr.Code, rpcErr.Message)
		return
	}
	writeError(w, http.StatusBadRequest, nil, jsonrpc.CodeParseError, err.Error())
}

// isJSON reports whether a Content-Type is application/json.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// accepts reports whether the Accept header admits mediaType, wildcards
// included.
func accepts(r *http.Request, mediaType string) bool {
	major, _, _ := strings.Cut(mediaType, "/")
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			if mt == mediaType || mt == "*/*" || mt == major+"/*" {
				return true
			}
		}
	}
	return false
}
