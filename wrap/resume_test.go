package wrap_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/child"
	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/mcpwrap/mcpwrap/session"
	"github.com/mcpwrap/mcpwrap/wrap"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// progressLog records the progress notifications a client receives.
type progressLog struct {
	mu   sync.Mutex
	got  []float64
	seen chan struct{} // a notification arrived
}

func newProgressLog() *progressLog { return &progressLog{seen: make(chan struct{}, 1000)} }

func (p *progressLog) options() *mcp.ClientOptions {
	return &mcp.ClientOptions{ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
		p.mu.Lock()
		p.got = append(p.got, r.Params.Progress)
		p.mu.Unlock()
		p.seen <- struct{}{}
	}}
}

func (p *progressLog) values() []float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]float64(nil), p.got...)
}

// checkEveryStepOnce fails unless got is exactly 1..steps.
func checkEveryStepOnce(t *testing.T, got []float64, steps int) {
	t.Helper()
	if len(got) != steps {
		t.Fatalf("%d progress notifications %v, want %d, each once", len(got), got, steps)
	}
	for i, v := range got {
		if v != float64(i+1) {
			t.Fatalf("progress %v, want 1..%d in order, each once", got, steps)
		}
	}
}

// callProgress calls the fixture's progress tool in the background.
func callProgress(cs *mcp.ClientSession, steps, ms int) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{
			Name:      "progress",
			Arguments: map[string]any{"steps": steps, "ms": ms},
			Meta:      mcp.Meta{"progressToken": "p-1"},
		})
		switch {
		case err != nil:
		case res.IsError:
			err = fmt.Errorf("tool error: %+v", res.Content)
		case len(res.Content) == 0 || res.Content[0].(*mcp.TextContent).Text != fmt.Sprintf("sent %d progress notifications", steps):
			err = fmt.Errorf("result %+v", res.Content)
		}
		done <- err
	}()
	return done
}

func retain(d time.Duration) tweak {
	return func(so *session.Options, wo *wrap.Options) {
		so.Retention = d
		wo.SSERetry = 100 * time.Millisecond
	}
}

// A network drop in the middle of a long call loses nothing: the Go SDK
// client reconnects with Last-Event-ID, the call went on meanwhile, and
// every progress notification arrives once, in order, then the result.
func TestGoClientResumesACallAfterTheConnectionIsCut(t *testing.T) {
	s := start(t, retain(time.Minute))
	proxy := testkit.NewCutter(t, s.URL)
	progress := newProgressLog()
	cs := testkit.Client{URL: proxy.URL(s.URL), Token: token, Options: progress.options()}.MustConnect(t)

	const steps = 12
	done := callProgress(cs, steps, 250)
	for range 3 {
		select {
		case <-progress.seen:
		case err := <-done:
			t.Fatalf("the call ended before the cut: %v", err)
		case <-time.After(testkit.Patience):
			t.Fatal("no progress before the cut")
		}
	}
	proxy.Cut()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the call failed after the cut: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the call did not end after the cut")
	}
	checkEveryStepOnce(t, progress.values(), steps)
	if opened, _ := proxy.Stats(); opened < 3 {
		t.Errorf("%d connections through the proxy: the client did not reconnect after the cut", opened)
	}
	// The session goes on.
	if _, err := cs.ListTools(ctxFor(t), nil); err != nil {
		t.Fatalf("the session after the resumed call: %v", err)
	}
}

// sseRead is what readSSE read.
type sseRead struct {
	ids   []string
	datas []string
	retry bool
}

// readSSE reads a raw event stream until it ends or stop says so.
func readSSE(t *testing.T, body io.Reader, stop func(id, data string) bool) sseRead {
	t.Helper()
	var r sseRead
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 4096)
	var id string
	var data []string
	hasData := false
	for {
		n, err := body.Read(tmp)
		buf = append(buf, tmp[:n]...)
		for {
			i := strings.IndexByte(string(buf), '\n')
			if i < 0 {
				break
			}
			line := strings.TrimSuffix(string(buf[:i]), "\r")
			buf = buf[i+1:]
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch {
			case line == "":
				if hasData {
					d := strings.Join(data, "\n")
					r.ids = append(r.ids, id)
					r.datas = append(r.datas, d)
					if stop(id, d) {
						return r
					}
				}
				id, data, hasData = "", nil, false
			case field == "id":
				id = value
			case field == "data":
				data = append(data, value)
				hasData = true
			case field == "retry":
				r.retry = true
			}
		}
		if err != nil {
			return r
		}
	}
}

