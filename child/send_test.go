package child

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Concurrent Sends of small and large messages reach the child as whole
// lines, never interleaved.
func TestSendKeepsConcurrentMessagesWhole(t *testing.T) {
	p := start(t, Command{Path: "cat"}, fastStop)
	const senders, each = 8, 20
	want := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range senders {
		msgs := make([][]byte, 0, each)
		for i := range each {
			size := 10 + (g*each+i)%3*50_000 // small, and past the gathering buffer
			m := bytes.Repeat([]byte{byte('a' + g)}, size)
			m = fmt.Appendf(m, "-%d-%d", g, i)
			msgs = append(msgs, m)
			mu.Lock()
			want[string(m)] = true
			mu.Unlock()
		}
		wg.Go(func() {
			for i := 0; i < len(msgs); i += 3 {
				if _, err := p.Send(t.Context(), msgs[i:min(i+3, len(msgs))]...); err != nil {
					t.Errorf("Send: %v", err)
					return
				}
			}
		})
	}
	for range senders * each {
		line, err := p.ReadLine()
		if err != nil {
			t.Fatalf("ReadLine: %v", err)
		}
		if !want[string(line)] {
			t.Fatalf("a line that no Send wrote whole (%d bytes, starting %q)", len(line), line[:min(len(line), 20)])
		}
		delete(want, string(line))
	}
	wg.Wait()
}

// A Send cut by its context while the child is not reading returns the
// context's error. The message it began still reaches the child whole and
// counts as sent; a Send that could not begin writes nothing, and one that
// comes after waits its turn.
func TestSendCutByContextNeverLeavesHalfALine(t *testing.T) {
	// cat stops reading once nobody reads what it echoes: its stdout pipe
	// fills, then its stdin.
	p := start(t, Command{Path: "cat"}, fastStop)
	big := bytes.Repeat([]byte("b"), 1<<20)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	n, err := p.Send(ctx, []byte("first"), big)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send to a child that stopped reading: %v, want the deadline", err)
	}
	if n != 2 {
		t.Fatalf("Send cut inside its second message reported %d sent, want 2", n)
	}

	// The cut message is still being finished: the next Send cannot begin.
	ctx2, cancel2 := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel2()
	if n, err := p.Send(ctx2, []byte("never")); n != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send while another message is unfinished: %d, %v; want 0 and the deadline", n, err)
	}
	after := make(chan error, 1)
	go func() {
		_, err := p.Send(t.Context(), []byte("after"))
		after <- err
	}()

	for _, want := range [][]byte{[]byte("first"), big, []byte("after")} {
		got, err := p.ReadLine()
		if err != nil {
			t.Fatalf("ReadLine: %v", err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("read %d bytes starting %q, want %d starting %q", len(got), got[:min(len(got), 10)], len(want), want[:min(len(want), 10)])
		}
	}
	if err := <-after; err != nil {
		t.Fatalf("Send after the cut one: %v", err)
	}
}

// A Send whose context is done before its turn writes nothing.
func TestSendWithADoneContextWritesNothing(t *testing.T) {
	p := start(t, Command{Path: "cat"}, fastStop)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for range 20 {
		// A done context may still win the turn; the write must then
		// not begin either.
		if n, err := p.Send(ctx, []byte("no")); n != 0 || err == nil {
			t.Fatalf("Send with a done context: %d, %v", n, err)
		}
	}
	if _, err := p.Send(t.Context(), []byte("yes")); err != nil {
		t.Fatal(err)
	}
	if got := readLine(t, p); got != "yes" {
		t.Fatalf("first line %q, want only what the live Send wrote", got)
	}
}
