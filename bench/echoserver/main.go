// Command echoserver is the stdio MCP server the benchmark wraps: the tools
// echo {text} and big {size}, served over stdin/stdout with the official
// SDK. It keeps the measurement independent of any fixture's extras.
//
// With -http ADDR it serves the same tools over Streamable HTTP itself, a
// server of its own per session, answering in JSON: no pipes and no child,
// the floor that any stdio-to-HTTP wrapper is measured against.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mcpwrap/mcpwrap/bench/internal/echotools"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func main() {
	addr := flag.String("http", "", "serve Streamable HTTP on this host:port at /mcp instead of stdio")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	run := runStdio
	if *addr != "" {
		run = func(ctx context.Context) error { return runHTTP(ctx, *addr) }
	}
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "echoserver:", err)
		os.Exit(1)
	}
}

func runStdio(ctx context.Context) error {
	err := echotools.NewServer().Run(ctx, &mcp.StdioTransport{})
	// Stdin closing is how a client ends a stdio server, so it is a clean stop.
	if err == nil || ctx.Err() != nil {
		return nil
	}
	return err
}

func runHTTP(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	// The address actually bound, for a caller that asked for port 0.
	fmt.Fprintln(os.Stderr, "listening on", ln.Addr())
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return echotools.NewServer() },
		&mcp.StreamableHTTPOptions{JSONResponse: true})
	mux := http.NewServeMux()
	mux.Handle("/mcp", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
