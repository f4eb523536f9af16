package wrap

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mcpwrap/mcpwrap/bridge"
	"github.com/mcpwrap/mcpwrap/jsonrpc"
	"github.com/mcpwrap/mcpwrap/session"
)

// Stateless serves requests of the stateless era once they passed the
// checks of the HTTP side (package bridge does).
type Stateless interface {
	Serve(ctx context.Context, req bridge.Request, sink bridge.Sink) ([]byte, error)
}

// Error codes of the stateless era.
const (
	codeHeaderMismatch     = -32020
	codeUnsupportedVersion = -32022
)

const (
	headerMethod     = "Mcp-Method"
	headerName       = "Mcp-Name"
	metaCapabilities = "io.modelcontextprotocol/clientCapabilities"
)

// modernVersions are the stateless revisions served.
var modernVersions = []string{modernVersion}

// modernMethods are the requests of the stateless era. Everything else,
// initialize and ping among them, is unknown to it.
var modernMethods = map[string]bool{
	"server/discover": true, "tools/list": true, "tools/call": true,
	"prompts/list": true, "prompts/get": true, "resources/list": true,
	"resources/templates/list": true, "resources/read": true,
	"completion/complete": true, "subscriptions/listen": true,
}

// named are the methods whose target travels in Mcp-Name too, and where.
var named = map[string]string{"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}

// endpoint is the Streamable HTTP endpoint of both eras: the stateless
// era has no GET stream and no sessions to delete.
func (h *Handler) endpoint(w http.ResponseWriter, r *http.Request) {
	if h.opts.Stateless != nil && (r.Method == http.MethodGet || r.Method == http.MethodDelete) && eraOf(r, nil) == modern {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, nil, codeBadRequest, "Method Not Allowed: protocol "+modernVersion+" has no "+r.Method+" on this endpoint")
		return
	}
	h.streamable(w, r)
}

// modernPost serves a POST of the stateless era. msgs is nil when the
// era was known from the headers alone and the body is still unread;
// release gives back the body's share of the budget.
func (h *Handler) modernPost(w http.ResponseWriter, r *http.Request, msgs []jsonrpc.Message, release func()) {
	if msgs == nil {
		body, rel, ok := h.readBody(w, r)
		if !ok {
			return
		}
		defer rel()
		release = rel
		var batch bool
		var err error
		msgs, batch, err = jsonrpc.ParseBody(body)
		if err != nil {
			parseError(w, err)
			return
		}
		noteMessages(r, msgs, len(body))
		if batch {
			writeError(w, http.StatusBadRequest, nil, jsonrpc.CodeInvalidRequest, "Invalid Request: protocol "+modernVersion+" has no batches")
			return
		}
	}
	if len(msgs) != 1 {
		writeError(w, http.StatusBadRequest, nil, jsonrpc.CodeInvalidRequest, "Invalid Request: protocol "+modernVersion+" has no batches")
		return
	}
	msg := msgs[0]
	switch msg.Kind {
	case jsonrpc.Notification:
		// None is defined over HTTP in this era; a client cancels by
		// closing the stream.
		w.WriteHeader(http.StatusAccepted)
		return
	case jsonrpc.Response:
		writeError(w, http.StatusBadRequest, nil, jsonrpc.CodeInvalidRequest, "Invalid Request: protocol "+modernVersion+" has no responses from the client")
		return
	}
	if status, resp := checkModern(r, msg); resp != nil {
		writeBody(w, status, resp)
		return
	}
	release()
	p := principalOf(r)
	req := bridge.Request{Tenant: p.Tenant, Env: p.Env, Subject: p.Subject, Msg: msg}
	if ts, ok := h.opts.Stateless.(toolSchemas); ok && msg.Method == "tools/call" {
		if status, resp := h.checkParams(r.Context(), r, ts, req); resp != nil {
			writeBody(w, status, resp)
			return
		}
	}
	h.answerModern(w, r, req)
}

