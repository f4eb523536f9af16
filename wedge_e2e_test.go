package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
)

// Attacks by clients that stop reading, children that flood, and
// sessions nobody uses, against the real binary on loopback.

// shServer is a stdio MCP server in sh: it answers initialize, and every
// other request with an empty result, except the methods it is told to
// misbehave on (a case arm of sh, given as $1, runs first). The ids it sees
// are mcpwrap's own: plain numbers.
func shServer(arms string) []string {
	script := `
while IFS= read -r line; do
	id=$(printf '%s\n' "$line" | sed -n 's/^.*"id":\([0-9][0-9]*\).*$/\1/p')
	case "$line" in
	` + arms + `
	*'"method":"initialize"'*)
		printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"sh","version":"1"}}}\n' "$id";;
	*)
		[ -n "$id" ] && printf '{"jsonrpc":"2.0","id":%s,"result":{}}\n' "$id";;
	esac
done`
	return []string{"/bin/sh", "-c", script}
}

// unreadRequest sends one request on a connection that reads nothing of
// the answer but, with headers, its status line: a client that stopped
// reading.
func unreadRequest(t *testing.T, w *testkit.Process, method, session, body string, headers bool) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(w.Base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	req := fmt.Sprintf("%s /mcp HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"+
		"Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n"+
		"Mcp-Session-Id: %s\r\nMCP-Protocol-Version: 2025-06-18\r\nContent-Length: %d\r\n\r\n%s",
		method, strings.TrimPrefix(w.Base, "http://"), e2eToken, session, len(body), body)
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	if headers {
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		status := make([]byte, len("HTTP/1.1 200"))
		if _, err := io.ReadFull(conn, status); err != nil || string(status) != "HTTP/1.1 200" {
			t.Fatalf("%s: status %q %v, want 200", method, status, err)
		}
	}
}

// streamStatus opens the session's stream, and closes it as soon as the
// status is known.
func streamStatus(t *testing.T, w *testkit.Process, session string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.URL, nil)
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", session)
	req.Header.Set("MCP-Protocol-Version", "2025-06-18")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// flooder is a child that floods what a client does not read: the
// session's stream from its first request after initialize on (whose
// answer never comes), or a tools/call's reply with progress.
func flooder() []string {
	pad := strings.Repeat("x", 1000)
	return shServer(`
	*'"method":"flood/stream"'*)
		exec yes '{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"` + pad + `"}}';;
	*'"method":"tools/call"'*)
		exec yes '{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1,"message":"` + pad + `"}}';;`)
}

// stallStream opens a session whose GET stream nobody reads while the
// child floods it.
func stallStream(t *testing.T, w *testkit.Process) string {
	t.Helper()
	id := w.OpenRaw(t)
	unreadRequest(t, w, http.MethodGet, id, "", true)
	unreadRequest(t, w, http.MethodPost, id, `{"jsonrpc":"2.0","id":2,"method":"flood/stream"}`, false)
	return id
}

