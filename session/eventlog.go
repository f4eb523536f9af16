package session

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// ErrLagged ends a reader that fell so far behind that what it had not
// read no longer fit in the session's queue: it was cut, and the session
// went on without it.
var ErrLagged = errors.New("reader fell behind and was cut")

// ErrGone refuses a resumption from an event the log no longer holds (or
// never held): what came after it cannot be replayed whole.
var ErrGone = errors.New("the events after that id are no longer held")

// A budget bounds the bytes held in queues. A session's budget has the
// process-wide one as its parent: a message is queued only when both have
// room.
type budget struct {
	max    int64 // 0: no bound
	used   atomic.Int64
	parent *budget
}

func newBudget(max int64, parent *budget) *budget {
	return &budget{max: max, parent: parent}
}

// take reserves n bytes if they fit, or, with force, whether they fit or
// not.
func (b *budget) take(n int64, force bool) bool {
	if b == nil {
		return true
	}
	if u := b.used.Add(n); b.max > 0 && u > b.max && !force {
		b.used.Add(-n)
		return false
	}
	if !b.parent.take(n, force) {
		b.used.Add(-n)
		return false
	}
	return true
}

func (b *budget) give(n int64) {
	for ; b != nil; b = b.parent {
		b.used.Add(-n)
	}
}

// Used is how many bytes are queued now.
func (b *budget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// An Event is one message in an EventLog, with the id its reader resumes
// after.
type Event struct {
	ID int64
	Outbound
}

// An EventLog holds the messages on their way to one reader: the router
// appends and never waits; the reader reads after the id of the last
// event it has, which also frees what came before. Its bytes count against
// the session's budget. The shape (open, append, read after, close) is the
// one resumable streams need: a stream that keeps what was read for a
// while could serve a reconnecting client from the id it last saw.
type EventLog struct {
	bytes *budget
	max   int // most events held (0: no bound)
	// keep is how many events already read stay for a reader that
	// reconnects: those the connection lost on the way are among them.
	// They are the first to go when the budget is full.
	keep int

	mu     sync.Mutex // guards the fields below
	events []Event    // oldest first, ids ascending
	next   int64      // id of the next event
	held   int64      // bytes of events
	read   int64      // the highest id a reader has read up to
	end    error      // io.EOF once closed, ErrLagged once cut
	ready  chan struct{}
}

// keepBytes bounds the bytes of read events a log keeps for a reconnection,
// so that they do not crowd other readers out of the session's budget.
const keepBytes = 256 << 10

func newEventLog(b *budget, max, keep int) *EventLog {
	return &EventLog{bytes: b, max: max, keep: keep, next: 1, ready: make(chan struct{})}
}

// wakeLocked tells a waiting reader there is news.
func (l *EventLog) wakeLocked() {
	close(l.ready)
	l.ready = make(chan struct{})
}

// append adds o if the budget has room for it. An empty log always takes
// one message, which is already in memory anyway: a message larger than
// the whole budget still reaches its reader. With evict, the oldest events
// make room and fall off; it returns how many did. It reports false when o
// was not taken.
func (l *EventLog) append(o Outbound, evict bool) (taken bool, fell int) {
	return l.appendEnding(o, evict, false)
}

// appendEnding is append that, with last, also closes the log with o in the
// same step: a reader that has o finds the end with it, never a log that
// looks open after its last message.
func (l *EventLog) appendEnding(o Outbound, evict, last bool) (taken bool, fell int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.end != nil {
		return false, 0
	}
	n := int64(len(o.Data))
	for {
		full := l.max > 0 && len(l.events) >= l.max
		if !full && l.bytes.take(n, len(l.events) == 0) {
			break
		}
		if len(l.events) > 0 && l.events[0].ID <= l.read {
			l.dropLocked(1) // kept for a reconnection, and nobody's loss
			continue
		}
		if !evict || len(l.events) == 0 {
			return false, fell
		}
		l.dropLocked(1)
		fell++
	}
	l.events = append(l.events, Event{ID: l.next, Outbound: o})
	l.next++
	l.held += n
	if last {
		l.end = io.EOF
	}
	l.wakeLocked()
	return true, fell
}

// shed drops the oldest events until n bytes are freed or none is left,
// and returns how many fell.
func (l *EventLog) shed(n int64) (fell int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var freed int64
	for freed < n && fell < len(l.events) {
		freed += int64(len(l.events[fell].Data))
		fell++
	}
	if fell > 0 {
		l.dropLocked(fell)
	}
	return fell
}

// dropLocked frees the oldest n events.
func (l *EventLog) dropLocked(n int) {
	var freed int64
	for _, e := range l.events[:n] {
		freed += int64(len(e.Data))
	}
	clear(l.events[:n])
	l.events = l.events[n:]
	if len(l.events) == 0 {
		l.events = nil // let the backing array go
	}
	l.held -= freed
	l.bytes.give(freed)
}

// After returns the events after id, frees those up to it (but the last
// keep of them), and gives a channel closed when After should be called
// again: at once when it returned events, else when more come. err is
// io.EOF once the log is closed and everything in it read, ErrLagged once
// the reader was cut.
func (l *EventLog) After(id int64) (events []Event, ready <-chan struct{}, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.read = max(l.read, id)
	i := 0
	for i < len(l.events) && l.events[i].ID <= id {
		i++
	}
	// What was read stays, within keep events and keepBytes, but the
	// newest of it always: it is the likeliest to be lost on the way.
	n := max(i-l.keep, 0)
	var kept int64
	for j := n; j < i; j++ {
		kept += int64(len(l.events[j].Data))
	}
	for ; n < i-1 && kept > keepBytes; n++ {
		kept -= int64(len(l.events[n].Data))
	}
	if n > 0 {
		l.dropLocked(n)
		i -= n
	}
	if errors.Is(l.end, ErrLagged) {
		return nil, l.ready, l.end
	}
	if i == len(l.events) && l.end != nil {
		return nil, l.ready, l.end
	}
	if i < len(l.events) {
		// What is returned may be all there will ever be: the reader
		// must come back for the end rather than wait for news.
		return append([]Event(nil), l.events[i:]...), closedChan, nil
	}
	return nil, l.ready, nil
}

// Resumable reports whether a reader may go on after id: ErrGone when an
// event after it is no longer held or id was never given, ErrLagged when
// the log was cut.
func (l *EventLog) Resumable(id int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if errors.Is(l.end, ErrLagged) {
		return ErrLagged
	}
	first := l.next
	if len(l.events) > 0 {
		first = l.events[0].ID
	}
	if id < 0 || id >= l.next || id+1 < first {
		return ErrGone
	}
	return nil
}

// Read is the id a reader has read up to: where a new reader (not a
// reconnecting one) starts, so that nothing is delivered twice.
func (l *EventLog) Read() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.read
}

// closedChan is ready at once.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// close ends the log once its reader has read what is in it.
func (l *EventLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.end == nil {
		l.end = io.EOF
		l.wakeLocked()
	}
}

// cut ends the log at once with err and frees what it held: nobody will
// read it, or its reader fell behind.
func (l *EventLog) cut(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropLocked(len(l.events))
	if l.end == nil || errors.Is(l.end, io.EOF) {
		l.end = err
		l.wakeLocked()
	}
}

// Len is the number of events held.
func (l *EventLog) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events)
}
