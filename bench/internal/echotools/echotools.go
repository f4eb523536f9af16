// Package echotools builds the MCP server that the benchmark measures
// against: two tools whose cost is as close to nothing as the SDK allows,
// so that what a run measures is the transport, not the tool.
package echotools

import (
	"context"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// MaxBigSize bounds the big tool, so a mistyped size cannot make the
// child allocate without limit.
const MaxBigSize = 64 << 20

// EchoArgs is the input of the echo tool.
type EchoArgs struct {
	Text string `json:"text" jsonschema:"the text to send back"`
}

// BigArgs is the input of the big tool.
type BigArgs struct {
	Size int `json:"size" jsonschema:"how many bytes of text to return"`
}

// NewServer returns a server with the echo and big tools.
func NewServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "mcpwrap-bench-echo", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "returns its text argument"}, echo)
	mcp.AddTool(s, &mcp.Tool{Name: "big", Description: "returns a text of the given size"}, big)
	return s
}

func echo(_ context.Context, _ *mcp.CallToolRequest, in EchoArgs) (*mcp.CallToolResult, any, error) {
	return textResult(in.Text), nil, nil
}

func big(_ context.Context, _ *mcp.CallToolRequest, in BigArgs) (*mcp.CallToolResult, any, error) {
	if in.Size < 0 || in.Size > MaxBigSize {
		return nil, nil, fmt.Errorf("size %d out of range 0..%d", in.Size, MaxBigSize)
	}
	return textResult(strings.Repeat("x", in.Size)), nil, nil
}

func textResult(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}
