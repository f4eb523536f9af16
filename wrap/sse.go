package wrap

import (
	"context"
	"errors"
	"net/http"
	"net/url"

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
	if !accepts(r, "text/event-stream") {
		writeError(w, http.StatusNotAcceptable, nil, codeBadRequest, "Not Acceptable: Accept must include text/event-stream")
		return
	}
	s, err := h.reg.Start(true, ownerOf(r))
	if err != nil {
		writeError(w, startStatus(w, err), nil, jsonrpc.CodeInternalError, "cannot start a session: "+err.Error())
		return
	}
	// The stream is the session: when the client hangs up, the child goes.
	defer func() { go s.Close(context.Background()) }()
	stream, release, err := s.Listen()
	if err != nil {
		writeError(w, http.StatusInternalServerError, nil, jsonrpc.CodeInternalError, err.Error())
		return
	}
	defer release()

	sse := startSSE(w)
	endpoint := h.opts.MessagePath + "?sessionId=" + url.QueryEscape(s.ID())
	if sse.event("endpoint", []byte(endpoint)) != nil {
		return
	}
	h.pump(r.Context(), sse, s, stream)
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
	s, ok := h.find(w, r, id)
	if !ok {
		return
	}
	if !isJSON(r.Header.Get("Content-Type")) {
		writeError(w, http.StatusUnsupportedMediaType, nil, codeBadRequest, "Unsupported Media Type: Content-Type must be application/json")
		return
	}
	body, ok := readBody(w, r, h.opts.MaxMessage)
	if !ok {
		return
	}
	msgs, _, err := jsonrpc.ParseBody(body)
	if err != nil {
		parseError(w, err)
		return
	}
	noteMessages(r, msgs, len(body))
	if _, err := s.Send(r.Context(), msgs); err != nil {
		if errors.Is(err, session.ErrEnded) {
			writeError(w, http.StatusNotFound, nil, codeSessionNotFound, "Session not found")
		}
		return
	}
	w.WriteHeader(http.StatusAccepted)
}
