package session

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/child"
	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/rs/zerolog"
)

func msgOf(n int) Outbound { return Outbound{Data: []byte(strings.Repeat("m", n))} }

func TestEventLogEvictsOldestWithinItsBudget(t *testing.T) {
	total := newBudget(1000, nil)
	l := newEventLog(newBudget(300, total), 0, 0)
	for i := range 5 {
		if taken, _ := l.append(msgOf(100), true); !taken {
			t.Fatalf("append %d not taken", i)
		}
	}
	if got := total.Used(); got != 300 {
		t.Fatalf("%d bytes held, want the 300 of the bound", got)
	}
	got, _, err := l.After(0)
	if err != nil || len(got) != 3 || got[0].ID != 3 {
		t.Fatalf("After(0) = %d events from id %v, %v; want the newest three, ids 3-5", len(got), got, err)
	}
	// Reading on frees what was read.
	if _, _, err := l.After(got[2].ID); err != nil {
		t.Fatal(err)
	}
	if got := total.Used(); got != 0 {
		t.Fatalf("%d bytes held after everything was read", got)
	}
}

func TestEventLogTakesOneMessageLargerThanItsBudget(t *testing.T) {
	l := newEventLog(newBudget(10, nil), 0, 0)
	if taken, _ := l.append(msgOf(100), false); !taken {
		t.Fatal("an empty log refused a message larger than its budget")
	}
	if taken, _ := l.append(msgOf(1), false); taken {
		t.Fatal("a full log took another message without evicting")
	}
}

func TestEventLogEndsItsReader(t *testing.T) {
	b := newBudget(0, nil)
	l := newEventLog(b, 0, 0)
	l.append(msgOf(10), false)
	l.close()
	got, _, err := l.After(0)
	if err != nil || len(got) != 1 {
		t.Fatalf("a closed log withheld its last event: %v %v", got, err)
	}
	if _, _, err := l.After(got[0].ID); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last event: %v, want io.EOF", err)
	}

	cut := newEventLog(b, 0, 0)
	cut.append(msgOf(10), false)
	cut.cut(ErrLagged)
	if _, _, err := cut.After(0); !errors.Is(err, ErrLagged) {
		t.Fatalf("a cut log: %v, want ErrLagged", err)
	}
	if b.Used() != 0 {
		t.Fatalf("%d bytes held by logs that ended", b.Used())
	}
}

// TestQueuedBytesStayWithinTheTotal: four sessions whose children flood
// their streams with nobody listening hold no more than the process-wide
// bound (plus the one message an empty log always takes).
func TestQueuedBytesStayWithinTheTotal(t *testing.T) {
	const msg = 64 << 10
	reg := NewRegistry(Options{
		Command: child.Command{Path: "/bin/sh", Args: []string{"-c", `big=$(head -c 65000 /dev/zero | tr '\0' x)
n=0; while [ $n -lt 200 ]; do printf '{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"%s"}}\n' "$big"; n=$((n+1)); done
exec sleep 1000`}, Env: []string{"PATH=/usr/bin:/bin"}},
		Child:               child.Options{CloseGrace: 100 * time.Millisecond, TermGrace: 100 * time.Millisecond},
		MaxQueuedBytes:      512 << 10,
		MaxQueuedBytesTotal: 1 << 20,
	}, zerolog.Nop())
	t.Cleanup(func() { _ = reg.Close(t.Context()) })
	var sessions []*Session
	for range 4 {
		s, err := reg.Start(context.Background(), Streamable, Owner{})
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s)
	}
	limit := int64(1<<20 + 4*msg)
	peak := int64(0)
	testkit.Eventually(t, "every child to finish its flood", func() bool {
		peak = max(peak, reg.QueuedBytes())
		for _, s := range sessions {
			if s.stream.Len() == 0 {
				return false
			}
		}
		// The last of 200 messages has id 200; the log's next id says
		// whether all arrived.
		for _, s := range sessions {
			s.stream.mu.Lock()
			next := s.stream.next
			s.stream.mu.Unlock()
			if next <= 200 {
				return false
			}
		}
		return true
	})
	peak = max(peak, reg.QueuedBytes())
	t.Logf("peak %d KiB queued across 4 sessions, bound %d KiB", peak>>10, limit>>10)
	if peak > limit {
		t.Fatalf("%d bytes queued, bound %d", peak, limit)
	}
}

func TestEventLogKeepsWhatWasReadForAReconnection(t *testing.T) {
	b := newBudget(0, nil)
	l := newEventLog(b, 0, 2)
	for range 5 {
		l.append(msgOf(10), false)
	}
	if _, _, err := l.After(4); err != nil {
		t.Fatal(err)
	}
	// Events 3 and 4 stay for a reader that lost them on the way; 1 and 2
	// are gone.
	if err := l.Resumable(2); err != nil {
		t.Errorf("Resumable(2) = %v, want nil: 3 and 4 are kept", err)
	}
	if err := l.Resumable(1); !errors.Is(err, ErrGone) {
		t.Errorf("Resumable(1) = %v, want ErrGone: 2 fell off", err)
	}
	if err := l.Resumable(5); err != nil {
		t.Errorf("Resumable(5) = %v, want nil: the newest event", err)
	}
	if err := l.Resumable(6); !errors.Is(err, ErrGone) {
		t.Errorf("Resumable(6) = %v, want ErrGone: never given", err)
	}
	got, _, err := l.After(2)
	if err != nil || len(got) != 3 || got[0].ID != 3 {
		t.Fatalf("After(2) = %v, %v; want 3-5 again", got, err)
	}
	if l.Read() != 4 {
		t.Errorf("Read() = %d, want 4, the furthest read", l.Read())
	}
}

func TestEventLogGivesUpWhatWasReadBeforeRefusingAMessage(t *testing.T) {
	l := newEventLog(newBudget(30, nil), 0, 64)
	for range 3 {
		if taken, _ := l.append(msgOf(10), false); !taken {
			t.Fatal("refused within the budget")
		}
	}
	l.After(2)
	// The budget is full, but two events were read already: they make room.
	if taken, _ := l.append(msgOf(10), false); !taken {
		t.Fatal("a read event kept for a reconnection crowded out a new one")
	}
	if taken, _ := l.append(msgOf(10), false); !taken {
		t.Fatal("the second read event did not make room")
	}
	if taken, _ := l.append(msgOf(10), false); taken {
		t.Fatal("took a message over the budget with nothing read to give up")
	}
}
