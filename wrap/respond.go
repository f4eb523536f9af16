package wrap

import (
	"errors"
	"io"
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

// sseWriter writes one Server-Sent Events stream, flushing every event so
// nothing waits in a buffer while the client waits for it.
type sseWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// startSSE sends the stream's headers at once: a client (and every proxy on
// the way) learns the stream is open before the first event exists.
func startSSE(w http.ResponseWriter) *sseWriter {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &sseWriter{w: w, rc: http.NewResponseController(w)}
	_ = s.rc.Flush()
	return s
}

// event writes one event. data is a single line (every message is: the
// stdio framing guarantees it).
func (s *sseWriter) event(name string, data []byte) error {
	var err error
	if name != "" {
		_, err = io.WriteString(s.w, "event: "+name+"\n")
	}
	if err == nil {
		_, err = io.WriteString(s.w, "data: ")
	}
	if err == nil {
		_, err = s.w.Write(data)
	}
	if err == nil {
		_, err = io.WriteString(s.w, "\n\n")
	}
	if err == nil {
		err = s.rc.Flush()
	}
	return err
}

// comment writes a keep-alive that clients ignore and proxies see as traffic.
func (s *sseWriter) comment() error {
	if _, err := io.WriteString(s.w, ": keep-alive\n\n"); err != nil {
		return err
	}
	return s.rc.Flush()
}
