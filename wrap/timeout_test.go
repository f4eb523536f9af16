package wrap_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/child"
	"github.com/mcpwrap/mcpwrap/session"
	"github.com/mcpwrap/mcpwrap/wrap"
)

// stopsReading answers initialize, then never reads its input again.
var stopsReading = child.Command{Path: "/bin/sh", Args: []string{"-c", `IFS= read -r line
printf '{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2024-11-05","capabilities":{},"serverInfo":{"name":"sh","version":"1"}}}\n'
exec sleep 1000`}, Env: []string{"PATH=/usr/bin:/bin"}}

// TestSSERequestTimeoutCoversAChildThatStopsReading: over HTTP+SSE, calls to
// a child that reads nothing — those it never got and those stuck in its
// pipe — are each answered on the stream with a timeout error, and every
// POST is acknowledged.
func TestSSERequestTimeoutCoversAChildThatStopsReading(t *testing.T) {
	s := start(t, func(so *session.Options, wo *wrap.Options) {
		so.Command = stopsReading
		so.RequestTimeout = time.Second
		wo.RequestTimeout = time.Second
	})
	st := openStream(t, s.sseURL())
	st.initialize(t)

	const calls = 60
	pad := strings.Repeat("p", 8<<10)
	var wg sync.WaitGroup
	statuses := make([]int, calls)
	for i := range calls {
		wg.Go(func() {
			body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"ping","params":{"_meta":{"pad":%q}}}`, 100+i, pad)
			req, _ := http.NewRequest(http.MethodPost, st.post.String(), strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			client := &http.Client{Timeout: 30 * time.Second}
			resp, err := client.Do(req)
			if err == nil {
				statuses[i] = resp.StatusCode
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	for i, status := range statuses {
		if status != http.StatusAccepted {
			t.Fatalf("POST of call %d: %d, want 202", i, status)
		}
	}
	answered := map[float64]bool{}
	for len(answered) < calls {
		m := st.message(t)
		e, _ := m["error"].(map[string]any)
		if msg, _ := e["message"].(string); !strings.Contains(msg, "timed out") {
			t.Fatalf("message %v, want a timeout error", m)
		}
		answered[m["id"].(float64)] = true
	}
}
