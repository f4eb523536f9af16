package bench

import (
	"math"
	"slices"
	"time"
)

// latencySummary is what a report says about a set of latencies.
type latencySummary struct {
	n                  int
	p50, p90, p99, max time.Duration
}

// summarize sorts d in place and reads its percentiles.
func summarize(d []time.Duration) latencySummary {
	slices.Sort(d)
	s := latencySummary{n: len(d)}
	if len(d) == 0 {
		return s
	}
	s.p50 = percentile(d, 50)
	s.p90 = percentile(d, 90)
	s.p99 = percentile(d, 99)
	s.max = d[len(d)-1]
	return s
}

// percentile uses the nearest-rank method on sorted samples: the result is
// always a latency that was actually observed, never an interpolation
// between two, which keeps small runs honest.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = max(1, min(rank, n))
	return sorted[rank-1]
}
