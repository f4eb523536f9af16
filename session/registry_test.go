package session

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/child"
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
		s, err := reg.Start(Streamable, Owner{})
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, s.Pid())
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
	if _, err := reg.Start(Streamable, Owner{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
}
