package jsonrpc

import (
	"bytes"
	"strconv"
	"unicode/utf8"
)

// Kind says what a message is, which decides where it is routed.
type Kind uint8

const (
	Invalid      Kind = iota
	Request           // has method and id
	Notification      // has method, no id
	Response          // has id and exactly one of result/error, no method
)

func (k Kind) String() string {
	switch k {
	case Request:
		return "request"
	case Notification:
		return "notification"
	case Response:
		return "response"
	}
	return "invalid"
}

// Message is one JSON-RPC 2.0 message, parsed just enough to route it.
// Byte slices alias Raw; nothing is copied.
type Message struct {
	Raw     []byte // the object exactly as received, surrounding whitespace trimmed
	Kind    Kind
	ID      []byte // raw JSON token of "id" (a string or number; "null" for error responses with null id); nil when absent
	Method  string
	Params  []byte // raw JSON value of "params"; nil when absent
	IsError bool   // a Response carrying "error"

	idStart, idEnd int // offsets of the id value in Raw, for WithID
}

// The members that decide a message's shape, as bits so duplicates show.
const (
	hasVersion = 1 << iota
	hasID
	hasMethod
	hasParams
	hasResult
	hasError
)

var memberNames = [...]string{"jsonrpc", "id", "method", "params", "result", "error"}

// Parse parses exactly one JSON-RPC message (a JSON object). It validates the
// whole input as JSON (same acceptance as encoding/json.Valid) and the
// JSON-RPC shape: "jsonrpc":"2.0"; id is a string or number (null only in
// error responses); method is a string; params, if present, is an object or
// array; a response has exactly one of result or error, and error is an object.
// Members other than these are allowed and ignored.
//
// Errors are *Error with Code CodeParseError for invalid JSON and
// CodeInvalidRequest for valid JSON that is not a JSON-RPC message.
func Parse(b []byte) (Message, error) {
	i := skipSpace(b, 0)
	if i < len(b) && b[i] == '{' {
		m, end, shape, syntax := parseObject(b, i, 0)
		if syntax == nil {
			if j := skipSpace(b, end); j < len(b) {
				syntax = parseError(j)
			}
		}
		if syntax != nil {
			return Message{}, syntax
		}
		if shape != nil {
			return Message{}, shape
		}
		return m, nil
	}
	end, bad := skipValue(b, i, 0)
	if end < 0 {
		return Message{}, parseError(bad)
	}
	if j := skipSpace(b, end); j < len(b) {
		return Message{}, parseError(j)
	}
	return Message{}, invalidRequest("message is not a JSON object")
}

// ParseBody parses an HTTP body: one message, or a JSON array of messages (a
// batch, batch=true). An empty array is CodeInvalidRequest. A batch is
// rejected whole when any element is not a valid message; the error names the
// element's index.
func ParseBody(b []byte) (msgs []Message, batch bool, err error) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		m, err := Parse(b)
		if err != nil {
			return nil, false, err
		}
		return []Message{m}, false, nil
	}
	var shape error
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		if j := skipSpace(b, i+1); j < len(b) {
			return nil, true, parseError(j)
		}
		return nil, true, invalidRequest("empty batch")
	}
	for {
		i = skipSpace(b, i)
		if i < len(b) && b[i] == '{' {
			m, end, mshape, syntax := parseObject(b, i, 1)
			if syntax != nil {
				return nil, true, syntax
			}
			if mshape != nil && shape == nil {
				shape = invalidRequest("batch element " + strconv.Itoa(len(msgs)) + ": " + mshape.Message)
			}
			msgs = append(msgs, m)
			i = end
		} else {
			end, bad := skipValue(b, i, 1)
			if end < 0 {
				return nil, true, parseError(bad)
			}
			if shape == nil {
				shape = invalidRequest("batch element " + strconv.Itoa(len(msgs)) + ": message is not a JSON object")
			}
			msgs = append(msgs, Message{})
			i = end
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return nil, true, parseError(i)
		}
		if b[i] == ',' {
			i++
			continue
		}
		if b[i] != ']' {
			return nil, true, parseError(i)
		}
		if j := skipSpace(b, i+1); j < len(b) {
			return nil, true, parseError(j)
		}
		break
	}
	if shape != nil {
		return nil, true, shape
	}
	return msgs, true, nil
}

