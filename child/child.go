// Package child owns one wrapped process: starting it in a process group of
// its own (or a terminal session, in PTY mode) with the environment it is
// given, the one writer of its stdin and the one reader of its stdout, its
// stderr drained into logs, and its end — stdin closed, then SIGTERM, then
// SIGKILL to the whole group, and whatever the group left behind swept up.
// It also reaps orphans when mcpwrap runs as PID 1. A Child belongs to no
// client: package session pairs one with a client session.
package child

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mcpwrap/mcpwrap/internal/lines"
	"github.com/mcpwrap/mcpwrap/internal/ratelog"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// ErrStart wraps every error that keeps a child from starting.
var ErrStart = errors.New("starting child")

// ErrLineTooLong is returned by ReadLine when the child writes a line longer
// than Options.MaxLine. The stream is then mid-line and cannot be
// resynchronised, so the error sticks.
var ErrLineTooLong = errors.New("child wrote a line longer than the maximum message size")

// Command is what to run: no shell, arguments verbatim.
type Command struct {
	Path string   // program (looked up in PATH when it has no slash, via exec.LookPath)
	Args []string // arguments after the program
	Env  []string // full environment for the child (the caller decides; nil means an empty environment)
	Dir  string   // working directory ("" = inherit)
	PTY  bool     // give the child a pseudo-terminal in raw mode for stdin/stdout (stderr stays a pipe)
}

// Options tunes a Child; zero values pick the defaults.
type Options struct {
	MaxLine    int           // longest stdout line accepted in bytes (without newline); 0 means 16 MiB
	CloseGrace time.Duration // after closing stdin, wait this long before SIGTERM; 0 means 2s
	TermGrace  time.Duration // after SIGTERM to the group, wait this long before SIGKILL; 0 means 3s
	TailLines  int           // stderr lines kept for crash reports; 0 means 20
	// LogLimit bounds the stderr lines logged (nil: every one); the ones
	// held back are counted in a "suppressed N lines" line. The tail kept
	// for crash reports sees every line.
	LogLimit *ratelog.Limiter
}

const (
	defaultMaxLine    = 16 << 20
	defaultCloseGrace = 2 * time.Second
	defaultTermGrace  = 3 * time.Second
	defaultTailLines  = 20

	writeBuf = 64 << 10

	// stderrLineCap bounds one stderr log line so a child that never
	// writes a newline cannot make us buffer without limit.
	stderrLineCap = 64 << 10

	// stderrLinger is how long the end of stderr may trail the exit of
	// the group; only a process that left the group can hold it longer.
	stderrLinger = time.Second
)

func (o Options) withDefaults() Options {
	if o.MaxLine <= 0 {
		o.MaxLine = defaultMaxLine
	}
	if o.CloseGrace <= 0 {
		o.CloseGrace = defaultCloseGrace
	}
	if o.TermGrace <= 0 {
		o.TermGrace = defaultTermGrace
	}
	if o.TailLines <= 0 {
		o.TailLines = defaultTailLines
	}
	return o
}

// ExitStatus describes how a child ended.
type ExitStatus struct {
	Code   int    // exit code, or -1 when killed by a signal
	Signal string // signal name such as "SIGKILL", or "" when it exited
}

func (s ExitStatus) String() string {
	if s.Signal != "" {
		return "killed by signal " + s.Signal
	}
	return "exit status " + strconv.Itoa(s.Code)
}

// Child is a started process and the goroutines that own it.
type Child struct {
	cmd  *exec.Cmd
	pid  int
	opts Options
	to   atomic.Pointer[logTo] // where stderr and notes go; Adopt swaps it

	// In pipe mode stdin and stdout are separate pipes; in PTY mode both
	// are the terminal's master end.
	stdin  *os.File
	stdout *os.File
	stderr *os.File

	turn chan struct{} // holds a token while a Send writes; the buffer below is its
	wbuf []byte        // what Send gathers small messages into for one write
	lr   *lines.Reader // used only by the single reader goroutine
	pty  bool

	done       chan struct{} // closed once the leader is reaped and stderr drained
	exit       ExitStatus    // written before done is closed
	stderrDone chan struct{}

	stopOnce  sync.Once
	closeOnce sync.Once

	sigMu  sync.Mutex // guards the field below
	reaped bool       // the leader's pid, which names the group, may be reused

	tailMu sync.Mutex // guards the fields below
	tail   []string   // ring of the last stderr lines
	tailAt int        // next slot to overwrite once the ring is full
}

