package deploy_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Machine ids as Fly.io makes them: 14 lowercase hex digits.
const (
	machineA = "148ed193b95089"
	machineB = "9080e6f3a12768"
)

// twoMachines starts two mcpwrap processes as two Machines of one app, and
// the router in front of them.
func twoMachines(t *testing.T, pick func(*http.Request) string) (a, b *testkit.Process, rt *router, url string) {
	t.Helper()
	a = startMcpwrap(t, env{"FLY_MACHINE_ID": machineA, "MCPWRAP_TOKEN": token})
	b = startMcpwrap(t, env{"FLY_MACHINE_ID": machineB, "MCPWRAP_TOKEN": token})
	rt = newRouter(map[string]string{machineA: a.Base, machineB: b.Base}, pick)
	return a, b, rt, rt.serve(t) + "/mcp"
}

// isInitialize tells a request that opens a session: a POST without a
// session id.
func isInitialize(r *http.Request) bool {
	return r.Method == http.MethodPost && r.Header.Get("Mcp-Session-Id") == ""
}

// TestSessionFollowsItsMachine opens a session on Machine A and sends every
// later request of it to Machine B, which has Fly replay them to A: the SDK
// client works throughout, its standalone stream included, and never knows.
func TestSessionFollowsItsMachine(t *testing.T) {
	a, b, rt, url := twoMachines(t, func(r *http.Request) string {
		if isInitialize(r) {
			return machineA
		}
		return machineB
	})

	var mu sync.Mutex
	updated := map[string]bool{}
	steps := 0
	cs := connect(t, url, token, &mcp.ClientOptions{
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			mu.Lock()
			updated[req.Params.URI] = true
			mu.Unlock()
		},
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			steps++
			mu.Unlock()
		},
	})
	if !strings.HasPrefix(cs.ID(), machineA+".") {
		t.Fatalf("session id %q does not name Machine A (%s)", cs.ID(), machineA)
	}

	// Every call lands on B and is replayed to A, where the child runs.
	pid := testkit.AskPid(t, cs)
	if want := a.ChildPid(t, cs.ID()); pid != want {
		t.Errorf("tool ran in pid %d, want A's child %d", pid, want)
	}
	if got := testkit.MustCall(t, cs, "echo", map[string]any{"text": "through B to A"}); got != "through B to A" {
		t.Errorf("echo = %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := cs.ListTools(ctx, nil); err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	// A progress call answers with an SSE stream, which must survive the replay.
	progress := &mcp.CallToolParams{Name: "progress", Arguments: map[string]any{"steps": 3, "ms": 10}}
	progress.SetProgressToken("p1")
	if res, err := cs.CallTool(ctx, progress); err != nil || res.IsError {
		t.Fatalf("progress: %v %+v", err, res)
	}
	testkit.Eventually(t, "three progress notifications", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return steps == 3
	})
	const uri = "test://watched-resource"
	if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: uri}); err != nil {
		t.Fatalf("resources/subscribe: %v", err)
	}
	testkit.MustCall(t, cs, "touch", map[string]any{"uri": uri})
	testkit.Eventually(t, "notifications/resources/updated through the replayed streams", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return updated[uri]
	})

	// The SDK opens its standalone GET stream on its own; it too went B → A.
	testkit.Eventually(t, "the GET stream replayed to A", func() bool {
		for _, r := range rt.replayed() {
			if r.Method == http.MethodGet && r.From == machineB && r.To == machineA && r.Status == http.StatusOK {
				return true
			}
		}
		return false
	})
	for _, r := range rt.replayed() {
		if r.From != machineB || r.To != machineA || r.Status == 0 || r.Status >= 300 {
			t.Errorf("unexpected replay %+v", r)
		}
	}
	if _, n := a.Health(t); n != 1 {
		t.Errorf("A holds %d sessions, want 1", n)
	}
	if _, n := b.Health(t); n != 0 {
		t.Errorf("B holds %d sessions, want 0: no request may start a session on the wrong Machine", n)
	}

	// The SDK's DELETE is replayed too, and ends the session on A.
	if err := cs.Close(); err != nil {
		t.Errorf("closing the session: %v", err)
	}
	testkit.Eventually(t, "A's session to end", func() bool { _, n := a.Health(t); return n == 0 })
	testkit.Eventually(t, "A's child to exit", func() bool { return !testkit.Alive(pid) })
}

// TestLargeRequestOnItsMachine sends a request over the proxy's 1 MB replay
// limit: landing on the Machine that owns the session, it works.
func TestLargeRequestOnItsMachine(t *testing.T) {
	a, _, rt, url := twoMachines(t, func(*http.Request) string { return machineA })
	cs := connect(t, url, token, nil)

	big := strings.Repeat("x", 3<<20/2) // 1.5 MiB of text, more in JSON
	if got := testkit.MustCall(t, cs, "echo", map[string]any{"text": big}); got != big {
		t.Errorf("echo of %d bytes returned %d bytes", len(big), len(got))
	}
	if n := len(rt.replayed()); n != 0 {
		t.Errorf("%d replays, want none: every request went to the right Machine", n)
	}
	if _, n := a.Health(t); n != 1 {
		t.Errorf("A holds %d sessions, want 1", n)
	}
}

