package wrap_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/mcpwrap/mcpwrap/session"
	"github.com/mcpwrap/mcpwrap/wrap"
)

// rawPost starts a POST to the session by hand, headers only, so that a
// test can send the body bit by bit or not at all.
func rawPost(t *testing.T, rawURL, session string, length int) (net.Conn, *bufio.Reader) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"+
		"Accept: application/json, text/event-stream\r\nMcp-Session-Id: %s\r\nMCP-Protocol-Version: 2025-06-18\r\nContent-Length: %d\r\n\r\n",
		u.Path, u.Host, token, session, length)
	return c, bufio.NewReader(c)
}

// Bodies held at once are bounded in bytes across every request: one that
// would pass the bound gets 503 with Retry-After, and once the first body
// is done, the next one fits again.
func TestBodyBytesAreBoundedAcrossRequests(t *testing.T) {
	s := start(t, func(_ *session.Options, w *wrap.Options) {
		w.MaxMessage = 64 << 10
		w.MaxBodyBytes = 100 << 10
	})
	id := s.open(t)
	// The first request declares 60 KiB and sends only half: its body is
	// held while it waits for the rest.
	c, r := rawPost(t, s.URL, id, 60<<10)
	if _, err := c.Write([]byte(strings.Repeat(" ", 30<<10))); err != nil {
		t.Fatal(err)
	}
	// The second asks for 60 KiB more: 120 KiB would be held, over the bound.
	// Until the first request's handler has reserved its share, the
	// second still fits; after, it must not.
	var resp *http.Response
	var body string
	testkit.Eventually(t, "a second large body to be refused", func() bool {
		resp, body = s.do(t, raw{session: id, version: "2025-06-18", body: padded(`{"jsonrpc":"2.0","id":2,"method":"ping"}`, 60<<10)})
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	if resp.Header.Get("Retry-After") == "" || !strings.Contains(body, `"error"`) {
		t.Errorf("503 without Retry-After or JSON-RPC error: %v %s", resp.Header, body)
	}
	// A small body still fits beside the held one.
	if resp, body := s.do(t, raw{session: id, version: "2025-06-18", body: `{"jsonrpc":"2.0","id":3,"method":"ping"}`}); resp.StatusCode != http.StatusOK {
		t.Errorf("small body beside the held one: %d %s", resp.StatusCode, body)
	}
	// The first body completes (a ping padded with spaces) and is answered;
	// its share is given back, and a large body fits again.
	if _, err := c.Write([]byte(padded(`{"jsonrpc":"2.0","id":1,"method":"ping"}`, 30<<10))); err != nil {
		t.Fatal(err)
	}
	first, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	first.Body.Close()
	if first.StatusCode != http.StatusOK {
		t.Fatalf("first body: %d", first.StatusCode)
	}
	if resp, body := s.do(t, raw{session: id, version: "2025-06-18", body: padded(`{"jsonrpc":"2.0","id":4,"method":"ping"}`, 60<<10)}); resp.StatusCode != http.StatusOK {
		t.Errorf("large body after the first ended: %d %s", resp.StatusCode, body)
	}
}

// padded prefixes msg with spaces to n bytes: still one JSON message.
func padded(msg string, n int) string {
	return strings.Repeat(" ", n-len(msg)) + msg
}

// A body trickled slower than the body timeout allows is cut off with 408,
// and the connection is closed, rather than held for as long as the client
// likes.
func TestTrickledBodyTimesOut(t *testing.T) {
	s := start(t, func(_ *session.Options, w *wrap.Options) {
		w.BodyTimeout = 500 * time.Millisecond
	})
	id := s.open(t)
	c, r := rawPost(t, s.URL, id, 1000)
	if _, err := c.Write([]byte("{")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("no answer to a trickled body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("trickled body: %d, want 408", resp.StatusCode)
	}
	if _, err := io.ReadAll(r); err != nil {
		t.Errorf("connection not closed after 408: %v", err)
	}
	// The session is unharmed.
	if resp, body := s.do(t, raw{session: id, version: "2025-06-18", body: `{"jsonrpc":"2.0","id":2,"method":"ping"}`}); resp.StatusCode != http.StatusOK {
		t.Errorf("ping after the trickle: %d %s", resp.StatusCode, body)
	}
}

// Without a token, a request naming a foreign host (a page that rebound
// its name to this address) is refused at every door before anything
// starts; addresses, localhost and configured names are served.
func TestForeignHostIsRefusedWithoutAToken(t *testing.T) {
	s := start(t, func(_ *session.Options, w *wrap.Options) {
		w.Auth = nil
		w.Hosts = []string{"mcp.example.test"}
	})
	for _, tc := range []struct {
		method, path, host string
		want               int
	}{
		{http.MethodGet, "/sse", "evil.example", http.StatusForbidden},
		{http.MethodPost, "/mcp", "evil.example:8080", http.StatusForbidden},
		{http.MethodPost, "/message?sessionId=x", "evil.example", http.StatusForbidden},
		{http.MethodPost, "/mcp", "localhost:1234", http.StatusOK},
		{http.MethodPost, "/mcp", "mcp.example.test", http.StatusOK},
		{http.MethodPost, "/mcp", "[::1]:80", http.StatusOK},
	} {
		req, err := http.NewRequest(tc.method, strings.TrimSuffix(s.URL, "/mcp")+tc.path, strings.NewReader(initBody))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = tc.host
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s Host %s: %d, want %d", tc.method, tc.path, tc.host, resp.StatusCode, tc.want)
		}
	}
	// A page elsewhere that embeds the stream (no Origin; the browser says
	// cross-site) starts nothing either.
	req, err := http.NewRequest(http.MethodGet, strings.TrimSuffix(s.URL, "/mcp")+"/sse", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a cross-site GET /sse without a token: %d, want 403", resp.StatusCode)
	}
	// A local tool's page (the Inspector) sends its loopback Origin, and
	// is served though the browser calls it cross-site.
	req.Header.Set("Origin", "http://localhost:6274")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a GET /sse from a loopback page: %d, want 200", resp.StatusCode)
	}
	testkit.Eventually(t, "the loopback page's stream to end its session", func() bool { return s.Reg.Len() == 3 })
}

// While MaxStarting children are starting, a session that cannot get a
// turn within the request timeout is refused with 503, Retry-After and a
// JSON-RPC error; once a turn is back, sessions start again.
func TestStartsBeyondTheBoundWaitThenAreRefused(t *testing.T) {
	s := start(t, func(so *session.Options, wo *wrap.Options) {
		so.MaxStarting = 1
		wo.RequestTimeout = 50 * time.Millisecond
	})
	// An HTTP+SSE session's child hears nothing until its client speaks,
	// so it holds the one turn for its whole hold.
	openStream(t, s.sseURL())
	resp, body := s.do(t, raw{body: initBody})
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, `"error"`) {
		t.Fatalf("initialize with no turn to start: %d %v %s, want 503 with Retry-After and a JSON-RPC error", resp.StatusCode, resp.Header, body)
	}
	testkit.Eventually(t, "a session to start once the turn is back", func() bool {
		resp, _ := s.do(t, raw{body: initBody})
		return resp.StatusCode == http.StatusOK
	})
}
