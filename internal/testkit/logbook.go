package testkit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Line is one JSON log line of mcpwrap. A line that is not JSON (what main
// prints as it exits with an error) has only "message", and "unparsed".
type Line map[string]any

func (l Line) Msg() string { return l.Str("message") }

func (l Line) Str(k string) string {
	s, _ := l[k].(string)
	return s
}

func (l Line) Int(k string) int {
	f, _ := l[k].(float64)
	return int(f)
}

// Parsed reports whether the line was JSON.
func (l Line) Parsed() bool { return l["unparsed"] == nil }

// ErrLogEnded is why Wait gives up early: the process closed its log
// without the line waited for.
var ErrLogEnded = errors.New("the log ended")

// LogBook keeps every line a process logs, and lets tests wait for one.
// Read fills it from a pipe; as an io.Writer it can be a command's Stderr.
type LogBook struct {
	mu      sync.Mutex // guards the fields below
	lines   []Line
	raw     []string
	partial []byte // written, not yet ended by a newline
	ended   bool
	changed chan struct{} // closed and replaced on every new line, and at the end
}

// NewLogBook returns an empty log book.
func NewLogBook() *LogBook {
	return &LogBook{changed: make(chan struct{})}
}

// Read keeps every line of r until r ends.
func (b *LogBook) Read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		b.mu.Lock()
		b.addLocked(sc.Text())
		b.mu.Unlock()
	}
	b.mu.Lock()
	b.ended = true
	b.notifyLocked()
	b.mu.Unlock()
}

// Write keeps every line written.
func (b *LogBook) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.partial = append(b.partial, p...)
	for {
		i := bytes.IndexByte(b.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		b.addLocked(string(b.partial[:i]))
		b.partial = b.partial[i+1:]
	}
}

func (b *LogBook) addLocked(raw string) {
	var l Line
	if err := json.Unmarshal([]byte(raw), &l); err != nil || l == nil {
		l = Line{"message": raw, "unparsed": true}
	}
	b.lines = append(b.lines, l)
	b.raw = append(b.raw, raw)
	b.notifyLocked()
}

func (b *LogBook) notifyLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// All returns the lines so far.
func (b *LogBook) All() []Line {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.lines)
}

// Find returns the lines so far that match f.
func (b *LogBook) Find(f func(Line) bool) []Line {
	var out []Line
	for _, l := range b.All() {
		if f(l) {
			out = append(out, l)
		}
	}
	return out
}

// Text is the whole log as it was written, an unfinished last line
// included.
func (b *LogBook) Text() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(append(slices.Clone(b.raw), string(b.partial)), "\n")
}

// Wait returns the first line matching f, waiting up to limit for it. It
// gives up at once with ErrLogEnded if the log ends without one.
func (b *LogBook) Wait(what string, limit time.Duration, f func(Line) bool) (Line, error) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	seen := 0
	for {
		b.mu.Lock()
		lines, changed, ended := b.lines[seen:], b.changed, b.ended
		seen = len(b.lines)
		b.mu.Unlock()
		for _, l := range lines {
			if f(l) {
				return l, nil
			}
		}
		if ended {
			return nil, fmt.Errorf("no log line %s: %w", what, ErrLogEnded)
		}
		select {
		case <-changed:
		case <-deadline.C:
			return nil, fmt.Errorf("no log line %s within %v", what, limit)
		}
	}
}

// MustWait is Wait with a generous limit, failing t with the log if no
// line comes.
func (b *LogBook) MustWait(t testing.TB, what string, f func(Line) bool) Line {
	t.Helper()
	l, err := b.Wait(what, Patience, f)
	if err != nil {
		t.Fatalf("%v\n%s", err, b.Dump())
	}
	return l
}

// Dump is the log for a failure message, capped so a flood stays readable.
func (b *LogBook) Dump() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	raw := b.raw
	if len(raw) > 300 {
		raw = append([]string{fmt.Sprintf("(%d earlier lines)", len(raw)-300)}, raw[len(raw)-300:]...)
	}
	var sb strings.Builder
	for _, r := range raw {
		if len(r) > 2000 {
			r = r[:2000] + "…"
		}
		sb.WriteString(r)
		sb.WriteByte('\n')
	}
	if len(b.partial) > 0 {
		sb.Write(b.partial)
		sb.WriteByte('\n')
	}
	if b.ended {
		sb.WriteString("(end of log)\n")
	}
	return sb.String()
}
