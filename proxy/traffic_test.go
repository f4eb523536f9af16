package proxy_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// exercise drives tools, a resource, a prompt and a sampling round trip
// (remote → shim → client → shim → remote) through one session.
func exercise(t *testing.T, ctx context.Context, cs *mcp.ClientSession, tag string) {
	t.Helper()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("%s: list tools: %v", tag, err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	if !strings.Contains(strings.Join(names, ","), "echo") {
		t.Fatalf("%s: tools %v lack echo", tag, names)
	}
	if got, err := callText(ctx, cs, "echo", map[string]any{"text": "hi " + tag}); err != nil || got != "hi "+tag {
		t.Fatalf("%s: echo = %q, %v", tag, got, err)
	}
	res, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "test://hello"})
	if err != nil || len(res.Contents) != 1 || res.Contents[0].Text != "hello resource" {
		t.Fatalf("%s: read resource = %+v, %v", tag, res, err)
	}
	pr, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "greet", Arguments: map[string]string{"who": tag}})
	if err != nil || len(pr.Messages) != 1 {
		t.Fatalf("%s: get prompt = %+v, %v", tag, pr, err)
	}
	if text, _ := pr.Messages[0].Content.(*mcp.TextContent); text == nil || text.Text != "hello "+tag {
		t.Fatalf("%s: prompt text = %+v", tag, pr.Messages[0].Content)
	}
	if got, err := callText(ctx, cs, "sample", map[string]any{"prompt": "ping " + tag}); err != nil || got != "model said: PING "+strings.ToUpper(tag) {
		t.Fatalf("%s: sample = %q, %v", tag, got, err)
	}
}

// checkBigMessages sends a message of each size both ways (echo, then big):
// far over any 64 KiB line buffer.
func checkBigMessages(t *testing.T, ctx context.Context, cs *mcp.ClientSession, sizes ...int) {
	t.Helper()
	for _, size := range sizes {
		text := strings.Repeat("a", size)
		if got, err := callText(ctx, cs, "echo", map[string]any{"text": text}); err != nil || got != text {
			t.Fatalf("echo of %d bytes: got %d bytes, %v", size, len(got), err)
		}
		if got, err := callText(ctx, cs, "big", map[string]any{"size": size}); err != nil || len(got) != size {
			t.Fatalf("big %d: got %d bytes, %v", size, len(got), err)
		}
	}
}

