package child

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// helperEnv selects a helper mode when the test binary is re-run as a
// child. It is checked in init rather than TestMain so that this file does
// not claim the package's single TestMain.
const helperEnv = "MCPWRAP_CHILD_HELPER"

func init() {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return
	}
	os.Exit(helperMain(mode))
}

func helperMain(mode string) int {
	switch mode {
	case "ignoreterm":
		// A server that ignores SIGTERM and even the end of its input.
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		time.Sleep(5 * time.Minute)
		return 0
	case "stderrflood":
		// Each echoed line is preceded by 64 KiB of stderr written from
		// the same goroutine, so the echo stalls if stderr is not drained.
		noise := bytes.Repeat([]byte(strings.Repeat("x", 1023)+"\n"), 64)
		in := bufio.NewReaderSize(os.Stdin, 1<<20)
		for {
			line, err := in.ReadBytes('\n')
			if err != nil {
				return 0
			}
			if _, err := os.Stderr.Write(noise); err != nil {
				return 1
			}
			if _, err := os.Stdout.Write(line); err != nil {
				return 1
			}
		}
	case "spew":
		// Writes one line of the given size over and over, for benchmarks.
		size, _ := strconv.Atoi(os.Getenv("MCPWRAP_CHILD_SPEW_SIZE"))
		line := append(bytes.Repeat([]byte("s"), size), '\n')
		for {
			if _, err := os.Stdout.Write(line); err != nil {
				return 0
			}
		}
	case "pid1":
		return pid1Main()
	}
	fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
	return 2
}

// helper runs the test binary as a helper child in the given mode.
func helper(t testing.TB, mode string) Command {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Command{Path: exe, Args: []string{"-test.run=^$"}, Env: []string{helperEnv + "=" + mode}}
}

func sh(script string) Command {
	return Command{Path: "/bin/sh", Args: []string{"-c", script}, Env: []string{"PATH=/usr/bin:/bin"}}
}

var fastStop = Options{CloseGrace: 200 * time.Millisecond, TermGrace: 300 * time.Millisecond}

func start(t testing.TB, cmd Command, opts Options) *Child {
	t.Helper()
	p, err := Start(cmd, opts, zerolog.Nop())
	if err != nil {
		t.Fatalf("Start(%s): %v", cmd.Path, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p.Stop(ctx)
	})
	return p
}

// waitDone fails the test if the child is not reaped within a generous bound.
func waitDone(t testing.TB, p *Child) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("child %d not reaped within 30s", p.Pid())
	}
}

func stop(t testing.TB, p *Child) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

// liveInGroup lists processes in group pgid that are not zombies, read
// from /proc independently of the code under test.
func liveInGroup(t testing.TB, pgid int) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var live []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
			live = append(live, e.Name()+" "+s[:strings.LastIndexByte(s, ')')+1]+" "+f[0])
		}
	}
	return live
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}

func readLine(t testing.TB, p *Child) string {
	t.Helper()
	line, err := p.ReadLine()
	if err != nil {
		t.Fatalf("ReadLine: %v", err)
	}
	return string(line)
}