// stallReply opens a session with a call whose streamed reply nobody reads
// while the child floods it.
func stallReply(t *testing.T, w *testkit.Process) string {
	t.Helper()
	id := w.OpenRaw(t)
	unreadRequest(t, w, http.MethodPost, id, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x","_meta":{"progressToken":"t"}}}`, true)
	return id
}

// TestStalledReaderIsCutAndItsSessionGoesOn: a GET stream that nobody reads
// is cut after the slow-reader timeout, and the session lives on: another
// reader may listen.
func TestStalledReaderIsCutAndItsSessionGoesOn(t *testing.T) {
	w := startWrapper(t, testkit.Options{Env: map[string]string{"MCPWRAP_SLOW_READER_TIMEOUT": "2s"}, Command: flooder()})
	id := stallStream(t, w)
	// The stalled reader holds the stream: another GET is refused...
	if status := streamStatus(t, w, id); status != http.StatusConflict {
		t.Fatalf("GET beside the stalled reader: %d, want 409", status)
	}
	// ...until the stalled reader is cut.
	deadline := time.Now().Add(30 * time.Second)
	for streamStatus(t, w, id) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("the stalled stream reader was never cut: a second GET still gets 409\n%s", w.Logs.Dump())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestClientsThatStopReadingDoNotWedgeSessions: streams and streamed
// replies flooded by the child and read by nobody, with a slow-reader
// timeout longer than any test: DELETE still answers, and SIGTERM ends
// mcpwrap cleanly within its budget, streams of sessions not deleted
// included.
func TestClientsThatStopReadingDoNotWedgeSessions(t *testing.T) {
	w := startWrapper(t, testkit.Options{
		Env:     map[string]string{"MCPWRAP_SLOW_READER_TIMEOUT": "1h", "MCPWRAP_SHUTDOWN_TIMEOUT": "9s"},
		Command: flooder(),
	})
	deleted := []string{stallStream(t, w), stallReply(t, w)}
	kept := []string{stallStream(t, w), stallReply(t, w)}
	// Let the floods fill every buffer between the child and the client:
	// mcpwrap says so once its queue for the reader is full. (Where it
	// says nothing, the wait ends anyway, and the checks below decide.)
	for _, id := range append(deleted, kept...) {
		_, _ = w.Logs.Wait("a full queue", 10*time.Second, func(l testkit.Line) bool {
			return l.Str("session") == id && strings.Contains(l.Msg(), "queue")
		})
	}

	for _, id := range deleted {
		status, _, body := w.Send(t, testkit.Request{Method: http.MethodDelete, Session: id})
		if status != http.StatusNoContent {
			t.Fatalf("DELETE of a session with a stalled reader: %d %q", status, body)
		}
	}

	start := time.Now()
	w.Signal(syscall.SIGTERM)
	code := w.WaitExit()
	t.Logf("exit %d after %v", code, time.Since(start).Round(time.Millisecond))
	if code != 0 {
		t.Fatalf("SIGTERM with stalled readers: exit %d, want 0\n%s", code, w.Logs.Dump())
	}
}

// stopsReading answers initialize, then never reads its input again.
var stopsReading = []string{"/bin/sh", "-c", `IFS= read -r line
printf '{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"sh","version":"1"}}}\n'
exec sleep 1000`}

// paddedPing is a request big enough that a few dozen fill the child's
// stdin pipe.
func paddedPing(id int) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"ping","params":{"_meta":{"pad":"%s"}}}`, id, strings.Repeat("p", 8<<10))
}

// TestRequestTimeoutCoversAChildThatStopsReading: 120 concurrent calls and
// a batch of 100 to a child that reads nothing: every request gets an
// answer (a timeout error) by its deadline, none is left hanging.
func TestRequestTimeoutCoversAChildThatStopsReading(t *testing.T) {
	w := startWrapper(t, testkit.Options{
		Env:     map[string]string{"MCPWRAP_REQUEST_TIMEOUT": "2s"},
		Command: stopsReading,
	})
	id := w.OpenRaw(t)

	client := &http.Client{Timeout: 30 * time.Second}
	post := func(body string) (int, string, error) {
		req, _ := http.NewRequest(http.MethodPost, w.URL, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e2eToken)
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Mcp-Session-Id", id)
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	var unanswered []string
	for i := range 120 {
		wg.Go(func() {
			status, body, err := post(paddedPing(100 + i))
			if err != nil || status != http.StatusOK || !strings.Contains(body, "timed out") || !strings.Contains(body, fmt.Sprintf(`"id":%d`, 100+i)) {
				mu.Lock()
				unanswered = append(unanswered, fmt.Sprintf("call %d: %d %.80q %v", i, status, body, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(unanswered) > 0 {
		t.Errorf("%d of 120 calls got no timeout answer, e.g. %s", len(unanswered), unanswered[0])
	}

	batch := make([]string, 100)
	for i := range batch {
		batch[i] = paddedPing(1000 + i)
	}
	status, body, err := post("[" + strings.Join(batch, ",") + "]")
	if err != nil || status != http.StatusOK {
		t.Fatalf("batch of 100: %d %.200q %v", status, body, err)
	}
	if got := strings.Count(body, "timed out"); !strings.HasPrefix(body, "[") || got != 100 {
		t.Errorf("batch of 100 got %d timeout answers (body %.200q), want all 100 in an array", got, body)
	}
}

// TestBatchesAreBounded: a batch past MCPWRAP_MAX_BATCH is refused with a
// clear 400 before any of it reaches the child.
func TestBatchesAreBounded(t *testing.T) {
	w := startWrapper(t, testkit.Options{Command: shServer("")})
	id := w.OpenRaw(t)
	msgs := make([]string, 101)
	for i := range msgs {
		msgs[i] = fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"ping"}`, i+10)
	}
	status, _, body := w.Send(t, testkit.Request{Session: id, Body: "[" + strings.Join(msgs, ",") + "]", Headers: map[string]string{"MCP-Protocol-Version": ""}})
	if status != http.StatusBadRequest || !strings.Contains(body, "at most 100") {
		t.Fatalf("batch of 101: %d %.200q, want 400 naming the bound", status, body)
	}
	status, _, body = w.Send(t, testkit.Request{Session: id, Body: "[" + strings.Join(msgs[:100], ",") + "]", Headers: map[string]string{"MCP-Protocol-Version": ""}})
	if status != http.StatusOK || strings.Count(body, `"result"`) != 100 {
		t.Fatalf("batch of 100: %d %.200q, want 100 answers", status, body)
	}
}

