// Package sse reads and writes Server-Sent Events (text/event-stream) as
// MCP uses them. It is the one place that knows the framing, the event ids a
// reconnection resumes from (Last-Event-ID) and the retry: interval a server
// may ask for.
package sse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/mcpwrap/mcpwrap/internal/lines"
)

// ErrTooLong is wrapped by the error for an event, or a line of one, over
// the reader's size cap.
var ErrTooLong = lines.ErrTooLong

// Event is one dispatched event.
type Event struct {
	// Name is the event: field; "" means "message".
	Name string
	// ID is the id: field; reading, it is the stream's last event id, as
	// the event carries it even when it has no id: field of its own.
	ID string
	// Data is the data: lines, joined by "\n".
	Data []byte
}

// Reader parses a text/event-stream. It keeps the last event id (an empty
// id: field clears it) and the
// retry interval the server gave, across Reset, because reconnecting needs
// them.
type Reader struct {
	lr    *lines.Reader
	max   int
	last  string // the last event id; "" when none
	retry time.Duration
}

// NewReader reads events of up to maxEvent bytes of data from r. Release
// gives back its buffer.
func NewReader(r io.Reader, maxEvent int) *Reader {
	// A line is its field name, a colon, a space and at most the data.
	return &Reader{lr: lines.NewReader(r, lines.Options{Max: maxEvent + 16, CR: true}), max: maxEvent}
}

// Reset reads on from a reconnected stream, keeping the last event id and
// the retry interval.
func (er *Reader) Reset(r io.Reader) { er.lr.Reset(r) }

// Release returns the buffer for other readers; er must not be used after.
func (er *Reader) Release() { er.lr.Release() }

// LastEventID is the id of the last event, and whether the stream gave one.
func (er *Reader) LastEventID() (string, bool) { return er.last, er.last != "" }

// Retry is the reconnection delay the server asked for with retry:, or
// fallback when it gave none; never more than ceiling, so a server cannot
// park a client for a day.
func (er *Reader) Retry(fallback, ceiling time.Duration) time.Duration {
	if er.retry <= 0 {
		return fallback
	}
	return min(er.retry, ceiling)
}

// ResumeHeader sets Last-Event-ID on h for reconnecting to the stream, when
// it gave an event id, and reports whether it did.
func (er *Reader) ResumeHeader(h http.Header) bool {
	if er.last == "" {
		return false
	}
	h.Set("Last-Event-ID", er.last)
	return true
}

// Next returns the next event that carries data. Comments are keep-alives;
// an event without data, such as the priming event of 2025-11-25 that only
// gives an id, updates the last event id and is not returned. It returns
// io.EOF when the stream ends between events, and io.ErrUnexpectedEOF when
// it ends inside one, which the SSE rules say to drop.
func (er *Reader) Next() (Event, error) {
	var (
		name    string
		data    []byte
		hasData bool
	)
	for {
		line, err := er.lr.ReadSlice()
		if err != nil {
			if errors.Is(err, io.EOF) && (hasData || name != "") {
				return Event{}, io.ErrUnexpectedEOF
			}
			return Event{}, err
		}
		if len(line) == 0 {
			if len(data) > 0 {
				return Event{Name: name, ID: er.last, Data: data}, nil
			}
			name, data, hasData = "", nil, false
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		switch string(field) {
		case "data":
			extra := len(value)
			if hasData {
				extra++
			}
			if len(data)+extra > er.max {
				return Event{}, fmt.Errorf("event data: %w (%d bytes)", ErrTooLong, er.max)
			}
			if hasData {
				data = append(data, '\n')
			} else if data == nil {
				data = make([]byte, 0, len(value))
			}
			data = append(data, value...)
			hasData = true
		case "event":
			switch string(value) {
			case "message": // the usual name, without an allocation per event
				name = "message"
			default:
				name = string(value)
			}
		case "id":
			// An id with a NUL is ignored, as the SSE rules say.
			if bytes.IndexByte(value, 0) < 0 && string(value) != er.last {
				er.last = string(value)
			}
		case "retry":
			if ms, err := strconv.ParseUint(string(value), 10, 32); err == nil {
				er.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
}

// Writer writes one event stream, flushing every event so nothing waits in
// a buffer while the client waits for it.
type Writer struct {
	w  io.Writer
	rc *http.ResponseController
}

// Start sends a stream's headers at once: a client, and every proxy on the
// way, learns the stream is open before the first event exists.
func Start(w http.ResponseWriter) *Writer {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &Writer{w: w, rc: http.NewResponseController(w)}
	_ = s.rc.Flush()
	return s
}

// Event writes and flushes one event. Name and ID are left out when empty.
// Data holds no LF, but may hold a bare CR: JSON allows it as whitespace
// between tokens, and an event-stream reader takes it for a line end, so
// the data is written as one data line per CR-separated part.
func (s *Writer) Event(ev Event) error {
	var err error
	if ev.ID != "" {
		_, err = io.WriteString(s.w, "id: "+ev.ID+"\n")
	}
	if err == nil && ev.Name != "" {
		_, err = io.WriteString(s.w, "event: "+ev.Name+"\n")
	}
	for data, more := ev.Data, true; more && err == nil; {
		var line []byte
		line, data, more = cutLine(data)
		if _, err = io.WriteString(s.w, "data: "); err == nil {
			_, err = s.w.Write(line)
		}
		if err == nil {
			_, err = io.WriteString(s.w, "\n")
		}
	}
	if err == nil {
		_, err = io.WriteString(s.w, "\n")
	}
	if err == nil {
		err = s.rc.Flush()
	}
	return err
}

// Retry tells the client how long to wait before reconnecting.
func (s *Writer) Retry(d time.Duration) error {
	if _, err := fmt.Fprintf(s.w, "retry: %d\n\n", d.Milliseconds()); err != nil {
		return err
	}
	return s.rc.Flush()
}

// Comment writes a keep-alive that clients ignore and proxies see as
// traffic.
func (s *Writer) Comment() error {
	if _, err := io.WriteString(s.w, ": keep-alive\n\n"); err != nil {
		return err
	}
	return s.rc.Flush()
}

// cutLine splits b at its first CR: what comes before, what comes after,
// and whether there was one. Event data holds no LF (the stdio framing
// splits lines there, and mcpwrap's own messages have none), so one byte
// scan finds every line end a reader would see.
func cutLine(b []byte) (line, rest []byte, found bool) {
	if i := bytes.IndexByte(b, '\r'); i >= 0 {
		return b[:i], b[i+1:], true
	}
	return b, nil, false
}
