package wrap_test

//lint:file-ignore SA1019 mcpwrap must carry roots, sampling and elicitation between clients and legacy children, which the SDK marks deprecated as of 2026-07-28 (SEP-2577) but servers and clients still use.

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/bridge"
	"github.com/mcpwrap/mcpwrap/child"
	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/mcpwrap/mcpwrap/session"
	"github.com/mcpwrap/mcpwrap/wrap"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/rs/zerolog"
)

// modernServer is mcpwrap serving protocol 2026-07-28 through a bridge to
// the fixture, with the child's era forced.
type modernServer struct {
	*server
	B *bridge.Bridge
}

func startModern(t *testing.T, era string, tweaks ...func(*bridge.Options)) *modernServer {
	t.Helper()
	return startModernWith(t, era, nil, tweaks...)
}

// startModernWith is startModern with the front door's options tweaked too.
func startModernWith(t *testing.T, era string, wtweak func(*wrap.Options), tweaks ...func(*bridge.Options)) *modernServer {
	t.Helper()
	var b *bridge.Bridge
	s := start(t, func(so *session.Options, wo *wrap.Options) {
		if wtweak != nil {
			wtweak(wo)
		}
		opts := bridge.Options{
			Command:      so.Command,
			ChildOptions: child.Options{CloseGrace: time.Second, TermGrace: time.Second},
			Era:          era,
			MaxChildren:  20,
			QueueTimeout: 30 * time.Second,
			Secret:       "bridge-test-secret",
		}
		for _, tw := range tweaks {
			tw(&opts)
		}
		var err error
		b, err = bridge.New(opts, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel))
		if err != nil {
			t.Fatal(err)
		}
		wo.Stateless = b
		wo.MachineID = opts.MachineID
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	// Registered after start's: runs first, so that listen streams end
	// before the HTTP server waits for its requests.
	t.Cleanup(func() {
		cancel()
		<-done
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("closing the bridge: %v", err)
		}
	})
	return &modernServer{server: s, B: b}
}

// connectModern connects the official Go SDK client, which probes
// 2026-07-28 first, and checks that it did not fall back.
func connectModern(t *testing.T, url string, opts *mcp.ClientOptions, roots ...*mcp.Root) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "wrap-modern-test", Version: "1"}, opts)
	client.AddRoots(roots...)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: httpClient()}, nil)
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	if v := cs.InitializeResult().ProtocolVersion; v != "2026-07-28" {
		t.Fatalf("negotiated protocol %q, want 2026-07-28 (no fallback)", v)
	}
	return cs
}

func TestModernClientIsServedStatelesslyByEitherChild(t *testing.T) {
	for _, era := range []string{bridge.EraModern, bridge.EraLegacy, bridge.EraAuto} {
		t.Run(era, func(t *testing.T) {
			s := startModern(t, era)
			cs := connectModern(t, s.URL, nil)
			checkToolsResourcesPrompts(t, cs)
			if n := s.Reg.Len(); n != 0 {
				t.Errorf("%d stateful sessions, want none", n)
			}
		})
	}
}

// roots are what the test clients offer when asked.
var testRoots = []*mcp.Root{{URI: "file:///work/project", Name: "project"}}

// answeringForms is answering() with an elicitation handler that fills in
// every field a form asks for: strings with "forty-two", booleans with true.
func answeringForms() *mcp.ClientOptions {
	opts := answering()
	opts.ElicitationHandler = func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
		var schema struct {
			Properties map[string]struct {
				Type string `json:"type"`
			} `json:"properties"`
		}
		b, _ := json.Marshal(req.Params.RequestedSchema)
		_ = json.Unmarshal(b, &schema)
		content := map[string]any{}
		for name, p := range schema.Properties {
			if p.Type == "boolean" {
				content[name] = true
			} else {
				content[name] = "forty-two"
			}
		}
		return &mcp.ElicitResult{Action: "accept", Content: content}, nil
	}
	return opts
}

