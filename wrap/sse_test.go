package wrap_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/auth"
	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/mcpwrap/mcpwrap/session"
	"github.com/mcpwrap/mcpwrap/wrap"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The deprecated HTTP+SSE transport (2024-11-05), served on the same
// listener as Streamable HTTP: the SDK's own SSE client against a real
// child, and the wire format by hand.

// connectSSE opens a session with the official Go SDK's HTTP+SSE client,
// asking for protocol version (the SDK's latest when empty).
func connectSSE(t *testing.T, endpoint string, opts *mcp.ClientOptions, version string) *mcp.ClientSession {
	t.Helper()
	return testkit.Client{URL: endpoint, Token: token, Legacy: true, Options: opts, ProtocolVersion: version}.MustConnect(t)
}

func (s *server) sseURL() string { return s.srv.URL + "/sse" }

// request is one hand-made HTTP exchange that is not a stream. Headers
// default to a valid token and, for a POST, a JSON body; an empty value
// removes a header.
func request(t *testing.T, method, u, body string, headers map[string]string) (*http.Response, string) {
	t.Helper()
	h := map[string]string{"Accept": "text/event-stream"}
	if method != http.MethodPost {
		h["Content-Type"] = ""
	}
	maps.Copy(h, headers)
	status, header, b := testkit.Request{Method: method, URL: u, Token: token, Body: body, Headers: h}.Send(t)
	return &http.Response{StatusCode: status, Header: header}, b
}

// sseEvent is one event of a stream read by hand; a comment has only text.
type sseEvent struct {
	name, data, id string
	comment        bool
	priming        bool // an id and empty data, that a stream starts with
}

// rawStream is an HTTP+SSE stream opened by hand. One goroutine reads it;
// the test's cleanup stops it and waits for it.
type rawStream struct {
	url      *url.URL // the URL the stream was opened with
	endpoint string   // the endpoint event's data, as sent
	post     *url.URL // endpoint resolved against url
	resp     *http.Response
	events   chan sseEvent // closed when the stream ends
}

// openStream opens a stream at u and reads its endpoint event. Headers are
// as for request.
func openStream(t *testing.T, u string, headers ...map[string]string) *rawStream {
	t.Helper()
	st := openRaw(t, u, headers...)
	ev, ok := st.next(t)
	if !ok || ev.name != "endpoint" {
		t.Fatalf("first event is %+v (stream open: %v), want an endpoint event", ev, ok)
	}
	st.endpoint = ev.data
	post, err := st.url.Parse(ev.data)
	if err != nil {
		t.Fatalf("endpoint %q: %v", ev.data, err)
	}
	st.post = post
	return st
}

// openRaw opens a stream at u without reading anything from it.
func openRaw(t *testing.T, u string, headers ...map[string]string) *rawStream {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]string{"Accept": "text/event-stream", "Content-Type": ""}
	for _, more := range headers {
		maps.Copy(h, more)
	}
	// The stream lives as long as the test reads it: no deadline.
	req := testkit.Request{Method: http.MethodGet, URL: u, Token: token, Headers: h}.New(t, context.Background())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	st := &rawStream{url: parsed, resp: resp, events: make(chan sseEvent, 64)}
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		defer close(st.events)
		emit := func(ev sseEvent) bool {
			select {
			case st.events <- ev:
				return true
			case <-quit:
				return false
			}
		}
		br := bufio.NewReader(resp.Body)
		var name, id string
		var data []string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
			switch field, value, _ := strings.Cut(line, ":"); {
			case line == "":
				if name != "" || data != nil {
					d := strings.Join(data, "\n")
					if !emit(sseEvent{name: name, data: d, id: id, priming: name == "" && d == "" && id != ""}) {
						return
					}
				}
				name, data = "", nil
			case field == "":
				if !emit(sseEvent{data: strings.TrimPrefix(value, " "), comment: true}) {
					return
				}
			case field == "event":
				name = strings.TrimPrefix(value, " ")
			case field == "id":
				id = strings.TrimPrefix(value, " ")
			case field == "data":
				data = append(data, strings.TrimPrefix(value, " "))
			}
		}
	}()
	t.Cleanup(func() {
		close(quit)
		resp.Body.Close()
		<-finished
	})
	return st
}

