package ratelog

import "testing"

func TestLimiterHoldsBackPastTheBurstAndCounts(t *testing.T) {
	// A rate so low that no token comes back during the test.
	l := New(1, 3)
	for i := range 3 {
		if ok, n := l.Allow(); !ok || n != 0 {
			t.Fatalf("line %d of the burst: ok=%v suppressed=%d", i, ok, n)
		}
	}
	for range 5 {
		if ok, _ := l.Allow(); ok {
			t.Fatal("a line past the burst was allowed")
		}
	}
	if n := l.Flush(); n != 5 {
		t.Fatalf("Flush = %d, want 5", n)
	}
	if n := l.Flush(); n != 0 {
		t.Fatalf("second Flush = %d, want 0", n)
	}
}

func TestLimiterReportsSuppressedOnTheNextAllowedLine(t *testing.T) {
	l := New(1, 1)
	l.Allow()
	l.Allow()
	l.Allow()
	l.last = l.last.Add(-2e9) // two seconds pass
	ok, n := l.Allow()
	if !ok || n != 2 {
		t.Fatalf("after the refill: ok=%v suppressed=%d, want true 2", ok, n)
	}
}

func TestNilAndUnlimited(t *testing.T) {
	var l *Limiter
	if ok, _ := l.Allow(); !ok {
		t.Fatal("nil limiter refused")
	}
	u := New(0, 0)
	for range 1000 {
		if ok, _ := u.Allow(); !ok {
			t.Fatal("unlimited limiter refused")
		}
	}
}