// TestInitializeAloneInABatchIsAnsweredWithAnArray: a 2025-03-26 client
// that sends [initialize] gets [response].
func TestInitializeAloneInABatchIsAnsweredWithAnArray(t *testing.T) {
	w := startWrapper(t, testkit.Options{Command: shServer("")})
	status, h, body := w.Send(t, testkit.Request{Body: "[" + testkit.InitBody + "]"})
	if status != http.StatusOK || h.Get("Mcp-Session-Id") == "" {
		t.Fatalf("[initialize]: %d %q", status, body)
	}
	if !strings.HasPrefix(body, "[") || !strings.HasSuffix(body, "]") {
		t.Fatalf("[initialize] answered with %q, want an array", body)
	}
}

// TestInvalidUTF8FromTheChildIsMadeValid: a response with bytes that are
// not UTF-8 still reaches the client, as valid UTF-8.
func TestInvalidUTF8FromTheChildIsMadeValid(t *testing.T) {
	w := startWrapper(t, testkit.Options{Command: shServer(`
	*'"method":"tools/call"'*)
		printf '{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"a\377\376b"}]}}\n' "$id";;`)})
	id := w.OpenRaw(t)
	status, _, body := w.Send(t, testkit.Request{Session: id, Body: `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x"}}`})
	if status != http.StatusOK {
		t.Fatalf("tools/call: %d %q", status, body)
	}
	if !utf8.ValidString(body) {
		t.Fatalf("answer is not valid UTF-8: %q", body)
	}
	if !strings.Contains(body, "a\uFFFD") || !strings.Contains(body, "b") {
		t.Errorf("answer %q, want the invalid bytes replaced by U+FFFD", body)
	}
}

// vmHWM is the peak resident set of pid, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestNotificationFloodStaysWithinTheQueueBounds: children of three
// sessions each send 300 notifications of 1 MiB with no stream open. What
// mcpwrap holds for them stays within the queued-bytes bounds (the peak
// resident set says so), and the drops are logged at a bounded rate.
func TestNotificationFloodStaysWithinTheQueueBounds(t *testing.T) {
	w := startWrapper(t, testkit.Options{
		Env: map[string]string{
			// A count bound that alone would allow 150 MiB per session.
			"MCPWRAP_MAX_QUEUED_MESSAGES":  "150",
			"MCPWRAP_MAX_QUEUED_BYTES":     "4194304",
			"MCPWRAP_LOG_LINES_PER_SECOND": "1",
		},
		Command: shServer(`
	*'"method":"notifications/initialized"'*)
		big=$(head -c 1048576 /dev/zero | tr '\0' u)
		n=0
		while [ $n -lt 300 ]; do
			printf '{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"%s"}}\n' "$big"
			n=$((n+1))
		done
		exit 0;;`),
	})
	before := vmHWM(t, w.Pid)
	var ids []string
	for range 3 {
		ids = append(ids, w.OpenRaw(t))
	}
	for _, id := range ids {
		w.Logs.MustWait(t, "the end of the flood", func(l testkit.Line) bool { return l.Str("session") == id && l.Msg() == "session ended" })
	}
	peak := vmHWM(t, w.Pid)
	t.Logf("peak resident set: %d MiB before the flood, %d MiB after 3 x 300 MiB of notifications", before>>20, peak>>20)
	// 3 x 4 MiB queued, a 1 MiB line being read per session, and the
	// runtime's slack: far below the 450 MiB the count bound alone allows.
	if peak > 200<<20 {
		t.Errorf("peak resident set %d MiB, want under 200 MiB", peak>>20)
	}
	for _, id := range ids {
		warns := w.Logs.Find(func(l testkit.Line) bool { return l.Str("session") == id && l.Str("level") == "warn" })
		if len(warns) > 40 {
			t.Errorf("session %s: %d warnings for one flood, want a bounded few", id, len(warns))
		}
	}
}

