package wrap

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/mcpwrap/mcpwrap/jsonrpc"
	"github.com/mcpwrap/mcpwrap/session"
)

const (
	headerSessionID = "Mcp-Session-Id"
	headerVersion   = "Mcp-Protocol-Version"
)

// versions are the protocol revisions whose Streamable HTTP rules this
// endpoint follows. A request without the version header is 2025-03-26.
var versions = []string{"2025-11-25", "2025-06-18", "2025-03-26"}

// streamable is the single Streamable HTTP endpoint.
func (h *Handler) streamable(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		h.post(w, r)
	case http.MethodGet:
		h.get(w, r)
	case http.MethodDelete:
		h.delete(w, r)
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		writeError(w, http.StatusMethodNotAllowed, nil, codeBadRequest, "Method Not Allowed")
	}
}

// version checks the MCP-Protocol-Version header and answers a bad one
// itself.
func version(w http.ResponseWriter, r *http.Request) (string, bool) {
	v := r.Header.Get(headerVersion)
	if v == "" {
		return "2025-03-26", true
	}
	if !slices.Contains(versions, v) {
		writeError(w, http.StatusBadRequest, nil, codeBadRequest,
			"Bad Request: unsupported MCP-Protocol-Version "+v+" (supported: 2025-11-25, 2025-06-18, 2025-03-26)")
		return "", false
	}
	return v, true
}

// lookup finds the session a request names, answering the request itself
// when it names none (400) or one it cannot use (see find).
func (h *Handler) lookup(w http.ResponseWriter, r *http.Request) (*session.Session, bool) {
	id := r.Header.Get(headerSessionID)
	if id == "" {
		writeError(w, http.StatusBadRequest, nil, codeBadRequest, "Bad Request: Mcp-Session-Id header is required")
		return nil, false
	}
	return h.find(w, r, id, session.Streamable)
}

// codeSessionNotFound accompanies 404 for an unknown or ended session.
const codeSessionNotFound = -32001

func (h *Handler) post(w http.ResponseWriter, r *http.Request) {
	if !isJSON(r.Header.Get("Content-Type")) {
		writeError(w, http.StatusUnsupportedMediaType, nil, codeBadRequest, "Unsupported Media Type: Content-Type must be application/json")
		return
	}
	if !accepts(r, "application/json") || !accepts(r, "text/event-stream") {
		writeError(w, http.StatusNotAcceptable, nil, codeBadRequest, "Not Acceptable: Accept must include application/json and text/event-stream")
		return
	}
	if eraOf(r, nil) == modern {
		h.serveModern(w, r, nil, nil)
		return
	}
	ver, ok := version(w, r)
	if !ok {
		return
	}
	// The session is found before the body is read: a request for another
	// instance's session is replayed there unread, whatever its size.
	var s *session.Session
	if r.Header.Get(headerSessionID) != "" {
		if s, ok = h.lookup(w, r); !ok {
			return
		}
	}
	body, release, ok := h.readBody(w, r)
	if !ok {
		return
	}
	defer release()
	msgs, batch, err := jsonrpc.ParseBody(body)
	if err != nil {
		parseError(w, err)
		return
	}
	noteMessages(r, msgs, len(body))
	if eraOf(r, msgs) == modern {
		h.serveModern(w, r, msgs, release)
		return
	}
	if batch && ver >= "2025-06-18" {
		writeError(w, http.StatusBadRequest, nil, jsonrpc.CodeInvalidRequest, "Invalid Request: batches are not part of protocol "+ver)
		return
	}
	init := slices.IndexFunc(msgs, func(m jsonrpc.Message) bool { return m.Method == "initialize" })
	if s == nil {
		if init < 0 || len(msgs) != 1 || msgs[0].Kind != jsonrpc.Request {
			// Also the answer a dual-era client's stateless probe
			// (server/discover) expects from a server of this era.
			writeError(w, http.StatusBadRequest, nil, codeBadRequest, "Bad Request: Mcp-Session-Id header is required")
			return
		}
		h.initialize(w, r, msgs[0])
		return
	}
	if init >= 0 {
		writeError(w, http.StatusBadRequest, msgs[init].ID, jsonrpc.CodeInvalidRequest, "Invalid Request: the session is already initialized")
		return
	}
	ex, err := s.Send(r.Context(), msgs)
	switch {
	case errors.Is(err, session.ErrEnded):
		writeError(w, http.StatusNotFound, nil, codeSessionNotFound, "Session not found")
		return
	case err != nil:
		return // the client left
	case ex == nil:
		w.WriteHeader(http.StatusAccepted)
		return
	}
	release() // the child has the messages now; the reply may take long
	h.reply(w, r, s, ex, batch)
}

// initialize starts a session for an initialize request. The session lives
// on only if the child answers it successfully.
func (h *Handler) initialize(w http.ResponseWriter, r *http.Request, msg jsonrpc.Message) {
	s, err := h.reg.Start(session.Streamable, ownerOf(r))
	if err != nil {
		writeError(w, startStatus(w, err), msg.ID, jsonrpc.CodeInternalError, "cannot start a session: "+err.Error())
		return
	}
	w.Header().Set(headerSessionID, s.ID())
	ex, err := s.Send(r.Context(), []jsonrpc.Message{msg})
	if errors.Is(err, session.ErrEnded) {
		// The child died (or shutdown began) before it was asked
		// anything: there is no session to name, but the request is
		// still owed an answer.
		w.Header().Del(headerSessionID)
		if cause := s.Err(); cause != nil {
			err = cause
		}
		writeError(w, http.StatusInternalServerError, msg.ID, jsonrpc.CodeInternalError, "cannot start a session: "+err.Error())
		return
	}
	ok := err == nil && h.reply(w, r, s, ex, false)
	if !ok {
		// Closing can take the child's whole grace period; the client
		// should not wait for it.
		s.End()
	}
}