func TestBridgeRoundTripsSamplingElicitationAndRoots(t *testing.T) {
	s := startModern(t, bridge.EraLegacy)
	cs := connectModern(t, s.URL, answeringForms(), testRoots...)
	checkSamplingAndElicitation(t, cs)
	ctx := ctxFor(t)

	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_input_required_result_list_roots"})
	if err != nil {
		t.Fatal(err)
	}
	if got := text(t, res); !strings.Contains(got, "file:///work/project") {
		t.Errorf("roots tool = %q, want the client's root", got)
	}
	// Three requests to the client at once, answered in one round.
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_input_required_result_multiple_inputs"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"forty-two", "sampled: Generate a greeting", "file:///work/project"} {
		if got := text(t, res); !strings.Contains(got, want) {
			t.Errorf("multiple inputs = %q, lacks %q", got, want)
		}
	}
	// Two rounds, one after the other, on the same parked child.
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_input_required_result_multi_round"})
	if err != nil {
		t.Fatal(err)
	}
	if got := text(t, res); strings.Count(got, "forty-two") != 2 {
		t.Errorf("multi round = %q, want both answers", got)
	}
	pr, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "test_input_required_result_prompt"})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(pr.Messages); !strings.Contains(string(b), "forty-two") {
		t.Errorf("prompt = %s, want the elicited answer", b)
	}
	if _, held := s.B.Stats(); held != 0 {
		t.Errorf("%d children still held after every call ended", held)
	}
}

func TestBridgeGivesTenConcurrentCallsTheirOwnAnswers(t *testing.T) {
	s := startModern(t, bridge.EraLegacy)
	cs := connectModern(t, s.URL, answering())
	ctx := ctxFor(t)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			prompt := fmt.Sprintf("call %d", i)
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "sample", Arguments: map[string]any{"prompt": prompt}})
			if err != nil {
				t.Error(err)
				return
			}
			if got := text(t, res); got != "sampled: "+prompt {
				t.Errorf("call %d got %q", i, got)
			}
		})
	}
	wg.Wait()
}

func TestLegacyClientKeepsItsSessionBesideModernOnes(t *testing.T) {
	s := startModern(t, bridge.EraAuto)
	modernCS := connectModern(t, s.URL, answering())
	ctx := ctxFor(t)
	client := mcp.NewClient(&mcp.Implementation{Name: "legacy-pinned", Version: "1"}, answering())
	legacyCS, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: s.URL, HTTPClient: httpClient()},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer legacyCS.Close()
	if legacyCS.ID() == "" || legacyCS.InitializeResult().ProtocolVersion != "2025-11-25" {
		t.Fatalf("legacy client: session %q, protocol %q", legacyCS.ID(), legacyCS.InitializeResult().ProtocolVersion)
	}
	if n := s.Reg.Len(); n != 1 {
		t.Errorf("%d sessions, want the legacy client's one", n)
	}
	checkSamplingAndElicitation(t, legacyCS)
	checkSamplingAndElicitation(t, modernCS)
	pid := func(cs *mcp.ClientSession) string {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "pid"})
		if err != nil {
			t.Fatal(err)
		}
		return text(t, res)
	}
	if a, b := pid(legacyCS), pid(modernCS); a == b {
		t.Errorf("the session's child (%s) also served the stateless client", a)
	}
}

