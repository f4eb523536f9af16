package bridge_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/bridge"
	"github.com/mcpwrap/mcpwrap/child"
	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/mcpwrap/mcpwrap/jsonrpc"
	"github.com/rs/zerolog"
)

// everything is the example server, dual-era like every go-sdk server.
var everything string

func TestMain(m *testing.M) {
	if os.Getenv("BRIDGE_FAKE_LEGACY") == "1" {
		fakeLegacy()
		return
	}
	dir, err := os.MkdirTemp("", "bridge-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins, err := testkit.Build(dir, testkit.Everything)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	everything = bins[0]
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fakeLegacy is a server of the initialize-based era only, small enough to
// say exactly what it does: it refuses server/discover, reports the
// capabilities it was initialized with (tool caps), and asks its client to
// sample while a call runs (tool ask), pinging it first.
func fakeLegacy() {
	var wmu sync.Mutex
	send := func(v any) {
		b, _ := json.Marshal(v)
		wmu.Lock()
		os.Stdout.Write(append(b, '\n'))
		wmu.Unlock()
	}
	var pmu sync.Mutex
	pending := map[string]chan json.RawMessage{}
	ask := func(id, method string, params any) json.RawMessage {
		ch := make(chan json.RawMessage, 1)
		pmu.Lock()
		pending[id] = ch
		pmu.Unlock()
		msg := map[string]any{"jsonrpc": "2.0", "id": id, "method": method}
		if params != nil {
			msg["params"] = params
		}
		send(msg)
		return <-ch
	}
	text := func(id json.RawMessage, s string) {
		send(map[string]any{"jsonrpc": "2.0", "id": id, "result": map[string]any{"content": []any{map[string]any{"type": "text", "text": s}}}})
	}
	var caps json.RawMessage
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 0; sc.Scan(); n++ {
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				Name         string          `json:"name"`
				Capabilities json.RawMessage `json:"capabilities"`
			} `json:"params"`
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
		}
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		switch {
		case m.Method == "" && m.ID != nil:
			var id string
			_ = json.Unmarshal(m.ID, &id)
			pmu.Lock()
			ch := pending[id]
			delete(pending, id)
			pmu.Unlock()
			if ch != nil {
				ch <- append(m.Result, m.Error...)
			}
		case m.Method == "notifications/initialized" && os.Getenv("BRIDGE_FAKE_DEAF") == "1":
			// Stops reading its input, as a server stuck in a call does.
			time.Sleep(time.Hour)
		case m.Method == "server/discover" && os.Getenv("BRIDGE_FAKE_SILENT") == "1":
			// Some servers ignore what comes before initialize.
		case m.Method == "initialize":
			caps = m.Params.Capabilities
			send(map[string]any{"jsonrpc": "2.0", "id": m.ID, "result": map[string]any{
				"protocolVersion": "2025-11-25",
				"capabilities":    map[string]any{"tools": map[string]any{"listChanged": true}},
				"serverInfo":      map[string]any{"name": "fake-legacy", "version": "0"},
			}})
		case m.Method == "tools/list":
			send(map[string]any{"jsonrpc": "2.0", "id": m.ID, "result": map[string]any{"tools": []any{
				map[string]any{"name": "caps", "inputSchema": map[string]any{"type": "object"}},
				map[string]any{"name": "ask", "inputSchema": map[string]any{"type": "object"}},
			}}})
		case m.Method == "tools/call" && m.Params.Name == "caps":
			text(m.ID, string(caps))
		case m.Method == "tools/call" && m.Params.Name == "ask":
			go func(id json.RawMessage, n int) {
				pong := ask(fmt.Sprintf("ping-%d", n), "ping", nil)
				got := ask(fmt.Sprintf("sample-%d", n), "sampling/createMessage", map[string]any{"maxTokens": 10,
					"messages": []any{map[string]any{"role": "user", "content": map[string]any{"type": "text", "text": "hi"}}}})
				text(id, "pong "+string(pong)+" sampled "+string(got))
			}(m.ID, n)
		case m.ID != nil && m.Method != "":
			send(map[string]any{"jsonrpc": "2.0", "id": m.ID, "error": map[string]any{"code": -32601, "message": "Method not found: " + m.Method}})
		}
	}
}

