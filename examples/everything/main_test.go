package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestMain lets the test binary stand in for the real command, so that the
// process-level switches are tested on a real process.
func TestMain(m *testing.M) {
	if os.Getenv("EVERYTHING_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// recorder collects what the server sends besides responses.
type recorder struct {
	mu       sync.Mutex // guards the fields below
	logs     []string
	progress []float64
	updated  []string
	exits    []int
	stderr   bytes.Buffer
}

func (r *recorder) add(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f()
}

// settle waits until the recorder holds at least logs log messages,
// progress notifications and updates, or 10 s have passed: the client may
// hand a notification to its handler after the response that follows it on
// the wire. The caller then checks the exact contents.
func (r *recorder) settle(logs, progress, updated int) {
	for range 200 {
		r.mu.Lock()
		done := len(r.logs) >= logs && len(r.progress) >= progress && len(r.updated) >= updated
		r.mu.Unlock()
		if done {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Write makes recorder the server's stderr.
func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stderr.Write(p)
}

// connect runs the server over a pair of pipes, exactly as on stdio, and
// connects an SDK client that answers sampling and elicitation.
func connect(t *testing.T, protocolVersion string) (*mcp.ClientSession, *recorder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rec := &recorder{}
	clientToServerR, clientToServerW := io.Pipe()
	serverToClientR, serverToClientW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		exit := func(code int) { rec.add(func() { rec.exits = append(rec.exits, code) }) }
		done <- run(ctx, func(string) string { return "" }, clientToServerR, serverToClientW, rec, exit)
	}()

	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, &mcp.ClientOptions{
		CreateMessageHandler: func(_ context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			text := req.Params.Messages[0].Content.(*mcp.TextContent).Text
			return &mcp.CreateMessageResult{Role: "assistant", Model: "echo", Content: &mcp.TextContent{Text: "reply to " + text}}, nil
		},
		// Fills every string field of the form with "yes to <message>".
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			schema, _ := req.Params.RequestedSchema.(map[string]any)
			props, _ := schema["properties"].(map[string]any)
			content := map[string]any{}
			for name, p := range props {
				if p, _ := p.(map[string]any); p["type"] == "string" {
					content[name] = "yes to " + req.Params.Message
				}
			}
			return &mcp.ElicitResult{Action: "accept", Content: content}, nil
		},
		LoggingMessageHandler: func(_ context.Context, req *mcp.LoggingMessageRequest) {
			rec.add(func() { rec.logs = append(rec.logs, fmt.Sprint(req.Params.Data)) })
		},
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			rec.add(func() { rec.progress = append(rec.progress, req.Params.Progress) })
		},
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			rec.add(func() { rec.updated = append(rec.updated, req.Params.URI) })
		},
	})
	transport := &mcp.IOTransport{Reader: serverToClientR, Writer: clientToServerW}
	cs, err := client.Connect(ctx, transport, &mcp.ClientSessionOptions{ProtocolVersion: protocolVersion})
	if err != nil {
		cancel()
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() {
		cs.Close()
		clientToServerW.Close()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("server did not stop within 10s of its stdin closing")
		}
	})
	return cs, rec
}

func callText(t *testing.T, cs *mcp.ClientSession, name string, args any) (string, *mcp.CallToolResult) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String(), res
}

// legacy is the protocol version of the clients mcpwrap serves today, and
// the one the conformance suite's stateful scenarios run at.
const legacy = "2025-11-25"