// call is one hand-made stateless request; it returns the status and the
// JSON-RPC response (the last event of an SSE answer).
func (s *server) call(t *testing.T, method, name string, params map[string]any, headers map[string]string) (int, map[string]any) {
	t.Helper()
	if params == nil {
		params = map[string]any{}
	}
	if _, ok := params["_meta"]; !ok {
		params["_meta"] = map[string]any{
			"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
			"io.modelcontextprotocol/clientCapabilities": map[string]any{"sampling": map[string]any{}, "elicitation": map[string]any{}},
		}
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
	h := map[string]string{"Mcp-Method": method}
	if name != "" {
		h["Mcp-Name"] = name
	}
	for k, v := range headers {
		h[k] = v
	}
	version := h["MCP-Protocol-Version"]
	delete(h, "MCP-Protocol-Version")
	if version == "" {
		version = "2026-07-28"
	}
	for k, v := range h {
		if v == "-" { // leave the header out
			delete(h, k)
		}
	}
	resp, text := s.do(t, raw{body: string(body), version: version, headers: h})
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		var last string
		for line := range strings.Lines(text) {
			if d, ok := strings.CutPrefix(strings.TrimSpace(line), "data: "); ok {
				last = d
			}
		}
		text = last
	}
	var m map[string]any
	if text != "" {
		if err := json.Unmarshal([]byte(text), &m); err != nil {
			t.Fatalf("%s: %d %q is not JSON-RPC: %v", method, resp.StatusCode, text, err)
		}
	}
	return resp.StatusCode, m
}

func errorOf(m map[string]any) (code int, message string) {
	e, _ := m["error"].(map[string]any)
	if e == nil {
		return 0, ""
	}
	c, _ := e["code"].(float64)
	msg, _ := e["message"].(string)
	return int(c), msg
}

func TestStatelessRequestsAreValidatedInOrder(t *testing.T) {
	s := startModern(t, bridge.EraModern)
	meta := func(version string, caps bool) map[string]any {
		m := map[string]any{}
		if version != "" {
			m["io.modelcontextprotocol/protocolVersion"] = version
		}
		if caps {
			m["io.modelcontextprotocol/clientCapabilities"] = map[string]any{}
		}
		return map[string]any{"_meta": m}
	}
	withName := func(p map[string]any, name string) map[string]any { p["name"] = name; return p }
	for _, tc := range []struct {
		what         string
		method, name string
		params       map[string]any
		headers      map[string]string
		status, code int
	}{
		{"no version header", "server/discover", "", meta("2026-07-28", true), map[string]string{"MCP-Protocol-Version": "-"}, 400, -32020},
		{"no _meta", "server/discover", "", map[string]any{"_meta": map[string]any{}}, nil, 400, -32602},
		{"no capabilities", "server/discover", "", meta("2026-07-28", false), nil, 400, -32602},
		{"versions differ", "server/discover", "", meta("2026-07-29", true), nil, 400, -32020},
		{"unsupported version", "server/discover", "", meta("2099-01-01", true), map[string]string{"MCP-Protocol-Version": "2099-01-01"}, 400, -32022},
		{"no Mcp-Method", "tools/list", "", meta("2026-07-28", true), map[string]string{"Mcp-Method": "-"}, 400, -32020},
		{"Mcp-Method in other case", "tools/list", "", meta("2026-07-28", true), map[string]string{"Mcp-Method": "TOOLS/LIST"}, 400, -32020},
		{"no Mcp-Name", "tools/call", "", withName(meta("2026-07-28", true), "echo"), nil, 400, -32020},
		{"Mcp-Name differs", "tools/call", "pid", withName(meta("2026-07-28", true), "echo"), nil, 400, -32020},
		{"removed method", "ping", "", meta("2026-07-28", true), nil, 404, -32601},
		{"initialize", "initialize", "", meta("2026-07-28", true), nil, 404, -32601},
		{"unknown method", "no/such", "", meta("2026-07-28", true), nil, 404, -32601},
		{"Mcp-Name in base64", "tools/call", "=?base64?cGlk?=", withName(meta("2026-07-28", true), "pid"), nil, 200, 0},
		{"missing capability", "tools/call", "test_missing_capability", withName(meta("2026-07-28", true), "test_missing_capability"), nil, 400, -32021},
	} {
		t.Run(tc.what, func(t *testing.T) {
			status, resp := s.call(t, tc.method, tc.name, tc.params, tc.headers)
			code, msg := errorOf(resp)
			if status != tc.status || code != tc.code {
				t.Errorf("got %d with code %d (%s), want %d with %d", status, code, msg, tc.status, tc.code)
			}
			if tc.code != 0 && fmt.Sprint(resp["id"]) != "7" {
				t.Errorf("error response id %v, want the request's 7", resp["id"])
			}
		})
	}
	status, resp := s.call(t, "server/discover", "", meta("2099-01-01", true), map[string]string{"MCP-Protocol-Version": "2099-01-01"})
	data, _ := resp["error"].(map[string]any)["data"].(map[string]any)
	if status != 400 || fmt.Sprint(data["supported"]) != "[2026-07-28]" || data["requested"] != "2099-01-01" {
		t.Errorf("unsupported version: %d %v", status, resp)
	}
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		resp, _ := s.do(t, raw{method: m, version: "2026-07-28"})
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s with protocol 2026-07-28: %d, want 405", m, resp.StatusCode)
		}
	}
	// Every result carries resultType, server info and, where the
	// specification asks, the caching hints.
	for _, method := range []string{"server/discover", "tools/list", "prompts/list", "resources/list", "resources/templates/list"} {
		_, resp := s.call(t, method, "", nil, nil)
		checkModernResult(t, method, resp, true)
	}
}

