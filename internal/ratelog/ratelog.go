// Package ratelog bounds how many log lines one source (a session: its
// child's stderr and the warnings about it) may write, so that a chatty or
// hostile child cannot fill the disk, and says how many it held back.
package ratelog

import (
	"sync"
	"time"
)

// A Limiter is a token bucket of log lines: Rate lines a second on
// average, in bursts of up to Burst. It is safe for concurrent use.
type Limiter struct {
	rate  float64
	burst float64

	mu         sync.Mutex // guards the fields below
	tokens     float64
	last       time.Time
	suppressed int
}

// New makes a limiter of rate lines a second and bursts of burst; a rate
// of 0 or less lets every line through.
func New(rate, burst int) *Limiter {
	if burst < 1 {
		burst = 1
	}
	return &Limiter{rate: float64(rate), burst: float64(burst), tokens: float64(burst), last: time.Now()}
}

// Allow reports whether one more line may be written now. When it may and
// lines were held back before it, suppressed says how many, so that the
// caller can say so first. A nil Limiter allows everything.
func (l *Limiter) Allow() (ok bool, suppressed int) {
	if l == nil || l.rate <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	if l.tokens < 1 {
		l.suppressed++
		return false, 0
	}
	l.tokens--
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}

// Would reports whether a line would be allowed now, without taking it:
// a caller that aggregates may then report once.
func (l *Limiter) Would() bool {
	if l == nil || l.rate <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return min(l.burst, l.tokens+time.Since(l.last).Seconds()*l.rate) >= 1
}

// Flush returns the lines held back since the last one allowed, and
// forgets them: the source is ending, and the count is reported now.
func (l *Limiter) Flush() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.suppressed
	l.suppressed = 0
	return n
}