func TestStreamableTraffic(t *testing.T) {
	ctx := testContext(t, testTimeout)
	r := startRemote(t, false)
	cmd, stderr := shimCommand(t, []string{"MCPWRAP_TOKEN=" + testToken}, r.url())
	cs := mustConnect(t, ctx, cmd, nil)
	exercise(t, ctx, cs, "one")

	// The 10 MiB messages go through the real mcpwrap in TestEndToEnd;
	// here they would mostly time the race detector on the SDK's JSON.
	checkBigMessages(t, ctx, cs, 1<<20)

	// Many requests in flight at once, sampling among them; each must get
	// its own answer.
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 20 {
		wg.Go(func() {
			want := fmt.Sprintf("req-%d", i)
			if got, err := callText(ctx, cs, "echo", map[string]any{"text": want}); err != nil || got != want {
				errs <- fmt.Errorf("echo %s = %q, %v", want, got, err)
			}
		})
		wg.Go(func() {
			want := fmt.Sprintf("model said: S-%d", i)
			if got, err := callText(ctx, cs, "sample", map[string]any{"prompt": fmt.Sprintf("s-%d", i)}); err != nil || got != want {
				errs <- fmt.Errorf("sample %d = %q, %v", i, got, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// Closing the client closes the shim's stdin: the shim must end the
	// remote session and exit 0.
	if err := cs.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("shim exit code %d, want 0", code)
	}
	if n := r.deletes.Load(); n != 1 {
		t.Errorf("remote saw %d successful DELETEs, want 1", n)
	}
	if strings.Contains(stderr.Text(), testToken) {
		t.Errorf("the token appears in the shim's log")
	}
}

func TestSessionLossIsInvisible(t *testing.T) {
	ctx := testContext(t, testTimeout)
	r := startRemote(t, false)
	cmd, stderr := shimCommand(t, []string{"MCPWRAP_TOKEN=" + testToken}, r.url())
	changed := make(chan struct{}, 100)
	cs := mustConnect(t, ctx, cmd, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { changed <- struct{}{} },
	})
	exercise(t, ctx, cs, "before")

	// A restarted machine: same address, no memory of any session.
	for round := range 2 {
		r.stop()
		r.start()
		exercise(t, ctx, cs, fmt.Sprintf("after-restart-%d", round))
	}
	if got := strings.Count(stderr.Text(), "re-initialized it transparently"); got < 2 {
		t.Errorf("shim logged %d re-initializations, want at least 2", got)
	}

	// Server-initiated messages reach the client again: they travel on the
	// GET stream, which the shim had to reopen for the new session. The
	// stream may still be connecting, so keep changing the tool list until
	// a notification arrives.
	got := false
	for i := 0; i < 100 && !got; i++ {
		mcp.AddTool(r.mcpServer(), &mcp.Tool{Name: fmt.Sprintf("added-%d", i)},
			func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
				return &mcp.CallToolResult{}, nil, nil
			})
		select {
		case <-changed:
			got = true
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	if !got {
		t.Fatal("no tools/list_changed notification reached the client after the restart")
	}
}

func TestColdStart(t *testing.T) {
	ctx := testContext(t, testTimeout)
	r := newRemote(t, false)
	r.reserve()
	cmd, stderr := shimCommand(t, []string{"MCPWRAP_TOKEN=" + testToken}, "--retry-for", "45s", r.url())
	cs := connectThroughColdStart(t, ctx, cmd, stderr, r.start)
	exercise(t, ctx, cs, "cold")
}

func TestWrongToken(t *testing.T) {
	ctx := testContext(t, testTimeout)
	r := startRemote(t, false)
	const wrong = "wrong-token-value"
	cmd, stderr := shimCommand(t, []string{"MCPWRAP_TOKEN=" + wrong}, r.url())
	checkTokenRejected(t, ctx, cmd, stderr, wrong)
}

func TestUnreachable(t *testing.T) {
	ctx := testContext(t, testTimeout)
	r := newRemote(t, false)
	r.reserve() // nothing listens there
	cmd, _ := shimCommand(t, []string{"MCPWRAP_TOKEN=" + testToken}, "--retry-for", "1s", r.url())
	err := connectFails(t, ctx, cmd, "to nothing")
	if !strings.Contains(err.Error(), "remote unreachable") {
		t.Errorf("error %q does not say the remote is unreachable", err)
	}
}

func TestSSEFallback(t *testing.T) {
	ctx := testContext(t, testTimeout)
	r := startRemote(t, true)
	cmd, stderr := shimCommand(t, []string{"MCPWRAP_TOKEN=" + testToken}, r.url())
	cs := mustConnect(t, ctx, cmd, nil)
	exercise(t, ctx, cs, "legacy")
	if !strings.Contains(stderr.Text(), "remote speaks HTTP+SSE") {
		t.Errorf("shim did not log the fallback")
	}
	text := strings.Repeat("b", 1<<20)
	if got, err := callText(ctx, cs, "echo", map[string]any{"text": text}); err != nil || got != text {
		t.Fatalf("echo of 1 MiB over HTTP+SSE: got %d bytes, %v", len(got), err)
	}

	// An HTTP+SSE session dies with its stream; the shim builds a new one.
	r.stop()
	r.start()
	exercise(t, ctx, cs, "legacy-after-restart")

	if err := cs.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("shim exit code %d, want 0", code)
	}
}

func TestResumesClosedResponseStream(t *testing.T) {
	ctx := testContext(t, testTimeout)
	r := startRemote(t, false)
	cmd, stderr := shimCommand(t, []string{"MCPWRAP_TOKEN=" + testToken}, r.url())
	cs := mustConnect(t, ctx, cmd, nil)
	// The remote ends the POST's stream before answering (SEP-1699); the
	// answer must come by resuming with Last-Event-ID.
	if got, err := callText(ctx, cs, "reconnect", nil); err != nil || got != "answered after the stream closed" {
		t.Fatalf("reconnect = %q, %v", got, err)
	}
	if !strings.Contains(stderr.Text(), "resuming with Last-Event-ID") {
		t.Errorf("the shim did not resume the response stream")
	}
	exercise(t, ctx, cs, "after-resume")
}

func TestStatelessRemote(t *testing.T) {
	ctx := testContext(t, testTimeout)
	r := newRemote(t, false)
	r.stateless = true
	r.start()
	cmd, _ := shimCommand(t, []string{"MCPWRAP_TOKEN=" + testToken}, r.url())
	cs := mustConnect(t, ctx, cmd, nil)
	if v := cs.InitializeResult().ProtocolVersion; v != "2026-07-28" {
		t.Errorf("negotiated %q, want the stateless 2026-07-28", v)
	}
	if got, err := callText(ctx, cs, "echo", map[string]any{"text": "stateless"}); err != nil || got != "stateless" {
		t.Fatalf("echo = %q, %v", got, err)
	}
	res, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "test://hello"})
	if err != nil || len(res.Contents) != 1 || res.Contents[0].Text != "hello resource" {
		t.Fatalf("read resource = %+v, %v", res, err)
	}
}

func TestCloseWhileRemoteDown(t *testing.T) {
	ctx := testContext(t, testTimeout)
	r := startRemote(t, false)
	cmd, stderr := shimCommand(t, []string{"MCPWRAP_TOKEN=" + testToken}, r.url())
	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1.0.0"}, nil)
	// A generous grace: this test is about exiting cleanly, not quickly.
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd, TerminateDuration: 30 * time.Second}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if got, err := callText(ctx, cs, "echo", map[string]any{"text": "x"}); err != nil || got != "x" {
		t.Fatalf("echo = %q, %v", got, err)
	}
	r.stop()
	// The shim is still retrying to reach the remote (for its GET stream)
	// when its stdin ends; it must still end and exit 0.
	if err := cs.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("shim exit code %d, want 0", code)
	}
	if !strings.Contains(stderr.Text(), "could not end the remote session") {
		t.Errorf("shim did not log that the DELETE failed")
	}
}

