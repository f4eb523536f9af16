package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"testing"
)

// A stdio client may write its whole start in one burst without waiting for
// the initialize answer, as a plain stdio server allows. What follows
// initialize must wait for the session it belongs to and arrive in order.
func TestPipelinedStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	r := newRemote(t, false)
	r.start()
	stdin, stdout := rawShim(t, ctx, []string{"MCPWRAP_TOKEN=" + testToken}, r.url())

	burst := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"burst","version":"1"}}}` + "\n" +
		`{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n" +
		`{"jsonrpc":"2.0","id":2,"method":"tools/list"}` + "\n" +
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"in order"}}}` + "\n"
	if _, err := stdin.Write([]byte(burst)); err != nil {
		t.Fatal(err)
	}

	answers := map[int]json.RawMessage{}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 1<<20)
	for len(answers) < 3 && sc.Scan() {
		var m struct {
			ID     *int            `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("stdout carried a line that is not JSON: %q", sc.Text())
		}
		if m.ID == nil {
			continue // a notification from the remote
		}
		if m.Error != nil {
			t.Fatalf("request %d got an error: %s", *m.ID, m.Error)
		}
		answers[*m.ID] = m.Result
	}
	if len(answers) < 3 {
		t.Fatalf("got answers to %d of 3 requests (scan: %v)", len(answers), sc.Err())
	}
	var tools struct {
		Tools []struct{ Name string } `json:"tools"`
	}
	if err := json.Unmarshal(answers[2], &tools); err != nil || len(tools.Tools) == 0 {
		t.Errorf("tools/list = %s (%v)", answers[2], err)
	}
	if !containsText(answers[3], "in order") {
		t.Errorf("tools/call = %s", answers[3])
	}
}

func containsText(result json.RawMessage, want string) bool {
	var r struct {
		Content []struct{ Text string } `json:"content"`
	}
	if json.Unmarshal(result, &r) != nil {
		return false
	}
	for _, c := range r.Content {
		if c.Text == want {
			return true
		}
	}
	return false
}

// rawShim starts `mcpwrap proxy args...` for a test that speaks to it over
// its raw stdin and stdout; it ends with ctx or the test.
func rawShim(t *testing.T, ctx context.Context, env []string, args ...string) (io.WriteCloser, io.Reader) {
	t.Helper()
	cmd, _ := shimCommand(t, env, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	context.AfterFunc(ctx, func() { _ = cmd.Process.Kill() })
	return stdin, stdout
}
