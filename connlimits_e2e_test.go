package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/internal/sse"
	"github.com/mcpwrap/mcpwrap/internal/testkit"
)

// dial opens a raw connection to mcpwrap, closed when the test ends.
func dial(t *testing.T, w *testkit.Process) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(w.Base, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reports whether the server closes c (a read ends in EOF or
// a reset) before limit passes; whatever it sends first is skipped.
func closedWithin(c net.Conn, limit time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(limit))
	_, err := io.Copy(io.Discard, c)
	return !errors.Is(err, os.ErrDeadlineExceeded)
}

// Connections that hold on without doing anything are closed: one that
// never sends a request after the header timeout, a kept-alive one after
// the idle timeout, and one whose request was refused for want of a token
// at once, so that no client that showed no credential keeps a connection.
func TestIdleAndUnauthenticatedConnectionsAreClosed(t *testing.T) {
	w := startWrapper(t, testkit.Options{Env: map[string]string{
		"MCPWRAP_HTTP_HEADER_TIMEOUT": "1s",
		"MCPWRAP_HTTP_IDLE_TIMEOUT":   "1s",
	}})
	silent := dial(t, w)
	if !closedWithin(silent, testkit.Patience) {
		t.Error("a connection that sent nothing was not closed")
	}

	refused := dial(t, w)
	fmt.Fprintf(refused, "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
	resp, err := http.ReadResponse(bufio.NewReader(refused), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
		t.Errorf("no token: %d, close %v; want 401 and the connection closed", resp.StatusCode, resp.Close)
	}

	kept := dial(t, w)
	fmt.Fprintf(kept, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(kept)
	if resp, err = http.ReadResponse(br, nil); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Close {
		t.Fatal("health check closed its connection; the idle timeout cannot be seen")
	}
	if !closedWithin(kept, testkit.Patience) {
		t.Error("an idle kept-alive connection was not closed")
	}
}

// Under a small file-descriptor limit, a flood of connections that send
// nothing does not lock everyone out: past the cap (half the limit) they
// are answered 503 at once, a session opened before keeps working, and
// once the flood is gone new clients are served again. Sessions that run
// the process out of descriptors get 503, not 500.
func TestConnectionFloodUnderAFileLimit(t *testing.T) {
	w := startWrapper(t, testkit.Options{
		Prefix: []string{"/bin/sh", "-c", `ulimit -n 256 && "$@"`, "sh"},
		Env:    map[string]string{"MCPWRAP_HTTP_HEADER_TIMEOUT": "1h"},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 2*testkit.Patience)
	defer cancel()
	bystander := w.Connect(t)
	testkit.MustCall(t, bystander, "echo", map[string]any{"text": "before"})

	const flood = 300
	conns := make([]net.Conn, 0, flood)
	for range flood {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(w.Base, "http://"), 5*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// Past the cap, connections hear 503 and are closed without waiting
	// for anything from the client.
	turnedAway := 0
	deadline := time.Now().Add(testkit.Patience)
	for _, c := range conns[flood-50:] {
		_ = c.SetReadDeadline(deadline)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil && resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "" {
			turnedAway++
		}
	}
	if turnedAway != 50 {
		t.Errorf("%d of the last 50 flood connections were answered 503, want all", turnedAway)
	}
	if got, err := testkit.Call(ctx, bystander, "echo", map[string]any{"text": "during"}); err != nil || got != "during" {
		t.Errorf("the session opened before the flood: %q, %v", got, err)
	}
	for _, c := range conns {
		c.Close()
	}
	testkit.Eventually(t, "a new client to be served after the flood", func() bool {
		status, _, _ := w.Send(t, testkit.Request{Body: testkit.InitBody})
		return status == http.StatusOK
	})

	// Now sessions until the descriptors run out: each child takes a few.
	sawLimit := false
	for i := 0; i < 200 && !sawLimit; i++ {
		status, header, body := w.Send(t, testkit.Request{Body: testkit.InitBody})
		switch status {
		case http.StatusOK:
		case http.StatusServiceUnavailable:
			sawLimit = true
			if header.Get("Retry-After") == "" || !strings.Contains(body, `"error"`) {
				t.Errorf("out of descriptors: 503 without Retry-After or JSON-RPC error: %s", body)
			}
		default:
			t.Fatalf("session %d: %d %s, want 200 or 503", i, status, body)
		}
	}
	if !sawLimit {
		t.Error("200 sessions under a limit of 256 descriptors never ran out")
	}
}

// TestBodyFloodStaysWithinItsBound: 40 clients each announce a 16 MiB body
// and send it slowly. The bodies held at once stay within
// MCPWRAP_MAX_BODY_BYTES_TOTAL: past it, a request is answered 503 with
// Retry-After before its body is read, and the process's memory stays near
// the bound instead of growing with the clients.
func TestBodyFloodStaysWithinItsBound(t *testing.T) {
	const body, clients = 16 << 20, 40
	w := startWrapper(t, testkit.Options{Env: map[string]string{
		"MCPWRAP_MAX_BODY_BYTES_TOTAL": strconv.Itoa(48 << 20),
		"MCPWRAP_HTTP_BODY_TIMEOUT":    "1h",
	}})
	id := w.OpenRaw(t)
	before := vmHWM(t, w.Pid)
	chunk := []byte(strings.Repeat(" ", 1<<20))
	var wg sync.WaitGroup
	var refused, held atomic.Int32
	for range clients {
		wg.Go(func() {
			c := dial(t, w)
			_ = c.SetDeadline(time.Now().Add(testkit.Patience))
			fmt.Fprintf(c, "POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"+
				"Accept: application/json, text/event-stream\r\nMcp-Session-Id: %s\r\nMCP-Protocol-Version: 2025-06-18\r\nContent-Length: %d\r\n\r\n",
				e2eToken, id, body)
			// Send half the body, then wait for an answer: a held body
			// gets none (the rest never comes), a refused one gets 503.
			for range body / len(chunk) / 2 {
				if _, err := c.Write(chunk); err != nil {
					break
				}
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			switch {
			case err == nil && resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
				refused.Add(1)
			case errors.Is(err, os.ErrDeadlineExceeded):
				held.Add(1)
			}
		})
	}
	wg.Wait()
	peak := vmHWM(t, w.Pid)
	t.Logf("%d bodies held, %d refused; peak memory %d MiB (from %d MiB)", held.Load(), refused.Load(), peak>>20, before>>20)
	if held.Load() > 3 || held.Load()+refused.Load() != clients {
		t.Errorf("%d held and %d refused of %d; want at most 3 held (48 MiB / 16 MiB) and the rest refused", held.Load(), refused.Load(), clients)
	}
	if peak-before > 96<<20 {
		t.Errorf("memory grew by %d MiB under the flood; the bound is 48 MiB of bodies", (peak-before)>>20)
	}
}

// TestRebindingHostIsRefused: without a token, a request whose Host is a
// name (what a page that rebound its own name to 127.0.0.1 sends) starts
// nothing at any door; the address and localhost are served.
func TestRebindingHostIsRefused(t *testing.T) {
	w := testkit.Start(t, testkit.Options{})
	for _, tc := range []struct {
		method, path, host string
		want               int
	}{
		{http.MethodGet, "/sse", "rebound.example:80", http.StatusForbidden},
		{http.MethodPost, "/mcp", "rebound.example", http.StatusForbidden},
		{http.MethodPost, "/mcp", "localhost", http.StatusOK},
	} {
		req := testkit.Request{Method: tc.method, URL: w.Base + tc.path, Body: testkit.InitBody}.New(t, t.Context())
		req.Host = tc.host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s with Host %s: %d, want %d", tc.method, tc.path, tc.host, resp.StatusCode, tc.want)
		}
	}
	if _, sessions := w.Health(t); sessions != 1 {
		t.Errorf("%d sessions, want the one localhost opened", sessions)
	}
}

// TestBareCRFromTheChildKeepsItsEvent: a child's line may hold a bare CR
// as JSON whitespace; on an SSE stream it must not cut the event short.
func TestBareCRFromTheChildKeepsItsEvent(t *testing.T) {
	w := startWrapper(t, testkit.Options{Command: shServer(`
	*'"method":"tools/call"'*)
		printf '{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p",\r"progress":1}}\n'
		printf '{"jsonrpc":"2.0",\r"id":%s,"result":{"content":[{"type":"text","text":"cr"}]}}\n' "$id";;`)})
	id := w.OpenRaw(t)
	status, _, body := w.Send(t, testkit.Request{Session: id,
		Body: `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x","_meta":{"progressToken":"p"}}}`})
	if status != http.StatusOK {
		t.Fatalf("call: %d %s", status, body)
	}
	events, _, err := readEvents(body)
	if err != nil || len(events) != 2 {
		t.Fatalf("read %d events (%v) from %q, want the progress and the result", len(events), err, body)
	}
	for _, ev := range events {
		if !json.Valid(ev) {
			t.Errorf("event %q is not the child's JSON", ev)
		}
	}
	if !strings.Contains(string(events[1]), `"id":7`) {
		t.Errorf("result event %q", events[1])
	}
}

// readEvents reads an event stream's data the way a client does.
func readEvents(stream string) ([][]byte, int, error) {
	r := sse.NewReader(strings.NewReader(stream), 1<<20)
	var out [][]byte
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, len(out), nil
		}
		if err != nil {
			return out, len(out), err
		}
		out = append(out, ev.Data)
	}
}