// next returns the next event that is not a comment or a priming event; ok
// is false when the stream has ended.
func (st *rawStream) next(t *testing.T) (sseEvent, bool) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-st.events:
			if !ok || !ev.comment && !ev.priming {
				return ev, ok
			}
		case <-timeout:
			t.Fatal("timed out waiting for an event")
		}
	}
}

// message returns the next message event, decoded.
func (st *rawStream) message(t *testing.T) map[string]any {
	t.Helper()
	ev, ok := st.next(t)
	if !ok {
		t.Fatal("the stream ended, want a message event")
	}
	if ev.name != "message" {
		t.Fatalf("event %q, want message: %s", ev.name, ev.data)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(ev.data), &m); err != nil {
		t.Fatalf("message event is not JSON: %v: %s", err, ev.data)
	}
	return m
}

// send POSTs one message to the stream's endpoint and wants 202 and no body.
func (st *rawStream) send(t *testing.T, body string) {
	t.Helper()
	resp, got := request(t, http.MethodPost, st.post.String(), body, nil)
	if resp.StatusCode != http.StatusAccepted || got != "" {
		t.Fatalf("POST %s: %d %q, want 202 and no body", body, resp.StatusCode, got)
	}
}

// initialize runs the handshake by hand.
func (st *rawStream) initialize(t *testing.T) {
	t.Helper()
	st.send(t, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	m := st.message(t)
	if m["id"] != float64(1) || m["result"] == nil {
		t.Fatalf("initialize answered with %v", m)
	}
	st.send(t, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
}

// sessionID is the session the stream's endpoint names.
func (st *rawStream) sessionID(t *testing.T) string {
	t.Helper()
	id := st.post.Query().Get("sessionId")
	if id == "" {
		t.Fatalf("endpoint %q names no sessionId", st.endpoint)
	}
	return id
}

func pidOf(t *testing.T, cs *mcp.ClientSession) int {
	t.Helper()
	res, err := cs.CallTool(ctxFor(t), &mcp.CallToolParams{Name: "pid"})
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(text(t, res))
	if err != nil || !testkit.Alive(pid) {
		t.Fatalf("child pid %q (%v) is not running", text(t, res), err)
	}
	return pid
}

// The child's requests travel on the stream, whichever version the client
// asks for (the SDK's default: TestSamplingAndElicitationRoundTrips).
func TestSSESamplingAndElicitationRoundTrips(t *testing.T) {
	for _, version := range []string{"2024-11-05", "2025-11-25"} {
		t.Run(version, func(t *testing.T) {
			s := start(t)
			cs := connectSSE(t, s.sseURL(), answering(), version)
			if got := cs.InitializeResult().ProtocolVersion; got != version {
				t.Fatalf("negotiated %q, want %q", got, version)
			}
			checkSamplingAndElicitation(t, cs)
		})
	}
}

// TestSSEProgress: progress notifications of a call travel on the stream
// too (resource updates: TestResourceUpdateReachesTheClient).
func TestSSEProgress(t *testing.T) {
	s := start(t)
	var mu sync.Mutex
	var progress []float64
	cs := connectSSE(t, s.sseURL(), &mcp.ClientOptions{
		ProgressNotificationHandler: func(ctx context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			progress = append(progress, req.Params.Progress)
			mu.Unlock()
		},
	}, "")
	ctx := ctxFor(t)
	params := &mcp.CallToolParams{Name: "progress", Arguments: map[string]any{"steps": 5, "ms": 5}}
	params.SetProgressToken("tok")
	if _, err := cs.CallTool(ctx, params); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "five progress notifications", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(progress) == 5
	})
}