func TestConformanceFixtures(t *testing.T) {
	cs, rec := connect(t, legacy)
	ctx := context.Background()

	if got, _ := callText(t, cs, "test_simple_text", nil); got != simpleText {
		t.Errorf("test_simple_text = %q", got)
	}

	_, res := callText(t, cs, "test_image_content", map[string]any{})
	img, ok := res.Content[0].(*mcp.ImageContent)
	if !ok || img.MIMEType != "image/png" || !bytes.HasPrefix(img.Data, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("test_image_content = %#v, want a PNG", res.Content[0])
	}

	_, res = callText(t, cs, "test_audio_content", map[string]any{})
	audio, ok := res.Content[0].(*mcp.AudioContent)
	if !ok || audio.MIMEType != "audio/wav" || string(audio.Data[:4]) != "RIFF" || string(audio.Data[8:12]) != "WAVE" {
		t.Errorf("test_audio_content = %#v, want a WAV", res.Content[0])
	}

	_, res = callText(t, cs, "test_multiple_content_types", map[string]any{})
	var kinds []string
	for _, c := range res.Content {
		kinds = append(kinds, fmt.Sprintf("%T", c))
	}
	if want := "*mcp.TextContent *mcp.ImageContent *mcp.EmbeddedResource"; strings.Join(kinds, " ") != want {
		t.Errorf("test_multiple_content_types kinds = %v, want %s", kinds, want)
	}

	if _, res := callText(t, cs, "test_error_handling", map[string]any{}); !res.IsError {
		t.Error("test_error_handling: isError is false")
	}

	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
		t.Fatal(err)
	}
	callText(t, cs, "test_tool_with_logging", map[string]any{})

	params := &mcp.CallToolParams{Name: "test_tool_with_progress", Arguments: map[string]any{}}
	params.SetProgressToken("p1")
	if _, err := cs.CallTool(ctx, params); err != nil {
		t.Fatal(err)
	}

	if got, _ := callText(t, cs, "test_sampling", map[string]any{"prompt": "hi"}); got != "LLM response: reply to hi" {
		t.Errorf("test_sampling = %q", got)
	}
	if got, _ := callText(t, cs, "test_elicitation", map[string]any{"message": "m"}); got != `User response: action=accept, content={"email":"yes to m","username":"yes to m"}` {
		t.Errorf("test_elicitation = %q", got)
	}

	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range tools.Tools {
		if tool.Description == "" {
			t.Errorf("tool %s has no description", tool.Name)
		}
		if tool.Name != "json_schema_2020_12_tool" {
			continue
		}
		schema, _ := json.Marshal(tool.InputSchema)
		for _, kw := range []string{`"$schema"`, `"$defs"`, `"$anchor"`, `"allOf"`, `"if"`, `"then"`, `"else"`, `"additionalProperties":false`} {
			if !bytes.Contains(schema, []byte(kw)) {
				t.Errorf("json_schema_2020_12_tool schema lost %s: %s", kw, schema)
			}
		}
	}

	read, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "test://template/123/data"})
	if err != nil {
		t.Fatal(err)
	}
	if c := read.Contents[0]; c.URI != "test://template/123/data" || !strings.Contains(c.Text, `"id":"123"`) {
		t.Errorf("template read = %+v", c)
	}
	if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "test://template/x/y/data"}); err == nil {
		t.Error("reading a URI outside the template succeeded")
	}

	prompt, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "test_prompt_with_arguments", Arguments: map[string]string{"arg1": "a1", "arg2": "a2"}})
	if err != nil {
		t.Fatal(err)
	}
	if text := prompt.Messages[0].Content.(*mcp.TextContent).Text; !strings.Contains(text, "a1") || !strings.Contains(text, "a2") {
		t.Errorf("prompt text = %q", text)
	}

	comp, err := cs.Complete(ctx, &mcp.CompleteParams{
		Ref:      &mcp.CompleteReference{Type: "ref/prompt", Name: "test_prompt_with_arguments"},
		Argument: mcp.CompleteParamsArgument{Name: "arg1", Value: "par"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(comp.Completion.Values, ","); got != "paris,park,party" {
		t.Errorf("completions = %s", got)
	}

	rec.settle(3, 3, 0)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if want := "Tool execution started|Tool processing data|Tool execution completed"; strings.Join(rec.logs, "|") != want {
		t.Errorf("logs = %q, want %s", rec.logs, want)
	}
	if fmt.Sprint(rec.progress) != "[0 50 100]" {
		t.Errorf("progress = %v, want [0 50 100]", rec.progress)
	}
}

func TestTestTools(t *testing.T) {
	cs, rec := connect(t, legacy)
	ctx := context.Background()

	long := strings.Repeat("é", 1<<19) // 1 MiB of UTF-8
	if got, _ := callText(t, cs, "echo", map[string]any{"text": long}); got != long {
		t.Errorf("echo returned %d bytes, want %d", len(got), len(long))
	}

	for _, size := range []int{0, 1, 63, 64, 65, 1 << 20} {
		got, _ := callText(t, cs, "big", map[string]any{"size": size})
		if len(got) != size {
			t.Errorf("big %d returned %d bytes", size, len(got))
		}
	}
	if _, res := callText(t, cs, "big", map[string]any{"size": maxBytes + 1}); !res.IsError {
		t.Error("big above the limit did not fail")
	}

	rec.mu.Lock()
	before := rec.stderr.Len()
	rec.mu.Unlock()
	if got, _ := callText(t, cs, "stderr", map[string]any{"bytes": 1000}); got != "wrote 1000 bytes to stderr" {
		t.Errorf("stderr = %q", got)
	}
	rec.mu.Lock()
	if written := rec.stderr.String()[before:]; written != filler(1000) {
		t.Errorf("stderr got %d bytes, want the 1000 bytes of filler(1000)", len(written))
	}
	rec.mu.Unlock()

	if got, _ := callText(t, cs, "pid", nil); got != strconv.Itoa(os.Getpid()) {
		t.Errorf("pid = %q, want %d", got, os.Getpid())
	}
	if got, _ := callText(t, cs, "sample", map[string]any{"prompt": "x"}); got != "reply to x" {
		t.Errorf("sample = %q", got)
	}
	if got, _ := callText(t, cs, "elicit", map[string]any{"message": "ok?"}); got != `action=accept, content={"answer":"yes to ok?"}` {
		t.Errorf("elicit = %q", got)
	}

	params := &mcp.CallToolParams{Name: "progress", Arguments: map[string]any{"steps": 5}}
	params.SetProgressToken(7)
	if _, err := cs.CallTool(ctx, params); err != nil {
		t.Fatal(err)
	}
	if _, res := callText(t, cs, "progress", map[string]any{"steps": 1}); !res.IsError {
		t.Error("progress without a token did not fail")
	}

	callText(t, cs, "log", map[string]any{"count": 2}) // before setLevel: nothing
	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	callText(t, cs, "log", map[string]any{"count": 3})
	callText(t, cs, "log", map[string]any{"count": 1, "level": "debug"}) // below the level: nothing

	if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: "test://made-up"}); err != nil {
		t.Fatal(err)
	}
	callText(t, cs, "touch", map[string]any{"uri": "test://not-subscribed"})
	callText(t, cs, "touch", map[string]any{"uri": "test://made-up"})

	callText(t, cs, "crash", map[string]any{"code": 7})

	rec.settle(3, 5, 1)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if fmt.Sprint(rec.progress) != "[1 2 3 4 5]" {
		t.Errorf("progress = %v", rec.progress)
	}
	if want := "log message 1 of 3|log message 2 of 3|log message 3 of 3"; strings.Join(rec.logs, "|") != want {
		t.Errorf("logs = %q, want %s", rec.logs, want)
	}
	if fmt.Sprint(rec.updated) != "[test://made-up]" {
		t.Errorf("updated = %v", rec.updated)
	}
	if fmt.Sprint(rec.exits) != "[7]" {
		t.Errorf("exit calls = %v, want [7]", rec.exits)
	}
}