func checkModernResult(t *testing.T, method string, resp map[string]any, cacheable bool) {
	t.Helper()
	res, _ := resp["result"].(map[string]any)
	if res == nil {
		t.Errorf("%s: no result: %v", method, resp)
		return
	}
	if res["resultType"] == nil {
		t.Errorf("%s: no resultType", method)
	}
	if meta, _ := res["_meta"].(map[string]any); meta["io.modelcontextprotocol/serverInfo"] == nil {
		t.Errorf("%s: no serverInfo in _meta", method)
	}
	if cacheable && (res["ttlMs"] == nil || res["cacheScope"] == nil) {
		t.Errorf("%s: no ttlMs or cacheScope", method)
	}
}

func TestBridgedResultsCarryTheStatelessFields(t *testing.T) {
	s := startModern(t, bridge.EraLegacy)
	for _, method := range []string{"server/discover", "tools/list", "prompts/list", "resources/list", "resources/templates/list"} {
		_, resp := s.call(t, method, "", nil, nil)
		checkModernResult(t, method, resp, true)
	}
	_, resp := s.call(t, "resources/read", "test://static-text", map[string]any{"uri": "test://static-text"}, nil)
	checkModernResult(t, "resources/read", resp, true)
	_, resp = s.call(t, "tools/call", "echo", map[string]any{"name": "echo", "arguments": map[string]any{"text": "x"}}, nil)
	checkModernResult(t, "tools/call", resp, false)
	status, resp := s.call(t, "tools/call", "test_missing_capability", map[string]any{"name": "test_missing_capability", "_meta": map[string]any{
		"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": map[string]any{},
	}}, nil)
	if code, _ := errorOf(resp); status != 400 || code != -32021 {
		t.Errorf("a call needing sampling without it: %d %v, want 400 and -32021", status, resp)
	}
}

// ask starts test_sampling, which parks a legacy child on its request to
// sample, and returns the result asking for the input.
func ask(t *testing.T, s *server, prompt string) (state, key string) {
	t.Helper()
	status, resp := s.call(t, "tools/call", "test_sampling", map[string]any{"name": "test_sampling", "arguments": map[string]any{"prompt": prompt}}, nil)
	res, _ := resp["result"].(map[string]any)
	if status != 200 || res["resultType"] != "input_required" {
		t.Fatalf("test_sampling: %d %v, want an input_required result", status, resp)
	}
	for k := range res["inputRequests"].(map[string]any) {
		key = k
	}
	return res["requestState"].(string), key
}