// Every event on /mcp has an id naming its stream and place; a stream of
// 2025-11-25 starts with a priming event and a retry interval; a client
// that resumes by GET with the last id it saw gets what followed, once.
func TestStreamsHaveIDsAndResumeByGET(t *testing.T) {
	s := start(t, retain(time.Minute))
	id := s.open(t)
	req := func(method, body, last string) *http.Response {
		t.Helper()
		return getStream(t, s, id, method, body, last, "2025-11-25")
	}
	resp := req(http.MethodPost, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"progress","arguments":{"steps":6,"ms":200},"_meta":{"progressToken":"t"}}}`, "")
	// Read the priming event and two notifications, then drop the
	// connection as a network would.
	first := readSSE(t, resp.Body, func(_, data string) bool {
		return strings.Count(data, "progress") > 0 && strings.Contains(data, `"progress":2`)
	})
	resp.Body.Close()
	if !first.retry {
		t.Error("the stream gave no retry: interval")
	}
	if len(first.ids) < 3 || first.datas[0] != "" || first.ids[0] == "" {
		t.Fatalf("stream began %q %q, want a priming event (an id, empty data) first", first.ids, first.datas)
	}
	seen := map[string]bool{}
	for _, i := range first.ids {
		if i == "" || seen[i] {
			t.Fatalf("event ids %q: each must be there and unique", first.ids)
		}
		seen[i] = true
	}
	last := first.ids[len(first.ids)-1]

	resumed := req(http.MethodGet, "", last)
	if resumed.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resumed.Body)
		t.Fatalf("resume from %s: %d %s", last, resumed.StatusCode, b)
	}
	rest := readSSE(t, resumed.Body, func(_, data string) bool { return strings.Contains(data, `"id":7`) })
	var progress []string
	for _, d := range append(first.datas, rest.datas...) {
		if _, p, ok := strings.Cut(d, `"progress":`); ok {
			n, _, _ := strings.Cut(p, ",")
			progress = append(progress, n)
		}
	}
	if strings.Join(progress, ",") != "1,2,3,4,5,6" {
		t.Errorf("progress across the drop: %v, want 1-6 once each", progress)
	}
	if len(rest.datas) == 0 || !strings.Contains(rest.datas[len(rest.datas)-1], `"result"`) {
		t.Fatalf("resumed stream %q, want the result last", rest.datas)
	}
	for _, i := range rest.ids {
		if i != "" && seen[i] {
			t.Errorf("event %s came twice", i)
		}
	}

	// Once the call was read to its end, resuming it again is refused with
	// a JSON-RPC error, not an empty stream. (Until the server has seen the
	// end written, a resume replays it: the connection may have lost it.)
	testkit.Eventually(t, "a resume of a finished call to be refused", func() bool {
		again := req(http.MethodGet, "", last)
		defer again.Body.Close()
		if again.StatusCode == http.StatusOK {
			return false
		}
		b, _ := io.ReadAll(again.Body)
		if again.StatusCode != http.StatusGone || !strings.Contains(string(b), `"error"`) {
			t.Fatalf("resuming a finished stream: %d %s, want 410 with a JSON-RPC error", again.StatusCode, b)
		}
		return true
	})
	// So is an id this server never gave.
	bad := req(http.MethodGet, "", "nonsense")
	b, _ := io.ReadAll(bad.Body)
	if bad.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), `"error"`) {
		t.Errorf("resuming from a foreign id: %d %s, want 400 with a JSON-RPC error", bad.StatusCode, b)
	}
}

// getStream sends a GET or POST to /mcp of protocol 2025-11-25 (batches:
// 2025-03-26) for session id; the test's end closes its body.
func getStream(t *testing.T, s *server, id, method, body, last, ver string) *http.Response {
	t.Helper()
	h := map[string]string{"Mcp-Session-Id": id, "MCP-Protocol-Version": ver, "Accept": "application/json, text/event-stream"}
	if last != "" {
		h["Last-Event-ID"] = last
	}
	if method == http.MethodPost {
		h["Content-Type"] = "application/json"
	}
	r := testkit.Request{Method: method, URL: s.URL, Token: token, Headers: h, Body: body}.New(t, ctxFor(t))
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// A resume from an event that fell off a log gets a clear error, and
// memory stays within the session's bound while 1,000 events go to a
// stream nobody reads: the session's GET stream, and a call's reply whose
// connection dropped. (A log always takes one message when it holds none,
// so two logs may pass the bound by a message.)
func TestResumeFromAnEventThatFellOffIsRefused(t *testing.T) {
	const bound, slack = 64 << 10, 1 << 10
	s := start(t, retain(time.Minute), func(so *session.Options, _ *wrap.Options) {
		so.MaxQueuedBytes = bound
		so.MaxQueuedBytesTotal = 4 * bound
		so.MaxQueue = 1 << 20
	})
	id := s.open(t)
	post := func(body, ver string) {
		t.Helper()
		if r, b := s.do(t, raw{session: id, version: ver, body: body}); r.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", body, r.StatusCode, b)
		}
	}
	refused := func(last string) bool {
		resp := getStream(t, s, id, http.MethodGet, "", last, "2025-11-25")
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return false
		}
		if resp.StatusCode != http.StatusGone || !strings.Contains(string(b), `"error"`) {
			t.Fatalf("resume from %s: %d %s, want 410 with a JSON-RPC error", last, resp.StatusCode, b)
		}
		return true
	}

	// The session's stream: its reader reads the priming event and goes;
	// then 1,000 resource updates come.
	post(`{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"test://watched-resource"}}`, "2025-11-25")
	get := getStream(t, s, id, http.MethodGet, "", "", "2025-11-25")
	primed := readSSE(t, get.Body, func(string, string) bool { return true })
	get.Body.Close()
	if len(primed.ids) != 1 || primed.ids[0] == "" {
		t.Fatalf("GET stream began with %q, want a priming event", primed.ids)
	}
	touch := `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"touch","arguments":{"uri":"test://watched-resource"}}}`
	for i := range 10 {
		batch := make([]string, 100)
		for j := range batch {
			batch[j] = fmt.Sprintf(touch, 100+i*100+j)
		}
		post("["+strings.Join(batch, ",")+"]", "2025-03-26")
		if q := s.Reg.QueuedBytes(); q > bound+slack {
			t.Fatalf("%d bytes queued, over the session's bound of %d", q, bound)
		}
	}
	if !refused(primed.ids[0]) {
		t.Error("a resume from before 1,000 events that cannot all be held was served")
	}

	// A reply whose connection dropped after its priming event, in a
	// session of its own (the first one's stream holds its whole budget).
	id = s.open(t)
	post(`{"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"info"}}`, "2025-11-25")
	resp := getStream(t, s, id, http.MethodPost, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"log","arguments":{"count":1000}}}`, "", "2025-11-25")
	first := readSSE(t, resp.Body, func(string, string) bool { return true })
	resp.Body.Close()
	if len(first.ids) != 1 {
		t.Fatalf("reply began with %q (%d %s)", first.ids, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	testkit.Eventually(t, "the reply nobody reads to outgrow its bound", func() bool {
		if q := s.Reg.QueuedBytes(); q > 2*(bound+slack) {
			t.Fatalf("%d bytes queued, over the bound of %d for each of two sessions", q, bound)
		}
		return refused(first.ids[0])
	})
}

// A connection can die without a word (a laptop asleep): the server still
// thinks its reader is there. A client that resumes takes the stream over
// from it rather than being refused.
func TestResumeTakesOverFromASilentReader(t *testing.T) {
	s := start(t, retain(time.Minute))
	id := s.open(t)
	resp := getStream(t, s, id, http.MethodPost, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"progress","arguments":{"steps":4,"ms":300},"_meta":{"progressToken":"t"}}}`, "", "2025-11-25")
	first := readSSE(t, resp.Body, func(_, data string) bool { return strings.Contains(data, `"progress":1`) })
	// The first connection stays open, unread.
	last := first.ids[len(first.ids)-1]
	resumed := getStream(t, s, id, http.MethodGet, "", last, "2025-11-25")
	if resumed.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resumed.Body)
		t.Fatalf("resume while the first reader is there: %d %s", resumed.StatusCode, b)
	}
	rest := readSSE(t, resumed.Body, func(_, data string) bool { return strings.Contains(data, `"id":7`) })
	if n := len(rest.datas); n == 0 || !strings.Contains(rest.datas[n-1], `"result"`) || strings.Contains(strings.Join(rest.datas, ""), `"progress":1,`) {
		t.Fatalf("resumed stream %q, want progress 2-4 then the result", rest.datas)
	}
	// The first connection was let go.
	old := readSSE(t, resp.Body, func(string, string) bool { return false })
	for _, d := range old.datas {
		if strings.Contains(d, `"id":7`) {
			t.Error("the result went to the connection taken over too")
		}
	}
}

