package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/auth"
	"github.com/mcpwrap/mcpwrap/child"
	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/mcpwrap/mcpwrap/session"
	"github.com/mcpwrap/mcpwrap/wrap"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/rs/zerolog"
)

// resources is what a leak would show as growth.
type resources struct {
	goroutines, fds, children int
}

func countResources(t *testing.T) resources {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	children := 0
	for _, p := range testkit.Procs() {
		if p.PPid == os.Getpid() {
			children++
		}
	}
	return resources{runtime.NumGoroutine(), len(fds), children}
}

// TestThousandSessionsLeaveNothing runs mcpwrap's registry and handler in
// this process, so that their goroutines and file descriptors can be
// counted, and opens and closes 1,000 sessions of real children through the
// official client.
func TestThousandSessionsLeaveNothing(t *testing.T) {
	total, parallel := 1000, 25
	if testing.Short() {
		total = 100
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	reg := session.NewRegistry(session.Options{
		Command:     child.Command{Path: fixture(t), Env: []string{"PATH=" + os.Getenv("PATH")}},
		Child:       child.Options{CloseGrace: time.Second, TermGrace: time.Second},
		MaxSessions: 2 * parallel,
	}, log)
	srv := httptest.NewServer(wrap.New(wrap.Options{
		Path: "/mcp", SSEPath: "/sse", MessagePath: "/message",
		Auth:       auth.NewTokens([]auth.Tenant{{Name: "e2e", Token: e2eToken}}),
		MaxMessage: 1 << 20,
	}, reg, log))
	defer srv.Close()
	transport := &http.Transport{MaxIdleConnsPerHost: parallel}
	httpClient := &http.Client{Transport: testkit.Bearer{Token: e2eToken, Base: transport}}

	// One round trip, so that whatever is made once per process (the
	// client's and server's pools, timers) is there before counting.
	roundTrip := func(ctx context.Context) error {
		client := mcp.NewClient(&mcp.Implementation{Name: "leak", Version: "1"}, nil)
		cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: srv.URL + "/mcp", HTTPClient: httpClient}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
		if err != nil {
			return err
		}
		if _, err := testkit.Call(ctx, cs, "echo", map[string]any{"text": "x"}); err != nil {
			cs.Close()
			return err
		}
		return cs.Close()
	}
	settle := func() {
		for i := 0; i < 200 && reg.Len() > 0; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		transport.CloseIdleConnections()
	}
	if err := roundTrip(t.Context()); err != nil {
		t.Fatal(err)
	}
	settle()
	time.Sleep(200 * time.Millisecond)
	base := countResources(t)

	start := time.Now()
	var mu sync.Mutex
	var errs []error
	for batch := 0; batch < total; batch += parallel {
		var wg sync.WaitGroup
		for range parallel {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
				defer cancel()
				if err := roundTrip(ctx); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	if len(errs) > 0 {
		t.Errorf("%d of %d sessions failed; first: %v", len(errs), total, errs[0])
	}
	t.Logf("%d sessions opened, used and closed, %d at a time, in %v", total, parallel, time.Since(start).Round(time.Millisecond))

	settle()
	if n := reg.Len(); n != 0 {
		t.Errorf("%d sessions still registered", n)
	}
	var now resources
	for i := 0; i < 200; i++ {
		now = countResources(t)
		if now.goroutines <= base.goroutines && now.fds <= base.fds && now.children <= base.children {
			break
		}
		transport.CloseIdleConnections()
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("before: %+v; after %d sessions: %+v", base, total, now)
	if now.goroutines > base.goroutines {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before, %d after\n%s", base.goroutines, now.goroutines, buf[:runtime.Stack(buf, true)])
	}
	if now.fds > base.fds {
		t.Errorf("file descriptors: %d before, %d after", base.fds, now.fds)
	}
	if now.children > base.children {
		t.Errorf("child processes: %d before, %d after", base.children, now.children)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := reg.Close(ctx); err != nil {
		t.Errorf("closing the registry: %v", err)
	}
}