func newBridge(t *testing.T, cmd child.Command, tweak func(*bridge.Options)) *bridge.Bridge {
	t.Helper()
	opts := bridge.Options{
		Command:      cmd,
		ChildOptions: child.Options{CloseGrace: time.Second, TermGrace: time.Second},
		MaxChildren:  4,
		QueueTimeout: 30 * time.Second,
	}
	if tweak != nil {
		tweak(&opts)
	}
	b, err := bridge.New(opts, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("closing: %v", err)
		}
	})
	return b
}

func fake() child.Command {
	return child.Command{Path: os.Args[0], Env: append(os.Environ(), "BRIDGE_FAKE_LEGACY=1")}
}

// req builds a stateless request with capabilities caps.
func req(t *testing.T, id int, method string, params map[string]any, caps string) bridge.Request {
	t.Helper()
	if params == nil {
		params = map[string]any{}
	}
	params["_meta"] = map[string]any{
		"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
		"io.modelcontextprotocol/clientCapabilities": json.RawMessage(caps),
	}
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	m, err := jsonrpc.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return bridge.Request{Tenant: "t", Msg: m}
}

type response struct {
	ID     json.RawMessage `json:"id"`
	Result struct {
		ResultType    string                     `json:"resultType"`
		InputRequests map[string]json.RawMessage `json:"inputRequests"`
		RequestState  string                     `json:"requestState"`
		Content       []struct{ Text string }    `json:"content"`
		Capabilities  json.RawMessage            `json:"capabilities"`
	} `json:"result"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func serve(t *testing.T, b *bridge.Bridge, r bridge.Request) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := b.Serve(ctx, r, func([]byte) error { return nil })
	if err != nil {
		t.Fatalf("%s: %v", r.Msg.Method, err)
	}
	var resp response
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("%s: %s: %v", r.Msg.Method, out, err)
	}
	return resp
}

func TestProbeFindsALegacyChildAndInitializesItWithTheRequestsCapabilities(t *testing.T) {
	b := newBridge(t, fake(), nil)
	resp := serve(t, b, req(t, 1, "server/discover", nil, `{"sampling":{}}`))
	if resp.Error != nil || !strings.Contains(string(resp.Result.Capabilities), "listChanged") {
		t.Fatalf("discover through a legacy child: %+v", resp)
	}
	for _, caps := range []string{`{"sampling":{}}`, `{"elicitation":{}}`} {
		resp := serve(t, b, req(t, 2, "tools/call", map[string]any{"name": "caps"}, caps))
		if len(resp.Result.Content) != 1 || resp.Result.Content[0].Text != caps {
			t.Errorf("child for %s was initialized with %+v", caps, resp.Result.Content)
		}
	}
	if n, _ := b.Stats(); n != 2 {
		t.Errorf("%d children, want one per capability set", n)
	}
}

func TestProbeFindsAModernChild(t *testing.T) {
	b := newBridge(t, child.Command{Path: everything}, nil)
	resp := serve(t, b, req(t, 1, "tools/call", map[string]any{"name": "test_sampling", "arguments": map[string]any{"prompt": "p"}}, `{"sampling":{}}`))
	// A modern child names its own inputs; the bridge would name them
	// after the child's request ids.
	if _, ok := resp.Result.InputRequests["input"]; !ok || resp.Result.ResultType != "input_required" {
		t.Errorf("modern child's answer passed through: %+v", resp)
	}
}

func TestBridgeAnswersThePingAndTurnsSamplingIntoInput(t *testing.T) {
	b := newBridge(t, fake(), func(o *bridge.Options) { o.Era = bridge.EraLegacy })
	first := serve(t, b, req(t, 1, "tools/call", map[string]any{"name": "ask"}, `{"sampling":{}}`))
	if first.Result.ResultType != "input_required" || len(first.Result.InputRequests) != 1 || first.Result.RequestState == "" {
		t.Fatalf("first round: %+v", first)
	}
	var key string
	for k := range first.Result.InputRequests {
		key = k
	}
	bad := serve(t, b, req(t, 2, "tools/call", map[string]any{
		"name": "ask", "requestState": first.Result.RequestState, "inputResponses": map[string]any{key: 12345},
	}, `{"sampling":{}}`))
	if bad.Error == nil || bad.Error.Code != -32602 {
		t.Fatalf("an answer that is no result object: %+v, want -32602", bad)
	}
	// The state still works with a proper answer.
	retry := req(t, 2, "tools/call", map[string]any{
		"name": "ask", "requestState": first.Result.RequestState,
		"inputResponses": map[string]any{key: map[string]any{"role": "assistant", "model": "m", "content": map[string]any{"type": "text", "text": "hello"}}},
	}, `{"sampling":{}}`)
	resp := serve(t, b, retry)
	if resp.Error != nil || len(resp.Result.Content) != 1 || !strings.Contains(resp.Result.Content[0].Text, `pong {} sampled {"content":{"text":"hello"`) {
		t.Fatalf("final round: %+v", resp)
	}
	if string(resp.ID) != "2" {
		t.Errorf("answer id %s, want the retry's 2", resp.ID)
	}
}

func TestCallNeedingAnUndeclaredCapabilityIsRefused(t *testing.T) {
	b := newBridge(t, fake(), func(o *bridge.Options) { o.Era = bridge.EraLegacy; o.MaxChildren = 1 })
	resp := serve(t, b, req(t, 1, "tools/call", map[string]any{"name": "ask"}, `{}`))
	if resp.Error == nil || resp.Error.Code != -32021 {
		t.Fatalf("sampling without the capability: %+v, want -32021", resp)
	}
	// The child, refused its request, finishes its call and serves again.
	resp = serve(t, b, req(t, 2, "tools/call", map[string]any{"name": "caps"}, `{}`))
	if resp.Error != nil {
		t.Errorf("next call: %+v", resp.Error)
	}
}

func TestFullPoolQueuesThenRefusesButNeverDiscover(t *testing.T) {
	b := newBridge(t, fake(), func(o *bridge.Options) {
		o.Era = bridge.EraLegacy
		o.MaxChildren = 1
		o.QueueTimeout = 200 * time.Millisecond
	})
	parked := serve(t, b, req(t, 1, "tools/call", map[string]any{"name": "ask"}, `{"sampling":{}}`))
	if parked.Result.ResultType != "input_required" {
		t.Fatalf("%+v", parked)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := b.Serve(ctx, req(t, 2, "tools/call", map[string]any{"name": "caps"}, `{"sampling":{}}`), func([]byte) error { return nil })
	if !errors.Is(err, bridge.ErrBusy) {
		t.Errorf("a call while the only child is parked: %v, want ErrBusy", err)
	}
	if resp := serve(t, b, req(t, 3, "server/discover", nil, `{"sampling":{}}`)); resp.Error != nil {
		t.Errorf("discover while full: %+v", resp.Error)
	}
}

func TestIdleChildrenAreReaped(t *testing.T) {
	b := newBridge(t, fake(), func(o *bridge.Options) { o.Era = bridge.EraLegacy; o.IdleTimeout = 100 * time.Millisecond })
	serve(t, b, req(t, 1, "tools/call", map[string]any{"name": "caps"}, `{}`))
	testkit.Eventually(t, "the idle child to be stopped", func() bool {
		n, _ := b.Stats()
		return n == 0
	})
	if resp := serve(t, b, req(t, 2, "tools/call", map[string]any{"name": "caps"}, `{}`)); resp.Error != nil {
		t.Errorf("call after reaping: %+v", resp.Error)
	}
}

func TestAStateFromAnotherInstanceNamesIt(t *testing.T) {
	one := newBridge(t, fake(), func(o *bridge.Options) { o.Era = bridge.EraLegacy; o.MachineID = "one"; o.Secret = "s" })
	two := newBridge(t, fake(), func(o *bridge.Options) { o.Era = bridge.EraLegacy; o.MachineID = "two"; o.Secret = "s" })
	first := serve(t, one, req(t, 1, "tools/call", map[string]any{"name": "ask"}, `{"sampling":{}}`))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := two.Serve(ctx, req(t, 2, "tools/call", map[string]any{"name": "ask", "requestState": first.Result.RequestState}, `{"sampling":{}}`),
		func([]byte) error { return nil })
	var elsewhere *bridge.Elsewhere
	if !errors.As(err, &elsewhere) || elsewhere.Machine != "one" {
		t.Errorf("retry on the other instance: %v, want Elsewhere{one}", err)
	}
}

func TestAParkedCallKeepsTheBridgeBusy(t *testing.T) {
	b := newBridge(t, fake(), func(o *bridge.Options) { o.Era = bridge.EraLegacy })
	first := serve(t, b, req(t, 1, "tools/call", map[string]any{"name": "ask"}, `{"sampling":{}}`))
	if b.IdleFor() != 0 {
		t.Errorf("idle for %v while a call waits for its client", b.IdleFor())
	}
	var key string
	for k := range first.Result.InputRequests {
		key = k
	}
	serve(t, b, req(t, 2, "tools/call", map[string]any{
		"name": "ask", "requestState": first.Result.RequestState,
		"inputResponses": map[string]any{key: map[string]any{"role": "assistant", "model": "m", "content": map[string]any{"type": "text", "text": "x"}}},
	}, `{"sampling":{}}`))
	testkit.Eventually(t, "the bridge to count as idle", func() bool { return b.IdleFor() > 0 })
}

func TestAChildWritingAnOverlongLineIsKilled(t *testing.T) {
	b := newBridge(t, child.Command{Path: everything}, func(o *bridge.Options) {
		o.Era = bridge.EraLegacy
		o.MaxChildren = 1
		o.ChildOptions.MaxLine = 64 << 10
	})
	resp := serve(t, b, req(t, 1, "tools/call", map[string]any{"name": "pid"}, `{}`))
	if len(resp.Result.Content) != 1 {
		t.Fatalf("pid: %+v", resp)
	}
	var pid int
	if _, err := fmt.Sscan(resp.Result.Content[0].Text, &pid); err != nil {
		t.Fatal(err)
	}
	resp = serve(t, b, req(t, 2, "tools/call", map[string]any{"name": "big", "arguments": map[string]any{"size": 256 << 10}}, `{}`))
	if resp.Error == nil || resp.Error.Code != -32603 {
		t.Errorf("a response over the line limit: %+v, want -32603", resp)
	}
	testkit.Eventually(t, "the child that wrote it to be gone", func() bool { return !testkit.Alive(pid) })
	if resp := serve(t, b, req(t, 3, "tools/call", map[string]any{"name": "pid"}, `{}`)); resp.Error != nil {
		t.Errorf("the pool did not recover: %+v", resp.Error)
	}
}

func TestAChildSilentToTheProbeIsLegacy(t *testing.T) {
	cmd := fake()
	cmd.Env = append(cmd.Env, "BRIDGE_FAKE_SILENT=1")
	b := newBridge(t, cmd, func(o *bridge.Options) { o.ProbeTimeout = 200 * time.Millisecond })
	resp := serve(t, b, req(t, 1, "tools/call", map[string]any{"name": "caps"}, `{"sampling":{}}`))
	if len(resp.Result.Content) != 1 || resp.Result.Content[0].Text != `{"sampling":{}}` {
		t.Errorf("a call through a child that ignored the probe: %+v", resp)
	}
}

// A child that stops reading its input is killed once a write to it has
// waited StdinTimeout: the call that wanted to write gets an error instead
// of waiting for the child forever.
func TestAChildThatTakesNoInputIsKilled(t *testing.T) {
	cmd := fake()
	cmd.Env = append(cmd.Env, "BRIDGE_FAKE_DEAF=1")
	b := newBridge(t, cmd, func(o *bridge.Options) {
		o.Era = bridge.EraLegacy
		o.MaxChildren = 1
		o.StdinTimeout = 300 * time.Millisecond
	})
	// More than a pipe holds: the write waits for a reader that never comes.
	args := map[string]any{"name": "caps", "arguments": map[string]any{"pad": strings.Repeat("x", 256<<10)}}
	got := make(chan response, 1)
	go func() { got <- serve(t, b, req(t, 1, "tools/call", args, `{}`)) }()
	select {
	case resp := <-got:
		if resp.Error == nil {
			t.Fatalf("a call to a child that takes no input: %+v, want an error", resp)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a call to a child that takes no input still waits after 30s")
	}
}
