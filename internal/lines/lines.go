// Package lines reads a stream line by line with a hard cap on a line's
// length: a child's stdout, a client's stdin, an event stream. It is the one
// bounded line reader; bufio.Scanner's silent 64 KiB default has cut MCP
// messages elsewhere.
//
// A line that fits the buffer is found with one scan and, by ReadSlice,
// returned without a copy. A longer one is read in large chunks joined once.
// A line over the cap is an error wrapping ErrTooLong, never a truncation.
// Read errors are returned as the underlying reader gave them (io.EOF stays
// io.EOF) once the lines read before them are out; a reader whose errors
// mean the end (a pseudo-terminal's EIO, a closed pipe) should translate
// them to io.EOF itself.
package lines

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
)

// ErrTooLong is wrapped by the error for a line longer than Options.Max.
var ErrTooLong = errors.New("line longer than the size cap")

const (
	// bufSize is the buffer most lines fit in.
	bufSize = 64 << 10
	// longChunk is the unit a long line is read in: big enough for few
	// reads, small enough that the unused end of the last chunk stays minor.
	longChunk = 256 << 10
	// maxEmptyReads bounds reads that return nothing and no error.
	maxEmptyReads = 100
)

// Options are a Reader's rules.
type Options struct {
	// Max is the longest line accepted, in bytes, without its end.
	Max int
	// CR makes a lone CR end a line too, as text/event-stream has it;
	// otherwise only LF ends one, and a CR just before it is dropped
	// (JSON-RPC over stdio, where a CR elsewhere is only whitespace).
	CR bool
	// SkipTooLong goes on with the next line after ErrTooLong. Without it,
	// a line over the cap fails every later call too: a stream whose
	// framing went wrong once is usually not worth reading on.
	SkipTooLong bool
}

// Reader reads lines from an io.Reader. One goroutine at a time may use it.
type Reader struct {
	rd   io.Reader
	opts Options
	buf  []byte
	r, w int // buf[r:w] is unread
	scan int // buf[r:scan] holds no line end

	long []byte // scratch for lines longer than buf, kept while small enough

	skipLF  bool  // the last line ended in a CR with nothing read after it; an LF next belongs to it
	discard bool  // the rest of a line over the cap is still to be skipped
	err     error // from rd; returned once buf is drained
	fail    error // a line over the cap, when not skipped
}

// bufPool keeps buffers across readers: a reader per HTTP response or per
// child would otherwise allocate and clear 64 KiB each time.
var bufPool = sync.Pool{New: func() any { return new([bufSize]byte) }}

// NewReader reads rd by opts. Release gives its buffer back.
func NewReader(rd io.Reader, opts Options) *Reader {
	return &Reader{rd: rd, opts: opts, buf: bufPool.Get().(*[bufSize]byte)[:]}
}

// Reset reads on from rd, dropping whatever was buffered from the last
// reader and any error it ended with.
func (lr *Reader) Reset(rd io.Reader) {
	lr.rd = rd
	lr.r, lr.w, lr.scan = 0, 0, 0
	lr.skipLF, lr.discard, lr.err, lr.fail = false, false, nil, nil
}

// Release returns the buffer for other readers. Neither the Reader nor a
// slice ReadSlice returned may be used after.
func (lr *Reader) Release() {
	if len(lr.buf) == bufSize {
		bufPool.Put((*[bufSize]byte)(lr.buf))
	}
	lr.buf = nil
	lr.rd = nil
}

// ReadLine returns the next line without its end, in a slice the caller may
// keep. A last line without an end is still a line.
func (lr *Reader) ReadLine() ([]byte, error) {
	line, fresh, err := lr.next(false)
	if err != nil || fresh {
		return line, err
	}
	out := make([]byte, len(line))
	copy(out, line)
	return out, nil
}

// ReadSlice is ReadLine without the copy: the line is valid only until the
// next call.
func (lr *Reader) ReadSlice() ([]byte, error) {
	line, _, err := lr.next(true)
	return line, err
}

