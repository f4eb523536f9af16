package child

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/rs/zerolog"
)

// warmPids lists the pids of cmd's warm children.
func warmPids(w *Warm, cmd Command) []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	var pids []int
	for _, s := range w.sets {
		if s.cmd.Path != cmd.Path || !slices.Equal(s.cmd.Env, cmd.Env) || !slices.Equal(s.cmd.Args, cmd.Args) {
			continue
		}
		for _, k := range s.ready {
			pids = append(pids, k.c.Pid())
		}
	}
	return pids
}

func closeWarm(t testing.TB, w *Warm) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// environ reads a process's environment from /proc.
func environ(t testing.TB, pid int) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		t.Fatalf("reading the environment of %d: %v", pid, err)
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

func TestWarmStartTakesAReadyChildAndRefills(t *testing.T) {
	w := NewWarm(2, fastStop, zerolog.Nop())
	defer closeWarm(t, w)
	cmd := Command{Path: "cat"}
	w.Prime(cmd)
	testkit.Eventually(t, "two warm children", func() bool { return len(warmPids(w, cmd)) == 2 })
	before := warmPids(w, cmd)

	c, err := w.Start(cmd, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, c)
	if !slices.Contains(before, c.Pid()) {
		t.Fatalf("Start gave pid %d, not one of the warm %v", c.Pid(), before)
	}
	// The child taken is untouched: it still answers its first line.
	if _, err := c.Send(t.Context(), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if got := readLine(t, c); got != "hello" {
		t.Fatalf("warm child answered %q", got)
	}
	testkit.Eventually(t, "a replacement warm child", func() bool {
		pids := warmPids(w, cmd)
		return len(pids) == 2 && !slices.Contains(pids, c.Pid())
	})
}

func TestWarmSetsPerEnvironment(t *testing.T) {
	w := NewWarm(1, fastStop, zerolog.Nop())
	defer closeWarm(t, w)
	a := Command{Path: "cat", Env: []string{"TENANT=a"}}
	b := Command{Path: "cat", Env: []string{"TENANT=b"}}
	// The first Start of a command starts its set; it has nothing warm yet.
	for _, cmd := range []Command{a, b} {
		c, err := w.Start(cmd, nil, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		stop(t, c)
	}
	for _, cmd := range []Command{a, b} {
		testkit.Eventually(t, "a warm child for "+cmd.Env[0], func() bool { return len(warmPids(w, cmd)) == 1 })
		c, err := w.Start(cmd, nil, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		if env := environ(t, c.Pid()); !slices.Equal(env, cmd.Env) {
			t.Errorf("child for %s has environment %q", cmd.Env[0], env)
		}
		stop(t, c)
	}
}

func TestWarmChildThatDiesIsReplaced(t *testing.T) {
	w := NewWarm(1, fastStop, zerolog.Nop())
	defer closeWarm(t, w)
	cmd := Command{Path: "cat"}
	w.Prime(cmd)
	testkit.Eventually(t, "a warm child", func() bool { return len(warmPids(w, cmd)) == 1 })
	dead := warmPids(w, cmd)[0]
	if err := syscall.Kill(dead, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "a replacement for the killed warm child", func() bool {
		pids := warmPids(w, cmd)
		return len(pids) == 1 && pids[0] != dead
	})
	c, err := w.Start(cmd, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, c)
	if c.Pid() == dead {
		t.Fatal("Start handed out the dead child")
	}
}

func TestWarmFailuresReportedOnce(t *testing.T) {
	for name, cmd := range map[string]Command{
		"exits at once": sh("echo bad config >&2; exit 3"),
		"cannot start":  {Path: "/nonexistent/server"},
	} {
		t.Run(name, func(t *testing.T) {
			var logs syncBuffer
			w := NewWarm(2, fastStop, zerolog.New(&logs))
			defer closeWarm(t, w)
			w.Prime(cmd)
			// Several failures in a row, under the growing pause: the
			// later ones are noted at debug level only.
			testkit.Eventually(t, "three failures", func() bool {
				return strings.Count(logs.String(), `"failures":`) >= 2
			})
			if n := strings.Count(logs.String(), `"level":"error"`); n != 1 {
				t.Fatalf("failure reported %d times, want once:\n%s", n, logs.String())
			}
			// A session still gets a child of its own (or the start error).
			if c, err := w.Start(cmd, nil, zerolog.Nop()); err == nil {
				waitDone(t, c)
				stop(t, c)
			}
		})
	}
}

func TestWarmCloseLeavesNothing(t *testing.T) {
	w := NewWarm(3, fastStop, zerolog.Nop())
	a := Command{Path: "cat", Env: []string{"TENANT=a"}}
	b := Command{Path: "cat", Env: []string{"TENANT=b"}}
	w.Prime(a)
	w.Prime(b)
	testkit.Eventually(t, "six warm children", func() bool { return w.Len() == 6 })
	pids := append(warmPids(w, a), warmPids(w, b)...)
	closeWarm(t, w)
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("warm child %d still running after Close", pid)
		}
	}
	if w.Len() != 0 {
		t.Errorf("%d warm children left after Close", w.Len())
	}
	// After Close, Start still works, cold, and nothing refills.
	c, err := w.Start(a, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	stop(t, c)
	if w.Len() != 0 {
		t.Errorf("Close did not stop the refilling: %d warm", w.Len())
	}
}
