package bridge

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/mcpwrap/mcpwrap/jsonrpc"
)

// ErrNoSuchTool is returned by ToolSchema for a tool the server does not
// list.
var ErrNoSuchTool = errors.New("no such tool")

// maxListPages bounds the pages of tools/list ToolSchema reads.
const maxListPages = 50

// ToolSchema returns the input schema of the named tool, as the children
// that would serve req list it: the HTTP side needs it to check the
// Mcp-Param headers a tool's schema asks for. For a legacy child the list
// comes from the pool's cache.
func (b *Bridge) ToolSchema(ctx context.Context, req Request, name string) (json.RawMessage, error) {
	meta, _, _, _ := jsonrpc.Lookup(req.Msg.Params, "_meta")
	var cursor json.RawMessage
	for range maxListPages {
		params := map[string]json.RawMessage{"_meta": meta}
		if cursor != nil {
			params["cursor"] = cursor
		}
		p, _ := json.Marshal(params)
		body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": "mcpwrap-tool-schema", "method": "tools/list", "params": json.RawMessage(p)})
		msg, err := jsonrpc.Parse(body)
		if err != nil {
			return nil, err
		}
		out, err := b.serve(ctx, Request{Tenant: req.Tenant, Env: req.Env, Subject: req.Subject, Msg: msg}, func([]byte) error { return nil })
		if err != nil {
			return nil, err
		}
		var r struct {
			Result struct {
				Tools []struct {
					Name        string          `json:"name"`
					InputSchema json.RawMessage `json:"inputSchema"`
				} `json:"tools"`
				NextCursor json.RawMessage `json:"nextCursor"`
			} `json:"result"`
		}
		if err := json.Unmarshal(out, &r); err != nil {
			return nil, err
		}
		for _, t := range r.Result.Tools {
			if t.Name == name {
				return t.InputSchema, nil
			}
		}
		if len(r.Result.NextCursor) == 0 || string(r.Result.NextCursor) == "null" {
			break
		}
		cursor = r.Result.NextCursor
	}
	return nil, ErrNoSuchTool
}
