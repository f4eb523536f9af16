package proxy_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A long call survives its connection: cut (a network drop) or frozen
// (a laptop asleep: nobody hears of it, and only the shim's read-idle
// timeout notices), the shim resumes the stream with Last-Event-ID, and the
// client receives every progress notification once, in order, then the
// result.
func TestShimResumesALongCallAfterTheConnectionDies(t *testing.T) {
	for _, tc := range []struct {
		name string
		kill func(*testkit.Cutter)
	}{
		{"cut", (*testkit.Cutter).Cut},
		{"frozen", (*testkit.Cutter).Freeze},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t, 2*testTimeout)
			srv := newServer(t)
			srv.startWith(map[string]string{"MCPWRAP_KEEPALIVE": "300ms", "MCPWRAP_SSE_RETRY": "100ms"})
			cutter := testkit.NewCutter(t, srv.url("/mcp"))
			cmd, _ := realShim(t, []string{"MCPWRAP_TOKEN=" + testToken, "MCPWRAP_PROXY_READ_IDLE=2s"}, cutter.URL(srv.url("/mcp")))

			var mu sync.Mutex
			var got []float64
			seen := make(chan struct{}, 100)
			opts := &mcp.ClientOptions{ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
				mu.Lock()
				got = append(got, r.Params.Progress)
				mu.Unlock()
				seen <- struct{}{}
			}}
			cs, err := connectWith(t, ctx, cmd, opts, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer cs.Close()

			const steps = 12
			done := make(chan error, 1)
			go func() {
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{
					Name: "progress", Arguments: map[string]any{"steps": steps, "ms": 400}, Meta: mcp.Meta{"progressToken": "p"},
				})
				if err == nil && (res.IsError || len(res.Content) == 0 || res.Content[0].(*mcp.TextContent).Text != fmt.Sprintf("sent %d progress notifications", steps)) {
					err = fmt.Errorf("result %+v", res.Content)
				}
				done <- err
			}()
			for range 3 {
				select {
				case <-seen:
				case err := <-done:
					t.Fatalf("the call ended before the connection died: %v", err)
				case <-ctx.Done():
					t.Fatal("no progress")
				}
			}
			tc.kill(cutter)
			if err := <-done; err != nil {
				t.Fatalf("the call through the shim after the connection died: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != steps {
				t.Fatalf("progress %v, want 1..%d once each", got, steps)
			}
			for i, v := range got {
				if v != float64(i+1) {
					t.Fatalf("progress %v, want 1..%d in order, once each", got, steps)
				}
			}
		})
	}
}