// parseObject reads the message object starting at b[start] ('{'), nested in
// depth containers. A syntax error stops it at once; a shape error is kept
// while scanning goes on, because invalid JSON must win over a wrong shape.
func parseObject(b []byte, start, depth int) (m Message, end int, shape, syntax *Error) {
	var seen, dup int
	var version, id, method, params, errv []byte
	idStart := 0
	i := skipSpace(b, start+1)
	if i < len(b) && b[i] == '}' {
		return Message{}, i + 1, invalidRequest("empty object"), nil
	}
	for {
		ke, v, bad := member(b, i)
		if v < 0 {
			return Message{}, -1, nil, parseError(bad)
		}
		v = skipSpace(b, v)
		e, bad := skipValue(b, v, depth+1)
		if e < 0 {
			return Message{}, -1, nil, parseError(bad)
		}
		if bit := memberBit(b[i:ke]); bit != 0 {
			dup |= seen & bit
			seen |= bit
			val := b[v:e]
			switch bit {
			case hasVersion:
				version = val
			case hasID:
				id, idStart = val, v
			case hasMethod:
				method = val
			case hasParams:
				params = val
			case hasError:
				errv = val
			}
		}
		i = skipSpace(b, e)
		if i >= len(b) {
			return Message{}, -1, nil, parseError(i)
		}
		if b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		if b[i] != '}' {
			return Message{}, -1, nil, parseError(i)
		}
		end = i + 1
		break
	}

	m.Raw = b[start:end]
	if dup != 0 {
		for k, name := range memberNames {
			if dup&(1<<k) != 0 {
				return Message{}, end, invalidRequest(`duplicate member "` + name + `"`), nil
			}
		}
	}
	if seen&hasVersion == 0 {
		return Message{}, end, invalidRequest(`missing "jsonrpc"`), nil
	}
	if !stringEquals(version, "2.0") {
		return Message{}, end, invalidRequest(`"jsonrpc" must be "2.0"`), nil
	}
	if seen&hasParams != 0 && params[0] != '{' && params[0] != '[' {
		return Message{}, end, invalidRequest(`"params" must be an object or an array`), nil
	}
	if seen&hasID != 0 {
		m.ID = id
		m.idStart, m.idEnd = idStart-start, idStart-start+len(id)
		switch c := id[0]; {
		case c == '"' || c == '-' || '0' <= c && c <= '9':
		case c == 'n' && seen&(hasError|hasMethod|hasResult) == hasError:
		default:
			return Message{}, end, invalidRequest(`"id" must be a string or a number`), nil
		}
	}
	m.Params = params

	switch {
	case seen&hasMethod != 0:
		if seen&(hasResult|hasError) != 0 {
			return Message{}, end, invalidRequest(`a message with "method" cannot have "result" or "error"`), nil
		}
		if method[0] != '"' {
			return Message{}, end, invalidRequest(`"method" must be a string`), nil
		}
		m.Method = methodName(method)
		m.Kind = Notification
		if seen&hasID != 0 {
			m.Kind = Request
		}
	case seen&(hasResult|hasError) == hasResult|hasError:
		return Message{}, end, invalidRequest(`a response cannot have both "result" and "error"`), nil
	case seen&(hasResult|hasError) != 0:
		if seen&hasID == 0 {
			return Message{}, end, invalidRequest(`a response must have "id"`), nil
		}
		if seen&hasError != 0 {
			if errv[0] != '{' {
				return Message{}, end, invalidRequest(`"error" must be an object`), nil
			}
			m.IsError = true
		}
		m.Kind = Response
	default:
		return Message{}, end, invalidRequest(`neither "method" nor "result" or "error"`), nil
	}
	return m, end, nil, nil
}