func TestSSEClosingTheStreamStopsTheChild(t *testing.T) {
	s := start(t)
	cs := connectSSE(t, s.sseURL(), nil, "")
	pid := pidOf(t, cs)
	if n := s.Reg.Len(); n != 1 {
		t.Fatalf("%d live sessions, want 1", n)
	}
	if err := cs.Close(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the child to go after the stream closed", func() bool { return !testkit.Alive(pid) })
	testkit.Eventually(t, "the session to end after the stream closed", func() bool { return s.Reg.Len() == 0 })
}

func TestSSEEndpointEventAndAccepted(t *testing.T) {
	s := start(t)
	st := openStream(t, s.sseURL())
	if ct := st.resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := st.resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control %q", cc)
	}
	// Relative, so that a proxy's path prefix survives; at the root every
	// client reads it the same way.
	if !strings.HasPrefix(st.endpoint, "message?sessionId=") {
		t.Errorf("endpoint %q, want message?sessionId=…", st.endpoint)
	}
	if st.post.Host != st.url.Host || st.post.Path != "/message" {
		t.Errorf("endpoint resolves to %s, want %s/message", st.post, s.srv.URL)
	}
	if _, err := s.Reg.Get(st.sessionID(t)); err != nil {
		t.Errorf("the endpoint's session: %v", err)
	}

	st.initialize(t)
	st.send(t, `{"jsonrpc":"2.0","id":"call-1","method":"tools/call","params":{"name":"echo","arguments":{"text":"raw"}}}`)
	m := st.message(t)
	if m["id"] != "call-1" || !strings.Contains(fmt.Sprint(m["result"]), "raw") {
		t.Errorf("tools/call answered with %v", m)
	}
	// A response from the client (to nothing the child asked) and a
	// notification are accepted too.
	st.send(t, `{"jsonrpc":"2.0","id":99,"result":{}}`)
	st.send(t, `{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}`)
	st.send(t, `{"jsonrpc":"2.0","id":2,"method":"ping"}`)
	if m := st.message(t); m["id"] != float64(2) {
		t.Errorf("ping answered with %v", m)
	}
}

func TestSSEEndpointFollowsTheConfiguredPaths(t *testing.T) {
	for _, tc := range []struct {
		ssePath, messagePath, endpoint string
	}{
		{"/legacy/sse", "/legacy/message", "/legacy/message?sessionId="},
		{"/legacy/sse", "/message", "/message?sessionId="},
		{"/events", "/legacy/message", "legacy/message?sessionId="},
	} {
		t.Run(tc.ssePath+"→"+tc.messagePath, func(t *testing.T) {
			s := start(t, func(_ *session.Options, w *wrap.Options) {
				w.SSEPath, w.MessagePath = tc.ssePath, tc.messagePath
			})
			st := openStream(t, s.srv.URL+tc.ssePath)
			if !strings.HasPrefix(st.endpoint, tc.endpoint) {
				t.Errorf("endpoint %q, want %s…", st.endpoint, tc.endpoint)
			}
			if st.post.Path != tc.messagePath {
				t.Errorf("endpoint resolves to path %s, want %s", st.post.Path, tc.messagePath)
			}
			st.initialize(t)

			cs := connectSSE(t, s.srv.URL+tc.ssePath, nil, "")
			res, err := cs.CallTool(ctxFor(t), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "moved"}})
			if err != nil {
				t.Fatal(err)
			}
			if got := text(t, res); got != "moved" {
				t.Errorf("echo = %q", got)
			}
			if r, _ := request(t, http.MethodGet, s.srv.URL+"/sse", "", nil); r.StatusCode != http.StatusNotFound {
				t.Errorf("GET /sse with the stream moved: %d, want 404", r.StatusCode)
			}
		})
	}
}