// What a reply keeps for a reconnection is given back once the reply was
// read to its end: finished calls do not fill the session's budget.
func TestFinishedRepliesGiveTheirBytesBack(t *testing.T) {
	s := start(t, retain(time.Minute))
	cs := connect(t, s.URL, newProgressLog().options())
	for range 3 {
		if _, err := cs.CallTool(ctxFor(t), &mcp.CallToolParams{Name: "big", Arguments: map[string]any{"size": 1 << 20}}); err != nil {
			t.Fatal(err)
		}
		if done := callProgress(cs, 3, 0); <-done != nil {
			t.Fatal("progress call failed")
		}
	}
	testkit.Eventually(t, "the finished replies' bytes to be given back", func() bool { return s.Reg.QueuedBytes() == 0 })
}

// A reply whose stream is closed for polling once everything in it was
// written is finished too: nobody will resume it, so it is not kept for the
// retention time.
func TestRepliesPolledAfterTheirEndGiveTheirBytesBack(t *testing.T) {
	s := start(t, retain(time.Minute), func(_ *session.Options, wo *wrap.Options) {
		// Each stream is closed for polling whenever it waits: often
		// right after it wrote the response, before it saw the end.
		wo.SSEPollAfter = time.Nanosecond
	})
	cs := connect(t, s.URL, newProgressLog().options())
	for range 10 {
		if err := <-callProgress(cs, 3, 0); err != nil {
			t.Fatalf("progress call: %v", err)
		}
	}
	testkit.Eventually(t, "the finished replies' bytes to be given back", func() bool { return s.Reg.QueuedBytes() == 0 })
}