// answer retries test_sampling with a reply under key and state.
func answer(t *testing.T, s *server, prompt, state, key string, headers map[string]string) (int, map[string]any) {
	t.Helper()
	return s.call(t, "tools/call", "test_sampling", map[string]any{
		"name": "test_sampling", "arguments": map[string]any{"prompt": prompt},
		"requestState":   state,
		"inputResponses": map[string]any{key: map[string]any{"role": "assistant", "model": "m", "content": map[string]any{"type": "text", "text": "reply to " + prompt}}},
	}, headers)
}

func TestRequestStateIsCheckedAndAcceptedOnce(t *testing.T) {
	s := startModern(t, bridge.EraLegacy, func(o *bridge.Options) { o.StateTTL = 2 * time.Second })
	refused := func(what string, status int, resp map[string]any, want string) {
		t.Helper()
		code, msg := errorOf(resp)
		if status != 400 || code != -32602 || !strings.Contains(msg, want) {
			t.Errorf("%s: %d %d %q, want 400, -32602 saying %q", what, status, code, msg, want)
		}
	}

	state, key := ask(t, s.server, "a")
	tampered := []byte(state)
	tampered[len(tampered)/3] ^= 1
	status, resp := answer(t, s.server, "a", string(tampered), key, nil)
	refused("tampered", status, resp, "integrity")
	status, resp = answer(t, s.server, "other prompt", state, key, nil)
	refused("another request", status, resp, "another caller or another request")

	status, resp = answer(t, s.server, "a", state, key, nil)
	if res, _ := resp["result"].(map[string]any); status != 200 || res["resultType"] != "complete" {
		t.Fatalf("the genuine retry: %d %v", status, resp)
	}
	status, resp = answer(t, s.server, "a", state, key, nil)
	refused("replayed", status, resp, "already used")

	state, key = ask(t, s.server, "b")
	issued := time.Now()
	testkit.Eventually(t, "the state's deadline to pass", func() bool { return time.Since(issued) > 3*time.Second })
	status, resp = answer(t, s.server, "b", state, key, nil)
	refused("expired", status, resp, "expired")
	testkit.Eventually(t, "the expired call to give its child back", func() bool {
		_, held := s.B.Stats()
		return held == 0
	})
}

func TestParkedChildThatCrashesAnswersTheRetry(t *testing.T) {
	s := startModern(t, bridge.EraLegacy, func(o *bridge.Options) { o.MaxChildren = 1 })
	_, resp := s.call(t, "tools/call", "pid", map[string]any{"name": "pid"}, nil)
	pid, err := strconv.Atoi(resp["result"].(map[string]any)["content"].([]any)[0].(map[string]any)["text"].(string))
	if err != nil {
		t.Fatal(err)
	}
	state, key := ask(t, s.server, "c") // parked on the only child, pid
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the child to be gone", func() bool { return !testkit.Alive(pid) })
	status, resp := answer(t, s.server, "c", state, key, nil)
	if code, msg := errorOf(resp); status != 200 || code != -32603 || !strings.Contains(msg, "ended") {
		t.Errorf("retry on a crashed child: %d %d %q, want a -32603 saying the server ended", status, code, msg)
	}
	// The pool starts a new child for the next call.
	_, resp = s.call(t, "tools/call", "echo", map[string]any{"name": "echo", "arguments": map[string]any{"text": "again"}}, nil)
	if res, _ := resp["result"].(map[string]any); res == nil {
		t.Errorf("call after the crash: %v", resp)
	}
}

