package wrap

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/mcpwrap/mcpwrap/jsonrpc"
	"golang.org/x/sync/semaphore"
)

// readBody reads a request body of at most MaxMessage bytes, answering the
// request itself when it cannot: 413 past the limit, 503 when the bodies
// being held across the process would pass MaxBodyBytes (a flood of large
// bodies must not take the process's memory), 408 when the client trickles
// the body slower than BodyTimeout allows. release gives the body's share of
// the budget back; call it once the body is no longer needed (it is safe to
// call twice).
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) (body []byte, release func(), ok bool) {
	limit := int64(h.opts.MaxMessage)
	// What the body will cost: its declared length, or the most it may be.
	cost := limit + 1
	if r.ContentLength >= 0 && r.ContentLength <= limit {
		cost = max(r.ContentLength, 1)
	}
	release = func() {}
	if h.bodies != nil {
		if !h.bodies.TryAcquire(cost) {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, nil, codeBadRequest,
				"Service Unavailable: too many request bodies are being received; retry shortly")
			return nil, release, false
		}
		var once sync.Once
		release = func() { once.Do(func() { h.bodies.Release(cost) }) }
	}
	if h.opts.BodyTimeout > 0 {
		// A deadline on this request's body alone: a server-wide read
		// timeout would also cut the long streams that follow it.
		// Lifted again only for a body that arrived whole: after a timeout it
		// stays, so that the server does not wait for the rest either.
		rc := http.NewResponseController(w)
		if rc.SetReadDeadline(time.Now().Add(h.opts.BodyTimeout)) == nil {
			defer func() {
				if ok {
					_ = rc.SetReadDeadline(time.Time{})
				}
			}()
		}
	}

	buf := bytes.NewBuffer(make([]byte, 0, min(cost, 64<<10)))
	if r.ContentLength > 0 && r.ContentLength <= limit {
		buf = bytes.NewBuffer(make([]byte, 0, r.ContentLength))
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	body = buf.Bytes()
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, nil, jsonrpc.CodeInvalidRequest,
			fmt.Sprintf("Request Entity Too Large: the body exceeds %d bytes", limit))
	case errors.Is(err, os.ErrDeadlineExceeded):
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestTimeout, nil, codeBadRequest,
			fmt.Sprintf("Request Timeout: the body did not arrive within %s", h.opts.BodyTimeout))
	case err != nil && !errors.Is(err, io.EOF):
		writeError(w, http.StatusBadRequest, nil, jsonrpc.CodeParseError, "reading the body: "+err.Error())
	case len(bytes.TrimSpace(body)) == 0:
		writeError(w, http.StatusBadRequest, nil, jsonrpc.CodeParseError, "Parse error: empty body")
	default:
		return body, release, true
	}
	release()
	return nil, release, false
}

// newBodyBudget bounds the bytes of request bodies held at once; nil (no
// bound) for n <= 0.
func newBodyBudget(n int64) *semaphore.Weighted {
	if n <= 0 {
		return nil
	}
	return semaphore.NewWeighted(n)
}