// reply streams an exchange's answer. While only responses come, they are
// held and sent as one JSON body; the first message of another kind
// (progress, logging, a request to the client) turns the reply into an SSE
// stream that ends after the last response. A reply that stays silent for a
// keep-alive interval becomes a stream too, so that its keep-alives can stop
// proxies from cutting a long call. It reports whether every request got a
// response that is not an error.
func (h *Handler) reply(w http.ResponseWriter, r *http.Request, s *session.Session, ex *session.Exchange, batch bool) bool {
	ctx := r.Context()
	if h.opts.RequestTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.opts.RequestTimeout)
		defer cancel()
	}
	keepAlive := time.NewTicker(h.opts.KeepAlive)
	defer keepAlive.Stop()

	var held [][]byte
	var sse *sseWriter
	// stream turns the reply into an SSE stream, sending what was held.
	stream := func() {
		if sse == nil {
			sse = startSSE(w)
			for _, d := range held {
				_ = sse.event("message", d)
			}
			held = nil
		}
	}
	ok := true
	for {
		select {
		case m, open := <-ex.Messages():
			if !open {
				if sse == nil {
					writeJSON(w, held, batch)
				}
				return ok
			}
			if m.Error {
				ok = false
			}
			if sse == nil && m.Response {
				held = append(held, m.Data)
				continue
			}
			stream()
			if err := sse.event("message", m.Data); err != nil {
				ex.Detach()
				return false
			}
		case <-keepAlive.C:
			stream()
			if err := sse.comment(); err != nil {
				ex.Detach()
				return false
			}
		case <-ctx.Done():
			if r.Context().Err() != nil {
				ex.Detach() // the client left; that is not a cancellation
				return false
			}
			h.timeout(w, s, ex, sse, batch)
			return false
		}
	}
}

// timeout answers the requests still open when the request timeout passes,
// after telling the child to cancel them.
func (h *Handler) timeout(w http.ResponseWriter, s *session.Session, ex *session.Exchange, sse *sseWriter, batch bool) {
	var answers [][]byte
	for _, id := range s.Abandon(ex, "request timed out") {
		answers = append(answers, jsonrpc.ErrorResponse(id, jsonrpc.CodeInternalError,
			"request timed out after "+h.opts.RequestTimeout.String()))
	}
	s.Log().Warn().Int("requests", len(answers)).Dur("timeout_ms", h.opts.RequestTimeout).Msg("request timed out")
	if sse != nil {
		for _, a := range answers {
			_ = sse.event("message", a)
		}
		return
	}
	writeJSON(w, answers, batch)
}

// writeJSON sends responses as one application/json body: the response
// itself, or an array of them for a batch.
func writeJSON(w http.ResponseWriter, responses [][]byte, batch bool) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if !batch && len(responses) == 1 {
		_, _ = w.Write(responses[0])
		return
	}
	_, _ = w.Write(append(append([]byte{'['}, bytes.Join(responses, []byte{','})...), ']'))
}

// get opens the session's standalone stream: what the child sends that
// belongs to no request (list changes, resource updates, and its requests
// when no call is in flight).
func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	if !accepts(r, "text/event-stream") {
		writeError(w, http.StatusNotAcceptable, nil, codeBadRequest, "Not Acceptable: Accept must include text/event-stream")
		return
	}
	if _, ok := version(w, r); !ok {
		return
	}
	s, ok := h.lookup(w, r)
	if !ok {
		return
	}
	stream, release, err := s.Listen()
	switch {
	case errors.Is(err, session.ErrStreamBusy):
		writeError(w, http.StatusConflict, nil, codeBadRequest, "Conflict: only one stream per session is allowed")
		return
	case err != nil:
		writeError(w, http.StatusNotFound, nil, codeSessionNotFound, "Session not found")
		return
	}
	defer release()
	h.pump(r.Context(), startSSE(w), s, stream)
}

// pump copies the session's stream to an SSE stream until the client leaves
// or the session ends, with keep-alive comments in between.
func (h *Handler) pump(ctx context.Context, sse *sseWriter, s *session.Session, stream <-chan []byte) {
	keepAlive := time.NewTicker(h.opts.KeepAlive)
	defer keepAlive.Stop()
	for {
		select {
		case data := <-stream:
			if err := sse.event("message", data); err != nil {
				return
			}
		case <-keepAlive.C:
			if err := sse.comment(); err != nil {
				return
			}
		case <-ctx.Done():
			return
		case <-s.Done():
			// Deliver what the child said before it went.
			for {
				select {
				case data := <-stream:
					if sse.event("message", data) != nil {
						return
					}
				default:
					return
				}
			}
		}
	}
}

// delete ends a session at the client's request.
func (h *Handler) delete(w http.ResponseWriter, r *http.Request) {
	if _, ok := version(w, r); !ok {
		return
	}
	s, ok := h.lookup(w, r)
	if !ok {
		return
	}
	// The child's lifetime belongs to its session, not to this request.
	_ = s.Close(context.WithoutCancel(r.Context()))
	w.WriteHeader(http.StatusNoContent)
}
