package wrap_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/child"
	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/mcpwrap/mcpwrap/jsonrpc"
	"github.com/mcpwrap/mcpwrap/session"
	"github.com/mcpwrap/mcpwrap/wrap"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestToolsResourcesPrompts(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr transport, s *server) {
		checkToolsResourcesPrompts(t, tr.connect(t, s, nil))
	})
}

// The child's requests reach the client on either transport. The SDK
// client asks for no version: it probes with the stateless
// server/discover first, is refused, and falls back to 2025-11-25.
func TestSamplingAndElicitationRoundTrips(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr transport, s *server) {
		cs := tr.connect(t, s, answering())
		if got := cs.InitializeResult().ProtocolVersion; got != "2025-11-25" {
			t.Fatalf("negotiated %q, want 2025-11-25", got)
		}
		checkSamplingAndElicitation(t, cs)
	})
}

func TestProgressReachesItsRequest(t *testing.T) {
	s := start(t)
	var mu sync.Mutex
	got := map[any][]float64{}
	cs := connect(t, s.URL, &mcp.ClientOptions{
		ProgressNotificationHandler: func(ctx context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			got[req.Params.ProgressToken] = append(got[req.Params.ProgressToken], req.Params.Progress)
			mu.Unlock()
		},
	})
	ctx := ctxFor(t)
	// Two calls in flight at once, each with its own token: every
	// notification must reach the request whose token it carries.
	var wg sync.WaitGroup
	for _, tok := range []string{"tok-a", "tok-b"} {
		wg.Go(func() {
			params := &mcp.CallToolParams{Name: "progress", Arguments: map[string]any{"steps": 5, "ms": 5}}
			params.SetProgressToken(tok)
			if _, err := cs.CallTool(ctx, params); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for _, tok := range []string{"tok-a", "tok-b"} {
		if len(got[tok]) != 5 {
			t.Errorf("token %s: %v, want 5 notifications", tok, got[tok])
		}
	}
}

// TestResourceUpdateReachesTheClient: a notification the child sends
// outside any request reaches the client, on Streamable HTTP's GET stream or
// the HTTP+SSE stream.
func TestResourceUpdateReachesTheClient(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr transport, s *server) {
		updated := make(chan string, 1)
		cs := tr.connect(t, s, &mcp.ClientOptions{
			ResourceUpdatedHandler: func(ctx context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
				select {
				case updated <- req.Params.URI:
				default:
				}
			},
		})
		ctx := ctxFor(t)
		if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: "test://watched-resource"}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "touch", Arguments: map[string]any{"uri": "test://watched-resource"}}); err != nil {
			t.Fatal(err)
		}
		select {
		case uri := <-updated:
			if uri != "test://watched-resource" {
				t.Errorf("updated %q", uri)
			}
		case <-ctx.Done():
			t.Fatal("no notifications/resources/updated arrived")
		}
	})
}

func TestManySessionsEachWithItsOwnChild(t *testing.T) {
	// Fewer on HTTP+SSE: each of its sessions holds a stream open.
	sizes := map[string]struct{ sessions, calls int }{
		"Streamable HTTP": {50, 10},
		"HTTP+SSE":        {20, 5},
	}
	eachTransport(t, func(t *testing.T, tr transport, s *server) {
		size := sizes[tr.name]
		checkManySessions(t, s, size.sessions, size.calls, func() *mcp.ClientSession { return tr.connect(t, s, nil) })
	})
}

func TestOneMebibyteEachWay(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr transport, s *server) {
		checkOneMebibyteEachWay(t, tr.connect(t, s, nil))
	})
}

