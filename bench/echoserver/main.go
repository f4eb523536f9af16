// Command echoserver is the stdio MCP server the benchmark wraps: the tools
// echo {text} and big {size}, served over stdin/stdout with the official
// SDK. It keeps the measurement independent of any fixture's extras.
//
// With -http ADDR it serves the same tools over Streamable HTTP itself, a
// server of its own per session, answering in JSON: no pipes and no child,
// the floor that any stdio-to-HTTP wrapper is measured against.
//
// With -lean, code written for the benchmark's requests alone answers them
// (initialize, notifications, echo, big) without the SDK: over stdio, the
// child that costs next to nothing, so a wrapper around it is measured
// rather than the SDK; with -http as well, the floor of HTTP itself, the
// same logic answered by a net/http handler.
package main

import (
	"bufio"
	"bytes"
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
	lean := flag.Bool("lean", false, "answer with hand-written code instead of the SDK's, over stdio or with -http")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	run := runStdio
	if *lean {
		run = runLeanStdio
	}
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
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		http.Error(w, "reading the body", http.StatusBadRequest)
		return
	}
	reply, init, err := leanAnswer(body)
	switch {
	case err != nil:
		http.Error(w, "bad JSON", http.StatusBadRequest)
		return
	case reply == nil:
		w.WriteHeader(http.StatusAccepted) // a notification
		return
	case init:
		w.Header().Set("Mcp-Session-Id", strconv.FormatInt(sessions.Add(1), 10))
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(reply)
}

// runLeanStdio answers the same requests as leanHandler, one per line on
// stdin, each reply a line on stdout: the child that costs as little as
// the lean floor, so that a wrapper around it is measured against the
// same work answered over HTTP.
func runLeanStdio(ctx context.Context) error {
	in := bufio.NewReaderSize(os.Stdin, 64<<10)
	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	for ctx.Err() == nil {
		line, err := in.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			reply, _, perr := leanAnswer(line)
			if perr != nil {
				return perr
			}
			if reply != nil {
				if _, err := out.Write(reply); err != nil {
					return err
				}
			}
		}
		// Flush only when nothing more is waiting, as a server answering
		// a burst would.
		if in.Buffered() == 0 {
			if err := out.Flush(); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// leanAnswer is the lean echo logic: the reply to one JSON-RPC message, a
// line ending in a newline, or nil for a notification; init says the
// message was initialize.
func leanAnswer(msg []byte) (reply []byte, init bool, err error) {
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
	if err := json.Unmarshal(msg, &req); err != nil {
		return nil, false, fmt.Errorf("decoding a message: %w", err)
	}
	if req.ID == nil {
		return nil, false, nil
	}
	var result any
	switch {
	case req.Method == "initialize":
		init = true
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
		reply, err = json.Marshal(map[string]any{"jsonrpc": "2.0", "id": req.ID, "error": map[string]any{"code": -32601, "message": "not served here"}})
		return append(reply, '\n'), false, err
	}
	reply, err = json.Marshal(map[string]any{"jsonrpc": "2.0", "id": req.ID, "result": result})
	return append(reply, '\n'), init, err
}

// sessions numbers the lean handler's sessions.
var sessions atomic.Int64

func leanText(s string) map[string]any {
	return map[string]any{"content": []any{map[string]any{"type": "text", "text": s}}}
}
