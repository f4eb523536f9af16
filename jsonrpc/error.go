package jsonrpc

import "strconv"

// Error is a JSON-RPC error object; it implements error.
type Error struct {
	Code    int
	Message string
}

// Error codes defined by JSON-RPC 2.0.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603
)

func (e *Error) Error() string {
	return "jsonrpc: " + e.Message + " (code " + strconv.Itoa(e.Code) + ")"
}

func parseError(offset int) *Error {
	return &Error{Code: CodeParseError, Message: "Parse error at byte " + strconv.Itoa(offset)}
}

func invalidRequest(why string) *Error {
	return &Error{Code: CodeInvalidRequest, Message: "Invalid Request: " + why}
}

// ErrorResponse encodes a complete error response (no trailing newline) for
// id (a raw token; nil means null).
func ErrorResponse(id []byte, code int, message string) []byte {
	if id == nil {
		id = []byte("null")
	}
	out := make([]byte, 0, 64+len(id)+len(message))
	out = append(out, `{"jsonrpc":"2.0","id":`...)
	out = append(out, id...)
	out = append(out, `,"error":{"code":`...)
	out = strconv.AppendInt(out, int64(code), 10)
	out = append(out, `,"message":`...)
	out = appendQuoted(out, message)
	return append(out, "}}"...)
}