func TestOutageLongerThanRetryThenBack(t *testing.T) {
	ctx := testContext(t, testTimeout)
	r := startRemote(t, false)
	cmd, _ := shimCommand(t, []string{"MCPWRAP_TOKEN=" + testToken, "MCPWRAP_PROXY_RETRY_FOR=1s"}, r.url())
	cs := mustConnect(t, ctx, cmd, nil)
	exercise(t, ctx, cs, "up")

	r.stop()
	// Past the retry budget the client gets an answer it can act on: an
	// error, not a hang and not a dead shim.
	_, err := callText(ctx, cs, "echo", map[string]any{"text": "down"})
	if err == nil || !strings.Contains(err.Error(), "remote unreachable") {
		t.Fatalf("echo while down: err = %v, want remote unreachable", err)
	}

	// Once the remote is back, the same client session works again.
	r.start()
	exercise(t, ctx, cs, "back")
}

func TestGatewayErrorsAreRetried(t *testing.T) {
	ctx := testContext(t, testTimeout)
	r := newRemote(t, false)
	r.gateway = make(chan int, 10)
	for _, code := range []int{503, 502, 504, 503} {
		r.gateway <- code
	}
	r.start()
	cmd, stderr := shimCommand(t, []string{"MCPWRAP_TOKEN=" + testToken}, r.url())
	cs := mustConnect(t, ctx, cmd, nil)
	if len(r.gateway) != 0 {
		t.Errorf("%d gateway answers left unused", len(r.gateway))
	}
	for _, code := range []string{"503", "502", "504"} {
		if !strings.Contains(stderr.Text(), `"reason":"`+code) {
			t.Errorf("no retry logged for %s", code)
		}
	}
	// And mid-session, once more.
	r.gateway <- 503
	exercise(t, ctx, cs, "after-gateway")
}