// ownedPids is the set of children reaped by their Child; ReapOrphans must
// leave them alone or cmd.Wait would lose the exit status. Every start holds
// starting shared across fork and registration, and the reaper holds it
// exclusively while it checks and reaps, so no reaper pass can see an
// unregistered child — while starts still run in parallel with each other.
var ownedPids = struct {
	starting sync.RWMutex
	mu       sync.Mutex // guards pids
	pids     map[int]struct{}
}{pids: map[int]struct{}{}}

// reapPoke asks ReapOrphans for another pass: a zombie that reused the
// pid of a child being unregistered was skipped by the pass that saw it.
var reapPoke = make(chan struct{}, 1)

// Check reports whether cmd's program can be found, as Start would look it up.
func (cmd Command) Check() error {
	if cmd.Path == "" {
		return fmt.Errorf("%w: empty program path", ErrStart)
	}
	if _, err := exec.LookPath(cmd.Path); err != nil {
		return fmt.Errorf("%w %q: %w", ErrStart, cmd.Path, err)
	}
	return nil
}

// Start starts cmd in its own process group (its own session in PTY
// mode) with goroutines that reap it and drain its stderr into log.
func Start(cmd Command, opts Options, log zerolog.Logger) (*Child, error) {
	opts = opts.withDefaults()
	path := cmd.Path
	if path == "" {
		return nil, fmt.Errorf("%w: empty program path", ErrStart)
	}
	lp, err := exec.LookPath(path)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrStart, path, err)
	}
	ec := exec.Command(lp, cmd.Args...)
	ec.Args[0] = path
	ec.Env = cmd.Env
	if ec.Env == nil {
		// exec.Cmd would hand a nil Env our own environment, which may hold
		// the server's token.
		ec.Env = []string{}
	}
	ec.Dir = cmd.Dir

	c := &Child{
		cmd:        ec,
		opts:       opts,
		done:       make(chan struct{}),
		stderrDone: make(chan struct{}),
	}

	// The parent keeps one end of each pipe; the child's ends are closed
	// here after the fork so that EOF means the child side is really gone.
	var childEnds []*os.File
	closeAll := func(fs []*os.File) {
		for _, f := range fs {
			f.Close()
		}
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("%w %q: stderr pipe: %w", ErrStart, path, err)
	}
	c.stderr = errR
	childEnds = append(childEnds, errW)
	ec.Stderr = errW
	ours := []*os.File{errR}

	if cmd.PTY {
		master, tty, err := openPTY()
		if err != nil {
			closeAll(append(ours, childEnds...))
			return nil, fmt.Errorf("%w %q: %w", ErrStart, path, err)
		}
		c.stdin, c.stdout = master, master
		ours = append(ours, master)
		childEnds = append(childEnds, tty)
		ec.Stdin, ec.Stdout = tty, tty
		// A new session with the terminal as its controlling tty; the
		// session id is the child's pid, which also names its group.
		ec.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	} else {
		inR, inW, err := os.Pipe()
		if err != nil {
			closeAll(append(ours, childEnds...))
			return nil, fmt.Errorf("%w %q: stdin pipe: %w", ErrStart, path, err)
		}
		outR, outW, err := os.Pipe()
		if err != nil {
			closeAll(append(ours, childEnds...))
			inR.Close()
			inW.Close()
			return nil, fmt.Errorf("%w %q: stdout pipe: %w", ErrStart, path, err)
		}
		c.stdin, c.stdout = inW, outR
		ours = append(ours, inW, outR)
		childEnds = append(childEnds, inR, outW)
		ec.Stdin, ec.Stdout = inR, outW
		ec.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}

	ownedPids.starting.RLock()
	err = ec.Start()
	if err == nil {
		ownedPids.mu.Lock()
		ownedPids.pids[ec.Process.Pid] = struct{}{}
		ownedPids.mu.Unlock()
	}
	ownedPids.starting.RUnlock()
	closeAll(childEnds)
	if err != nil {
		closeAll(ours)
		return nil, fmt.Errorf("%w %q: %w", ErrStart, path, err)
	}

	c.pid = ec.Process.Pid
	c.to.Store(&logTo{log: log.With().Int("pid", c.pid).Logger(), limit: opts.LogLimit})
	c.turn = make(chan struct{}, 1)
	c.lr = lines.NewReader(c.stdout, lines.Options{Max: opts.MaxLine})
	c.pty = cmd.PTY
	go c.drainStderr()
	go c.waitExit()
	return c, nil
}

