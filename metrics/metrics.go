// Package metrics counts what mcpwrap does — sessions, child exits,
// requests, bytes, the children serving protocol 2026-07-28 — and writes it in the Prometheus text format. It has no
// dependencies: a handful of counters and histograms do not need a client
// library.
package metrics

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Metrics is every series mcpwrap exports.
type Metrics struct {
	start time.Time
	open  func() int // live sessions, read when written out

	sessionsStarted *counterVec // owner
	sessionsEnded   *counterVec // owner, cause
	childExits      *counterVec // status
	requests        *counterVec // method, owner, code
	requestSeconds  *histogramVec
	bytesIn         atomic.Uint64
	bytesOut        atomic.Uint64

	stateless        atomic.Pointer[func() StatelessChildren] // read when written out
	statelessServed  *counterVec                              // era, owner
	statelessRefused *counterVec                              // owner, limit
	statelessExpired *counterVec                              // owner
}

// StatelessChildren is what the children serving protocol 2026-07-28
// requests do now.
type StatelessChildren struct {
	Era      string // the wrapped server's: legacy, modern, or unknown until a child said
	Starting int    // being started and made ready
	Idle     int    // free
	Busy     int    // held by a call, or serving requests
	Parked   int    // held by a call that waits for its client's input
	Waiting  int    // requests waiting for a child to come free
}

// New makes the metrics; open reports the live session count.
func New(open func() int) *Metrics {
	return &Metrics{
		start:           time.Now(),
		open:            open,
		sessionsStarted: newCounterVec("owner"),
		sessionsEnded:   newCounterVec("owner", "cause"),
		childExits:      newCounterVec("status"),
		requests:        newCounterVec("method", "owner", "code"),
		requestSeconds:  newHistogramVec([]float64{.001, .005, .01, .05, .1, .5, 1, 5, 30, 120}, "method"),

		statelessServed:  newCounterVec("era", "owner"),
		statelessRefused: newCounterVec("owner", "limit"),
		statelessExpired: newCounterVec("owner"),
	}
}

// WatchStateless makes the stateless children's gauges read children each
// time the metrics are written out.
func (m *Metrics) WatchStateless(children func() StatelessChildren) {
	m.stateless.Store(&children)
}

// StatelessServed counts a protocol 2026-07-28 request the children of era
// answered for owner.
func (m *Metrics) StatelessServed(era, owner string) { m.statelessServed.add(1, era, owner) }

// StatelessRefused counts a protocol 2026-07-28 request of owner's refused
// for want of a child, and the limit that was in the way (tenant or total).
func (m *Metrics) StatelessRefused(owner, limit string) { m.statelessRefused.add(1, owner, limit) }

// StatelessExpired counts a parked call of owner's whose client never came
// back with its input.
func (m *Metrics) StatelessExpired(owner string) { m.statelessExpired.add(1, owner) }

// SessionStarted counts a session that started for owner.
func (m *Metrics) SessionStarted(owner string) { m.sessionsStarted.add(1, owner) }

// SessionEnded counts a session that ended, why, and how its child exited.
func (m *Metrics) SessionEnded(owner, cause, exit string) {
	m.sessionsEnded.add(1, owner, cause)
	m.childExits.add(1, exit)
}

// Request counts one JSON-RPC request answered with HTTP status code.
func (m *Metrics) Request(method, owner string, code int, d time.Duration) {
	m.requests.add(1, method, owner, fmt.Sprint(code))
	m.requestSeconds.observe(d.Seconds(), method)
}

// Bytes counts body bytes received from and sent to clients.
func (m *Metrics) Bytes(in, out int) {
	m.bytesIn.Add(uint64(in))
	m.bytesOut.Add(uint64(out))
}

