package main

import (
	"bytes"
	"io"
	"sync"
)

// lineWriter is the writer behind the server's stdout. The SDK writes each
// JSON-RPC message with a single Write call ending in a newline; lineWriter
// lets the garbage tool slip a whole extra line in between two messages
// without ever splitting one.
type lineWriter struct {
	mu      sync.Mutex // guards the fields below
	w       io.Writer
	midLine bool     // the last Write did not end with a newline
	pending [][]byte // injected lines waiting for the current line to end
}

func newLineWriter(w io.Writer) *lineWriter {
	return &lineWriter{w: w}
}

// Write passes p through, then flushes injected lines if p completed a line.
func (lw *lineWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	n, err := lw.w.Write(p)
	if err != nil {
		return n, err
	}
	if len(p) > 0 {
		lw.midLine = p[len(p)-1] != '\n'
	}
	if lw.midLine {
		return n, nil
	}
	for len(lw.pending) > 0 {
		line := lw.pending[0]
		lw.pending = lw.pending[1:]
		if _, err := lw.w.Write(line); err != nil {
			return n, err
		}
	}
	return n, nil
}

// Inject writes line (plus a newline) between two messages: at once if no
// message is half written, otherwise right after the current one ends.
// Newlines inside line are replaced so that it stays a single line.
func (lw *lineWriter) Inject(line string) error {
	b := bytes.ReplaceAll([]byte(line), []byte("\n"), []byte(" "))
	b = append(b, '\n')
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.midLine {
		lw.pending = append(lw.pending, b)
		return nil
	}
	_, err := lw.w.Write(b)
	return err
}

// Close does nothing: stdout belongs to the process, not to the session.
func (lw *lineWriter) Close() error { return nil }
