package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/mcpwrap/mcpwrap/internal/lines"
)

// protocolVersion is what the benchmark asks for in initialize: the newest
// stateful revision, which wrappers of stdio servers speak.
const protocolVersion = "2025-11-25"

// initializeParams is sent unchanged by every session.
var initializeParams = []byte(`{"protocolVersion":"` + protocolVersion +
	`","capabilities":{},"clientInfo":{"name":"mcpwrap-bench","version":"1"}}`)

// session is one MCP client session under load, over HTTP or over a
// child's pipes. Both speak the same messages so that their costs compare.
type session interface {
	// call sends one request and waits for its response.
	call(ctx context.Context, method string, params []byte) (*message, error)
	// close ends the session; it is safe to call more than once.
	close(ctx context.Context) error
}

// opener starts sessions: initialize, then notifications/initialized.
type opener interface {
	open(ctx context.Context) (session, error)
}

// message is the part of a JSON-RPC message the benchmark reads.
type message struct {
	ID     json.RawMessage `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *rpcError       `json:"error,omitempty"`
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// isResponse reports whether m answers a request rather than being a
// request or notification from the server.
func (m *message) isResponse() bool { return m.Method == "" && len(m.ID) > 0 }

// idNumber reads a numeric id; the benchmark only ever sends numbers.
func (m *message) idNumber() (int64, bool) {
	id, err := strconv.ParseInt(string(bytes.Trim(m.ID, `"`)), 10, 64)
	return id, err == nil
}

// appendRequest encodes a request without going through reflection, since
// it is built for every call. method must need no JSON escaping; the
// benchmark only sends fixed method names.
func appendRequest(buf []byte, id int64, method string, params []byte) []byte {
	buf = append(buf, `{"jsonrpc":"2.0","id":`...)
	buf = strconv.AppendInt(buf, id, 10)
	buf = append(buf, `,"method":"`...)
	buf = append(buf, method...)
	buf = append(buf, '"')
	if params != nil {
		buf = append(buf, `,"params":`...)
		buf = append(buf, params...)
	}
	return append(buf, '}')
}

func appendNotification(buf []byte, method string) []byte {
	buf = append(buf, `{"jsonrpc":"2.0","method":"`...)
	buf = append(buf, method...)
	return append(buf, `"}`...)
}

// Error kinds, the keys of a report's error counts.
const (
	kindSpawn       = "spawn"        // the command could not start
	kindChildExit   = "child_exit"   // the child's stdout ended with calls pending
	kindConnect     = "connect"      // the HTTP request failed below HTTP
	kindTimeout     = "timeout"      // no answer within --timeout
	kindRPC         = "rpc_error"    // a JSON-RPC error response
	kindTool        = "tool_error"   // a tool result with isError set
	kindBadResponse = "bad_response" // malformed, mismatched or wrong content
	kindTooLarge    = "too_large"    // a message beyond --max-message
	kindClose       = "close"        // ending the session failed
)

// kindError carries the kind a report counts an error under.
type kindError struct {
	kind string
	err  error
}

func (e *kindError) Error() string { return e.kind + ": " + e.err.Error() }
func (e *kindError) Unwrap() error { return e.err }

func kinded(kind string, err error) error { return &kindError{kind: kind, err: err} }

func kindf(kind, format string, a ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, a...)}
}

// httpStatusKind names an unexpected HTTP status, so that a 413 and a 503
// are told apart in the report.
func httpStatusKind(code int) string { return "http_" + strconv.Itoa(code) }

// kindOf classifies err for the report.
func kindOf(err error) string {
	if ke, ok := errors.AsType[*kindError](err); ok {
		return ke.kind
	}
	switch {
	case errors.Is(err, errTooLarge):
		return kindTooLarge
	case errors.Is(err, context.DeadlineExceeded):
		return kindTimeout
	}
	return "other"
}

// errTooLarge marks a message, line or event beyond the configured cap. It
// is the line reader's own error, so one check covers all three.
var errTooLarge = lines.ErrTooLong

// toolResult is the part of a CallToolResult the benchmark checks.
type toolResult struct {
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	IsError bool `json:"isError"`
}

// checkToolResult turns a tools/call response into an error of the right
// kind. want, when set, is the exact text the single content item must
// hold; wantLen, when non-negative, is its length.
func checkToolResult(m *message, want string, wantLen int) error {
	if m.Error != nil {
		return kindf(kindRPC, "code %d: %s", m.Error.Code, m.Error.Message)
	}
	var r toolResult
	if err := json.Unmarshal(m.Result, &r); err != nil {
		return kindf(kindBadResponse, "decode tool result: %w", err)
	}
	if r.IsError {
		text := ""
		if len(r.Content) > 0 {
			text = r.Content[0].Text
		}
		return kindf(kindTool, "%.200s", text)
	}
	if want == "" && wantLen < 0 {
		return nil
	}
	if len(r.Content) != 1 || r.Content[0].Type != "text" {
		return kindf(kindBadResponse, "want one text content item, got %d items", len(r.Content))
	}
	got := r.Content[0].Text
	if wantLen >= 0 && len(got) != wantLen {
		return kindf(kindBadResponse, "text of %d bytes, want %d", len(got), wantLen)
	}
	if want != "" && got != want {
		return kindf(kindBadResponse, "echoed text differs from what was sent")
	}
	return nil
}