// memberBit names the routing member whose quoted name is key, or 0.
func memberBit(key []byte) int {
	inner := key[1 : len(key)-1]
	// An escaped name can be six times its decoded length; anything longer
	// cannot spell one of ours.
	if len(inner) > 6*len("jsonrpc") {
		return 0
	}
	if !hasEscapeOrHigh(inner) {
		switch string(inner) {
		case "jsonrpc":
			return hasVersion
		case "id":
			return hasID
		case "method":
			return hasMethod
		case "params":
			return hasParams
		case "result":
			return hasResult
		case "error":
			return hasError
		}
		return 0
	}
	for k, name := range memberNames {
		if stringEquals(key, name) {
			return 1 << k
		}
	}
	return 0
}

func hasEscapeOrHigh(s []byte) bool {
	for _, c := range s {
		if c == '\\' || c >= utf8.RuneSelf {
			return true
		}
	}
	return false
}

// methodName decodes a method string; well-known MCP methods come back as
// constants so routing a typical message allocates nothing.
func methodName(quoted []byte) string {
	inner := quoted[1 : len(quoted)-1]
	if hasEscapeOrHigh(inner) {
		return unquote(quoted)
	}
	switch string(inner) {
	case "initialize":
		return "initialize"
	case "ping":
		return "ping"
	case "tools/list":
		return "tools/list"
	case "tools/call":
		return "tools/call"
	case "resources/list":
		return "resources/list"
	case "resources/read":
		return "resources/read"
	case "resources/templates/list":
		return "resources/templates/list"
	case "resources/subscribe":
		return "resources/subscribe"
	case "resources/unsubscribe":
		return "resources/unsubscribe"
	case "prompts/list":
		return "prompts/list"
	case "prompts/get":
		return "prompts/get"
	case "completion/complete":
		return "completion/complete"
	case "logging/setLevel":
		return "logging/setLevel"
	case "sampling/createMessage":
		return "sampling/createMessage"
	case "elicitation/create":
		return "elicitation/create"
	case "roots/list":
		return "roots/list"
	case "server/discover":
		return "server/discover"
	case "subscriptions/listen":
		return "subscriptions/listen"
	case "tasks/get":
		return "tasks/get"
	case "tasks/result":
		return "tasks/result"
	case "tasks/list":
		return "tasks/list"
	case "tasks/cancel":
		return "tasks/cancel"
	case "notifications/initialized":
		return "notifications/initialized"
	case "notifications/cancelled":
		return "notifications/cancelled"
	case "notifications/progress":
		return "notifications/progress"
	case "notifications/message":
		return "notifications/message"
	case "notifications/resources/updated":
		return "notifications/resources/updated"
	case "notifications/resources/list_changed":
		return "notifications/resources/list_changed"
	case "notifications/tools/list_changed":
		return "notifications/tools/list_changed"
	case "notifications/prompts/list_changed":
		return "notifications/prompts/list_changed"
	case "notifications/roots/list_changed":
		return "notifications/roots/list_changed"
	case "notifications/elicitation/complete":
		return "notifications/elicitation/complete"
	case "notifications/tasks/status":
		return "notifications/tasks/status"
	}
	return string(inner)
}

// WithID returns a new slice: m.Raw with the id value replaced by id (a raw
// JSON token the caller has made valid). A message without an id gets one as
// its first member. m.Raw is not modified.
func (m *Message) WithID(id []byte) []byte {
	if len(m.Raw) == 0 {
		return nil // not a parsed message
	}
	if m.ID == nil {
		out := make([]byte, 0, len(m.Raw)+len(`"id":,`)+len(id))
		out = append(out, `{"id":`...)
		out = append(out, id...)
		out = append(out, ',')
		return append(out, m.Raw[1:]...)
	}
	return Splice(m.Raw, m.idStart, m.idEnd, id)
}

// OneLine returns b with every newline and carriage return replaced by a
// space, copying only when there is one. For a validated message this keeps
// its meaning: those bytes can only be whitespace between tokens, since JSON
// strings must escape them. The stdio transport needs one message per line.
func OneLine(b []byte) []byte {
	i := bytes.IndexByte(b, '\n')
	if r := bytes.IndexByte(b, '\r'); r >= 0 && (i < 0 || r < i) {
		i = r
	}
	if i < 0 {
		return b
	}
	out := make([]byte, len(b))
	copy(out, b)
	for ; i < len(out); i++ {
		if out[i] == '\n' || out[i] == '\r' {
			out[i] = ' '
		}
	}
	return out
}
