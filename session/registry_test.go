package session

import (
	"bytes"
	"context"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/child"
	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/rs/zerolog"
)

// regGroupMembers lists the live (not zombie) processes of group pgid.
func regGroupMembers(pgid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 2 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			out = append(out, pid)
		}
	}
	return out
}

// TestRegistryCloseKillsAtTheDeadline: children that ignore both the end of
// their input and SIGTERM, with graces far longer than the deadline, are
// killed when it passes, and Close returns soon after with the deadline's
// error.
func TestRegistryCloseKillsAtTheDeadline(t *testing.T) {
	reg := NewRegistry(Options{
		Command: child.Command{Path: "/bin/sh", Args: []string{"-c", `trap '' TERM; exec sleep 1000`}, Env: []string{"PATH=/usr/bin:/bin"}},
		Child:   child.Options{CloseGrace: time.Minute, TermGrace: time.Minute},
	}, zerolog.Nop())
	var groups []int
	for range 5 {
		s, err := reg.Start(context.Background(), Streamable, Owner{})
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, s.child.Pid())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := reg.Close(ctx)
	took := time.Since(start)
	t.Logf("Close with a 300ms deadline returned after %v", took.Round(time.Millisecond))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close: %v, want the deadline's error", err)
	}
	if took > 10*time.Second {
		t.Errorf("Close returned %v after a 300ms deadline", took)
	}
	for _, g := range groups {
		for i := 0; i < 200 && len(regGroupMembers(g)) > 0; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if left := regGroupMembers(g); len(left) > 0 {
			t.Errorf("group %d still has %v after Close", g, left)
		}
	}
	if _, err := reg.Start(context.Background(), Streamable, Owner{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
}

// regFast are graces short enough for tests whose children end on request.
var regFast = child.Options{CloseGrace: 200 * time.Millisecond, TermGrace: 300 * time.Millisecond}

// TestRegistryForgetsASessionBeforeItsEnd: once Done is closed, the registry
// no longer knows the session, so a second DELETE is a 404. A waiter that
// spins on Done checks the moment it closes, many sessions over.
func TestRegistryForgetsASessionBeforeItsEnd(t *testing.T) {
	reg := NewRegistry(Options{Command: child.Command{Path: "cat"}, Child: regFast}, zerolog.Nop())
	defer reg.Close(context.Background())
	for i := range 200 {
		s, err := reg.Start(context.Background(), Streamable, Owner{})
		if err != nil {
			t.Fatal(err)
		}
		s.End()
		deadline := time.Now().Add(30 * time.Second)
	spin:
		for {
			select {
			case <-s.Done():
				break spin
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("session %d did not end within 30s", i)
			}
			runtime.Gosched()
		}
		if _, err := reg.Get(s.ID()); !errors.Is(err, ErrNotFound) {
			t.Fatalf("session %d: Get after Done = %v, want ErrNotFound", i, err)
		}
	}
}

// regLenObserver asks the registry how many sessions it holds whenever it
// hears of one, as a metrics gauge would.
type regLenObserver struct {
	reg *Registry
}

func (o regLenObserver) SessionStarted(string)               { o.reg.Len() }
func (o regLenObserver) SessionEnded(string, string, string) { o.reg.Len() }

// TestRegistryObserverMayUseTheRegistry: the observer is called without the
// registry's lock held.
func TestRegistryObserverMayUseTheRegistry(t *testing.T) {
	var obs regLenObserver
	reg := NewRegistry(Options{Command: child.Command{Path: "cat"}, Child: regFast, Observer: &obs}, zerolog.Nop())
	obs.reg = reg
	started := make(chan error, 1)
	go func() {
		_, err := reg.Start(context.Background(), Streamable, Owner{})
		started <- err
	}()
	select {
	case err := <-started:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Start did not return within 30s: the observer was called with the registry locked")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := reg.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// regSyncBuffer is a log sink that several goroutines may write.
type regSyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *regSyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *regSyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestReapIdleEndsASessionOnce: a session that takes its time to close (its
// child ignores the end of its input and SIGTERM) is asked to close once, not
// again on every tick of the idle reaper.
func TestReapIdleEndsASessionOnce(t *testing.T) {
	var logged regSyncBuffer
	reg := NewRegistry(Options{
		Command:     child.Command{Path: "/bin/sh", Args: []string{"-c", `trap '' TERM; exec sleep 1000`}, Env: []string{"PATH=/usr/bin:/bin"}},
		Child:       child.Options{CloseGrace: 500 * time.Millisecond, TermGrace: 500 * time.Millisecond},
		IdleTimeout: 40 * time.Millisecond, // a tick every 10ms
	}, zerolog.New(&logged))
	ctx, cancel := context.WithCancel(context.Background())
	reaped := make(chan struct{})
	go func() {
		defer close(reaped)
		reg.ReapIdle(ctx)
	}()
	defer func() {
		cancel()
		<-reaped
	}()
	if _, err := reg.Start(context.Background(), Streamable, Owner{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the idle session to end", func() bool { return reg.Len() == 0 })
	if n := strings.Count(logged.String(), "ending idle session"); n != 1 {
		t.Errorf("the idle reaper ended the session %d times, want once", n)
	}
}
