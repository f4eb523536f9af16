package wrap

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/mcpwrap/mcpwrap/bridge"
	"github.com/mcpwrap/mcpwrap/jsonrpc"
)

// toolSchemas is what checking Mcp-Param headers needs: the input schema
// of the tool a call names. Package bridge provides it.
type toolSchemas interface {
	ToolSchema(ctx context.Context, req bridge.Request, name string) (json.RawMessage, error)
}

// mirrored is one argument a tool's schema asks clients to mirror into a
// header (x-mcp-header): where it is in the arguments, and the header.
type mirrored struct {
	path   []string
	header string
}

// mirroredParams lists the x-mcp-header annotations of a schema, on the
// properties reachable through "properties" alone, as the specification
// allows them.
func mirroredParams(schema json.RawMessage) []mirrored {
	var out []mirrored
	var walk func(raw json.RawMessage, path []string, depth int)
	walk = func(raw json.RawMessage, path []string, depth int) {
		if depth > 32 {
			return
		}
		var s struct {
			Properties map[string]json.RawMessage `json:"properties"`
		}
		if json.Unmarshal(raw, &s) != nil {
			return
		}
		for name, prop := range s.Properties {
			p := append(append([]string(nil), path...), name)
			var ann struct {
				Header string `json:"x-mcp-header"`
			}
			if json.Unmarshal(prop, &ann) == nil && ann.Header != "" {
				out = append(out, mirrored{path: p, header: "Mcp-Param-" + ann.Header})
			}
			walk(prop, p, depth+1)
		}
	}
	walk(schema, nil, 0)
	return out
}

// checkParams checks a tools/call's Mcp-Param headers against its
// arguments, as the tool's schema names them: a value in the body needs
// its header, equal once decoded. It answers 400 (-32020) for a mismatch.
func (h *Handler) checkParams(ctx context.Context, r *http.Request, ts toolSchemas, req bridge.Request) (int, []byte) {
	var p struct {
		Name      string         `json:"name"`
		Arguments map[string]any `json:"arguments"`
	}
	if json.Unmarshal(req.Msg.Params, &p) != nil {
		return 0, nil
	}
	schema, err := ts.ToolSchema(ctx, req, p.Name)
	if err != nil {
		return 0, nil // an unknown tool is the server's to refuse
	}
	for _, m := range mirroredParams(schema) {
		value, ok := argumentAt(p.Arguments, m.path)
		if !ok {
			continue
		}
		values := r.Header.Values(m.header)
		if len(values) == 0 {
			return mismatch(req.Msg.ID, "the "+m.header+" header is required: the arguments carry its value")
		}
		raw := values[0]
		for i := 0; i < len(raw); i++ {
			if c := raw[i]; c != '\t' && (c < 0x20 || c > 0x7e) {
				return mismatch(req.Msg.ID, "the "+m.header+" header holds a character a header value may not")
			}
		}
		got, ok := headerValue(raw)
		if !ok || len(values) > 1 {
			return mismatch(req.Msg.ID, "the "+m.header+" header is malformed")
		}
		if !sameValue(got, value) {
			return mismatch(req.Msg.ID, m.header+" differs from the argument it mirrors")
		}
	}
	return 0, nil
}

func mismatch(id []byte, why string) (int, []byte) {
	return http.StatusBadRequest, jsonrpc.ErrorResponse(id, codeHeaderMismatch, "Header mismatch: "+why)
}

// argumentAt is the value at path in the arguments; false when absent or
// null.
func argumentAt(args map[string]any, path []string) (any, bool) {
	var v any = args
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, v != nil
}

// sameValue compares a header's text with the argument it mirrors: a
// string as it is, a number numerically, a boolean as true or false.
func sameValue(header string, v any) bool {
	switch x := v.(type) {
	case string:
		return header == x
	case bool:
		return header == strconv.FormatBool(x)
	case float64:
		f, err := strconv.ParseFloat(header, 64)
		return err == nil && f == x
	}
	return false // objects and arrays cannot be mirrored
}
