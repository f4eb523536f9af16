package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
)

// sseEvent is one dispatched server-sent event. Only the fields the
// benchmark reads are kept.
type sseEvent struct {
	name string
	id   string
	data []byte
}

// errTooLarge marks a message or line beyond the configured cap.
var errTooLarge = errors.New("message exceeds the size cap")

// sseReader decodes a text/event-stream body. Lines end in LF or CRLF;
// a lone CR as line end, which no MCP server sends, is not recognized.
type sseReader struct {
	r    *bufio.Reader
	max  int
	line []byte
}

// readerPool keeps read buffers across calls: allocating and clearing one
// per call showed up in the tool's own profile, and the tool should cost
// as little as possible next to what it measures.
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 32<<10) }}

func newSSEReader(r io.Reader, maxEvent int) *sseReader {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(r)
	return &sseReader{r: br, max: maxEvent}
}

// release returns the buffer; the reader must not be used after.
func (s *sseReader) release() {
	s.r.Reset(nil)
	readerPool.Put(s.r)
	s.r = nil
}

// next returns the next event that carries data. Comments, retry fields and
// events with empty data (such as a priming event that only sets an id) are
// skipped, as the SSE dispatch rules say. A stream that ends without the
// blank line closing an event drops that event, as the rules also say.
func (s *sseReader) next() (sseEvent, error) {
	var ev sseEvent
	var data []byte
	for {
		line, err := readLine(s.r, s.line[:0], s.max)
		s.line = line[:0]
		if err != nil {
			return sseEvent{}, err
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if len(line) == 0 {
			if len(data) > 0 {
				ev.data = data
				return ev, nil
			}
			ev, data = sseEvent{}, nil
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "data":
			if len(data)+len(value)+1 > s.max {
				return sseEvent{}, fmt.Errorf("sse event: %w", errTooLarge)
			}
			if data != nil {
				data = append(data, '\n')
			}
			data = append(data, value...)
			if data == nil {
				data = []byte{}
			}
		case "event":
			ev.name = string(value)
		case "id":
			ev.id = string(value)
		}
	}
}

// readLine reads one line, including its LF, into buf, failing with
// errTooLarge beyond max bytes. After errTooLarge the rest of the line is
// left unread, so the caller must give up on the stream.
func readLine(r *bufio.Reader, buf []byte, max int) ([]byte, error) {
	for {
		chunk, err := r.ReadSlice('\n')
		if len(buf)+len(chunk) > max {
			return buf[:0], errTooLarge
		}
		buf = append(buf, chunk...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return buf, err
		}
	}
}
