// Command echoserver is the stdio MCP server the benchmark wraps: the tools
// echo {text} and big {size}, served over stdin/stdout with the official
// SDK. It keeps the measurement independent of any fixture's extras.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/mcpwrap/mcpwrap/bench/internal/echotools"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "echoserver:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	err := echotools.NewServer().Run(ctx, &mcp.StdioTransport{})
	// Stdin closing is how a client ends a stdio server, so it is a clean stop.
	if err == nil || ctx.Err() != nil {
		return nil
	}
	return err
}
