package session

import (
	"context"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/child"
	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/rs/zerolog"
)

// TestRegistryWarmChildren: a session of a tenant gets a warm child with
// the tenant's environment, and warm children count as no session for
// MaxSessions, Full or IdleFor.
func TestRegistryWarmChildren(t *testing.T) {
	// Each child notes its pid as it starts, so the test can tell a warm
	// child from one started for the session.
	started := t.TempDir() + "/started"
	cmd := child.Command{Path: "/bin/sh", Args: []string{"-c", `echo $$ >>"$STARTED"; exec cat`}, Env: []string{"PATH=/usr/bin:/bin", "STARTED=" + started}}
	copts := child.Options{CloseGrace: 200 * time.Millisecond, TermGrace: 300 * time.Millisecond}
	warm := child.NewWarm(2, copts, zerolog.Nop())
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := warm.Close(ctx); err != nil {
			t.Error(err)
		}
	}()
	reg := NewRegistry(Options{Command: cmd, Child: copts, MaxSessions: 1, Warm: warm}, zerolog.Nop())
	defer reg.Close(context.Background())
	owner := Owner{Tenant: "acme", Env: []string{"TENANT=acme"}}
	tenantCmd := cmd
	tenantCmd.Env = append(slices.Clone(cmd.Env), owner.Env...)
	warm.Prime(tenantCmd)
	testkit.Eventually(t, "two warm children", func() bool { return warm.Len() == 2 })
	testkit.Eventually(t, "two warm children noted", func() bool {
		b, _ := os.ReadFile(started)
		return strings.Count(string(b), "\n") == 2
	})
	warmPids, _ := os.ReadFile(started)

	if reg.Full() {
		t.Error("Full with only warm children")
	}
	if reg.IdleFor() == 0 {
		t.Error("IdleFor is zero with only warm children")
	}
	s, err := reg.Start(context.Background(), Streamable, owner)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(strings.Fields(string(warmPids)), strconv.Itoa(s.child.Pid())) {
		t.Errorf("the session's child %d is not one of the warm %q", s.child.Pid(), warmPids)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(s.child.Pid()) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	if env := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"); !slices.Contains(env, "TENANT=acme") {
		t.Errorf("the session's child has environment %q, without the tenant's", env)
	}
	testkit.Eventually(t, "the warm set topped up", func() bool { return warm.Len() == 2 })
	if !reg.Full() {
		t.Error("not Full with MaxSessions sessions")
	}
	if _, err := reg.Start(context.Background(), Streamable, owner); !errors.Is(err, ErrTooManySessions) {
		t.Errorf("second session: %v, want ErrTooManySessions", err)
	}
}
