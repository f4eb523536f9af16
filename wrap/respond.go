package wrap

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mcpwrap/mcpwrap/internal/sse"
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

// endGrace is how long a response may take to write what is left once its
// session has ended: a client that stopped reading must not hold a
// shutdown for the whole slow-reader timeout.
const endGrace = time.Second

// A writeGuard gives every write of one response a deadline, so that a
// client that stops reading is cut after a bounded time instead of holding
// its handler (and a shutdown waiting for it) forever. It is the one place
// that sets the connection's write deadline.
type writeGuard struct {
	rc      *http.ResponseController
	timeout time.Duration // per write; 0: none

	mu    sync.Mutex // guards the fields below
	endBy time.Time  // no write may end later than this; zero: no such bound
	done  bool       // the handler is returning; the connection is not ours
}

func newWriteGuard(w http.ResponseWriter, timeout time.Duration) *writeGuard {
	return &writeGuard{rc: http.NewResponseController(w), timeout: timeout}
}

// arm sets the deadline for the next write.
func (g *writeGuard) arm() {
	g.mu.Lock()
	defer g.mu.Unlock()
	var d time.Time
	if g.timeout > 0 {
		d = time.Now().Add(g.timeout)
	}
	if !g.endBy.IsZero() && (d.IsZero() || g.endBy.Before(d)) {
		d = g.endBy
	}
	if !d.IsZero() {
		_ = g.rc.SetWriteDeadline(d)
	}
}

// hurry bounds every write from now on, the one under way included, to
// grace. Another goroutine may call it while a write blocks.
func (g *writeGuard) hurry(grace time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done {
		return
	}
	g.endBy = time.Now().Add(grace)
	_ = g.rc.SetWriteDeadline(g.endBy)
}

// watch hurries the response once ctx is done; stop ends the watch and
// clears the deadline, and must be called before the handler returns, as
// the connection may serve another request afterwards.
func (g *writeGuard) watch(ctx context.Context) (stop func()) {
	unwatch := context.AfterFunc(ctx, func() { g.hurry(endGrace) })
	return func() {
		unwatch()
		// A hurry that runs after this finds done set and does nothing.
		g.mu.Lock()
		defer g.mu.Unlock()
		g.done = true
		_ = g.rc.SetWriteDeadline(time.Time{})
	}
}

// sseWriter is the one event-stream writer (internal/sse) with every write
// bounded by the response's guard.
type sseWriter struct {
	w *sse.Writer
	g *writeGuard
}

// startSSE sends the stream's headers at once: a client (and every proxy on
// the way) learns the stream is open before the first event exists. Every
// write is bounded by g.
func startSSE(w http.ResponseWriter, g *writeGuard) *sseWriter {
	g.arm()
	return &sseWriter{w: sse.Start(w), g: g}
}

// event writes one event.
func (s *sseWriter) event(name string, data []byte) error {
	s.g.arm()
	return s.w.Event(sse.Event{Name: name, Data: data})
}

// message writes one message event with its id.
func (s *sseWriter) message(id string, data []byte) error {
	s.g.arm()
	return s.w.Event(sse.Event{ID: id, Name: "message", Data: data})
}

// prime starts a resumable stream: how soon to reconnect, when retry is
// set, and an event of an id and empty data, that a client that has seen
// nothing else yet can resume from.
func (s *sseWriter) prime(retry time.Duration, id string) error {
	s.g.arm()
	if retry > 0 {
		if err := s.w.Retry(retry); err != nil {
			return err
		}
	}
	return s.w.Event(sse.Event{ID: id})
}

// comment writes a keep-alive that clients ignore and proxies see as traffic.
func (s *sseWriter) comment() error {
	s.g.arm()
	return s.w.Comment()
}