// WriteTo writes every series in the Prometheus text exposition format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	gauge := func(name, help string, v float64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s %s\n", name, help, name, name, num(v))
	}
	counter := func(name, help string, v uint64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	gauge("mcpwrap_sessions_open", "Sessions alive now.", float64(m.open()))
	m.sessionsStarted.write(&b, "mcpwrap_sessions_started_total", "Sessions started, by token name.")
	m.sessionsEnded.write(&b, "mcpwrap_sessions_ended_total", "Sessions ended, by token name and cause.")
	m.childExits.write(&b, "mcpwrap_child_exits_total", "Child processes reaped, by exit status.")
	m.requests.write(&b, "mcpwrap_requests_total", "JSON-RPC requests from clients, by method, token name and HTTP status.")
	m.requestSeconds.write(&b, "mcpwrap_request_duration_seconds", "Time from a request's arrival to its last response, by method.")
	if f := m.stateless.Load(); f != nil {
		c := (*f)()
		name := "mcpwrap_stateless_children"
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", name, "Children serving protocol 2026-07-28 requests now, by the wrapped server's era and what they do.", name)
		for _, st := range []struct {
			state string
			n     int
		}{{"starting", c.Starting}, {"idle", c.Idle}, {"busy", c.Busy}, {"parked", c.Parked}} {
			fmt.Fprintf(&b, "%s%s %d\n", name, labelText([]string{"era", "state"}, labelKey([]string{c.Era, st.state})), st.n)
		}
		gauge("mcpwrap_stateless_waiting", "Protocol 2026-07-28 requests waiting for a child to come free.", float64(c.Waiting))
	}
	m.statelessServed.write(&b, "mcpwrap_stateless_requests_total", "Protocol 2026-07-28 requests answered, by the wrapped server's era and token name.")
	m.statelessRefused.write(&b, "mcpwrap_stateless_refused_total", "Protocol 2026-07-28 requests refused (503) after waiting for a child, by token name and the limit in the way (tenant or total).")
	m.statelessExpired.write(&b, "mcpwrap_stateless_parked_expired_total", "Calls waiting for their client's input that were ended when the client did not come back in time, by token name.")
	counter("mcpwrap_received_bytes_total", "Request body bytes received from clients.", m.bytesIn.Load())
	counter("mcpwrap_sent_bytes_total", "Message bytes sent to clients.", m.bytesOut.Load())
	gauge("mcpwrap_uptime_seconds", "Seconds since mcpwrap started.", time.Since(m.start).Seconds())
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

func num(v float64) string {
	if math.IsInf(v, 1) {
		return "+Inf"
	}
	return fmt.Sprint(v)
}

// labelKey joins label values; \xff cannot occur in valid UTF-8 text, and
// every value is made valid UTF-8 first, as the exposition format requires.
func labelKey(values []string) string {
	if !slices.ContainsFunc(values, func(v string) bool { return !utf8.ValidString(v) }) {
		return strings.Join(values, "\xff")
	}
	valid := make([]string, len(values))
	for i, v := range values {
		valid[i] = strings.ToValidUTF8(v, "\uFFFD")
	}
	return strings.Join(valid, "\xff")
}

// labelEscaper escapes a label value the way the text exposition format
// reads it back: only backslash, double quote and newline. Go's %q would
// also escape tabs and non-ASCII runes, which the format does not decode.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func labelText(names []string, key string, extra ...string) string {
	values := strings.Split(key, "\xff")
	parts := make([]string, 0, len(names)+1)
	for i, n := range names {
		parts = append(parts, n+`="`+labelEscaper.Replace(values[i])+`"`)
	}
	parts = append(parts, extra...)
	return "{" + strings.Join(parts, ",") + "}"
}

// maxSeries bounds each vector: label values come partly from clients
// (method names), and a client must not grow mcpwrap's memory without end.
const maxSeries = 1000

type counterVec struct {
	labels []string
	mu     sync.Mutex // guards m
	m      map[string]*atomic.Uint64
}

func newCounterVec(labels ...string) *counterVec {
	return &counterVec{labels: labels, m: map[string]*atomic.Uint64{}}
}

func (c *counterVec) add(n uint64, values ...string) {
	key := labelKey(values)
	c.mu.Lock()
	v, ok := c.m[key]
	if !ok {
		if len(c.m) >= maxSeries {
			values = slices.Repeat([]string{"other"}, len(values))
			key = labelKey(values)
			v = c.m[key]
		}
		if v == nil {
			v = new(atomic.Uint64)
			c.m[key] = v
		}
	}
	c.mu.Unlock()
	v.Add(n)
}

func (c *counterVec) write(b *strings.Builder, name, help string) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, key := range slices.Sorted(maps.Keys(c.m)) {
		fmt.Fprintf(b, "%s%s %d\n", name, labelText(c.labels, key), c.m[key].Load())
	}
}

type histogram struct {
	counts []uint64 // per bucket, not cumulative
	count  uint64
	sum    float64
}

type histogramVec struct {
	labels  []string
	buckets []float64
	mu      sync.Mutex // guards m
	m       map[string]*histogram
}

func newHistogramVec(buckets []float64, labels ...string) *histogramVec {
	return &histogramVec{labels: labels, buckets: buckets, m: map[string]*histogram{}}
}

func (h *histogramVec) observe(v float64, values ...string) {
	key := labelKey(values)
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.m[key]
	if !ok {
		if len(h.m) >= maxSeries {
			key = labelKey(slices.Repeat([]string{"other"}, len(values)))
			s = h.m[key]
		}
		if s == nil {
			s = &histogram{counts: make([]uint64, len(h.buckets))}
			h.m[key] = s
		}
	}
	if i, _ := slices.BinarySearch(h.buckets, v); i < len(h.buckets) {
		s.counts[i]++
	}
	s.count++
	s.sum += v
}

func (h *histogramVec) write(b *strings.Builder, name, help string) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	h.mu.Lock()
	defer h.mu.Unlock()
	keys := slices.SortedFunc(maps.Keys(h.m), cmp.Compare[string])
	for _, key := range keys {
		s := h.m[key]
		var cum uint64
		for i, le := range h.buckets {
			cum += s.counts[i]
			fmt.Fprintf(b, "%s_bucket%s %d\n", name, labelText(h.labels, key, `le="`+num(le)+`"`), cum)
		}
		fmt.Fprintf(b, "%s_bucket%s %d\n", name, labelText(h.labels, key, `le="+Inf"`), s.count)
		fmt.Fprintf(b, "%s_sum%s %s\n", name, labelText(h.labels, key), num(s.sum))
		fmt.Fprintf(b, "%s_count%s %d\n", name, labelText(h.labels, key), s.count)
	}
}