func TestSubscriptionsSurviveSessionLoss(t *testing.T) {
	ctx := testContext(t, testTimeout)
	r := startRemote(t, false)
	cmd, stderr := shimCommand(t, []string{"MCPWRAP_TOKEN=" + testToken}, r.url())
	updated := make(chan string, 100)
	cs := mustConnect(t, ctx, cmd, &mcp.ClientOptions{
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			updated <- req.Params.URI
		},
	})
	for _, uri := range []string{"test://hello", "test://dropped"} {
		if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: uri}); err != nil {
			t.Fatalf("subscribe %s: %v", uri, err)
		}
	}
	if err := cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: "test://dropped"}); err != nil {
		t.Fatalf("unsubscribe: %v", err)
	}

	r.stop()
	r.start()
	exercise(t, ctx, cs, "after-restart")

	// The new session knows the subscription the client made in the old
	// one, and only that one.
	var got []string
	for i := 0; i < 100 && len(got) == 0; i++ {
		for _, uri := range []string{"test://dropped", "test://hello"} {
			if err := r.mcpServer().ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: uri}); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case uri := <-updated:
			got = append(got, uri)
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	if len(got) == 0 || got[0] != "test://hello" {
		t.Fatalf("updates after the restart: %q, want test://hello", got)
	}
	if strings.Contains(stderr.Text(), "could not restore") {
		t.Errorf("the shim failed to restore the session setup")
	}
}

func TestSecretsEchoedByTheRemoteAreRedacted(t *testing.T) {
	ctx := testContext(t, testTimeout)
	// A careless remote that repeats the request's credentials in its
	// error bodies.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "cannot use "+r.Header.Get("Authorization")+" with "+r.Header.Get("X-Api-Key"), http.StatusInternalServerError)
	})}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	defer func() { srv.Close(); <-served }()

	const apiKey = "key-0123456789"
	cmd, stderr := shimCommand(t, []string{"MCPWRAP_TOKEN=" + testToken}, "--header", "X-Api-Key: "+apiKey, "http://"+ln.Addr().String()+"/mcp")
	err = connectFails(t, ctx, cmd, "to a failing remote")
	if !strings.Contains(err.Error(), "500") || !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("error %q should report the 500 with the secrets redacted", err)
	}
	for _, secret := range []string{testToken, apiKey} {
		if strings.Contains(err.Error(), secret) || strings.Contains(stderr.Text(), secret) {
			t.Errorf("%q leaked into the error or the log", secret)
		}
	}
}

func TestRequestCutByRestartGetsAnError(t *testing.T) {
	ctx := testContext(t, testTimeout)
	r := newRemote(t, false)
	r.slow = make(chan struct{}, 1)
	r.start()
	cmd, _ := shimCommand(t, []string{"MCPWRAP_TOKEN=" + testToken}, r.url())
	cs := mustConnect(t, ctx, cmd, nil)

	errc := make(chan error, 1)
	go func() {
		_, err := callText(ctx, cs, "slow", nil)
		errc <- err
	}()
	select {
	case <-r.slow:
	case <-ctx.Done():
		t.Fatal("the slow call never started")
	}
	// The machine restarts while the call runs: its answer is lost, and
	// the shim must say so rather than hang or run it again.
	r.stop()
	r.start()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "may or may not have run") {
			t.Fatalf("slow call: err = %v, want one saying it may or may not have run", err)
		}
	case <-ctx.Done():
		t.Fatal("the cut request never got an answer")
	}
	select {
	case <-r.slow:
		t.Error("the cut request ran again on the new remote")
	default:
	}
	exercise(t, ctx, cs, "after-cut")
}