func TestSSEBehindAProxyThatStripsAPathPrefix(t *testing.T) {
	s := start(t)
	target, err := url.Parse(s.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	// What an ingress does with one route per wrapped server:
	// /tools/wrapped/… goes to mcpwrap as /….
	proxy := httptest.NewServer(http.StripPrefix("/tools/wrapped", httputil.NewSingleHostReverseProxy(target)))
	t.Cleanup(proxy.Close)

	cs := connectSSE(t, proxy.URL+"/tools/wrapped/sse", nil, "")
	res, err := cs.CallTool(ctxFor(t), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "through the proxy"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := text(t, res); got != "through the proxy" {
		t.Errorf("echo = %q", got)
	}
}

func TestSSEKeepAliveOnAnIdleStream(t *testing.T) {
	s := start(t, func(_ *session.Options, w *wrap.Options) { w.KeepAlive = 50 * time.Millisecond })
	st := openStream(t, s.sseURL())
	timeout := time.After(20 * time.Second)
	for comments := 0; comments < 3; {
		select {
		case ev, ok := <-st.events:
			if !ok {
				t.Fatalf("the stream ended after %d keep-alives", comments)
			}
			if !ev.comment {
				t.Fatalf("an idle stream sent %+v", ev)
			}
			comments++
		case <-timeout:
			t.Fatalf("%d keep-alive comments in 20 s on an idle stream, want 3", comments)
		}
	}
	// Keep-alives are not activity: the session is still there, and works.
	st.initialize(t)
}

func TestSSEMessageEndpointRefusals(t *testing.T) {
	s := start(t)
	st := openStream(t, s.sseURL())
	msg := s.srv.URL + "/message"
	good := st.post.String()
	for _, tc := range []struct {
		name     string
		method   string
		url      string
		body     string
		headers  map[string]string
		status   int
		contains string
	}{
		{"no sessionId", http.MethodPost, msg, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, nil, http.StatusBadRequest, "sessionId"},
		{"empty sessionId", http.MethodPost, msg + "?sessionId=", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, nil, http.StatusBadRequest, "sessionId"},
		{"unknown sessionId", http.MethodPost, msg + "?sessionId=no-such-session", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, nil, http.StatusNotFound, "Session not found"},
		{"text/plain", http.MethodPost, good, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, map[string]string{"Content-Type": "text/plain"}, http.StatusUnsupportedMediaType, "application/json"},
		{"no Content-Type", http.MethodPost, good, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, map[string]string{"Content-Type": ""}, http.StatusUnsupportedMediaType, "application/json"},
		{"malformed JSON", http.MethodPost, good, `{"jsonrpc":"2.0","id":1,`, nil, http.StatusBadRequest, "-32700"},
		{"empty body", http.MethodPost, good, ``, nil, http.StatusBadRequest, "-32700"},
		{"not JSON-RPC", http.MethodPost, good, `{"hello":"world"}`, nil, http.StatusBadRequest, "-32600"},
		{"GET", http.MethodGet, good, ``, nil, http.StatusMethodNotAllowed, "Method Not Allowed"},
		{"DELETE", http.MethodDelete, good, ``, nil, http.StatusMethodNotAllowed, "Method Not Allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := request(t, tc.method, tc.url, tc.body, tc.headers)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.contains) {
				t.Errorf("%d %s, want %d mentioning %q", resp.StatusCode, body, tc.status, tc.contains)
			}
			if tc.status == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != "POST" {
				t.Errorf("Allow %q, want POST", resp.Header.Get("Allow"))
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want a JSON-RPC error body", ct)
			}
		})
	}
	// None of that reached the child or hurt the session.
	st.initialize(t)
}

func TestSSEStreamEndpointRefusals(t *testing.T) {
	s := start(t)
	for _, tc := range []struct {
		name    string
		method  string
		headers map[string]string
		status  int
		allow   string
	}{
		{"POST", http.MethodPost, nil, http.StatusMethodNotAllowed, "GET"},
		{"DELETE", http.MethodDelete, nil, http.StatusMethodNotAllowed, "GET"},
		{"Accept application/json", http.MethodGet, map[string]string{"Accept": "application/json"}, http.StatusNotAcceptable, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := request(t, tc.method, s.sseURL(), "", tc.headers)
			if resp.StatusCode != tc.status {
				t.Errorf("%d %s, want %d", resp.StatusCode, body, tc.status)
			}
			if resp.Header.Get("Allow") != tc.allow {
				t.Errorf("Allow %q, want %q", resp.Header.Get("Allow"), tc.allow)
			}
		})
	}
	if n := s.Reg.Len(); n != 0 {
		t.Errorf("%d sessions started by refused requests", n)
	}
}

