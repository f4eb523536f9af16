package wrap_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpwrap/mcpwrap/auth"
	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/mcpwrap/mcpwrap/metrics"
	"github.com/mcpwrap/mcpwrap/session"
	"github.com/mcpwrap/mcpwrap/wrap"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestMetricsCountSessionsAndRequests(t *testing.T) {
	var reg *session.Registry
	m := metrics.New(func() int { return reg.Len() })
	s := start(t, func(o *session.Options, w *wrap.Options) {
		o.Observer = m
		w.Metrics = m
		w.Auth = auth.NewTokens([]auth.Tenant{{Name: "test", Admin: true, Token: token}, {Name: "acme", Token: "acme-token"}})
	})
	reg = s.Reg
	cs := connect(t, s.URL, nil)
	for range 3 {
		if _, err := cs.CallTool(ctxFor(t), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}}); err != nil {
			t.Fatal(err)
		}
	}
	scrape := func(auth string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, s.srv.URL+"/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := scrape(""); code != http.StatusUnauthorized {
		t.Errorf("/metrics without a token: %d, want 401", code)
	}
	// A tenant's own token may not see the others' figures.
	if code, body := scrape("Bearer acme-token"); code != http.StatusForbidden || strings.Contains(body, "mcpwrap_") {
		t.Errorf("/metrics with a tenant's token: %d, want 403 and no figures", code)
	}
	code, body := scrape("Bearer " + token)
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`mcpwrap_sessions_open 1`,
		`mcpwrap_sessions_started_total{owner="test"} 1`,
		`mcpwrap_requests_total{method="tools/call",owner="test",code="200"} 3`,
		`mcpwrap_request_duration_seconds_count{method="tools/call"} 3`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// A session whose child dies says so, by cause and exit status.
	if _, err := cs.CallTool(ctxFor(t), &mcp.CallToolParams{Name: "crash", Arguments: map[string]any{"code": 3}}); err == nil {
		t.Error("crash returned no error")
	}
	testkit.Eventually(t, "the crashed session to be counted", func() bool {
		_, body = scrape("Bearer " + token)
		return strings.Contains(body, `mcpwrap_sessions_ended_total{owner="test",cause="child_exit"} 1`) &&
			strings.Contains(body, `mcpwrap_child_exits_total{status="exit status 3"} 1`)
	})
}