// checkModern checks a stateless-era request against its headers, in the
// order the specification's conformance suite expects the refusals:
// the version header, the required _meta fields, the version agreement, the
// version itself, Mcp-Method and Mcp-Name, and then the method.
func checkModern(r *http.Request, msg jsonrpc.Message) (int, []byte) {
	fail := func(status, code int, message string) (int, []byte) {
		return status, jsonrpc.ErrorResponse(msg.ID, code, message)
	}
	header := r.Header.Get(headerVersion)
	if header == "" {
		return fail(http.StatusBadRequest, codeHeaderMismatch, "Header mismatch: the MCP-Protocol-Version header is required")
	}
	var meta struct {
		Version      *string         `json:"io.modelcontextprotocol/protocolVersion"`
		Capabilities json.RawMessage `json:"io.modelcontextprotocol/clientCapabilities"`
	}
	raw, _, _, _ := jsonrpc.Lookup(msg.Params, "_meta")
	_ = json.Unmarshal(raw, &meta)
	if meta.Version == nil {
		return fail(http.StatusBadRequest, jsonrpc.CodeInvalidParams, "Invalid params: _meta[\""+metaVersion+"\"] is required")
	}
	if len(meta.Capabilities) == 0 || meta.Capabilities[0] != '{' {
		return fail(http.StatusBadRequest, jsonrpc.CodeInvalidParams, "Invalid params: _meta[\""+metaCapabilities+"\"] is required")
	}
	if header != *meta.Version {
		return fail(http.StatusBadRequest, codeHeaderMismatch, "Header mismatch: MCP-Protocol-Version "+header+" differs from the request's protocol version "+*meta.Version)
	}
	if !slices.Contains(modernVersions, header) {
		b, _ := json.Marshal(map[string]any{
			"jsonrpc": "2.0", "id": json.RawMessage(idOrNull(msg.ID)),
			"error": map[string]any{
				"code":    codeUnsupportedVersion,
				"message": "Unsupported protocol version " + header,
				"data":    map[string]any{"supported": modernVersions, "requested": header},
			},
		})
		return http.StatusBadRequest, b
	}
	if got := r.Header.Get(headerMethod); got != msg.Method {
		if got == "" {
			return fail(http.StatusBadRequest, codeHeaderMismatch, "Header mismatch: the Mcp-Method header is required")
		}
		return fail(http.StatusBadRequest, codeHeaderMismatch, "Header mismatch: Mcp-Method "+got+" differs from the method "+msg.Method)
	}
	if field, ok := named[msg.Method]; ok {
		var want string
		v, _, _, _ := jsonrpc.Lookup(msg.Params, field)
		_ = json.Unmarshal(v, &want)
		values := r.Header.Values(headerName)
		if len(values) == 0 {
			return fail(http.StatusBadRequest, codeHeaderMismatch, "Header mismatch: the Mcp-Name header is required for "+msg.Method)
		}
		got, ok := headerValue(values[0])
		if !ok || len(values) > 1 {
			return fail(http.StatusBadRequest, codeHeaderMismatch, "Header mismatch: the Mcp-Name header is malformed")
		}
		if got != want {
			return fail(http.StatusBadRequest, codeHeaderMismatch, "Header mismatch: Mcp-Name differs from the request's params."+field)
		}
	}
	if !modernMethods[msg.Method] {
		return fail(http.StatusNotFound, jsonrpc.CodeMethodNotFound, "Method not found: "+msg.Method)
	}
	return 0, nil
}

// headerValue decodes a header value that may use the base64 sentinel
// form, =?base64?…?=; a value with only one of the markers is literal. A
// sentinel around anything but padded standard base64 is malformed.
func headerValue(v string) (string, bool) {
	v = strings.TrimSpace(v)
	if len(v) < len("=?base64??=") || !strings.HasPrefix(v, "=?base64?") || !strings.HasSuffix(v, "?=") {
		return v, true
	}
	b, err := base64.StdEncoding.Strict().DecodeString(v[len("=?base64?") : len(v)-len("?=")])
	if err != nil {
		return "", false
	}
	return string(b), true
}

func idOrNull(id []byte) []byte {
	if id == nil {
		return []byte("null")
	}
	return id
}

