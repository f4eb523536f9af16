package metrics

import (
	"fmt"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// exposition is what m writes for a scrape.
func exposition(t *testing.T, m *Metrics) string {
	t.Helper()
	var b strings.Builder
	if _, err := m.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// scrape reads m's exposition back with Prometheus' own parser.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	out := exposition(t, m)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(out))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, out)
	}
	return families
}

func TestExposition(t *testing.T) {
	m := New(func() int { return 7 })
	m.SessionStarted("alice")
	m.SessionEnded("alice", "idle", "exit status 0")
	m.Request("tools/call", "alice", 200, 3*time.Millisecond)
	m.Request("tools/call", "alice", 200, 2*time.Second)
	m.Bytes(100, 250)
	out := exposition(t, m)
	for _, want := range []string{
		"# TYPE mcpwrap_sessions_open gauge\nmcpwrap_sessions_open 7\n",
		`mcpwrap_sessions_ended_total{owner="alice",cause="idle"} 1` + "\n",
		`mcpwrap_request_duration_seconds_bucket{method="tools/call",le="0.001"} 0` + "\n",
		`mcpwrap_request_duration_seconds_bucket{method="tools/call",le="0.005"} 1` + "\n",
		`mcpwrap_request_duration_seconds_bucket{method="tools/call",le="1"} 1` + "\n",
		`mcpwrap_request_duration_seconds_bucket{method="tools/call",le="5"} 2` + "\n",
		`mcpwrap_request_duration_seconds_bucket{method="tools/call",le="+Inf"} 2` + "\n",
		`mcpwrap_request_duration_seconds_count{method="tools/call"} 2` + "\n",
		"mcpwrap_received_bytes_total 100\n",
		"mcpwrap_sent_bytes_total 250\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestSeriesAreBounded(t *testing.T) {
	m := New(func() int { return 0 })
	for i := range maxSeries + 50 {
		m.SessionStarted(fmt.Sprint("owner-", i))
	}
	if n := len(m.sessionsStarted.m); n != maxSeries+1 {
		t.Errorf("%d series, want %d (the cap plus one for the rest)", n, maxSeries+1)
	}
	if !strings.Contains(exposition(t, m), `mcpwrap_sessions_started_total{owner="other"} 50`) {
		t.Error("overflow not counted under other")
	}
}

// TestExpositionParses reads the output back with Prometheus' own text
// parser: label values from tenants' names and clients' method names may
// hold anything, and one unparseable line loses the whole scrape.
func TestExpositionParses(t *testing.T) {
	m := New(func() int { return 1 })
	odd := []string{"tab\there", "ünïcødé ✓", `back\slash`, `quote"d`, "new\nline", "bad\xffutf8", "plain"}
	for _, owner := range odd {
		m.SessionStarted(owner)
		m.Request("tools/"+owner, owner, 200, time.Millisecond)
	}
	families := scrape(t, m)
	got := map[string]bool{}
	for _, metric := range families["mcpwrap_sessions_started_total"].GetMetric() {
		for _, l := range metric.GetLabel() {
			got[l.GetValue()] = true
		}
	}
	for _, owner := range odd {
		if want := strings.ToValidUTF8(owner, "\uFFFD"); !got[want] {
			t.Errorf("owner %q not read back; got %v", want, slices.Sorted(maps.Keys(got)))
		}
	}
	if n := len(families["mcpwrap_request_duration_seconds"].GetMetric()); n != len(odd) {
		t.Errorf("%d request histograms read back, want %d", n, len(odd))
	}
}

// TestStatelessSeries reads the stateless children's series back with
// Prometheus' parser: gauges by era and state, counters by token name.
func TestStatelessSeries(t *testing.T) {
	m := New(func() int { return 0 })
	if strings.Contains(exposition(t, m), "mcpwrap_stateless_children") {
		t.Error("children gauges written with nothing to read them from")
	}

	m.WatchStateless(func() StatelessChildren {
		return StatelessChildren{Era: "legacy", Starting: 1, Idle: 2, Busy: 3, Parked: 4, Waiting: 5}
	})
	m.StatelessServed("legacy", "alice")
	m.StatelessServed("legacy", "alice")
	m.StatelessRefused("alice", "tenant")
	m.StatelessExpired("bob")
	families := scrape(t, m)
	got := map[string]float64{}
	for name, f := range families {
		for _, metric := range f.GetMetric() {
			key := name
			for _, l := range metric.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case metric.GetGauge() != nil:
				got[key] = metric.GetGauge().GetValue()
			case metric.GetCounter() != nil:
				got[key] = metric.GetCounter().GetValue()
			}
		}
	}
	for key, want := range map[string]float64{
		"mcpwrap_stateless_children era=legacy state=starting":     1,
		"mcpwrap_stateless_children era=legacy state=idle":         2,
		"mcpwrap_stateless_children era=legacy state=busy":         3,
		"mcpwrap_stateless_children era=legacy state=parked":       4,
		"mcpwrap_stateless_waiting":                                5,
		"mcpwrap_stateless_requests_total era=legacy owner=alice":  2,
		"mcpwrap_stateless_refused_total owner=alice limit=tenant": 1,
		"mcpwrap_stateless_parked_expired_total owner=bob":         1,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
}
