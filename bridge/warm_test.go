package bridge_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/bridge"
	"github.com/mcpwrap/mcpwrap/child"
	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/rs/zerolog"
)

// ourEverything lists the fixture processes this test process started.
func ourEverything() []int {
	var out []int
	for _, p := range testkit.Procs() {
		if p.PPid == os.Getpid() && p.Comm == "everything" && p.State != 'Z' {
			out = append(out, p.Pid)
		}
	}
	return out
}

// TestPoolTakesWarmChildren: a stateless pool started through child.Warm
// gets a child started ahead of demand, as a session does.
func TestPoolTakesWarmChildren(t *testing.T) {
	cmd := child.Command{Path: everything}
	copts := child.Options{CloseGrace: time.Second, TermGrace: time.Second}
	warm := child.NewWarm(2, copts, zerolog.Nop())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := warm.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	warm.Prime(cmd)
	testkit.Eventually(t, "two warm children", func() bool { return warm.Len() == 2 })
	ready := ourEverything()
	if len(ready) != 2 {
		t.Fatalf("%d fixture processes with two warm children", len(ready))
	}
	b := newBridge(t, cmd, func(o *bridge.Options) {
		o.Start = func(c child.Command) (*child.Child, error) { return warm.Start(c, nil, zerolog.Nop()) }
	})
	// The request's tenant has no environment of its own: its children run
	// the command as configured, whose warm set was primed above.
	resp := serve(t, b, req(t, 1, "tools/call", map[string]any{"name": "pid"}, `{}`))
	if resp.Error != nil || len(resp.Result.Content) != 1 {
		t.Fatalf("tools/call pid: %+v", resp)
	}
	pid, err := strconv.Atoi(resp.Result.Content[0].Text)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(ready, pid) {
		t.Errorf("the pool's child %d is not one of the warm %v", pid, ready)
	}
}