// TestReplayAnswers checks the answers a Machine gives for session ids it
// does not hold, sent to it directly as the Fly proxy would deliver them.
func TestReplayAnswers(t *testing.T) {
	a := startMcpwrap(t, env{"FLY_MACHINE_ID": machineA, "MCPWRAP_TOKEN": token})
	b := startMcpwrap(t, env{"FLY_MACHINE_ID": machineB, "MCPWRAP_TOKEN": token})
	live := a.OpenRaw(t)
	if !strings.HasPrefix(live, machineA+".") {
		t.Fatalf("session id %q does not name Machine A", live)
	}
	const ping = `{"jsonrpc":"2.0","id":7,"method":"ping"}`

	t.Run("another Machine's session is replayed there", func(t *testing.T) {
		status, header, body := b.Send(t, testkit.Request{Session: live, Body: ping})
		if status != http.StatusMisdirectedRequest || header.Get("Fly-Replay") != "instance="+machineA {
			t.Errorf("got %d with Fly-Replay %q (%s), want 421 and instance=%s",
				status, header.Get("Fly-Replay"), body, machineA)
		}
	})
	t.Run("the replayed request itself is not replayed again", func(t *testing.T) {
		src := map[string]string{"Fly-Replay-Src": "instance=" + machineA + ";t=1"}
		status, header, _ := b.Send(t, testkit.Request{Session: live, Headers: src, Body: ping})
		if status != http.StatusNotFound || header.Get("Fly-Replay") != "" {
			t.Errorf("got %d with Fly-Replay %q, want 404 and no replay", status, header.Get("Fly-Replay"))
		}
	})
	t.Run("a GET stream is replayed too", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, b.Base+"/mcp", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Mcp-Session-Id", live)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMisdirectedRequest || resp.Header.Get("Fly-Replay") != "instance="+machineA {
			t.Errorf("GET: %d, Fly-Replay %q", resp.StatusCode, resp.Header.Get("Fly-Replay"))
		}
	})
	t.Run("a body over the replay limit is replayed unread", func(t *testing.T) {
		// The Machine must not wait for (or refuse) a body it will not use.
		body := `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"echo","arguments":{"text":"` +
			strings.Repeat("y", 2<<20) + `"}}}`
		status, header, _ := b.Send(t, testkit.Request{Session: live, Body: body})
		if status != http.StatusMisdirectedRequest || header.Get("Fly-Replay") != "instance="+machineA {
			t.Errorf("got %d with Fly-Replay %q", status, header.Get("Fly-Replay"))
		}
	})
	for name, id := range map[string]string{
		"an id naming no Machine":            "f0b6b1b4-4c4e-4a43-9d8b-3c1f0e0d9a77",
		"an id naming no Machine, odd chars": "Not_A-Machine.f0b6b1b4-4c4e-4a43-9d8b-3c1f0e0d9a77",
		"our own id, never issued":           machineB + ".f0b6b1b4-4c4e-4a43-9d8b-3c1f0e0d9a77",
	} {
		t.Run(name+" is 404", func(t *testing.T) {
			status, header, body := b.Send(t, testkit.Request{Session: id, Body: ping})
			if status != http.StatusNotFound || header.Get("Fly-Replay") != "" {
				t.Errorf("%s: %d with Fly-Replay %q (%s), want 404", id, status, header.Get("Fly-Replay"), body)
			}
		})
	}
	t.Run("an ended session is 404 on its own Machine, through the replay", func(t *testing.T) {
		rt := newRouter(map[string]string{machineA: a.Base, machineB: b.Base},
			func(*http.Request) string { return machineB })
		front := rt.serve(t)
		req, _ := http.NewRequest(http.MethodDelete, front+"/mcp", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Mcp-Session-Id", live)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE through B: %d, want 204", resp.StatusCode)
		}
		status, _, body := testkit.Request{URL: front + "/mcp", Token: token, Session: live, Body: ping}.Send(t)
		var msg struct {
			Error struct{ Code int } `json:"error"`
		}
		_ = json.Unmarshal([]byte(body), &msg)
		if status != http.StatusNotFound {
			t.Errorf("ended session through B: %d %s, want 404", status, body)
		}
		if got := rt.replayed(); len(got) != 2 || got[1].To != machineA || got[1].Status != http.StatusNotFound {
			t.Errorf("replays %+v, want the DELETE and then the POST replayed to A, answered 404", got)
		}
	})
}

// TestLegacySessionFollowsItsMachine does the same for the deprecated
// HTTP+SSE transport: the stream (the session) opens on A, and every POST to
// /message?sessionId=... lands on B and is replayed to A.
func TestLegacySessionFollowsItsMachine(t *testing.T) {
	a, b, rt, url := twoMachines(t, func(r *http.Request) string {
		if r.Method == http.MethodGet {
			return machineA
		}
		return machineB
	})
	cs := testkit.Client{URL: strings.TrimSuffix(url, "/mcp") + "/sse", Token: token, Legacy: true}.MustConnect(t)

	pid := testkit.AskPid(t, cs)
	if !testkit.Alive(pid) {
		t.Fatalf("pid %d is not running", pid)
	}
	if got := testkit.MustCall(t, cs, "echo", map[string]any{"text": "legacy via B"}); got != "legacy via B" {
		t.Errorf("echo = %q", got)
	}
	posts := 0
	for _, r := range rt.replayed() {
		if r.Method != http.MethodPost || r.From != machineB || r.To != machineA || r.Status != http.StatusAccepted {
			t.Errorf("unexpected replay %+v", r)
		}
		posts++
	}
	if posts < 3 { // initialize, initialized, two calls
		t.Errorf("%d POSTs replayed to A, want every one", posts)
	}
	if _, n := a.Health(t); n != 1 {
		t.Errorf("A holds %d sessions, want 1", n)
	}
	if _, n := b.Health(t); n != 0 {
		t.Errorf("B holds %d sessions, want 0", n)
	}
}
