package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// statelessCall sends a protocol 2026-07-28 tools/call of tenant's (by its
// token) and returns the status, headers and the JSON-RPC message of the
// answer (the last one of an SSE body).
func statelessCall(t *testing.T, w *testkit.Process, token string, id int, tool string, args map[string]any, caps string) (int, http.Header, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": map[string]any{
		"name": tool, "arguments": args,
		"_meta": map[string]any{
			"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
			"io.modelcontextprotocol/clientCapabilities": json.RawMessage(caps),
		},
	}})
	status, header, text := w.Send(t, testkit.Request{Token: token, Body: string(body), Headers: map[string]string{
		"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": tool,
	}})
	if i := strings.LastIndex(text, "data: "); i >= 0 {
		text, _, _ = strings.Cut(text[i+len("data: "):], "\n")
	}
	var msg map[string]any
	if err := json.Unmarshal([]byte(text), &msg); err != nil {
		t.Fatalf("tools/call %s: %d %q is no JSON-RPC message", tool, status, text)
	}
	return status, header, msg
}

// scrape reads /metrics with the deployment's token, through Prometheus'
// parser, into series named "name label=value ...".
func scrape(t *testing.T, w *testkit.Process) map[string]float64 {
	t.Helper()
	status, _, text := w.Send(t, testkit.Request{Method: http.MethodGet, URL: w.Base + "/metrics"})
	if status != http.StatusOK {
		t.Fatalf("/metrics: %d %s", status, text)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, text)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			key := name
			for _, l := range m.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// TestATenantAtItsStatelessLimitGets503WhileAnotherIsServed: with one
// child per tenant, tenant a's call parked for its client's input holds
// a's only child, so a's next call waits the queue timeout and is refused
// with 503, Retry-After and a JSON-RPC error, while tenant b is served; and
// /metrics says so.
func TestATenantAtItsStatelessLimitGets503WhileAnotherIsServed(t *testing.T) {
	tenants := filepath.Join(t.TempDir(), "tenants.json")
	if err := os.WriteFile(tenants, []byte(`{"a": {"token": "a-token-5e1"}, "b": {"token": "b-token-0c7"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	w := startWrapper(t, testkit.Options{Env: map[string]string{
		"MCPWRAP_TENANTS_FILE":                      tenants,
		"MCPWRAP_CHILD_ERA":                         "legacy",
		"MCPWRAP_STATELESS_MAX_CHILDREN_PER_TENANT": "1",
		"MCPWRAP_STATELESS_QUEUE_TIMEOUT":           "300ms",
	}})
	const sampling = `{"sampling":{}}`
	echo := map[string]any{"text": "x"}

	status, _, msg := statelessCall(t, w, "a-token-5e1", 1, "test_sampling", map[string]any{"prompt": "p"}, sampling)
	if res, _ := msg["result"].(map[string]any); status != http.StatusOK || res["resultType"] != "input_required" {
		t.Fatalf("a's sampling call: %d %v, want it parked for input", status, msg)
	}

	status, header, msg := statelessCall(t, w, "a-token-5e1", 2, "echo", echo, sampling)
	rpcErr, _ := msg["error"].(map[string]any)
	if status != http.StatusServiceUnavailable || header.Get("Retry-After") == "" || rpcErr == nil || msg["id"] != float64(2) {
		t.Errorf("a's call at its limit: %d, Retry-After %q, %v; want 503 with Retry-After and a JSON-RPC error for id 2",
			status, header.Get("Retry-After"), msg)
	}

	for i := range 2 {
		status, _, msg = statelessCall(t, w, "b-token-0c7", 10+i, "echo", echo, sampling)
		if res, _ := msg["result"].(map[string]any); status != http.StatusOK || res["resultType"] != "complete" {
			t.Errorf("b's call %d while a is at its limit: %d %v", i, status, msg)
		}
	}

	got := scrape(t, w)
	for key, want := range map[string]float64{
		`mcpwrap_stateless_children era=legacy state=parked`:        1,
		`mcpwrap_stateless_children era=legacy state=idle`:          1,
		`mcpwrap_stateless_children era=legacy state=busy`:          0,
		`mcpwrap_stateless_children era=legacy state=starting`:      0,
		`mcpwrap_stateless_waiting`:                                 0,
		`mcpwrap_stateless_refused_total owner=a limit=tenant`:      1,
		`mcpwrap_stateless_requests_total era=legacy owner=a`:       1,
		`mcpwrap_stateless_requests_total era=legacy owner=b`:       2,
		`mcpwrap_requests_total method=tools/call owner=a code=503`: 1,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("/metrics: %s = %v (present: %v), want %v", key, v, ok, want)
		}
	}
	if _, ok := got[`mcpwrap_stateless_refused_total owner=b limit=tenant`]; ok {
		t.Error("/metrics counts a refusal of b's")
	}
}