func TestSleepHonoursCancellation(t *testing.T) {
	cs, _ := connect(t, legacy)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "sleep", Arguments: map[string]any{"ms": 600000}})
		errc <- err
	}()
	// Cancel once the call is surely in flight: the server has it when a
	// later request on the same connection has been answered.
	time.Sleep(100 * time.Millisecond)
	if err := cs.Ping(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("cancelled sleep returned no error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("cancelled sleep still running after 30s")
	}
	// The server dropped the sleep: it answers at once.
	if got, _ := callText(t, cs, "sleep", map[string]any{"ms": 1}); got != "slept 1 ms" {
		t.Errorf("sleep 1 = %q", got)
	}
}

// TestModernClient checks that sampling and elicitation also work for a
// 2026-07-28 client, which gets them as input requests (SEP-2322).
func TestModernClient(t *testing.T) {
	cs, _ := connect(t, "2026-07-28")
	if v := cs.InitializeResult().ProtocolVersion; v != "2026-07-28" {
		t.Fatalf("negotiated %s, want 2026-07-28", v)
	}
	if got, _ := callText(t, cs, "sample", map[string]any{"prompt": "x"}); got != "reply to x" {
		t.Errorf("sample = %q", got)
	}
	if got, _ := callText(t, cs, "test_sampling", map[string]any{"prompt": "y"}); got != "LLM response: reply to y" {
		t.Errorf("test_sampling = %q", got)
	}
	if got, _ := callText(t, cs, "elicit", map[string]any{"message": "ok?"}); got != `action=accept, content={"answer":"yes to ok?"}` {
		t.Errorf("elicit = %q", got)
	}
}

