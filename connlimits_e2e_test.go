package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

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
