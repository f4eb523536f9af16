package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// maxMessage caps one JSON-RPC message in either direction. It sits well above
// what mcpwrap accepts (16 MiB by default), so the remote, not the shim, sets
// the real limit.
const maxMessage = 64 << 20

// errTooLong reports a line or event over maxMessage.
var errTooLong = fmt.Errorf("message longer than %d bytes", maxMessage)

// readLine returns the next line without its end ("\n" or "\r\n"). A line
// over max is skipped to its end and reported as errTooLong, so the caller may
// go on with the next one. A last line without a newline is returned as is.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	tooLong := false
	for {
		chunk, err := r.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(chunk) > max+2 {
				tooLong, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF && (len(line) > 0 || tooLong):
			// Returned now; the next call sees EOF again.
		case err != nil:
			return nil, err
		}
		if tooLong {
			return nil, errTooLong
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		return line, nil
	}
}

// event is one server-sent event.
type event struct {
	name string // "" means "message"
	data []byte
}

// eventReader parses a text/event-stream. It keeps the last event id and
// retry interval the server gave, which reconnection needs.
type eventReader struct {
	r      *bufio.Reader
	lastID string
	hasID  bool
	retry  time.Duration
}

func newEventReader(r io.Reader) *eventReader {
	return &eventReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// reset reads on from a reconnected stream, keeping lastID and retry.
func (er *eventReader) reset(r io.Reader) {
	er.r.Reset(r)
}

// next returns the next event that carries data. Events with an id but no
// data (the priming events of 2025-11-25) only update lastID. It returns
// io.EOF when the stream ends cleanly between events.
func (er *eventReader) next() (event, error) {
	var (
		ev      event
		data    []byte
		hasData bool
	)
	for {
		line, err := readLine(er.r, maxMessage)
		if err != nil {
			if errors.Is(err, io.EOF) && (hasData || ev.name != "") {
				// The stream ended inside an event; the spec drops it.
				return event{}, io.ErrUnexpectedEOF
			}
			return event{}, err
		}
		if len(line) == 0 {
			if len(data) > 0 {
				ev.data = data
				return ev, nil
			}
			ev, data, hasData = event{}, nil, false
			continue
		}
		if line[0] == ':' {
			continue // comment, used as keep-alive
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			ev.name = string(value)
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			if len(data)+len(value) > maxMessage {
				return event{}, errTooLong
			}
			data = append(data, value...)
			hasData = true
		case "id":
			if !bytes.ContainsRune(value, 0) {
				er.lastID, er.hasID = string(value), len(value) > 0
			}
		case "retry":
			if ms, err := strconv.ParseUint(string(value), 10, 32); err == nil {
				er.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
}