func TestClosingTheStreamCancelsTheCall(t *testing.T) {
	for _, era := range []string{bridge.EraLegacy, bridge.EraModern} {
		t.Run(era, func(t *testing.T) {
			// One child, which a legacy call holds alone: the pool recovers
			// only if the cancelled call gives it back.
			s := startModern(t, era, func(o *bridge.Options) { o.MaxChildren = 1; o.QueueTimeout = 0 })
			cs := connectModern(t, s.URL, nil)
			ctx := ctxFor(t)
			count := func() string {
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "interrupted"})
				if err != nil {
					t.Fatal(err)
				}
				return text(t, res)
			}
			if n := count(); n != "0" {
				t.Fatalf("%s sleeps interrupted before the test", n)
			}

			callCtx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() {
				_, err := cs.CallTool(callCtx, &mcp.CallToolParams{Name: "sleep", Arguments: map[string]any{"ms": 600000}})
				done <- err
			}()
			testkit.Eventually(t, "the sleep to reach the child", func() bool {
				if era == bridge.EraLegacy {
					_, held := s.B.Stats()
					return held == 1
				}
				return s.B.IdleFor() == 0
			})
			cancel()
			if err := <-done; err == nil {
				t.Fatal("the cancelled call succeeded")
			}
			// The child counts the sleep that notifications/cancelled ended,
			// and, for a legacy child, that frees it for this call.
			testkit.Eventually(t, "the child to see the cancellation", func() bool { return count() == "1" })
		})
	}
}

func TestRetryOnAnotherInstanceIsReplayedToTheParkedOne(t *testing.T) {
	one := startModern(t, bridge.EraLegacy, func(o *bridge.Options) { o.MachineID = "mone" })
	two := startModern(t, bridge.EraLegacy, func(o *bridge.Options) { o.MachineID = "mtwo" })
	state, key := ask(t, one.server, "d")

	req := func(s *server, headers map[string]string) *http.Response {
		body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": map[string]any{
			"name": "test_sampling", "arguments": map[string]any{"prompt": "d"}, "requestState": state,
			"inputResponses": map[string]any{key: map[string]any{"role": "assistant", "model": "m", "content": map[string]any{"type": "text", "text": "x"}}},
			"_meta":          map[string]any{"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": map[string]any{"sampling": map[string]any{}}},
		}})
		h := map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "test_sampling"}
		for k, v := range headers {
			h[k] = v
		}
		resp, _ := s.do(t, raw{body: string(body), version: "2026-07-28", headers: h})
		return resp
	}
	resp := req(two.server, nil)
	if got := resp.Header.Get("Fly-Replay"); got != "instance=mone" {
		t.Errorf("retry on mtwo: %d, Fly-Replay %q, want instance=mone", resp.StatusCode, got)
	}
	resp = req(two.server, map[string]string{"Fly-Replay-Src": "instance=mtwo"})
	if resp.StatusCode != 400 || resp.Header.Get("Fly-Replay") != "" {
		t.Errorf("an already replayed retry: %d, Fly-Replay %q; want 400 and no second replay", resp.StatusCode, resp.Header.Get("Fly-Replay"))
	}
	// A forged state that names something other than an instance must not
	// reach the header, where it could add fields of its own.
	good := state
	state = base64.RawURLEncoding.EncodeToString([]byte(`{"m":"x;app=other","p":"p","t":"","r":"r","e":1}`)) + ".sig"
	resp = req(two.server, nil)
	if got := resp.Header.Get("Fly-Replay"); got != "" {
		t.Errorf("a forged instance reached Fly-Replay: %q", got)
	}
	state = good
	status, out := answer(t, one.server, "d", state, key, nil)
	if res, _ := out["result"].(map[string]any); status != 200 || res["resultType"] != "complete" {
		t.Errorf("the retry on the instance holding the call: %d %v", status, out)
	}
}

func TestListenStreamRelaysTheTenantsListChanges(t *testing.T) {
	for _, era := range []string{bridge.EraLegacy, bridge.EraModern} {
		t.Run(era, func(t *testing.T) {
			s := startModern(t, era)
			changed := make(chan struct{}, 10)
			cs := connectModern(t, s.URL, &mcp.ClientOptions{
				ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { changed <- struct{}{} },
			})
			ctx := ctxFor(t)
			// The client opened its listen stream on connecting; a tool
			// call on another connection changes the list.
			testkit.Eventually(t, "a tools/list_changed on the listen stream", func() bool {
				if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_trigger_tool_change"}); err != nil {
					t.Fatal(err)
				}
				select {
				case <-changed:
					return true
				case <-time.After(500 * time.Millisecond):
					return false
				}
			})
		})
	}
}

