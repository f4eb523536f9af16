package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mcpwrap/mcpwrap/internal/lines"
)

// directOpener spawns the command once per session and speaks
// newline-delimited JSON-RPC over its pipes: the baseline a wrapper is
// measured against.
type directOpener struct {
	argv        []string
	maxMsg      int
	childStderr io.Writer // nil discards the children's stderr
}

// Grace periods when ending a child, following the stdio transport's
// shutdown: close stdin, wait, SIGTERM, wait, SIGKILL.
const (
	stdinGrace = 2 * time.Second
	termGrace  = 2 * time.Second
)

func (o *directOpener) open(ctx context.Context) (session, error) {
	s, err := o.start()
	if err != nil {
		return nil, err
	}
	m, err := s.call(ctx, "initialize", initializeParams)
	if err == nil && m.Error != nil {
		err = kindf(kindRPC, "initialize: code %d: %s", m.Error.Code, m.Error.Message)
	}
	if err == nil {
		err = s.write(appendNotification(nil, "notifications/initialized"))
	}
	if err != nil {
		_ = s.close(context.WithoutCancel(ctx))
		return nil, err
	}
	return s, nil
}

func (o *directOpener) start() (*directSession, error) {
	cmd := exec.Command(o.argv[0], o.argv[1:]...)
	// A group of its own lets close reach grandchildren (npx, uvx) too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = o.childStderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, kinded(kindSpawn, err)
	}
	// Owning the read end means a grandchild that inherits stdout cannot
	// make Wait hang on a copying goroutine.
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		_ = stdin.Close()
		return nil, kinded(kindSpawn, err)
	}
	cmd.Stdout = stdoutW
	err = cmd.Start()
	_ = stdoutW.Close()
	if err != nil {
		_ = stdin.Close()
		_ = stdoutR.Close()
		return nil, kinded(kindSpawn, err)
	}
	s := &directSession{
		cmd:        cmd,
		stdin:      stdin,
		stdout:     stdoutR,
		maxMsg:     o.maxMsg,
		pending:    map[int64]chan *message{},
		readerDone: make(chan struct{}),
		drained:    make(chan struct{}),
		exited:     make(chan struct{}),
	}
	go s.readLoop()
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	return s, nil
}

type directSession struct {
	cmd        *exec.Cmd
	stdout     *os.File
	maxMsg     int
	nextID     atomic.Int64
	readerDone chan struct{} // closed when readLoop stops delivering responses
	drained    chan struct{} // closed when readLoop returns
	exited     chan struct{} // closed when Wait returns
	closeOnce  sync.Once
	closeErr   error
	refusing   sync.WaitGroup // answers to the child's requests being written

	writeMu sync.Mutex // guards stdin: one writer per child
	stdin   io.WriteCloser

	mu      sync.Mutex // guards the fields below
	pending map[int64]chan *message
	readErr error // why readLoop ended; set before readerDone closes
}

// write sends one line. A failed write means the child is gone.
func (s *directSession) write(line []byte) error {
	line = append(line, '\n')
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if _, err := s.stdin.Write(line); err != nil {
		return kinded(kindChildExit, fmt.Errorf("write to child: %w", err))
	}
	return nil
}

func (s *directSession) call(ctx context.Context, method string, params []byte) (*message, error) {
	id := s.nextID.Add(1)
	ch := make(chan *message, 1)
	s.mu.Lock()
	if s.readErr != nil {
		err := s.readErr
		s.mu.Unlock()
		return nil, err
	}
	s.pending[id] = ch
	s.mu.Unlock()
	forget := func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
	}
	if err := s.write(appendRequest(make([]byte, 0, len(params)+96), id, method, params)); err != nil {
		forget()
		return nil, err
	}
	select {
	case m := <-ch:
		return m, nil
	case <-s.readerDone:
		forget()
		// The response may have been delivered just before the reader ended.
		select {
		case m := <-ch:
			return m, nil
		default:
		}
		s.mu.Lock()
		err := s.readErr
		s.mu.Unlock()
		return nil, err
	case <-ctx.Done():
		forget()
		return nil, kinded(kindTimeout, ctx.Err())
	}
}

// readLoop owns the child's stdout. A line beyond the size cap ends the
// session: the line cannot be skipped without knowing which call it was,
// and a benchmark that guessed would report wrong figures.
func (s *directSession) readLoop() {
	defer close(s.drained)
	lr := lines.NewReader(s.stdout, lines.Options{Max: s.maxMsg})
	defer lr.Release()
	var err error
	for {
		var line []byte
		line, err = lr.ReadSlice()
		if err != nil {
			break
		}
		m := new(message)
		if jerr := json.Unmarshal(line, m); jerr != nil {
			// Anything but a message on stdout is the child's bug; the call
			// it was meant to answer will time out and be counted.
			continue
		}
		if !m.isResponse() {
			if m.Method != "" && len(m.ID) > 0 {
				s.refuse(m.ID)
			}
			continue
		}
		id, ok := m.idNumber()
		if !ok {
			continue
		}
		s.mu.Lock()
		ch := s.pending[id]
		delete(s.pending, id)
		s.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
	switch {
	case errors.Is(err, errTooLarge):
		err = kinded(kindTooLarge, err)
	default:
		err = kindf(kindChildExit, "child stdout ended: %w", err)
	}
	s.mu.Lock()
	s.readErr = err
	s.mu.Unlock()
	close(s.readerDone)
	// A child blocked writing to a pipe nobody reads would ignore closed
	// stdin and wait for SIGKILL; keep reading so it can finish.
	_, _ = io.Copy(io.Discard, s.stdout)
}

// refuse answers a request from the child: the benchmark declares no
// capabilities, so none is expected, but leaving it unanswered could stall
// the child.
func (s *directSession) refuse(id json.RawMessage) {
	line := append([]byte(`{"jsonrpc":"2.0","id":`), id...)
	line = append(line, `,"error":{"code":-32601,"message":"method not found"}}`...)
	// Written aside, so that a child busy writing to us cannot deadlock
	// against a reader blocked writing to it.
	s.refusing.Go(func() { _ = s.write(line) })
}

// close ends the child: stdin closed, then SIGTERM, then SIGKILL to its
// whole process group, each after a grace period.
func (s *directSession) close(ctx context.Context) error {
	s.closeOnce.Do(func() { s.closeErr = s.shutdown(ctx) })
	return s.closeErr
}

func (s *directSession) shutdown(ctx context.Context) error {
	// Not under writeMu: a write blocked on a child that stopped reading
	// would hold it forever, and closing is what unblocks that write.
	_ = s.stdin.Close()
	pgid := -s.cmd.Process.Pid
	var err error
	if !s.waitExit(ctx, stdinGrace) {
		err = kindf(kindClose, "child %d ignored closed stdin", s.cmd.Process.Pid)
		_ = syscall.Kill(pgid, syscall.SIGTERM)
		if !s.waitExit(ctx, termGrace) {
			_ = syscall.Kill(pgid, syscall.SIGKILL)
			<-s.exited
		}
	}
	// The child is gone; closing our end ends readLoop even if a grandchild
	// still holds the write end.
	_ = s.stdout.Close()
	<-s.drained
	s.refusing.Wait()
	return err
}

func (s *directSession) waitExit(ctx context.Context, d time.Duration) bool {
	select {
	case <-s.exited:
		return true
	case <-time.After(d):
	case <-ctx.Done():
	}
	return false
}