// next returns the next line, and whether it is a slice of its own rather
// than of buf. A line longer than buf is assembled in the reader's scratch
// space when reuse is true, and in a slice of its own otherwise.
func (lr *Reader) next(reuse bool) ([]byte, bool, error) {
	if lr.fail != nil {
		return nil, false, lr.fail
	}
	if lr.discard {
		if err := lr.discardLine(); err != nil {
			return nil, false, err
		}
	}
	for empty := 0; ; {
		if lr.skipLF && lr.r < lr.w {
			lr.skipLF = false
			if lr.buf[lr.r] == '\n' {
				lr.r++
				lr.scan = max(lr.scan, lr.r)
			}
		}
		if end, next, ok := lr.eol(lr.buf[lr.scan:lr.w]); ok {
			return lr.take(lr.scan+end, lr.scan+next)
		}
		lr.scan = lr.w
		if lr.err != nil {
			if lr.r < lr.w {
				// A last line without an end is still a line.
				return lr.take(lr.w, lr.w)
			}
			return nil, false, lr.err
		}
		if lr.w-lr.r > lr.opts.Max {
			return nil, false, lr.tooLong(false)
		}
		switch {
		case lr.r == lr.w:
			lr.r, lr.w, lr.scan = 0, 0, 0
			if len(lr.buf) != bufSize {
				// A chunk kept after a long line goes once drained.
				lr.buf = bufPool.Get().(*[bufSize]byte)[:]
			}
		case lr.w == len(lr.buf) && lr.r == 0 && reuse:
			return lr.readLongReuse()
		case lr.w == len(lr.buf) && lr.r == 0:
			return lr.readLong()
		case lr.w == len(lr.buf):
			copy(lr.buf, lr.buf[lr.r:lr.w])
			lr.w -= lr.r
			lr.scan -= lr.r
			lr.r = 0
		}
		n, err := lr.rd.Read(lr.buf[lr.w:])
		lr.w += n
		if err != nil {
			lr.err = err
		} else if n == 0 {
			if empty++; empty >= maxEmptyReads {
				lr.err = io.ErrNoProgress
			}
		}
	}
}

// take returns buf[r:end] as the line and resumes reading at next.
func (lr *Reader) take(end, next int) ([]byte, bool, error) {
	line := lr.buf[lr.r:end]
	lr.r, lr.scan = next, next
	if len(line) > lr.opts.Max {
		return nil, false, lr.tooLong(true)
	}
	return lr.trim(line), false, nil
}

// readLong finishes a line that filled the whole buffer. The buffer becomes
// the first chunk; later chunks are read straight from rd, so each byte is
// copied once more, into a slice of exactly the line's length.
func (lr *Reader) readLong() ([]byte, bool, error) {
	chunks := [][]byte{lr.buf[lr.r:lr.w]}
	total := lr.w - lr.r
	lr.buf, lr.r, lr.w, lr.scan = nil, 0, 0, 0
	for lr.buf == nil {
		if total > lr.opts.Max {
			lr.buf = bufPool.Get().(*[bufSize]byte)[:]
			return nil, false, lr.tooLong(false)
		}
		// Reading past Max+1 bytes would only fetch what must be rejected.
		chunk := make([]byte, min(longChunk, lr.opts.Max+1-total))
		n, end, next := 0, -1, -1
		for empty := 0; n < len(chunk) && end < 0 && lr.err == nil; {
			m, err := lr.rd.Read(chunk[n:])
			if e, nx, ok := lr.eol(chunk[n : n+m]); ok {
				end, next = n+e, n+nx
			}
			n += m
			if err != nil {
				lr.err = err
			} else if m == 0 {
				if empty++; empty >= maxEmptyReads {
					lr.err = io.ErrNoProgress
				}
			}
		}
		switch {
		case end >= 0:
			chunks = append(chunks, chunk[:end])
			total += end
			// What followed the line's end starts the next lines.
			if rest := chunk[next:n]; len(rest) <= bufSize {
				lr.buf = bufPool.Get().(*[bufSize]byte)[:]
				lr.w = copy(lr.buf, rest)
			} else {
				lr.buf, lr.r, lr.w, lr.scan = chunk, next, n, next
			}
		case lr.err != nil:
			// A last line without an end is still a line.
			chunks = append(chunks, chunk[:n])
			total += n
			lr.buf = bufPool.Get().(*[bufSize]byte)[:]
		default:
			chunks = append(chunks, chunk)
			total += n
		}
	}
	if total > lr.opts.Max {
		return nil, false, lr.tooLong(true)
	}
	out := make([]byte, 0, total)
	for _, c := range chunks {
		out = append(out, c...)
	}
	return lr.trim(out), true, nil
}