// logTo is where a child's log lines go: its owner's logger and the limit
// on its stderr lines.
type logTo struct {
	log   zerolog.Logger
	limit *ratelog.Limiter
}

func (c *Child) logger() *zerolog.Logger { return &c.to.Load().log }

// Adopt hands the child to a new owner: its stderr lines and the notes
// about its end go to log (tagged with the pid), bounded by limit (nil: no
// bound), from now on. It is how a child started ahead of demand joins the
// session that takes it.
func (c *Child) Adopt(log zerolog.Logger, limit *ratelog.Limiter) {
	c.to.Store(&logTo{log: log.With().Int("pid", c.pid).Logger(), limit: limit})
}

// Pid is the child's process id, which is also its process group id.
func (c *Child) Pid() int { return c.pid }

// Send writes msgs to the child's stdin, each followed by a newline, in
// one go: messages of concurrent Sends never interleave, and a burst of
// small ones costs one write. The caller writes itself, with no goroutine
// to hand the bytes to, which is what makes a round trip through a child
// cheap.
//
// ctx bounds the wait for a stdin the child has stopped reading: once it
// is done, Send returns how many messages went whole and ctx's error. A
// message cut part way is finished in the background before any other
// Send may write (the child must never see half a line), and counts as
// sent. Any other error means the child is gone.
func (c *Child) Send(ctx context.Context, msgs ...[]byte) (sent int, err error) {
	select {
	case c.turn <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if err := ctx.Err(); err != nil {
		<-c.turn // a done context may still have won the turn
		return 0, err
	}
	// A write blocked on a full pipe is woken by a deadline in the past.
	cut := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = c.stdin.SetWriteDeadline(time.Unix(1, 0))
		close(cut)
	})
	var rest []byte // the end of a message cut part way
	defer func() {
		if !stop() {
			<-cut // the deadline is set; clear it for the next writer
			_ = c.stdin.SetWriteDeadline(time.Time{})
		}
		if rest == nil {
			<-c.turn
			return
		}
		go func() {
			defer func() { <-c.turn }()
			_, _ = c.stdin.Write(rest)
		}()
	}()
	at := lineCursor{msgs: msgs}
	for at.i < len(msgs) {
		w, err := c.stdin.Write(c.nextWrite(&at))
		at.advance(w)
		if err == nil {
			continue
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || ctx.Err() == nil {
			return at.i, fmt.Errorf("writing to child stdin: %w", err)
		}
		if at.off == 0 {
			return at.i, ctx.Err()
		}
		rest = at.rest()
		return at.i + 1, ctx.Err()
	}
	return len(msgs), nil
}

