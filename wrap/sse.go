package wrap

import (
	"errors"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/mcpwrap/mcpwrap/jsonrpc"
	"github.com/mcpwrap/mcpwrap/session"
)

// The deprecated HTTP+SSE transport (protocol 2024-11-05): a GET opens a
// stream, which is the session; its first event names the URL to POST
// messages to, and every message from the child, responses included, comes
// back as an event on that one stream.

// sseStream opens an HTTP+SSE session.
func (h *Handler) sseStream(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeError(w, http.StatusMethodNotAllowed, nil, codeBadRequest, "Method Not Allowed")
		return
	}
	// No Accept header means anything will do (RFC 9110); older clients of
	// this transport do not always send one.
	if len(r.Header.Values("Accept")) > 0 && !accepts(r, "text/event-stream") {
		writeError(w, http.StatusNotAcceptable, nil, codeBadRequest, "Not Acceptable: Accept must include text/event-stream")
		return
	}
	// The request timeout bounds only the wait to start, not the stream.
	sctx, cancel := h.deadline(r)
	s, err := h.reg.Start(sctx, session.HTTPSSE, ownerOf(r))
	cancel()
	if err != nil {
		writeError(w, startStatus(w, err), nil, jsonrpc.CodeInternalError, "cannot start a session: "+err.Error())
		return
	}
	// The stream is the session: when the client hangs up, the session ends
	// at once (later POSTs get 404) and the child goes.
	defer s.End()
	stream, kicked, release, err := s.Listen()
	if err != nil {
		writeError(w, http.StatusInternalServerError, nil, jsonrpc.CodeInternalError, "cannot start a session: "+err.Error())
		return
	}
	defer release()

	g := newWriteGuard(w, h.opts.SlowReaderTimeout)
	defer g.watch(s.Context())()
	sse := startSSE(w, g)
	if sse.event("endpoint", []byte(messageURL(r.URL.Path, h.opts.MessagePath, s.ID()))) != nil {
		return
	}
	h.pump(r.Context(), sse, stream, kicked, stream.Read(), false, 0)
}

// messageURL is the URI the endpoint event announces, as the client will
// resolve it against the URL it opened the stream with. The 2024-11-05
// specification asks only for "a URI"; the SDK clients (Go, TypeScript,
// Python) resolve a reference the RFC 3986 way, so a relative one keeps a
// path prefix that a reverse proxy strips before the request reaches us,
// where an absolute path would send the POSTs past the proxy's route. Some
// clients (Rust's rmcp) read any relative path as if it began with a slash,
// though; the relative form is used only where both readings agree — when
// the stream sits at the root — and the absolute path elsewhere.
func messageURL(streamPath, messagePath, id string) string {
	u := url.URL{Path: messagePath, RawQuery: "sessionId=" + url.QueryEscape(id)}
	rel := strings.TrimPrefix(messagePath, "/")
	first, _, _ := strings.Cut(rel, "/")
	if path.Dir(streamPath) == "/" && first != "" && !strings.Contains(first, ":") {
		u.Path = rel
	}
	return u.String()
}

// sseMessage takes a client's message for an HTTP+SSE session. Whatever the
// child answers goes to the session's stream; the POST itself is only
// acknowledged.
func (h *Handler) sseMessage(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, nil, codeBadRequest, "Method Not Allowed")
		return
	}
	id := r.URL.Query().Get("sessionId")
	if id == "" {
		writeError(w, http.StatusBadRequest, nil, codeBadRequest, "Bad Request: the sessionId query parameter is required")
		return
	}
	s, ok := h.find(w, r, id, session.HTTPSSE)
	if !ok {
		return
	}
	if !isJSON(r.Header.Get("Content-Type")) {
		writeError(w, http.StatusUnsupportedMediaType, nil, codeBadRequest, "Unsupported Media Type: Content-Type must be application/json")
		return
	}
	body, release, ok := h.readBody(w, r)
	if !ok {
		return
	}
	defer release()
	msgs, _, err := jsonrpc.ParseBody(body)
	if err != nil {
		parseError(w, err)
		return
	}
	noteMessages(r, msgs, len(body))
	if !h.batchFits(w, msgs, len(msgs) > 1) {
		return
	}
	if len(msgs) == 1 && msgs[0].Kind == jsonrpc.Request && msgs[0].Method == "server/discover" {
		// This transport belongs to the stateful era: a dual-era client's
		// stateless probe is refused here, as at the Streamable HTTP
		// endpoint, and the client falls back to initialize.
		s.Reply(jsonrpc.ErrorResponse(msgs[0].ID, jsonrpc.CodeMethodNotFound, "Method not found: server/discover (this endpoint serves protocol 2024-11-05)"))
		w.WriteHeader(http.StatusAccepted)
		return
	}
	ctx, cancel := h.deadline(r)
	defer cancel()
	if _, err := s.Send(ctx, msgs); err != nil {
		switch {
		case errors.Is(err, session.ErrEnded):
			writeError(w, http.StatusNotFound, nil, codeSessionNotFound, "Session not found")
		case r.Context().Err() == nil:
			// The child would not read its input before the deadline; the
			// session has put the answers where every answer of this
			// transport goes: on the stream.
			w.WriteHeader(http.StatusAccepted)
		}
		return
	}
	w.WriteHeader(http.StatusAccepted)
}