func TestDeleteEndsTheSessionAndItsChild(t *testing.T) {
	s := start(t)
	id := s.open(t)
	_, body := s.do(t, raw{session: id, version: "2025-06-18", body: `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"pid"}}`})
	var resp struct {
		Result mcp.CallToolResult `json:"result"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	pid, err := strconv.Atoi(resp.Result.Content[0].(*mcp.TextContent).Text)
	if err != nil || !testkit.Alive(pid) {
		t.Fatalf("child pid %d (%v) not running", pid, err)
	}
	r, _ := s.do(t, raw{method: http.MethodDelete, session: id, version: "2025-06-18"})
	if r.StatusCode/100 != 2 {
		t.Fatalf("DELETE: %d", r.StatusCode)
	}
	if testkit.Alive(pid) {
		t.Errorf("child %d still running after DELETE", pid)
	}
	r, body = s.do(t, raw{session: id, version: "2025-06-18", body: `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`})
	if r.StatusCode != http.StatusNotFound {
		t.Errorf("after DELETE: %d %s, want 404", r.StatusCode, body)
	}
	r, _ = s.do(t, raw{method: http.MethodDelete, session: id, version: "2025-06-18"})
	if r.StatusCode != http.StatusNotFound {
		t.Errorf("second DELETE: %d, want 404", r.StatusCode)
	}
}

func TestBatchOf20250326(t *testing.T) {
	s := start(t)
	id := s.open(t)
	r, body := s.do(t, raw{session: id, body: `[{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"echo","arguments":{"text":"one"}}},{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"x","progress":1}},{"jsonrpc":"2.0","id":7,"method":"ping"}]`})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("batch: %d %s", r.StatusCode, body)
	}
	var out []map[string]any
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("batch reply is not a JSON array: %v: %s", err, body)
	}
	ids := map[string]bool{}
	for _, m := range out {
		ids[fmt.Sprint(m["id"])] = true
	}
	if len(out) != 2 || !ids["a"] || !ids["7"] {
		t.Errorf("batch reply %s: want responses with ids \"a\" and 7", body)
	}
	r, body = s.do(t, raw{session: id, version: "2025-06-18", body: `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`})
	if r.StatusCode != http.StatusBadRequest {
		t.Errorf("batch under 2025-06-18: %d %s, want 400", r.StatusCode, body)
	}
}

func TestClientIDsAreRestored(t *testing.T) {
	s := start(t)
	id := s.open(t)
	// Two requests with the same id in flight, one string and one number
	// id: the child sees its own ids; each client sees its own back.
	var wg sync.WaitGroup
	var bad atomic.Int32
	for _, rid := range []string{`"same"`, `"same"`, `12345678901234567890`, `-1.5e3`} {
		wg.Go(func() {
			_, body := s.do(t, raw{session: id, version: "2025-06-18", body: `{"jsonrpc":"2.0","id":` + rid + `,"method":"ping"}`})
			if !strings.Contains(body, `"id":`+rid) {
				bad.Add(1)
				t.Errorf("id %s came back as %s", rid, body)
			}
		})
	}
	wg.Wait()
}

func TestSDKClientFallsBackFromTheStatelessProbe(t *testing.T) {
	s := start(t)
	// What the SDK client sends first: a 2026-07-28 server/discover with no
	// session. A server of the stateful era answers 400 with an error that
	// is not one of the new era's.
	r, body := s.do(t, raw{version: "2026-07-28", body: `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`})
	if r.StatusCode != http.StatusBadRequest {
		t.Fatalf("probe: %d %s, want 400", r.StatusCode, body)
	}
	if strings.Contains(body, "-32022") || strings.Contains(body, "-32020") {
		t.Errorf("probe answered with a modern error: %s", body)
	}
	// And the SDK client itself, which probes, falls back and connects.
	cs := connect(t, s.URL, nil)
	if v := cs.InitializeResult().ProtocolVersion; v != "2025-11-25" {
		t.Errorf("negotiated %q, want 2025-11-25", v)
	}
}

func TestServerMessagesTakeTheRightStream(t *testing.T) {
	s := start(t)
	id := s.open(t)
	post := func(body string) (*http.Response, string) {
		return s.do(t, raw{session: id, version: "2025-11-25", body: body})
	}
	if r, b := post(`{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"test://watched-resource"}}`); r.StatusCode != http.StatusOK {
		t.Fatalf("subscribe: %d %s", r.StatusCode, b)
	}
	get := openRaw(t, s.URL, map[string]string{"Mcp-Session-Id": id, "MCP-Protocol-Version": "2025-11-25"})

	// A resource update concerns the session, not the call that caused
	// it: it goes to the GET stream, and the call's answer stays plain JSON.
	r, b := post(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"touch","arguments":{"uri":"test://watched-resource"}}}`)
	if ct := r.Header.Get("Content-Type"); r.StatusCode != http.StatusOK || ct != "application/json" || strings.Contains(b, "resources/updated") {
		t.Errorf("touch: %d %s %s, want a JSON answer without the notification", r.StatusCode, ct, b)
	}
	ev, ok := get.next(t)
	if !ok || !strings.Contains(ev.data, `"method":"notifications/resources/updated"`) || !strings.Contains(ev.data, "test://watched-resource") {
		t.Errorf("GET stream: %+v (open %v), want the resource update", ev, ok)
	}

	// Progress belongs to its call: the answer becomes an SSE stream that
	// carries the notifications, then the response, and nothing goes to GET.
	r, b = post(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"progress","arguments":{"steps":3,"ms":1},"_meta":{"progressToken":"p-1"}}}`)
	if ct := r.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("progress call answered with %q: %s", ct, b)
	}
	if n := strings.Count(b, `"method":"notifications/progress"`); n != 3 || !strings.Contains(b, `"id":3`) || strings.LastIndex(b, `"progressToken"`) > strings.Index(b, `"id":3`) {
		t.Errorf("progress stream: %d notifications, want 3 before the response:\n%s", n, b)
	}
	// A second GET while one is open is refused: one stream, no broadcast.
	if r, b := s.do(t, raw{method: http.MethodGet, session: id, version: "2025-11-25", accept: "text/event-stream"}); r.StatusCode != http.StatusConflict {
		t.Errorf("second GET: %d %s, want 409", r.StatusCode, b)
	}
}

// childrenGone is an observer that holds a new session back until every
// child of this process has exited, so that the session's child is dead
// before the session first runs.
type childrenGone struct{ t testing.TB }

func (o childrenGone) SessionStarted(string) {
	self := strconv.Itoa(os.Getpid())
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		live := false
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
			if err != nil {
				continue
			}
			f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
			if len(f) > 1 && f[1] == self && f[0] != "Z" {
				live = true
				break
			}
		}
		if !live {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	o.t.Error("a child of the test still runs after 10s")
}

func (childrenGone) SessionEnded(string, string, string) {}

// TestInitializeAnswersWhenTheChildDiesAtOnce: a child that exits before it
// is asked anything leaves no session to speak of, but the client's
// initialize still gets a JSON-RPC error answering it, never an empty 200.
func TestInitializeAnswersWhenTheChildDiesAtOnce(t *testing.T) {
	s := start(t, func(o *session.Options, _ *wrap.Options) {
		o.Command = child.Command{Path: "/bin/sh", Args: []string{"-c", "exit 3"}}
		o.Observer = childrenGone{t}
	})
	for i := range 200 {
		resp, body := s.do(t, raw{body: initBody})
		msg, err := jsonrpc.Parse([]byte(body))
		if err != nil {
			t.Fatalf("initialize %d: %d with body %q, want a JSON-RPC error", i, resp.StatusCode, body)
		}
		if !msg.IsError || string(msg.ID) != "1" {
			t.Fatalf("initialize %d: %d %s, want an error answering id 1", i, resp.StatusCode, body)
		}
	}
}

// A request of the stateless era — by its header, or outside a session by
// its _meta — gets the answer a stateful-era server gives, so a dual-era
// client falls back to initialize; the same _meta inside a session goes to
// the child like any request.
func TestStatelessEraRequestsGetTheFallbackAnswer(t *testing.T) {
	s := start(t)
	discover := `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`
	for _, r := range []raw{
		{body: discover, version: "2026-07-28"},
		{body: discover},
	} {
		resp, body := s.do(t, r)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `"code":-32000`) {
			t.Errorf("version %q: %d %s, want 400 with -32000", r.version, resp.StatusCode, body)
		}
	}
	if n := s.Reg.Len(); n != 0 {
		t.Errorf("%d sessions started by stateless requests", n)
	}
	id := s.open(t)
	resp, body := s.do(t, raw{session: id, version: "2025-06-18", body: `{"jsonrpc":"2.0","id":2,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"id":2`) {
		t.Errorf("ping with _meta in a session: %d %s, want the child's answer", resp.StatusCode, body)
	}
}