// nextWrite is what Send writes next from at: the newline after a large
// message, a large message on its own (no copy), or as many small ones as
// fit, gathered with their newlines.
func (c *Child) nextWrite(at *lineCursor) []byte {
	m := at.msgs[at.i]
	switch {
	case at.off > 0:
		return []byte{'\n'} // only a large message is written in two parts
	case len(m)+1 > writeBuf:
		return m
	}
	out := c.wbuf[:0]
	for _, m := range at.msgs[at.i:] {
		if len(out) > 0 && len(out)+len(m)+1 > writeBuf {
			break
		}
		out = append(out, m...)
		out = append(out, '\n')
	}
	c.wbuf = out
	return out
}

// lineCursor is a place in a run of messages, each followed by a newline:
// off bytes into line i.
type lineCursor struct {
	msgs [][]byte
	i    int
	off  int // counting the newline
}

// advance moves the cursor over n bytes written.
func (at *lineCursor) advance(n int) {
	for n > 0 {
		left := len(at.msgs[at.i]) + 1 - at.off
		if n < left {
			at.off += n
			return
		}
		n -= left
		at.i++
		at.off = 0
	}
}

// rest is what is left of the current line.
func (at *lineCursor) rest() []byte {
	m := at.msgs[at.i]
	if at.off >= len(m) {
		return []byte{'\n'}
	}
	return append(bytes.Clone(m[at.off:]), '\n')
}

// ReadLine returns the next stdout line without its newline or a trailing
// '\r', in a slice the caller may keep. It returns io.EOF once stdout is
// closed, and after Stop. Only one goroutine may call ReadLine.
func (c *Child) ReadLine() ([]byte, error) {
	line, err := c.lr.ReadLine()
	switch {
	case err == nil:
		return line, nil
	case errors.Is(err, lines.ErrTooLong):
		return nil, fmt.Errorf("%w (%d bytes)", ErrLineTooLong, c.opts.MaxLine)
	case errors.Is(err, io.EOF), errors.Is(err, os.ErrClosed):
		return nil, io.EOF
	case c.pty && errors.Is(err, unix.EIO):
		// The master reads EIO once no process holds the terminal open.
		return nil, io.EOF
	}
	return nil, fmt.Errorf("reading child stdout: %w", err)
}

// Done is closed once the child has been reaped.
func (c *Child) Done() <-chan struct{} { return c.done }

// Exit describes how the child ended. It waits for Done.
func (c *Child) Exit() ExitStatus {
	<-c.done
	return c.exit
}

// StderrTail returns the last stderr lines, oldest first. After Done it ends
// with the last line the child wrote, for crash reports.
func (c *Child) StderrTail() []string {
	c.tailMu.Lock()
	defer c.tailMu.Unlock()
	out := make([]string, 0, len(c.tail))
	out = append(out, c.tail[c.tailAt:]...)
	return append(out, c.tail[:c.tailAt]...)
}

// Stop ends the child the way the MCP stdio transport asks a client to:
// close its stdin, then SIGTERM, then SIGKILL, each sent to the whole process
// group so that npx/uvx grandchildren go too. It returns once the child is
// reaped; if ctx ends first, the group is killed at once. Every call, from any
// goroutine, waits for the same end. After Stop, ReadLine returns io.EOF.
func (c *Child) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() {
		// "...First, closing the input stream to the child process."
		// In PTY mode this hangs up the terminal, which also sends SIGHUP.
		c.stdin.Close()
		go c.escalate()
	})
	var err error
	select {
	case <-c.done:
	default:
		select {
		case <-c.done:
		case <-ctx.Done():
			c.signalGroup(unix.SIGKILL)
			<-c.done
			err = fmt.Errorf("stopping child %d: %w", c.pid, context.Cause(ctx))
		}
	}
	c.closeOnce.Do(func() {
		// A process that left the group may still hold stdout open; the
		// reader must not wait for it.
		c.stdout.Close()
	})
	return err
}

// Kill sends SIGKILL to the child's whole group now and returns without
// waiting; Done says when it is reaped. It is for a caller out of time: Stop
// is the polite way. Kill is safe to call any number of times, before or
// after Stop, and does nothing once the child is reaped.
func (c *Child) Kill() {
	c.signalGroup(unix.SIGKILL)
}

