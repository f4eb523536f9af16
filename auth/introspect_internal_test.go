package auth

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"
)

func TestIntrospectionCacheIsBounded(t *testing.T) {
	c := newIntrospectionCache(8, time.Hour)
	key := func(i int) [sha256.Size]byte { return sha256.Sum256(fmt.Append(nil, i)) }
	for i := range 100 {
		c.put(key(i), Principal{Subject: fmt.Sprint(i)}, nil, time.Time{})
		if n := len(c.entries); n > 8 {
			t.Fatalf("%d entries after %d puts, want at most 8", n, i+1)
		}
	}
	if p, ok, _ := c.get(key(99)); !ok || p.Subject != "99" {
		t.Errorf("the newest entry: %+v %v", p, ok)
	}

	// An answer is kept no longer than the token lives, nor than the TTL.
	c = newIntrospectionCache(8, time.Hour)
	c.put(key(1), Principal{}, nil, time.Now().Add(-time.Second))
	if _, ok, _ := c.get(key(1)); ok {
		t.Error("an expired token's answer was cached")
	}
	c = newIntrospectionCache(8, time.Nanosecond)
	c.put(key(2), Principal{}, nil, time.Time{})
	time.Sleep(time.Millisecond)
	if _, ok, _ := c.get(key(2)); ok {
		t.Error("an answer outlived the TTL")
	}
}