func TestEchoRoundTrip(t *testing.T) {
	p := start(t, Command{Path: "cat"}, fastStop)
	for i := range 100 {
		msg := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"ping"}`, i)
		if _, err := p.Send(context.Background(), []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if got := readLine(t, p); got != msg {
			t.Fatalf("line %d: got %q, want %q", i, got, msg)
		}
	}
	// Lines read earlier must not change when later ones arrive.
	first, second := []byte("first"), []byte("second\r")
	p.Send(context.Background(), first, second)
	a, _ := p.ReadLine()
	b, _ := p.ReadLine()
	if string(a) != "first" || string(b) != "second" {
		t.Fatalf("got %q, %q; want \"first\", \"second\" (trailing CR dropped)", a, b)
	}
	stop(t, p)
	if got := p.Exit(); got != (ExitStatus{Code: 0}) {
		t.Fatalf("cat ended with %v after stdin closed, want exit status 0", got)
	}
	if _, err := p.ReadLine(); !errors.Is(err, io.EOF) {
		t.Fatalf("ReadLine after Stop: %v, want io.EOF", err)
	}
	if _, err := p.Send(context.Background(), []byte("x")); err == nil {
		t.Fatal("Send after Stop succeeded")
	}
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		script string
		want   ExitStatus
		str    string
	}{
		{"exit 3", ExitStatus{Code: 3}, "exit status 3"},
		{"exit 0", ExitStatus{Code: 0}, "exit status 0"},
		{"kill -KILL $$", ExitStatus{Code: -1, Signal: "SIGKILL"}, "killed by signal SIGKILL"},
		{"kill -SEGV $$", ExitStatus{Code: -1, Signal: "SIGSEGV"}, "killed by signal SIGSEGV"},
	}
	for _, tt := range tests {
		t.Run(tt.script, func(t *testing.T) {
			p := start(t, sh(tt.script), fastStop)
			waitDone(t, p)
			got := p.Exit()
			if got != tt.want || got.String() != tt.str {
				t.Fatalf("Exit() = %#v (%q), want %#v (%q)", got, got, tt.want, tt.str)
			}
			if _, err := p.ReadLine(); !errors.Is(err, io.EOF) {
				t.Fatalf("ReadLine after exit: %v, want io.EOF", err)
			}
		})
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "server.sh")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		"mcpwrap-no-such-program",
		filepath.Join(dir, "missing"),
		notExec,
		dir,
	} {
		p, err := Start(Command{Path: path}, Options{}, zerolog.Nop())
		if err == nil {
			stop(t, p)
			t.Fatalf("Start(%q) succeeded", path)
		}
		if !errors.Is(err, ErrStart) || !strings.Contains(err.Error(), path) {
			t.Fatalf("Start(%q) = %v, want ErrStart naming the program", path, err)
		}
	}
}

func TestStopEscalatesToKill(t *testing.T) {
	p := start(t, helper(t, "ignoreterm"), fastStop)
	if got := readLine(t, p); got != "ready" {
		t.Fatalf("got %q, want ready", got)
	}
	stop(t, p)
	if got := p.Exit(); got.Signal != "SIGKILL" {
		t.Fatalf("child that ignores SIGTERM ended with %v, want killed by SIGKILL", got)
	}
}

func TestStopTerminatesOnTerm(t *testing.T) {
	// sleep does not read stdin, so closing it does nothing; SIGTERM must.
	p := start(t, sh("exec sleep 1000"), fastStop)
	stop(t, p)
	if got := p.Exit(); got.Signal != "SIGTERM" {
		t.Fatalf("got %v, want killed by SIGTERM", got)
	}
}

func TestStopKillsGrandchildren(t *testing.T) {
	p := start(t, sh("sleep 1000 & echo $!; sleep 1000"), fastStop)
	gpid, err := strconv.Atoi(readLine(t, p))
	if err != nil {
		t.Fatal(err)
	}
	if !alive(gpid) {
		t.Fatalf("grandchild %d not running before Stop", gpid)
	}
	stop(t, p)
	if live := liveInGroup(t, p.Pid()); len(live) > 0 {
		t.Fatalf("processes left in group %d after Stop: %q", p.Pid(), live)
	}
	if alive(gpid) {
		t.Fatalf("grandchild %d still running after Stop", gpid)
	}
}

func TestLeaderExitCleansGroup(t *testing.T) {
	// The grandchild ignores SIGTERM, so it also covers the SIGKILL step,
	// and it holds stdout and stderr open, which must not hang anything.
	p := start(t, sh(`(trap "" TERM; echo $(exec sh -c 'echo $PPID'); exec sleep 1000) & sleep 0.2; exit 5`), fastStop)
	gpid, err := strconv.Atoi(readLine(t, p))
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	if got := p.Exit(); got != (ExitStatus{Code: 5}) {
		t.Fatalf("got %v, want exit status 5", got)
	}
	if live := liveInGroup(t, p.Pid()); len(live) > 0 {
		t.Fatalf("processes left in group %d after the leader exited: %q", p.Pid(), live)
	}
	if alive(gpid) {
		t.Fatalf("grandchild %d still running", gpid)
	}
	stop(t, p)
}

func TestStopConcurrent(t *testing.T) {
	p := start(t, sh("exec sleep 1000"), fastStop)
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := p.Stop(ctx); err != nil {
				errs <- err
				return
			}
			select {
			case <-p.Done():
			default:
				errs <- errors.New("Stop returned before the child was reaped")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	stop(t, p) // and once more after the fact
}

func TestStopContextKillsAtOnce(t *testing.T) {
	p := start(t, helper(t, "ignoreterm"), Options{CloseGrace: time.Hour, TermGrace: time.Hour})
	readLine(t, p)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop with a done context: %v, want context.Canceled", err)
	}
	if got := p.Exit(); got.Signal != "SIGKILL" {
		t.Fatalf("got %v, want killed by SIGKILL", got)
	}
}

func TestKillEndsTheGroupAtOnce(t *testing.T) {
	// Graces of an hour: only Kill can end this child in time.
	p := start(t, sh(`trap '' TERM; sleep 1000 & echo $!; wait`), Options{CloseGrace: time.Hour, TermGrace: time.Hour})
	gpid, err := strconv.Atoi(readLine(t, p))
	if err != nil {
		t.Fatal(err)
	}
	p.Kill()
	waitDone(t, p)
	if got := p.Exit(); got.Signal != "SIGKILL" {
		t.Fatalf("got %v, want killed by SIGKILL", got)
	}
	if live := liveInGroup(t, p.Pid()); len(live) > 0 {
		t.Fatalf("group still has %v after Kill", live)
	}
	if alive(gpid) {
		t.Fatalf("grandchild %d survived Kill", gpid)
	}
	p.Kill() // once reaped, the group's number may be someone else's: a no-op
	stop(t, p)
}

func TestLongLines(t *testing.T) {
	p := start(t, Command{Path: "cat"}, fastStop)
	// Around the line reader's 64 KiB buffer, and far past it.
	const readBuf = 64 << 10
	for _, size := range []int{readBuf - 1, readBuf, readBuf + 1, 1 << 20, 10 << 20} {
		msg := make([]byte, size)
		for i := range msg {
			msg[i] = 'a' + byte(i%26)
		}
		// Writing a big line blocks until cat has echoed most of it,
		// so write from another goroutine.
		errc := make(chan error, 1)
		go func() {
			_, err := p.Send(context.Background(), msg, []byte("small"))
			errc <- err
		}()
		got, err := p.ReadLine()
		if err != nil {
			t.Fatalf("%d-byte line: %v", size, err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("%d-byte line came back as %d different bytes", size, len(got))
		}
		if got := readLine(t, p); got != "small" {
			t.Fatalf("after a %d-byte line got %q, want small", size, got)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

func TestLineTooLong(t *testing.T) {
	for _, size := range []int{1001, 200 << 10} {
		opts := fastStop
		opts.MaxLine = 1000
		p := start(t, Command{Path: "cat"}, opts)
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			// Fails once Stop closes stdin, as cat stalls on the unread reply.
			p.Send(context.Background(), bytes.Repeat([]byte("y"), 1000), bytes.Repeat([]byte("z"), size))
		}()
		if got, err := p.ReadLine(); err != nil || len(got) != 1000 {
			t.Fatalf("line of exactly MaxLine: %d bytes, %v", len(got), err)
		}
		if _, err := p.ReadLine(); !errors.Is(err, ErrLineTooLong) {
			t.Fatalf("%d-byte line with MaxLine 1000: %v, want ErrLineTooLong", size, err)
		}
		if _, err := p.ReadLine(); !errors.Is(err, ErrLineTooLong) {
			t.Fatalf("ReadLine after ErrLineTooLong: %v, want the same error", err)
		}
		stop(t, p)
		<-wrote
	}
}

func TestStderrTail(t *testing.T) {
	var logged syncBuffer
	log := zerolog.New(&logged)
	p, err := Start(sh(`for i in $(seq 1 50); do echo "line $i" >&2; done; printf 'no newline' >&2; exit 1`),
		Options{TailLines: 5}, log)
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	want := []string{"line 47", "line 48", "line 49", "line 50", "no newline"}
	if got := p.StderrTail(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("StderrTail() = %q, want %q", got, want)
	}
	out := logged.String()
	if !strings.Contains(out, `"pid":`+strconv.Itoa(p.Pid())) || !strings.Contains(out, `"message":"line 1"`) {
		t.Fatalf("stderr not logged with the pid:\n%.500s", out)
	}
	stop(t, p)
}

func TestStderrLongLineCut(t *testing.T) {
	p := start(t, sh(`head -c 300000 /dev/zero | tr '\0' x >&2; echo >&2; echo after >&2`), fastStop)
	waitDone(t, p)
	tail := p.StderrTail()
	if len(tail) != 2 || len(tail[0]) != stderrLineCap || tail[1] != "after" {
		lens := []int{}
		for _, s := range tail {
			lens = append(lens, len(s))
		}
		t.Fatalf("tail line lengths %v (last %q), want [%d 5] ending in after", lens, tail[len(tail)-1], stderrLineCap)
	}
}

func TestStderrFloodDoesNotBlockStdout(t *testing.T) {
	p := start(t, helper(t, "stderrflood"), fastStop)
	// 300 lines make ~19 MiB of stderr, far beyond any pipe buffer. The
	// traffic runs in its own goroutine so that a stall fails the test
	// instead of hanging it.
	errc := make(chan error, 1)
	go func() {
		for i := range 300 {
			msg := "msg " + strconv.Itoa(i)
			if _, err := p.Send(context.Background(), []byte(msg)); err != nil {
				errc <- err
				return
			}
			got, err := p.ReadLine()
			if err != nil {
				errc <- err
				return
			}
			if string(got) != msg {
				errc <- fmt.Errorf("got %q, want %q", got, msg)
				return
			}
		}
		errc <- nil
	}()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		stop(t, p) // unblocks the goroutine
		<-errc
		t.Fatal("stdout traffic stalled while the child wrote to stderr")
	}
	stop(t, p)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func countFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestNoLeaks(t *testing.T) {
	// Warm up lazily created runtime state (signal handling, netpoller)
	// before taking the baseline.
	stop(t, start(t, Command{Path: "cat"}, fastStop))
	stop(t, start(t, Command{Path: "cat", PTY: true}, fastStop))
	runtime.GC()
	fds, goroutines := countFDs(t), runtime.NumGoroutine()

	for i := range 100 {
		cmd := Command{Path: "cat", PTY: i%4 == 3}
		if i%2 == 1 {
			cmd = sh("sleep 1000 & exec cat")
		}
		p, err := Start(cmd, fastStop, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		p.Send(context.Background(), []byte("hello"))
		if got := readLine(t, p); got != "hello" {
			t.Fatalf("cycle %d: got %q", i, got)
		}
		stop(t, p)
	}

	// Goroutines of the last Child may still be returning; give them
	// a generous bound, not a timing requirement.
	for i := 0; i < 100 && runtime.NumGoroutine() > goroutines; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if got := runtime.NumGoroutine(); got > goroutines {
		buf := make([]byte, 1<<16)
		t.Fatalf("goroutines: %d before, %d after 100 cycles\n%s", goroutines, got, buf[:runtime.Stack(buf, true)])
	}
	if got := countFDs(t); got > fds {
		t.Fatalf("open fds: %d before, %d after 100 cycles", fds, got)
	}
}

func TestPTY(t *testing.T) {
	p := start(t, Command{Path: "cat", PTY: true}, fastStop)
	// 100 KiB is far past the 4095-byte limit of a cooked terminal line,
	// and raw mode must neither echo it nor add '\r'.
	msg := make([]byte, 100<<10)
	for i := range msg {
		msg[i] = byte(' ' + i%90)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := p.Send(context.Background(), msg, []byte("tail"))
		errc <- err
	}()
	got, err := p.ReadLine()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("100 KiB line through the pty came back as %d different bytes", len(got))
	}
	if got := readLine(t, p); got != "tail" {
		t.Fatalf("got %q, want tail", got)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	stop(t, p)
	if _, err := p.ReadLine(); !errors.Is(err, io.EOF) {
		t.Fatalf("ReadLine after Stop: %v, want io.EOF", err)
	}
}

func TestPTYExitIsEOF(t *testing.T) {
	p := start(t, Command{Path: "/bin/sh", Args: []string{"-c", "test -t 0 && test -t 1 && ! test -t 2 && echo tty; exit 4"}, PTY: true}, fastStop)
	if got := readLine(t, p); got != "tty" {
		t.Fatalf("got %q, want tty (stdin and stdout a terminal, stderr not)", got)
	}
	if _, err := p.ReadLine(); !errors.Is(err, io.EOF) {
		t.Fatalf("ReadLine after the child exited: %v, want io.EOF", err)
	}
	waitDone(t, p)
	if got := p.Exit(); got != (ExitStatus{Code: 4}) {
		t.Fatalf("got %v, want exit status 4", got)
	}
}

var benchSizes = []struct {
	name string
	size int
}{{"200B", 200}, {"1MiB", 1 << 20}}

// BenchmarkReadLine reads lines that a child writes as fast as it can;
// allocations are ReadLine's alone.
func BenchmarkReadLine(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			cmd := helper(b, "spew")
			cmd.Env = append(cmd.Env, "MCPWRAP_CHILD_SPEW_SIZE="+strconv.Itoa(bs.size))
			p := start(b, cmd, fastStop)
			b.SetBytes(int64(bs.size + 1))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				line, err := p.ReadLine()
				if err != nil || len(line) != bs.size {
					b.Fatalf("%d bytes, %v", len(line), err)
				}
			}
		})
	}
}

// BenchmarkWriteFlush writes one message per Flush to a child that
// discards its input; allocations are Write and Flush's alone.
func BenchmarkWriteFlush(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			p := start(b, sh("exec cat >/dev/null"), fastStop)
			msg := bytes.Repeat([]byte("w"), bs.size)
			b.SetBytes(int64(bs.size + 1))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := p.Send(context.Background(), msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRoundTrip sends a message through cat and waits for it to
// come back: the latency one request adds, pipes and scheduling included.
func BenchmarkRoundTrip(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			p := start(b, Command{Path: "cat"}, fastStop)
			msg := bytes.Repeat([]byte("r"), bs.size)
			b.SetBytes(int64(bs.size + 1))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				errc := make(chan error, 1)
				go func() {
					_, err := p.Send(context.Background(), msg)
					errc <- err
				}()
				line, err := p.ReadLine()
				if err != nil || len(line) != bs.size {
					b.Fatalf("%d bytes, %v", len(line), err)
				}
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestEnvironmentAndDir(t *testing.T) {
	// A nil Env must not hand the child our environment (it may hold the
	// server's token).
	t.Setenv("MCPWRAP_CHILD_SECRET", "do-not-leak")
	p := start(t, Command{Path: "/usr/bin/env"}, fastStop)
	if line, err := p.ReadLine(); !errors.Is(err, io.EOF) {
		t.Fatalf("child with nil Env printed %q (%v), want an empty environment", line, err)
	}
	dir := t.TempDir()
	p = start(t, Command{Path: "/bin/sh", Args: []string{"-c", `echo "$FOO" && pwd -P`}, Env: []string{"FOO=bar"}, Dir: dir}, fastStop)
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := readLine(t, p); got != "bar" {
		t.Fatalf("FOO=%q, want bar", got)
	}
	if got := readLine(t, p); got != realDir {
		t.Fatalf("working directory %q, want %q", got, realDir)
	}
}

func TestEscapedGrandchildDoesNotHang(t *testing.T) {
	if _, err := os.Stat("/usr/bin/setsid"); err != nil {
		t.Skip("setsid(1) not installed")
	}
	// The grandchild leaves the group, so no group signal reaches it, and
	// it keeps stdout and stderr open. Done and ReadLine must still end.
	// The shell waits until setsid has taken the grandchild out of its
	// group: exiting before that, the leader's group would be swept with
	// the grandchild still in it.
	p := start(t, sh(`setsid sleep 1000 & g=$!
while [ "$(cut -d' ' -f5 /proc/$g/stat 2>/dev/null)" = "$$" ]; do sleep 0.01; done
echo $g; exit 0`), fastStop)
	gpid, err := strconv.Atoi(readLine(t, p))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(gpid, syscall.SIGKILL) })
	waitDone(t, p)
	read := make(chan error, 1)
	go func() {
		_, err := p.ReadLine()
		read <- err
	}()
	stop(t, p)
	select {
	case err := <-read:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("ReadLine after Stop: %v, want io.EOF", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ReadLine still blocked after Stop")
	}
	if !alive(gpid) {
		t.Fatalf("the escaped grandchild %d was not running; the test proves nothing", gpid)
	}
}

// threads is how many OS threads this process has.
func threads(t testing.TB) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads line in /proc/self/status")
	return 0
}

func TestWaitingHoldsNoThread(t *testing.T) {
	// A thread blocked in wait per child would cost hundreds of threads
	// on a busy server; waiting parks on a pidfd instead.
	const children = 64
	before := threads(t)
	procs := make([]*Child, 0, children)
	for range children {
		procs = append(procs, start(t, sh("exec sleep 1000"), fastStop))
	}
	during := threads(t)
	t.Logf("threads: %d before, %d with %d children waited on", before, during, children)
	if during-before >= children/2 {
		t.Fatalf("threads grew from %d to %d with %d children", before, during, children)
	}
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { stop(t, p) })
	}
	wg.Wait()
}