// escalate runs the timed part of Stop; it ends when the child is reaped.
func (c *Child) escalate() {
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-c.done:
			return true
		case <-t.C:
			return false
		}
	}
	// "...Waiting for the server to exit, or sending SIGTERM if the server
	// does not exit within a reasonable time."
	if wait(c.opts.CloseGrace) {
		return
	}
	c.logger().Debug().Msg("child still running after stdin closed, sending SIGTERM to its group")
	c.signalGroup(unix.SIGTERM)
	// "...Sending SIGKILL if the server does not exit within a reasonable
	// time after SIGTERM."
	if wait(c.opts.TermGrace) {
		return
	}
	c.logger().Warn().Msg("child ignored SIGTERM, sending SIGKILL to its group")
	c.signalGroup(unix.SIGKILL)
	<-c.done
}

// signalGroup signals every process in the child's group. It does nothing
// once the leader is reaped: from then on the number may name someone else.
func (c *Child) signalGroup(sig unix.Signal) {
	c.sigMu.Lock()
	defer c.sigMu.Unlock()
	if c.reaped {
		return
	}
	if err := unix.Kill(-c.pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		c.logger().Warn().Err(err).Str("signal", unix.SignalName(sig)).Msg("signalling child group")
	}
}

// waitExit is the only goroutine that reaps the child. It lets the leader
// stay a zombie until the rest of its group is gone, because the zombie
// keeps the group's number from being reused while we signal it.
func (c *Child) waitExit() {
	if err := awaitExit(c.pid); err != nil {
		c.logger().Error().Err(err).Msg("waiting for child")
	}
	c.sweepGroup()

	c.sigMu.Lock()
	c.reaped = true
	c.sigMu.Unlock()
	werr := c.cmd.Wait()

	ownedPids.mu.Lock()
	delete(ownedPids.pids, c.pid)
	ownedPids.mu.Unlock()
	select {
	case reapPoke <- struct{}{}:
	default:
	}

	c.exit = exitStatus(c.cmd.ProcessState, werr)

	// The group is gone, so stderr normally ends at once; only a process
	// that left the group can keep it open, and then we stop listening.
	t := time.NewTimer(stderrLinger)
	select {
	case <-c.stderrDone:
	case <-t.C:
		c.logger().Warn().Msg("stderr still open after the child's group exited; closing it")
	}
	t.Stop()
	c.stderr.Close()
	<-c.stderrDone

	c.logger().Debug().Str("exit", c.exit.String()).Msg("child reaped")
	close(c.done)
}

// awaitExit returns once pid has exited, leaving it unreaped. It parks
// on a pidfd in the runtime's poller instead of holding an OS thread in
// waitid, since one server may run hundreds of children.
func awaitExit(pid int) error {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		// Kernels before 5.3 have no pidfd.
		return awaitExitBlocking(pid)
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return awaitExitBlocking(pid)
	}
	var werr error
	err = rc.Read(func(uintptr) bool {
		// Linux sets si_signo only when it found a child that exited.
		var info unix.Siginfo
		werr = unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT|unix.WNOHANG, nil)
		return werr != nil || info.Signo == int32(unix.SIGCHLD)
	})
	if err != nil {
		return err
	}
	return werr
}

