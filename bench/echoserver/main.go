// Command echoserver is the stdio MCP server the benchmark wraps: the tools
// echo {text} and big {size}, served over stdin/stdout with the official
// SDK. It keeps the measurement independent of any fixture's extras.
//
// With -http ADDR it serves the same tools over Streamable HTTP itself, a
// server of its own per session, answering in JSON: no pipes and no child,
// the floor that any stdio-to-HTTP wrapper is measured against. With -lean
// as well, a handler written for the benchmark's requests alone answers
// them (initialize, notifications, echo, big, DELETE) without the SDK: the
// floor of HTTP itself, where MCP costs nothing.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mcpwrap/mcpwrap/bench/internal/echotools"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func main() {
	addr := flag.String("http", "", "serve Streamable HTTP on this host:port at /mcp instead of stdio")
	lean := flag.Bool("lean", false, "with -http: answer with a hand-written handler instead of the SDK's")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	run := runStdio
	if *addr != "" {
		run = func(ctx context.Context) error { return runHTTP(ctx, *addr, *lean) }
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

func runHTTP(ctx context.Context, addr string, lean bool) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	// The address actually bound, for a caller that asked for port 0.
	fmt.Fprintln(os.Stderr, "listening on", ln.Addr())
	var h http.Handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return echotools.NewServer() },
		&mcp.StreamableHTTPOptions{JSONResponse: true})
	if lean {
		h = http.HandlerFunc(leanHandler)
	}
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

// leanHandler answers the requests mcpwrap bench sends and nothing else,
// as JSON.
func leanHandler(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodDelete:
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "POST, DELETE")
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	var req struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct {
			Name      string `json:"name"`
			Arguments struct {
				Text string `json:"text"`
				Size int    `json:"size"`
			} `json:"arguments"`
		} `json:"params"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&req); err != nil {
		http.Error(w, "bad JSON", http.StatusBadRequest)
		return
	}
	if req.ID == nil {
		w.WriteHeader(http.StatusAccepted) // a notification
		return
	}
	var result any
	switch {
	case req.Method == "initialize":
		w.Header().Set("Mcp-Session-Id", strconv.FormatInt(sessions.Add(1), 10))
		result = map[string]any{
			"protocolVersion": "2025-06-18",
			"capabilities":    map[string]any{"tools": map[string]any{}},
			"serverInfo":      map[string]any{"name": "mcpwrap-bench-echo-lean", "version": "1"},
		}
	case req.Method == "tools/call" && req.Params.Name == "echo":
		result = leanText(req.Params.Arguments.Text)
	case req.Method == "tools/call" && req.Params.Name == "big" && req.Params.Arguments.Size >= 0 && req.Params.Arguments.Size <= echotools.MaxBigSize:
		result = leanText(strings.Repeat("x", req.Params.Arguments.Size))
	default:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": req.ID, "error": map[string]any{"code": -32601, "message": "not served here"}})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": req.ID, "result": result})
}

// sessions numbers the lean handler's sessions.
var sessions atomic.Int64

func leanText(s string) map[string]any {
	return map[string]any{"content": []any{map[string]any{"type": "text", "text": s}}}
}
