package session

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/child"
	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/mcpwrap/mcpwrap/jsonrpc"
	"github.com/rs/zerolog"
)

// With MaxStarting children starting, the next start waits for a turn,
// bounded by its context; a turn comes back at the child's first line of
// output, or once the child has held it for startHold without a word.
func TestStartsTakeTurns(t *testing.T) {
	reg := NewRegistry(Options{
		Command:     child.Command{Path: "cat"}, // says nothing until asked
		Child:       child.Options{CloseGrace: 200 * time.Millisecond, TermGrace: 300 * time.Millisecond},
		MaxStarting: 1,
	}, zerolog.Nop())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = reg.Close(ctx)
	})
	turns := func() int { return len(reg.starts) }

	first, err := reg.Start(t.Context(), Streamable, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	if turns() != 1 {
		t.Fatalf("%d turns taken by a child that has said nothing, want 1", turns())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := reg.Start(ctx, Streamable, Owner{}); !errors.Is(err, ErrStartsBusy) {
		t.Fatalf("a start while the only turn is taken: %v, want ErrStartsBusy", err)
	}
	if n := reg.Len(); n != 1 {
		t.Fatalf("%d sessions after a refused start, want 1", n)
	}

	// The first child's first line gives its turn back.
	ex, err := first.Send(t.Context(), []jsonrpc.Message{sessMsg(t, `{"jsonrpc":"2.0","method":"notifications/initialized"}`), sessMsg(t, `{"jsonrpc":"2.0","id":1,"result":{}}`)})
	if err != nil || ex != nil {
		t.Fatalf("Send: %v, %v", ex, err)
	}
	testkit.Eventually(t, "the turn back after the child's first line", func() bool { return turns() == 0 })

	// A child that never speaks gives it back after startHold.
	if _, err := reg.Start(t.Context(), Streamable, Owner{}); err != nil {
		t.Fatal(err)
	}
	taken := time.Now()
	testkit.Eventually(t, "the turn back from a silent child", func() bool { return turns() == 0 })
	if held := time.Since(taken); held < startHold/2 {
		t.Errorf("a silent child's turn came back after %v, before its hold of %v", held, startHold)
	}
	if _, err := reg.Start(t.Context(), Streamable, Owner{}); err != nil {
		t.Fatalf("a start once the turn is back: %v", err)
	}
}
