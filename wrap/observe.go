package wrap

import (
	"context"
	"net/http"
	"time"

	"github.com/mcpwrap/mcpwrap/jsonrpc"
	"github.com/mcpwrap/mcpwrap/metrics"
)

// exchange is what one HTTP request did, filled in by the handlers and
// counted once the response is finished.
type exchange struct {
	methods []string // JSON-RPC requests the body carried
	in      int      // body bytes read
}

type exchangeKey struct{}

// noteMessages records which requests a body carried.
func noteMessages(r *http.Request, msgs []jsonrpc.Message, size int) {
	x, _ := r.Context().Value(exchangeKey{}).(*exchange)
	if x == nil {
		return
	}
	x.in += size
	for _, m := range msgs {
		if m.Kind == jsonrpc.Request {
			x.methods = append(x.methods, methodLabel(m.Method))
		}
	}
}

// observe counts every authenticated MCP request: its JSON-RPC methods, status, time to
// the last byte, and bytes each way.
func observe(m *metrics.Metrics, next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		x := &exchange{}
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), exchangeKey{}, x)))
		owner := principalOf(r).Tenant
		for _, method := range x.methods {
			m.Request(method, owner, rec.code(), time.Since(start))
		}
		m.Bytes(x.in, rec.bytes)
	})
}

// methodLabel bounds the methods metrics name to those MCP defines, so a
// client cannot mint series.
func methodLabel(method string) string {
	switch method {
	case "initialize", "ping", "tools/list", "tools/call", "resources/list", "resources/read",
		"resources/templates/list", "resources/subscribe", "resources/unsubscribe",
		"prompts/list", "prompts/get", "completion/complete", "logging/setLevel",
		"tasks/get", "tasks/list", "tasks/result", "tasks/cancel":
		return method
	}
	return "other"
}

// recorder notes the status and size of a response. It unwraps, so that
// http.ResponseController still reaches the real writer to flush streams.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) code() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}
