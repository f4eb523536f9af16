package bench

import (
	"net/http"
	"testing"
)

// These run in CI as a smoke test of the load path (a fixed, small count,
// no thresholds); the comparisons that matter come from
// scripts/bench-matrix.sh, which measures direct and wrapped in one run.

func BenchmarkDirectCall(b *testing.B) {
	benchCalls(b, &directOpener{argv: []string{echoBin}, maxMsg: 64 << 20})
}

func BenchmarkHTTPCall(b *testing.B) {
	s := newMCPServer(b, "tok", nil)
	cfg := &config{url: s.URL + "/mcp", Sessions: 1, Inflight: 1, Token: "tok", MaxMessage: 64 << 20, Headers: http.Header{}}
	o := newHTTPOpener(cfg)
	defer o.closeIdle()
	benchCalls(b, o)
}

func benchCalls(b *testing.B, o opener) {
	ctx := b.Context()
	cfg := &config{Tool: "echo", Payload: 64}
	w, err := cfg.workload()
	if err != nil {
		b.Fatal(err)
	}
	s, err := o.open(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer s.close(ctx)
	for b.Loop() {
		m, err := s.call(ctx, "tools/call", w.params)
		if err == nil {
			err = checkToolResult(m, w.want, w.wantLen)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}