// With polling on, a call that outlasts the poll interval several times
// completes through the Go SDK client, every progress notification once,
// while no connection stays open much longer than the interval: mcpwrap
// closes each stream and the client resumes it by GET.
func TestPollingClosesLongStreams(t *testing.T) {
	const poll = time.Second
	s := start(t, retain(time.Minute), func(_ *session.Options, wo *wrap.Options) {
		wo.SSEPollAfter = poll
		wo.SSERetry = 50 * time.Millisecond
	})
	// One request per connection, so that the proxy sees each stream's
	// lifetime.
	s.srv.Config.SetKeepAlivesEnabled(false)
	proxy := testkit.NewCutter(t, s.URL)
	progress := newProgressLog()
	cs := testkit.Client{URL: proxy.URL(s.URL), Token: token, Options: progress.options()}.MustConnect(t)

	const steps, ms = 30, 1000 // a thirty-second call: many poll intervals
	if err := <-callProgress(cs, steps, ms); err != nil {
		t.Fatalf("the long call through polling: %v", err)
	}
	checkEveryStepOnce(t, progress.values(), steps)
	opened, longest := proxy.Stats()
	if longest >= 3*poll {
		t.Errorf("a connection stayed open %v, with polling after %v", longest, poll)
	}
	if opened < 15 {
		t.Errorf("%d connections for a %v call polled every %v: streams were not closed", opened, steps*ms*time.Millisecond, poll)
	}
}