// maxKeep bounds the scratch space a Reader keeps between long lines.
const maxKeep = 4 << 20

// readLongReuse finishes a line that filled the whole buffer in the
// reader's scratch space, which grows to the longest line and so makes a
// stream of long lines cost no allocation per line.
func (lr *Reader) readLongReuse() ([]byte, bool, error) {
	long := append(lr.long[:0], lr.buf[lr.r:lr.w]...)
	lr.r, lr.w, lr.scan = 0, 0, 0
	defer func() {
		// The line may point into long; a caller holding it keeps it alive.
		if cap(long) <= maxKeep {
			lr.long = long
		} else {
			lr.long = nil
		}
	}()
	for empty := 0; ; {
		if len(long) > lr.opts.Max {
			return nil, false, lr.tooLong(false)
		}
		if lr.err != nil {
			// A last line without an end is still a line.
			return lr.trim(long), false, nil
		}
		if cap(long) == len(long) {
			long = slices.Grow(long, len(long))
		}
		// One buffer's worth at a time, so that what follows the line fits
		// back into buf; and no more than Max+1 bytes in all.
		room := long[len(long):min(cap(long), len(long)+len(lr.buf), lr.opts.Max+1)]
		n, err := lr.rd.Read(room)
		if err != nil {
			lr.err = err
		}
		if end, next, ok := lr.eol(room[:n]); ok {
			line := long[:len(long)+end]
			lr.w = copy(lr.buf, room[next:n])
			if len(line) > lr.opts.Max {
				return nil, false, lr.tooLong(true)
			}
			return lr.trim(line), false, nil
		}
		long = long[:len(long)+n]
		if err == nil && n == 0 {
			if empty++; empty >= maxEmptyReads {
				lr.err = io.ErrNoProgress
			}
		}
	}
}

// eol finds the first line end in b: where the line ends, where the next
// one starts, and whether there is one.
func (lr *Reader) eol(b []byte) (end, next int, ok bool) {
	lf := bytes.IndexByte(b, '\n')
	if !lr.opts.CR {
		return lf, lf + 1, lf >= 0
	}
	before := lf
	if lf < 0 {
		before = len(b)
	}
	cr := bytes.IndexByte(b[:before], '\r')
	switch {
	case cr < 0:
		return lf, lf + 1, lf >= 0
	case cr+1 < len(b) && b[cr+1] == '\n':
		return cr, cr + 2, true
	case cr+1 == len(b):
		// The LF of a CRLF may still be on its way.
		lr.skipLF = true
	}
	return cr, cr + 1, true
}

func (lr *Reader) trim(line []byte) []byte {
	if n := len(line); !lr.opts.CR && n > 0 && line[n-1] == '\r' {
		return line[:n-1]
	}
	return line
}

// tooLong reports a line over the cap. ended says the reader already stands
// past the line's end; otherwise the rest is skipped first, if at all.
func (lr *Reader) tooLong(ended bool) error {
	err := fmt.Errorf("%w (%d bytes)", ErrTooLong, lr.opts.Max)
	if !lr.opts.SkipTooLong {
		lr.fail = err
		return err
	}
	lr.discard = !ended
	return err
}

// discardLine skips to the end of the line that was too long.
func (lr *Reader) discardLine() error {
	for empty := 0; ; {
		if _, next, ok := lr.eol(lr.buf[lr.r:lr.w]); ok {
			lr.r += next
			lr.scan = lr.r
			lr.discard = false
			return nil
		}
		lr.r, lr.w, lr.scan = 0, 0, 0
		if lr.err != nil {
			lr.discard = false
			return lr.err
		}
		n, err := lr.rd.Read(lr.buf)
		lr.w = n
		if err != nil {
			lr.err = err
		} else if n == 0 {
			if empty++; empty >= maxEmptyReads {
				lr.err = io.ErrNoProgress
			}
		}
	}
}