// TestGarbageLine speaks raw JSON-RPC lines to see stdout byte for byte.
func TestGarbageLine(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, func(string) string { return "" }, inR, outW, io.Discard, func(int) {})
	}()
	lines := bufio.NewScanner(outR)
	lines.Buffer(nil, 1<<20)
	send := func(s string) {
		if _, err := io.WriteString(inW, s+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	next := func() string {
		if !lines.Scan() {
			t.Fatalf("stdout ended: %v", lines.Err())
		}
		return lines.Text()
	}
	send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	if l := next(); !strings.Contains(l, `"id":1`) {
		t.Fatalf("initialize answer = %s", l)
	}
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"garbage","arguments":{"line":"not\njson"}}}`)
	if l := next(); l != "not json" {
		t.Errorf("first line after garbage call = %q, want the garbage line", l)
	}
	if l := next(); !json.Valid([]byte(l)) || !strings.Contains(l, `"id":2`) {
		t.Errorf("then %q, want the call's response", l)
	}
	inW.Close()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

func TestLineWriterHoldsInjectionUntilLineEnds(t *testing.T) {
	var buf bytes.Buffer
	lw := newLineWriter(&buf)
	lw.Write([]byte(`{"a":`))
	if err := lw.Inject("junk"); err != nil {
		t.Fatal(err)
	}
	lw.Write([]byte("1}\n"))
	lw.Inject("more\r\njunk")
	if want := "{\"a\":1}\njunk\nmore\r junk\n"; buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
}

func TestFiller(t *testing.T) {
	for n := range 200 {
		s := filler(n)
		if len(s) != n || (n > 0 && !strings.HasSuffix(s, "\n")) {
			t.Fatalf("filler(%d) = %d bytes %q", n, len(s), s)
		}
	}
}

// startMain starts the test binary as the command, in its own process group,
// and returns it with a reader of its stderr.
func startMain(t *testing.T, env ...string) (*exec.Cmd, io.WriteCloser, *bufio.Reader, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, "EVERYTHING_TEST_RUN_MAIN=1")...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	})
	out := bufio.NewScanner(stdout)
	out.Buffer(nil, 1<<20)
	return cmd, stdin, bufio.NewReader(stderr), out
}

// waitLine reads stderr lines until one contains want.
func waitLine(t *testing.T, r *bufio.Reader, want string) string {
	t.Helper()
	for range 100 {
		l, err := r.ReadString('\n')
		if strings.Contains(l, want) {
			return l
		}
		if err != nil {
			t.Fatalf("stderr ended before %q: %v", want, err)
		}
	}
	t.Fatalf("no %q in the first 100 lines of stderr", want)
	return ""
}

func TestSpawnGrandchild(t *testing.T) {
	cmd, stdin, stderr, _ := startMain(t, "EVERYTHING_SPAWN_GRANDCHILD=1")
	l := waitLine(t, stderr, "grandchild pid=")
	gpid, err := strconv.Atoi(strings.TrimSpace(l[strings.Index(l, "=")+1:]))
	if err != nil {
		t.Fatalf("parsing %q: %v", l, err)
	}
	pgid, err := syscall.Getpgid(gpid)
	if err != nil {
		t.Fatalf("grandchild %d is not running: %v", gpid, err)
	}
	if pgid != cmd.Process.Pid {
		t.Errorf("grandchild process group = %d, want the server's %d", pgid, cmd.Process.Pid)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("server exit: %v", err)
	}
	// The server is gone; its grandchild must still be there.
	if err := syscall.Kill(gpid, 0); err != nil {
		t.Errorf("grandchild %d died with the server: %v", gpid, err)
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

func TestIgnoreSIGTERM(t *testing.T) {
	cmd, stdin, stderr, stdout := startMain(t, "EVERYTHING_IGNORE_SIGTERM=1")
	waitLine(t, stderr, "ignoring SIGTERM")
	go io.Copy(io.Discard, stderr)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// An ignored signal is discarded when sent, so a server still answering
	// afterwards has survived it.
	fmt.Fprintln(stdin, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	if !stdout.Scan() || !strings.Contains(stdout.Text(), `"id":1`) {
		t.Fatalf("no answer after SIGTERM: %q %v", stdout.Text(), stdout.Err())
	}
	cmd.Process.Signal(syscall.SIGKILL)
	err := cmd.Wait()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("exit = %v, want death by SIGKILL", err)
	}
}

func TestCrashExitCode(t *testing.T) {
	cmd, stdin, stderr, stdout := startMain(t)
	go io.Copy(io.Discard, stderr)
	for _, l := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"crash","arguments":{"code":42}}}`,
	} {
		fmt.Fprintln(stdin, l)
	}
	var seen []string
	for stdout.Scan() {
		seen = append(seen, stdout.Text())
	}
	err := cmd.Wait()
	if cmd.ProcessState.ExitCode() != 42 {
		t.Errorf("exit = %v, want code 42", err)
	}
	if len(seen) != 1 {
		t.Errorf("stdout lines = %q, want only the initialize answer", seen)
	}
}