func awaitExitBlocking(pid int) error {
	var info unix.Siginfo
	var err error
	for range 1000 {
		err = unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	return err
}

// sweepGroup ends what is left of the group after its leader exited:
// SIGTERM, then SIGKILL after TermGrace.
func (c *Child) sweepGroup() {
	if !groupAlive(c.pid) {
		return
	}
	c.logger().Debug().Msg("child exited but left processes in its group, sending SIGTERM")
	c.signalGroup(unix.SIGTERM)
	if waitGroupGone(c.pid, c.opts.TermGrace) {
		return
	}
	c.logger().Warn().Msg("processes left by the child ignored SIGTERM, sending SIGKILL")
	c.signalGroup(unix.SIGKILL)
	// SIGKILL cannot be ignored; the wait only covers exit in progress.
	waitGroupGone(c.pid, 10*time.Second)
}

// waitGroupGone polls until no live process is in group pgid, or d passes.
func waitGroupGone(pgid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	pause := time.Millisecond
	for i := 0; i < 10000; i++ {
		if !groupAlive(pgid) {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(min(pause, time.Until(deadline)))
		pause = min(2*pause, 50*time.Millisecond)
	}
	return !groupAlive(pgid)
}

// groupAlive reports whether a process other than a zombie belongs to
// group pgid. kill(-pgid, 0) cannot tell: the zombie leader still counts.
// Only /proc can, and reading it costs a file per process on the machine,
// so concurrent questions share one scan (see groups).
func groupAlive(pgid int) bool {
	return groups.alive(pgid)
}

// groups answers "is anything alive in this group?" for many groups
// with one scan of /proc. When hundreds of sessions end at once (shutdown,
// a drain), each scan would otherwise read every process's stat file for a
// single group, and the work would grow with the square of the sessions.
// A question waits for the next scan that starts after it was asked, so
// every answer is as fresh as a scan of its own.
var groups = census{waiting: map[int][]chan bool{}}

type census struct {
	mu       sync.Mutex // guards the fields below
	waiting  map[int][]chan bool
	scanning bool // a goroutine is running scans; it stops when nobody waits
}

func (c *census) alive(pgid int) bool {
	answer := make(chan bool, 1)
	c.mu.Lock()
	c.waiting[pgid] = append(c.waiting[pgid], answer)
	if !c.scanning {
		c.scanning = true
		go c.scan()
	}
	c.mu.Unlock()
	return <-answer
}

func (c *census) scan() {
	for {
		c.mu.Lock()
		batch := c.waiting
		if len(batch) == 0 {
			c.scanning = false
			c.mu.Unlock()
			return
		}
		c.waiting = map[int][]chan bool{}
		c.mu.Unlock()

		alive := make(map[int]bool, len(batch))
		eachStat(func(pid int, state byte, ppid, pgrp int) bool {
			if _, asked := batch[pgrp]; asked && state != 'Z' && state != 'X' {
				alive[pgrp] = true
			}
			return true
		})
		for pgid, answers := range batch {
			for _, a := range answers {
				a <- alive[pgid]
			}
		}
	}
}

func exitStatus(ps *os.ProcessState, werr error) ExitStatus {
	if ps == nil {
		return ExitStatus{Code: -1, Signal: ""}
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ExitStatus{Code: -1, Signal: unix.SignalName(ws.Signal())}
	}
	return ExitStatus{Code: ps.ExitCode()}
}

// drainStderr turns stderr into log lines and keeps the last few. It reads
// until EOF or until waitExit closes the pipe, so the child never blocks on a
// full stderr pipe.
func (c *Child) drainStderr() {
	defer close(c.stderrDone)
	r := bufio.NewReaderSize(c.stderr, stderrLineCap)
	skipping := false // dropping the rest of an over-long line
	for {
		line, err := r.ReadSlice('\n')
		full := errors.Is(err, bufio.ErrBufferFull)
		if len(line) > 0 && !skipping {
			s := string(bytes.TrimRight(line, "\r\n"))
			to := c.to.Load()
			if ok, held := to.limit.Allow(); ok {
				ev := to.log.Info()
				if held > 0 {
					// The line after a pause says how many were held back.
					ev = ev.Int("suppressed", held)
				}
				if full {
					ev = ev.Bool("truncated", true)
				}
				ev.Msg(s)
			}
			c.keepTail(s)
		}
		skipping = full
		if err != nil && !full {
			return
		}
	}
}

func (c *Child) keepTail(s string) {
	c.tailMu.Lock()
	defer c.tailMu.Unlock()
	if len(c.tail) < c.opts.TailLines {
		c.tail = append(c.tail, s)
		return
	}
	c.tail[c.tailAt] = s
	c.tailAt = (c.tailAt + 1) % len(c.tail)
}
