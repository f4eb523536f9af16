package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
)

// TestTypeScriptClientResumesACallAfterTheConnectionIsCut: the TypeScript
// SDK's client makes a long call whose connection is cut after the third
// progress notification; it reconnects with Last-Event-ID and gets every
// progress notification once, in order, and the result.
func TestTypeScriptClientResumesACallAfterTheConnectionIsCut(t *testing.T) {
	node, script := nodeFile(t, "oauth/e2e/ts-resume.mjs")
	w := startWrapper(t, testkit.Options{Env: map[string]string{"MCPWRAP_SSE_RETRY": "100ms"}})
	proxy := testkit.NewCutter(t, w.URL)
	const steps = 12
	cmd := exec.Command(node, script)
	cmd.Env = nodeEnv(t, "MCP_URL="+proxy.URL(w.URL), "MCP_TOKEN="+e2eToken, fmt.Sprintf("STEPS=%d", steps))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := testkit.NewLogBook()
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	lines := make(chan string, 2)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("node stderr:\n%s", stderr.Text())
		}
	})

	next := func(what string) string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the client ended before %s: %v", what, <-done)
			}
			return l
		case <-time.After(2 * testkit.Patience):
			t.Fatalf("waited in vain for %s from the client", what)
		}
		return ""
	}
	if l := next("the third progress notification"); l != "progress" {
		t.Fatalf("client said %q, want progress", l)
	}
	proxy.Cut()
	var got struct {
		Progress []float64 `json:"progress"`
		Text     string    `json:"text"`
	}
	if l := next("the result"); json.Unmarshal([]byte(l), &got) != nil {
		t.Fatalf("client said %q", l)
	}
	want := make([]float64, steps)
	for i := range want {
		want[i] = float64(i + 1)
	}
	if !slices.Equal(got.Progress, want) || got.Text != fmt.Sprintf("sent %d progress notifications", steps) {
		t.Errorf("progress %v, result %q; want every step once, in order, and the result", got.Progress, got.Text)
	}
	if opened, _ := proxy.Stats(); opened < 3 {
		t.Errorf("%d connections through the proxy: the client did not reconnect after the cut", opened)
	}
}
