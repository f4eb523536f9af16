package testkit

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Bearer adds a token to every request, as a client configured with an
// Authorization header does.
type Bearer struct {
	Token string
	Base  http.RoundTripper // http.DefaultTransport if nil
}

func (b Bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.Token)
	base := b.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}

// Client is how a test reaches an MCP endpoint with the official Go SDK
// client.
type Client struct {
	URL     string // the endpoint: /mcp, or /sse with Legacy
	Token   string
	Legacy  bool // HTTP+SSE (2024-11-05) instead of Streamable HTTP
	Options *mcp.ClientOptions
	// MaxRetries is the Streamable HTTP transport's: 0 keeps the SDK's
	// default retries, as real clients have them; -1 gives up on a broken
	// stream at once.
	MaxRetries int
	// ProtocolVersion is the one to ask for. Empty asks for 2025-11-25,
	// the newest revision with sessions, which most tests follow: the SDK's
	// own default is the stateless 2026-07-28, which has none. Stateless
	// asks for the SDK's default instead.
	ProtocolVersion string
	Stateless       bool
}

// sessionEra is the revision a Client asks for unless told otherwise.
const sessionEra = "2025-11-25"

// Connect opens a session, within a generous bound. The HTTP+SSE
// transport keeps ctx for the life of its stream, so ctx is cancelled only
// if connecting takes too long, never once connected.
func (c Client) Connect(ctx context.Context) (*mcp.ClientSession, error) {
	ctx, cancel := context.WithCancel(ctx)
	giveUp := time.AfterFunc(2*Patience, cancel)
	defer giveUp.Stop()
	httpClient := &http.Client{Transport: Bearer{Token: c.Token}}
	var transport mcp.Transport
	if c.Legacy {
		transport = &mcp.SSEClientTransport{Endpoint: c.URL, HTTPClient: httpClient}
	} else {
		transport = &mcp.StreamableClientTransport{Endpoint: c.URL, HTTPClient: httpClient, MaxRetries: c.MaxRetries}
	}
	version := c.ProtocolVersion
	if version == "" && !c.Stateless {
		version = sessionEra
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpwrap-test", Version: "1"}, c.Options)
	cs, err := client.Connect(ctx, transport, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		cancel()
	}
	return cs, err
}

// MustConnect opens a session that the end of the test closes, failing t
// if it cannot.
func (c Client) MustConnect(t testing.TB) *mcp.ClientSession {
	t.Helper()
	cs, err := c.Connect(t.Context())
	if err != nil {
		t.Fatalf("connecting to %s: %v", c.URL, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// Client reaches this mcpwrap's Streamable HTTP endpoint with its token.
func (p *Process) Client() Client { return Client{URL: p.URL, Token: p.Token} }

// Connect opens a session on this mcpwrap with the SDK's defaults.
func (p *Process) Connect(t testing.TB) *mcp.ClientSession {
	t.Helper()
	return p.Client().MustConnect(t)
}

// Call calls a tool and returns the text of its one content.
func Call(ctx context.Context, cs *mcp.ClientSession, tool string, args map[string]any) (string, error) {
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		return "", err
	}
	if res.IsError {
		return "", fmt.Errorf("tool %s failed: %+v", tool, res.Content)
	}
	if len(res.Content) != 1 {
		return "", fmt.Errorf("tool %s returned %d contents, want 1", tool, len(res.Content))
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		return "", fmt.Errorf("tool %s returned %T", tool, res.Content[0])
	}
	return tc.Text, nil
}

// MustCall is Call within a generous bound, failing t on any error.
func MustCall(t testing.TB, cs *mcp.ClientSession, tool string, args map[string]any) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*Patience)
	defer cancel()
	s, err := Call(ctx, cs, tool, args)
	if err != nil {
		t.Fatalf("calling %s: %v", tool, err)
	}
	return s
}

// AskPid asks a session's child (the fixture's pid tool) for its pid.
func AskPid(t testing.TB, cs *mcp.ClientSession) int {
	t.Helper()
	pid, err := strconv.Atoi(MustCall(t, cs, "pid", nil))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// InitBody is a hand-made initialize request of protocol 2025-06-18.
const InitBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

// Request is one hand-made request to an MCP endpoint.
type Request struct {
	Method  string // POST if empty
	URL     string
	Token   string // sent as a bearer token, if set
	Session string // Mcp-Session-Id, with MCP-Protocol-Version 2025-06-18
	Body    string
	Headers map[string]string // set after the defaults; "" deletes one
}

// New builds the request, under ctx: defaults first, then Headers.
func (r Request) New(t testing.TB, ctx context.Context) *http.Request {
	t.Helper()
	if r.Method == "" {
		r.Method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, strings.NewReader(r.Body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if r.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.Token)
	}
	if r.Session != "" {
		req.Header.Set("Mcp-Session-Id", r.Session)
		req.Header.Set("MCP-Protocol-Version", "2025-06-18")
	}
	for k, v := range r.Headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	return req
}

// Send sends the request, within a generous bound, and returns the
// status, headers and body of the answer.
func (r Request) Send(t testing.TB) (int, http.Header, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*Patience)
	defer cancel()
	req := r.New(t, ctx)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, r.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", req.Method, r.URL, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// Send sends a hand-made request to this mcpwrap: to its Streamable HTTP
// endpoint with its token unless the request says otherwise.
func (p *Process) Send(t testing.TB, r Request) (int, http.Header, string) {
	t.Helper()
	if r.URL == "" {
		r.URL = p.URL
	}
	if r.Token == "" {
		r.Token = p.Token
	}
	return r.Send(t)
}

// OpenRaw initializes a session by hand and returns its id.
func (p *Process) OpenRaw(t testing.TB) string {
	t.Helper()
	status, header, body := p.Send(t, Request{Body: InitBody})
	id := header.Get("Mcp-Session-Id")
	if status != http.StatusOK || id == "" {
		t.Fatalf("initialize: %d %s (session %q)", status, body, id)
	}
	status, _, body = p.Send(t, Request{Session: id, Body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`})
	if status != http.StatusAccepted {
		t.Fatalf("initialized: %d %s", status, body)
	}
	return id
}
