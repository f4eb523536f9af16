package child

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestReapOrphansAsPID1 re-runs the test binary as PID 1 of a fresh PID
// namespace, where every orphan becomes its child, like a container's
// entrypoint.
func TestReapOrphansAsPID1(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a PID namespace with unshare")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare(1) not installed")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, "--pid", "--fork", "--mount-proc", exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=pid1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	t.Logf("PID 1 helper said:\n%s", stdout.String())
	if err != nil {
		t.Fatalf("PID 1 helper: %v\nstderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "ok\n") {
		t.Fatalf("PID 1 helper did not report ok")
	}
}

// pid1Main runs as PID 1 in its own namespace. Its children leave
// orphans behind, some exiting on their own and some killed by the group
// sweep; all must be reaped while every child's own exit status survives.
func pid1Main() int {
	if os.Getpid() != 1 {
		fmt.Printf("running as pid %d, not 1\n", os.Getpid())
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	reaperDone := make(chan struct{})
	go func() {
		defer close(reaperDone)
		ReapOrphans(ctx, zerolog.Nop())
	}()
	defer func() {
		cancel()
		<-reaperDone
	}()

	const children = 20
	opts := Options{CloseGrace: 200 * time.Millisecond, TermGrace: 300 * time.Millisecond}
	env := []string{"PATH=/usr/bin:/bin"}
	// The inner sh exits at once, so its sleep is orphaned to us while
	// the leader still runs; the second sleep is still in the group when
	// the leader exits, so the sweep kills it and it is orphaned too.
	script := `sh -c 'sleep 0.2 & echo $!'; sleep 1000 & echo $!; sleep 0.5; exit 7`

	var mu sync.Mutex
	var failures []string
	var orphans []int
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	var wg sync.WaitGroup
	for i := range children {
		wg.Go(func() {
			p, err := Start(Command{Path: "/bin/sh", Args: []string{"-c", script}, Env: env}, opts, zerolog.Nop())
			if err != nil {
				fail("child %d: %v", i, err)
				return
			}
			defer p.Stop(context.Background())
			for range 2 {
				line, err := p.ReadLine()
				if err != nil {
					fail("child %d: reading orphan pid: %v", i, err)
					return
				}
				pid, err := strconv.Atoi(string(line))
				if err != nil {
					fail("child %d: %q is not a pid", i, line)
					return
				}
				mu.Lock()
				orphans = append(orphans, pid)
				mu.Unlock()
			}
			select {
			case <-p.Done():
			case <-time.After(time.Minute):
				fail("child %d not reaped within a minute", i)
				return
			}
			if got := p.Exit(); got != (ExitStatus{Code: 7}) {
				fail("child %d ended with %v, want exit status 7", i, got)
			}
		})
	}
	wg.Wait()

	// Orphans are reaped on SIGCHLD; allow a generous bound for the last.
	var zombies []string
	for range 200 {
		zombies = zombies[:0]
		for _, pid := range orphans {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
				zombies = append(zombies, string(b))
			}
		}
		eachStat(func(pid int, state byte, ppid, pgrp int) bool {
			if state == 'Z' {
				zombies = append(zombies, fmt.Sprintf("zombie %d (parent %d)", pid, ppid))
			}
			return true
		})
		if len(zombies) == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, z := range zombies {
		failures = append(failures, "not reaped: "+z)
	}
	fmt.Printf("%d children, %d orphans\n", children, len(orphans))
	if len(orphans) != 2*children {
		failures = append(failures, "missing orphan pids")
	}
	if len(failures) > 0 {
		for _, f := range failures {
			fmt.Println(f)
		}
		return 1
	}
	fmt.Println("ok")
	return 0
}