// answerModern runs a request through the bridge. The answer is one JSON
// body while only the response comes; the first notification, or a
// keep-alive interval of silence, turns it into an SSE stream. The client
// closing the connection cancels the request.
func (h *Handler) answerModern(w http.ResponseWriter, r *http.Request, req bridge.Request) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	if h.opts.RequestTimeout > 0 && req.Msg.Method != "subscriptions/listen" {
		// The bridge cancels the call in the child when this passes.
		ctx, cancel = context.WithTimeout(ctx, h.opts.RequestTimeout)
		defer cancel()
	}
	notes := make(chan []byte)
	type outcome struct {
		resp []byte
		err  error
	}
	done := make(chan outcome, 1)
	go func() {
		resp, err := h.opts.Stateless.Serve(ctx, req, func(m []byte) error {
			select {
			case notes <- m:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		done <- outcome{resp, err}
	}()
	keepAlive := time.NewTicker(h.opts.KeepAlive)
	defer keepAlive.Stop()

	// A client that stops reading is cut after the slow-reader timeout,
	// which cancels its request like any closed stream.
	g := newWriteGuard(w, h.opts.SlowReaderTimeout)
	defer g.watch(context.Background())()
	var sse *sseWriter
	if req.Msg.Method == "subscriptions/listen" {
		sse = startSSE(w, g)
	}
	for {
		select {
		case n := <-notes:
			if sse == nil {
				sse = startSSE(w, g)
			}
			if sse.event("message", n) != nil {
				cancel() // the client is gone: that is the cancellation
			}
		case <-keepAlive.C:
			if sse == nil {
				sse = startSSE(w, g)
			}
			if sse.comment() != nil {
				cancel()
			}
		case o := <-done:
			h.finishModern(w, r, req, sse, o.resp, o.err)
			return
		}
	}
}

// finishModern writes a request's final answer.
func (h *Handler) finishModern(w http.ResponseWriter, r *http.Request, req bridge.Request, sse *sseWriter, resp []byte, err error) {
	var elsewhere *bridge.Elsewhere
	switch {
	case err == nil:
	case errors.As(err, &elsewhere) && !session.ValidMachineID(elsewhere.Machine):
		// The instance comes from the client's requestState before its
		// signature can be checked (another instance's key may differ):
		// one that is no instance id is a forgery, and must not reach a
		// header.
		resp = jsonrpc.ErrorResponse(req.Msg.ID, jsonrpc.CodeInvalidParams, "Invalid params: "+bridge.ErrStateTampered.Error())
	case errors.As(err, &elsewhere):
		if sse == nil && r.Header.Get("Fly-Replay-Src") == "" {
			// The proxy re-delivers the request to the instance that
			// holds the parked call.
			w.Header().Set("Fly-Replay", "instance="+elsewhere.Machine)
			writeError(w, http.StatusMisdirectedRequest, req.Msg.ID, codeBadRequest, "Misdirected Request: the call is parked on instance "+elsewhere.Machine)
			return
		}
		resp = jsonrpc.ErrorResponse(req.Msg.ID, jsonrpc.CodeInvalidParams, "Invalid params: requestState names instance "+elsewhere.Machine+", which this request could not reach")
	case errors.Is(err, bridge.ErrBusy), errors.Is(err, bridge.ErrClosed):
		if sse == nil {
			w.Header().Set("Retry-After", "5")
			writeError(w, http.StatusServiceUnavailable, req.Msg.ID, jsonrpc.CodeInternalError, "Service Unavailable: "+err.Error()+"; retry shortly")
			return
		}
		resp = jsonrpc.ErrorResponse(req.Msg.ID, jsonrpc.CodeInternalError, err.Error())
	case r.Context().Err() != nil:
		return // the client left, which cancelled the request
	case errors.Is(err, context.DeadlineExceeded):
		resp = jsonrpc.ErrorResponse(req.Msg.ID, jsonrpc.CodeInternalError, "request timed out after "+h.opts.RequestTimeout.String())
	default:
		status := http.StatusInternalServerError
		if outOfDescriptors(err) {
			w.Header().Set("Retry-After", "1")
			status = http.StatusServiceUnavailable
		}
		if sse == nil {
			writeError(w, status, req.Msg.ID, jsonrpc.CodeInternalError, "cannot serve the request: "+err.Error())
			return
		}
		resp = jsonrpc.ErrorResponse(req.Msg.ID, jsonrpc.CodeInternalError, "cannot serve the request: "+err.Error())
	}
	if sse != nil {
		_ = sse.event("message", resp)
		return
	}
	writeBody(w, errorStatus(resp), resp)
}

// errorStatus is the HTTP status of a stateless-era response: a method the
// server lacks is 404, a refused request 400, everything else 200.
func errorStatus(resp []byte) int {
	v, _, _, ok := jsonrpc.Lookup(resp, "error", "code")
	if !ok {
		return http.StatusOK
	}
	switch string(v) {
	case "-32601":
		return http.StatusNotFound
	case "-32602", "-32020", "-32021", "-32022":
		return http.StatusBadRequest
	}
	return http.StatusOK
}

func writeBody(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