func TestListenStreamAcknowledgesAndEndsOnShutdown(t *testing.T) {
	s := startModern(t, bridge.EraLegacy)
	body := `{"jsonrpc":"2.0","id":"L1","method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true,"promptsListChanged":true},` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`
	req, _ := http.NewRequest(http.MethodPost, s.URL, strings.NewReader(body))
	for k, v := range map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
		"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "subscriptions/listen", "Authorization": "Bearer " + token} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				events <- d
			} else if strings.HasPrefix(sc.Text(), ":") {
				events <- sc.Text()
			}
		}
		close(events)
	}()
	next := func() string {
		select {
		case e := <-events:
			return e
		case <-time.After(30 * time.Second):
			t.Fatal("no event on the listen stream")
			return ""
		}
	}
	if e := next(); !strings.Contains(e, "notifications/subscriptions/acknowledged") || !strings.Contains(e, `"io.modelcontextprotocol/subscriptionId":"L1"`) {
		t.Fatalf("first event %s, want the acknowledgement for L1", e)
	}
	if e := next(); !strings.HasPrefix(e, ":") {
		t.Fatalf("event %s on a quiet stream, want a keep-alive comment", e)
	}
	s.call(t, "tools/call", "test_trigger_prompt_change", map[string]any{"name": "test_trigger_prompt_change"}, nil)
	// nextMessage skips keep-alives.
	nextMessage := func() string {
		for {
			if e := next(); !strings.HasPrefix(e, ":") {
				return e
			}
		}
	}
	if e := nextMessage(); !strings.Contains(e, "notifications/prompts/list_changed") || !strings.Contains(e, `"L1"`) {
		t.Fatalf("event %s, want prompts/list_changed for L1", e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.B.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if e := nextMessage(); !strings.Contains(e, `"id":"L1"`) || !strings.Contains(e, `"result"`) {
		t.Fatalf("last event %s, want the result that ends L1", e)
	}
}

func TestMirroredParamsAreCheckedAgainstTheBody(t *testing.T) {
	for _, era := range []string{bridge.EraModern, bridge.EraLegacy} {
		t.Run(era, func(t *testing.T) {
			s := startModern(t, era)
			for _, tc := range []struct {
				what, region, header string
				status, code         int
			}{
				{"literal", "us-west1", "us-west1", 200, 0},
				{"base64", "Hello, 世界", "=?base64?SGVsbG8sIOS4lueVjA==?=", 200, 0},
				{"only a prefix is literal", "=?base64?SGVsbG8=", "=?base64?SGVsbG8=", 200, 0},
				{"missing", "us-west1", "-", 400, -32020},
				{"different", "us-west1", "eu-north1", 400, -32020},
				{"bad padding", "Hello", "=?base64?SGVsbG8?=", 400, -32020},
				{"bad characters", "Hello", "=?base64?SGVs!!!bG8=?=", 400, -32020},
			} {
				t.Run(tc.what, func(t *testing.T) {
					status, resp := s.call(t, "tools/call", "test_x_mcp_header",
						map[string]any{"name": "test_x_mcp_header", "arguments": map[string]any{"region": tc.region}},
						map[string]string{"Mcp-Param-Region": tc.header})
					if code, msg := errorOf(resp); status != tc.status || code != tc.code {
						t.Errorf("got %d with code %d (%s), want %d with %d", status, code, msg, tc.status, tc.code)
					}
				})
			}
			// A header for an argument the call does not carry is not expected.
			status, resp := s.call(t, "tools/call", "test_x_mcp_header",
				map[string]any{"name": "test_x_mcp_header", "arguments": map[string]any{"query": "q"}}, nil)
			if status == 400 {
				t.Errorf("a call without the mirrored argument: %d %v", status, resp)
			}
		})
	}
}

func TestRequestTimeoutCancelsAStatelessCall(t *testing.T) {
	for _, era := range []string{bridge.EraLegacy, bridge.EraModern} {
		t.Run(era, func(t *testing.T) {
			s := startModernWith(t, era, func(o *wrap.Options) { o.RequestTimeout = 2 * time.Second })
			interrupted := func() string {
				_, resp := s.call(t, "tools/call", "interrupted", map[string]any{"name": "interrupted"}, nil)
				b, _ := json.Marshal(resp["result"])
				return string(b)
			}
			// The child is started first, so that the timeout is all the
			// sleep's.
			testkit.Eventually(t, "a child to answer", func() bool { return strings.Contains(interrupted(), `"text":"0"`) })
			status, resp := s.call(t, "tools/call", "sleep", map[string]any{"name": "sleep", "arguments": map[string]any{"ms": 600000}}, nil)
			if code, msg := errorOf(resp); status != 200 || code != -32603 || !strings.Contains(msg, "timed out") {
				t.Errorf("a call past the request timeout: %d %d %q", status, code, msg)
			}
			testkit.Eventually(t, "the child to see the cancellation", func() bool { return strings.Contains(interrupted(), `"text":"1"`) })
		})
	}
}

func TestFullPoolAnswers503ButStillDiscovers(t *testing.T) {
	s := startModern(t, bridge.EraLegacy, func(o *bridge.Options) { o.MaxChildren = 1; o.QueueTimeout = 200 * time.Millisecond })
	ask(t, s.server, "parked") // holds the only child
	body := `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"},` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"sampling":{},"elicitation":{}}}}}`
	resp, text := s.do(t, raw{body: body, version: "2026-07-28", headers: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "echo"}})
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(text, `"id":3`) {
		t.Errorf("a call while the only child is parked: %d, Retry-After %q, %s", resp.StatusCode, resp.Header.Get("Retry-After"), text)
	}
	if status, resp := s.call(t, "server/discover", "", nil, nil); status != 200 {
		t.Errorf("server/discover while full: %d %v", status, resp)
	}
}