func TestSSEAuthAndOrigin(t *testing.T) {
	s := start(t)
	st := openStream(t, s.sseURL())
	for _, tc := range []struct {
		name    string
		method  string
		url     string
		headers map[string]string
		status  int
	}{
		{"stream, no token", http.MethodGet, s.sseURL(), map[string]string{"Authorization": ""}, http.StatusUnauthorized},
		{"stream, wrong token", http.MethodGet, s.sseURL(), map[string]string{"Authorization": "Bearer wrong"}, http.StatusUnauthorized},
		{"stream, wrong scheme", http.MethodGet, s.sseURL(), map[string]string{"Authorization": "Basic " + token}, http.StatusUnauthorized},
		{"stream, token in the query", http.MethodGet, s.sseURL() + "?token=" + token, map[string]string{"Authorization": ""}, http.StatusUnauthorized},
		{"stream, foreign Origin", http.MethodGet, s.sseURL(), map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"message, no token", http.MethodPost, st.post.String(), map[string]string{"Authorization": ""}, http.StatusUnauthorized},
		{"message, wrong token", http.MethodPost, st.post.String(), map[string]string{"Authorization": "Bearer wrong"}, http.StatusUnauthorized},
		{"message, foreign Origin", http.MethodPost, st.post.String(), map[string]string{"Origin": "http://rebound.example:8080"}, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := request(t, tc.method, tc.url, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, tc.headers)
			if resp.StatusCode != tc.status {
				t.Errorf("%d %s, want %d", resp.StatusCode, body, tc.status)
			}
			if tc.status == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate %q, want a Bearer challenge", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	if n := s.Reg.Len(); n != 1 {
		t.Errorf("%d sessions, want only the one stream's", n)
	}
	// Nothing the refused POSTs carried reached the child: the first
	// message on the stream is the answer to the handshake.
	st.initialize(t)

	// A loopback Origin (a local tool such as the MCP Inspector) is fine.
	req, err := http.NewRequest(http.MethodGet, s.sseURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", "http://localhost:6274")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("loopback Origin: %d, want 200", resp.StatusCode)
	}

	// And the SDK client with a wrong token is refused at connect time.
	client := mcp.NewClient(&mcp.Implementation{Name: "wrap-sse-test", Version: "1"}, nil)
	wrong := &http.Client{Transport: testkit.Bearer{Token: "wrong"}}
	if cs, err := client.Connect(ctxFor(t), &mcp.SSEClientTransport{Endpoint: s.sseURL(), HTTPClient: wrong}, nil); err == nil {
		cs.Close()
		t.Errorf("the SDK client connected with a wrong token")
	}
}

func TestSSESessionLimitAndHealth(t *testing.T) {
	s := start(t, func(o *session.Options, _ *wrap.Options) { o.MaxSessions = 1 })
	health := func() (int, string) {
		resp, body := request(t, http.MethodGet, s.srv.URL+"/healthz", "", map[string]string{"Authorization": ""})
		return resp.StatusCode, body
	}
	if code, body := health(); code != http.StatusOK {
		t.Fatalf("healthz before any session: %d %s", code, body)
	}
	st := openStream(t, s.sseURL())
	if code, body := health(); code != http.StatusOK || !strings.Contains(body, `"sessions":1,"full":true`) {
		t.Errorf("healthz at the limit: %d %s, want 200, one session, full", code, body)
	}
	resp, body := request(t, http.MethodGet, s.sseURL(), "", nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a stream over the limit: %d %s (Retry-After %q), want 503 with Retry-After",
			resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	st.resp.Body.Close()
	testkit.Eventually(t, "the session to end after its stream closed", func() bool { return s.Reg.Len() == 0 })
	if code, body := health(); code != http.StatusOK || !strings.Contains(body, `"full":false`) {
		t.Errorf("healthz after the stream closed: %d %s", code, body)
	}
	openStream(t, s.sseURL()).initialize(t)
}

func TestSSEChildExitFlushesTheStreamAndEndsIt(t *testing.T) {
	s := start(t)
	st := openStream(t, s.sseURL())
	st.initialize(t)
	st.send(t, `{"jsonrpc":"2.0","id":"pid","method":"tools/call","params":{"name":"pid"}}`)
	m := st.message(t)
	b, _ := json.Marshal(m["result"])
	var res mcp.CallToolResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("pid: %v: %s", err, b)
	}
	pid, _ := strconv.Atoi(res.Content[0].(*mcp.TextContent).Text)

	// The child dies mid-request: the stream carries the error for the
	// request it never answered, and then ends.
	st.send(t, `{"jsonrpc":"2.0","id":"doomed","method":"tools/call","params":{"name":"crash","arguments":{"code":3}}}`)
	m = st.message(t)
	if m["id"] != "doomed" || m["error"] == nil {
		t.Errorf("after the crash: %v, want an error for the request in flight", m)
	}
	if ev, ok := st.next(t); ok {
		t.Errorf("the stream goes on after its child exited: %+v", ev)
	}
	if testkit.Alive(pid) {
		t.Errorf("child %d still running", pid)
	}
	testkit.Eventually(t, "the session to be gone", func() bool { return s.Reg.Len() == 0 })
	resp, body := request(t, http.MethodPost, st.post.String(), `{"jsonrpc":"2.0","id":1,"method":"ping"}`, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST after the session ended: %d %s, want 404", resp.StatusCode, body)
	}
}

func TestSSEAndStreamableSessionsStayApart(t *testing.T) {
	s := start(t)
	cs := connect(t, s.URL, nil)
	// A Streamable HTTP session id at the HTTP+SSE message endpoint: there
	// is no stream to answer on, so it is no session there. Were the call
	// taken, its progress would fill an exchange nobody reads, and the
	// child's output, and with it the session, would stall.
	resp, body := request(t, http.MethodPost, s.srv.URL+"/message?sessionId="+url.QueryEscape(cs.ID()),
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"progress","arguments":{"steps":40,"ms":1},"_meta":{"progressToken":"nobody"}}}`, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("a Streamable HTTP session at /message: %d %s, want 404", resp.StatusCode, body)
	}
	// And the other way round: an HTTP+SSE session is no session at /mcp.
	st := openStream(t, s.sseURL())
	st.initialize(t)
	r, b := s.do(t, raw{session: st.sessionID(t), body: `{"jsonrpc":"2.0","id":5,"method":"ping"}`})
	if r.StatusCode != http.StatusNotFound {
		t.Errorf("an HTTP+SSE session at /mcp: %d %s, want 404", r.StatusCode, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "still fine"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := text(t, res); got != "still fine" {
		t.Errorf("echo = %q", got)
	}
}

func TestSSESessionBelongsToItsToken(t *testing.T) {
	s := start(t, func(_ *session.Options, w *wrap.Options) {
		w.Auth = auth.NewTokens([]auth.Tenant{{Name: "test", Token: token}, {Name: "other", Token: "other-token-9d2e"}})
	})
	st := openStream(t, s.sseURL())
	// Another tenant's valid token does not reach this session: to it, the
	// session does not exist.
	resp, body := request(t, http.MethodPost, st.post.String(), `{"jsonrpc":"2.0","id":1,"method":"ping"}`,
		map[string]string{"Authorization": "Bearer other-token-9d2e"})
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("another tenant's POST: %d %s, want 404", resp.StatusCode, body)
	}
	st.initialize(t)
}

func TestSSEBatchAndNoAcceptHeader(t *testing.T) {
	s := start(t)
	// A client that sends no Accept header accepts anything (RFC 9110),
	// an event stream included.
	st := openStream(t, s.sseURL(), map[string]string{"Accept": ""})
	st.initialize(t)
	// 2024-11-05 clients may send batches; each answer is a message event.
	st.send(t, `[{"jsonrpc":"2.0","id":"a","method":"ping"},{"jsonrpc":"2.0","method":"notifications/roots/list_changed"},{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"echo","arguments":{"text":"batched"}}}]`)
	ids := map[any]bool{}
	for range 2 {
		ids[st.message(t)["id"]] = true
	}
	if !ids["a"] || !ids["b"] {
		t.Errorf("answers to the batch carry ids %v, want a and b", ids)
	}
}