// hogChild answers initialize, then holds its answer to the next request
// for a second (its client has left by then), then answers a batch of
// four at once: a small response and three large ones.
const hogChild = `big=$(head -c 40000 /dev/zero | tr '\0' x)
id() { printf '%s' "$1" | sed 's/.*"id":\([0-9]*\).*/\1/'; }
read -r line; printf '{"jsonrpc":"2.0","id":%s,"result":{"content":[]}}\n' "$(id "$line")"
read -r line
read -r line; sleep 1; printf '{"jsonrpc":"2.0","id":%s,"result":{"pad":"%s%s"}}\n' "$(id "$line")" "$big" "$big"
read -r a; read -r b; read -r c; read -r d
a=$(id "$a"); b=$(id "$b"); c=$(id "$c"); d=$(id "$d")
out=$(printf '{"jsonrpc":"2.0","id":%s,"result":{}}' "$a")
for i in "$b" "$c" "$d"; do out="$out
$(printf '{"jsonrpc":"2.0","id":%s,"result":{"pad":"%s"}}' "$i" "$big")"; done
printf '%s\n' "$out"
cat >/dev/null`

// A client of an earlier protocol cannot resume a reply, so a reply cut
// for falling behind the session's budget (here, because a parked reply
// holds it) still answers every request of its batch: the responses it
// carried, and an error for each it could not, never an empty body.
// Whether a reply is cut depends on how far its reader got; several
// sessions make a cut all but certain.
func TestACutBatchReplyAnswersEveryRequest(t *testing.T) {
	s := start(t, retain(time.Minute), func(so *session.Options, _ *wrap.Options) {
		so.Command = child.Command{Path: "/bin/sh", Args: []string{"-c", hogChild}, Env: []string{"PATH=/usr/bin:/bin"}}
		so.MaxQueuedBytes = 64 << 10
	})
	ids := []string{`"a"`, `"b"`, `"c"`, `"d"`}
	var calls []string
	for _, id := range ids {
		calls = append(calls, `{"jsonrpc":"2.0","id":`+id+`,"method":"tools/call","params":{"name":"x"}}`)
	}
	batch := "[" + strings.Join(calls, ",") + "]"
	cuts := 0
	for range 4 {
		id := s.open(t)
		// A client that gives up before the answer: its reply is parked,
		// and the 80 KB that come hold the session's budget.
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, strings.NewReader(`{"jsonrpc":"2.0","id":"hog","method":"tools/call","params":{"name":"x"}}`))
		req.Header = http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"},
			"Accept": {"application/json, text/event-stream"}, "Mcp-Session-Id": {id}, "Mcp-Protocol-Version": {"2025-11-25"}}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("the hog call was answered (%d) before its client left", resp.StatusCode)
		}
		cancel()
		before := s.Reg.QueuedBytes()
		testkit.Eventually(t, "the parked reply to hold the session's budget", func() bool { return s.Reg.QueuedBytes() >= before+80000 })

		resp, body := s.do(t, raw{session: id, version: "2025-03-26", body: batch})
		var answers []struct {
			ID     json.RawMessage `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &answers) != nil {
			t.Fatalf("the batch: %d %.200q, want 200 and a JSON array", resp.StatusCode, body)
		}
		got := map[string]int{}
		for _, a := range answers {
			if (a.Result == nil) == (a.Error == nil) {
				t.Fatalf("an answer with neither or both of result and error: %s", a.ID)
			}
			if a.Error != nil {
				cuts++
			}
			got[string(a.ID)]++
		}
		for _, want := range ids {
			if got[want] != 1 {
				t.Fatalf("the batch was answered %v, want each of %v once", got, ids)
			}
		}
	}
	t.Logf("%d responses answered with an error after a cut", cuts)
}