func TestLogMessagesReachOnlyARequestThatAskedForThem(t *testing.T) {
	for _, era := range []string{bridge.EraLegacy, bridge.EraModern} {
		t.Run(era, func(t *testing.T) {
			s := startModern(t, era)
			for _, level := range []string{"info", "error", ""} {
				meta := map[string]any{
					"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
					"io.modelcontextprotocol/clientCapabilities": map[string]any{},
				}
				if level != "" {
					meta["io.modelcontextprotocol/logLevel"] = level
				}
				body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 5, "method": "tools/call",
					"params": map[string]any{"name": "test_tool_with_logging", "_meta": meta}})
				resp, text := s.do(t, raw{body: string(body), version: "2026-07-28",
					headers: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "test_tool_with_logging"}})
				want := 0
				if level == "info" {
					want = 3 // three info messages; none reach "error" or no level
				}
				if got := strings.Count(text, "notifications/message"); resp.StatusCode != 200 || got != want {
					t.Errorf("level %q: %d with %d log messages, want %d:\n%s", level, resp.StatusCode, got, want, text)
				}
			}
		})
	}
}

func TestProgressReachesTheRequestWithItsOwnToken(t *testing.T) {
	for _, era := range []string{bridge.EraLegacy, bridge.EraModern} {
		t.Run(era, func(t *testing.T) {
			s := startModern(t, era)
			body := `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"test_tool_with_progress","_meta":{"progressToken":"tok-6",` +
				`"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`
			_, text := s.do(t, raw{body: body, version: "2026-07-28",
				headers: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "test_tool_with_progress"}})
			if got := strings.Count(text, `"progressToken":"tok-6"`); got != 3 {
				t.Errorf("%d progress notifications with the client's token, want 3:\n%s", got, text)
			}
			if strings.Contains(text, "mcpwrap-") {
				t.Errorf("an id or token of mcpwrap's own reached the client:\n%s", text)
			}
		})
	}
}