// TestStderrFloodIsRateLimited: a child that writes 20,000 stderr lines
// makes a bounded number of log lines, and a line saying how many were
// suppressed.
func TestStderrFloodIsRateLimited(t *testing.T) {
	w := startWrapper(t, testkit.Options{
		Env: map[string]string{"MCPWRAP_LOG_LINES_PER_SECOND": "5"},
		Command: shServer(`
	*'"method":"notifications/initialized"'*)
		seq 20000 >&2
		exit 0;;`),
	})
	id := w.OpenRaw(t)
	w.Logs.MustWait(t, "the session's end", func(l testkit.Line) bool { return l.Str("session") == id && l.Msg() == "session ended" })
	lines := w.Logs.Find(func(l testkit.Line) bool { return l.Str("session") == id })
	suppressed := 0
	for _, l := range lines {
		suppressed += l.Int("suppressed")
	}
	t.Logf("%d log lines for 20000 stderr lines; %d suppressed", len(lines), suppressed)
	if len(lines) > 200 {
		t.Errorf("%d log lines for one session's stderr flood, want a bounded few", len(lines))
	}
	if suppressed == 0 || suppressed+len(lines) < 20000 {
		t.Errorf("suppressed %d lines in %d logged, want the rest of 20000 counted", suppressed, len(lines))
	}
}

// TestAbandonedCallDoesNotHoldItsSession: with a request timeout, a call the
// child never answers, whose client left, no longer keeps its session from
// the idle timeout.
func TestAbandonedCallDoesNotHoldItsSession(t *testing.T) {
	w := startWrapper(t, testkit.Options{
		Env: map[string]string{"MCPWRAP_REQUEST_TIMEOUT": "1s", "MCPWRAP_SESSION_IDLE_TIMEOUT": "2s"},
		Command: shServer(`
	*'"method":"tools/call"'*)
		;;`),
	})
	id := w.OpenRaw(t)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, strings.NewReader(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"never"}}`))
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Mcp-Session-Id", id)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		io.Copy(io.Discard, resp.Body) // the client leaves mid-call
		resp.Body.Close()
	}
	ended := w.Logs.MustWait(t, "the idle end", func(l testkit.Line) bool { return l.Str("session") == id && l.Msg() == "session ended" })
	if ended.Str("cause") != "idle" {
		t.Errorf("session ended with cause %q, want idle", ended.Str("cause"))
	}
}

// TestUnusedSessionEndsSooner: a session that had nothing but initialize is
// ended by the short unused-session timeout, while a used one lives on; the
// log names durations with their unit.
func TestUnusedSessionEndsSooner(t *testing.T) {
	w := startWrapper(t, testkit.Options{
		Env:     map[string]string{"MCPWRAP_UNUSED_SESSION_TIMEOUT": "1s", "MCPWRAP_SESSION_IDLE_TIMEOUT": "1h"},
		Command: shServer(""),
	})
	unused := w.OpenRaw(t)
	used := w.OpenRaw(t)
	if status, _, body := w.Send(t, testkit.Request{Session: used, Body: `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`}); status != http.StatusOK {
		t.Fatalf("tools/list: %d %q", status, body)
	}
	ended := w.Logs.MustWait(t, "the unused session's end", func(l testkit.Line) bool { return l.Str("session") == unused && l.Msg() == "session ended" })
	if ended.Str("cause") != "unused" {
		t.Errorf("unused session ended with cause %q, want unused", ended.Str("cause"))
	}
	if _, ok := ended["duration_ms"]; !ok {
		t.Errorf("session ended line %v has no duration_ms", ended)
	}
	ending := w.Logs.Find(func(l testkit.Line) bool {
		return l.Str("session") == unused && l.Msg() == "ending a session never used beyond initialize"
	})
	if len(ending) != 1 || ending[0]["idle_ms"] == nil {
		t.Errorf("ending lines %v, want one with idle_ms", ending)
	}
	sessionGone(t, w, unused)
	// Three unused timeouts later, the used session still answers.
	testkit.Eventually(t, "three unused timeouts to pass", func() bool { return time.Since(logged(ended)) > 3*time.Second })
	if status, _, body := w.Send(t, testkit.Request{Session: used, Body: `{"jsonrpc":"2.0","id":3,"method":"ping"}`}); status != http.StatusOK {
		t.Fatalf("the used session: %d %q, want it alive", status, body)
	}
}

// logged is when l was logged.
func logged(l testkit.Line) time.Time {
	ts, _ := time.Parse(time.RFC3339, l.Str("time"))
	return ts
}
