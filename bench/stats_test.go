package bench

import (
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		d := make([]time.Duration, len(n))
		for i, v := range n {
			d[i] = time.Duration(v) * time.Millisecond
		}
		return d
	}
	tests := []struct {
		name    string
		sorted  []time.Duration
		p       float64
		wantMS  int
		wantNil bool
	}{
		{name: "empty", sorted: nil, p: 50, wantNil: true},
		{name: "one sample is every percentile", sorted: ms(7), p: 99, wantMS: 7},
		{name: "p50 of four is the second", sorted: ms(1, 2, 3, 4), p: 50, wantMS: 2},
		{name: "p50 of five is the middle", sorted: ms(1, 2, 3, 4, 5), p: 50, wantMS: 3},
		{name: "p90 of ten is the ninth", sorted: ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), p: 90, wantMS: 9},
		{name: "p99 of ten is the largest", sorted: ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), p: 99, wantMS: 10},
		{name: "p0 is the smallest", sorted: ms(3, 4), p: 0, wantMS: 3},
		{name: "p100 is the largest", sorted: ms(3, 4), p: 100, wantMS: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := percentile(tt.sorted, tt.p)
			want := time.Duration(tt.wantMS) * time.Millisecond
			if tt.wantNil {
				want = 0
			}
			if got != want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, want)
			}
		})
	}
}

func TestSummarizeSortsFirst(t *testing.T) {
	d := []time.Duration{9, 1, 5, 3, 7, 2, 8, 4, 6, 10}
	s := summarize(d)
	if s.n != 10 || s.p50 != 5 || s.p90 != 9 || s.p99 != 10 || s.max != 10 {
		t.Errorf("summarize = %+v, want n=10 p50=5 p90=9 p99=10 max=10", s)
	}
	if got := summarize(nil); got != (latencySummary{}) {
		t.Errorf("summarize(nil) = %+v, want zero", got)
	}
}

// Sessions opened at once are timed from the burst's start, paced ones
// from their turn, however late their goroutines ran; only a session that
// queued in --open-inflight is timed from when it left the queue.
func TestSetupIsTimedFromWhenTheSessionWasDue(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	late := start.Add(300 * time.Millisecond) // when the goroutine got to run
	cases := []struct {
		name string
		cfg  config
		i    int
		want time.Time
	}{
		{"at once", config{Sessions: 200, OpenInflight: 200}, 150, start},
		{"paced", config{Sessions: 20, OpenInflight: 20, OpenEvery: 10 * time.Millisecond}, 5, start.Add(50 * time.Millisecond)},
		{"queued", config{Sessions: 20, OpenInflight: 1}, 5, late},
	}
	for _, c := range cases {
		if got := timedFrom(&c.cfg, start, c.i, late); !got.Equal(c.want) {
			t.Errorf("%s: timed from %v after the start, want %v", c.name, got.Sub(start), c.want.Sub(start))
		}
	}
}
