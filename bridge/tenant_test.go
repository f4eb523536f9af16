package bridge_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/bridge"
	"github.com/mcpwrap/mcpwrap/internal/testkit"
)

// tally is an Observer that remembers what it heard.
type tally struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *tally) add(key string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[string]int{}
	}
	o.n[key]++
}

func (o *tally) get(key string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[key]
}

func (o *tally) StatelessServed(era, owner string)    { o.add("served " + era + " " + owner) }
func (o *tally) StatelessRefused(owner, limit string) { o.add("refused " + owner + " " + limit) }
func (o *tally) StatelessExpired(owner string)        { o.add("expired " + owner) }

// as is r sent by tenant.
func as(tenant string, r bridge.Request) bridge.Request {
	r.Tenant = tenant
	return r
}

// park starts a call of tenant's that the fake child parks, asking for
// sampling, and returns its requestState and input key.
func park(t *testing.T, b *bridge.Bridge, tenant string, id int) (state, key string) {
	t.Helper()
	first := serve(t, b, as(tenant, req(t, id, "tools/call", map[string]any{"name": "ask"}, `{"sampling":{}}`)))
	if first.Result.ResultType != "input_required" || first.Result.RequestState == "" {
		t.Fatalf("%s's call was not parked: %+v", tenant, first)
	}
	for k := range first.Result.InputRequests {
		key = k
	}
	return first.Result.RequestState, key
}

// sampled is the client's answer to the fake child's sampling request.
func sampled(key string) map[string]any {
	return map[string]any{key: map[string]any{"role": "assistant", "model": "m", "content": map[string]any{"type": "text", "text": "x"}}}
}

func TestATenantAtItsLimitIsRefusedWhileAnotherIsServed(t *testing.T) {
	obs := &tally{}
	b := newBridge(t, fake(), func(o *bridge.Options) {
		o.Era = bridge.EraLegacy
		o.MaxChildren = 4
		o.MaxPerTenant = 1
		o.QueueTimeout = 300 * time.Millisecond
		o.Observer = obs
	})
	// A parked call keeps its child: it counts against its tenant.
	park(t, b, "a", 1)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := b.Serve(ctx, as("a", req(t, 2, "tools/call", map[string]any{"name": "caps"}, `{"sampling":{}}`)), func([]byte) error { return nil })
	if !errors.Is(err, bridge.ErrTenantBusy) || !errors.Is(err, bridge.ErrBusy) {
		t.Fatalf("a's second call with a's only child parked: %v, want ErrTenantBusy (an ErrBusy) after the queue timeout", err)
	}
	// The same with other capabilities, which need a pool of their own.
	_, err = b.Serve(ctx, as("a", req(t, 3, "tools/call", map[string]any{"name": "caps"}, `{}`)), func([]byte) error { return nil })
	if !errors.Is(err, bridge.ErrTenantBusy) {
		t.Errorf("a's call in another pool: %v, want ErrTenantBusy", err)
	}
	if n := obs.get("refused a tenant"); n != 2 {
		t.Errorf("%d refusals of a at its own limit counted, want 2", n)
	}

	// Another tenant has room of its own.
	for i := range 3 {
		resp := serve(t, b, as("b", req(t, 10+i, "tools/call", map[string]any{"name": "caps"}, `{"sampling":{}}`)))
		if resp.Error != nil || len(resp.Result.Content) != 1 {
			t.Fatalf("b's call %d while a is at its limit: %+v", i, resp)
		}
	}
	if n := obs.get("served legacy b"); n != 3 {
		t.Errorf("%d of b's requests counted as served, want 3", n)
	}
	c := b.Census()
	if c.Era != "legacy" || c.Parked != 1 || c.Idle != 1 || c.Busy != 0 || c.Starting != 0 || c.Waiting != 0 {
		t.Errorf("census %+v, want a's child parked and b's idle", c)
	}
}

func TestATenantAtItsLimitWaitsForItsOwnChild(t *testing.T) {
	b := newBridge(t, fake(), func(o *bridge.Options) {
		o.Era = bridge.EraLegacy
		o.MaxPerTenant = 1
		o.QueueTimeout = time.Minute
	})
	state, key := park(t, b, "a", 1)

	// A second call of a's waits for the child its first call holds.
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := b.Serve(ctx, as("a", req(t, 2, "tools/call", map[string]any{"name": "caps"}, `{"sampling":{}}`)), func([]byte) error { return nil })
		done <- result{out, err}
	}()
	testkit.Eventually(t, "a's second call to wait", func() bool { return b.Census().Waiting == 1 })
	select {
	case r := <-done:
		t.Fatalf("a's second call did not wait: %s %v", r.out, r.err)
	default:
	}
	if n, _ := b.Stats(); n != 1 {
		t.Errorf("%d children while a is at its limit of 1", n)
	}

	// The first call ends and gives its child back to the waiting one.
	resp := serve(t, b, as("a", req(t, 3, "tools/call", map[string]any{"name": "ask", "requestState": state, "inputResponses": sampled(key)}, `{"sampling":{}}`)))
	if resp.Error != nil || len(resp.Result.Content) != 1 {
		t.Fatalf("the parked call's retry: %+v", resp)
	}
	r := <-done
	if r.err != nil || !strings.Contains(string(r.out), `"text":"{\"sampling\":{}}"`) {
		t.Errorf("the waiting call: %s %v", r.out, r.err)
	}
	if n, _ := b.Stats(); n != 1 {
		t.Errorf("%d children after a's calls, want the one a may have", n)
	}
}

// TestATenantAtItsLimitTradesAnIdleChildForAnother: an idle child of a
// tenant's in a pool its request cannot use is stopped to make room, as the
// total limit does across tenants.
func TestATenantAtItsLimitTradesAnIdleChildForAnother(t *testing.T) {
	b := newBridge(t, fake(), func(o *bridge.Options) {
		o.Era = bridge.EraLegacy
		o.MaxPerTenant = 1
		o.QueueTimeout = time.Minute
	})
	for i, caps := range []string{`{}`, `{"sampling":{}}`, `{}`} {
		resp := serve(t, b, as("a", req(t, i, "tools/call", map[string]any{"name": "caps"}, caps)))
		if len(resp.Result.Content) != 1 || resp.Result.Content[0].Text != caps {
			t.Fatalf("a's call with %s: %+v", caps, resp)
		}
	}
	testkit.Eventually(t, "one child left", func() bool { n, _ := b.Stats(); return n == 1 })
}

func TestAParkedCallThatExpiresIsCounted(t *testing.T) {
	obs := &tally{}
	b := newBridge(t, fake(), func(o *bridge.Options) {
		o.Era = bridge.EraLegacy
		o.StateTTL = 100 * time.Millisecond
		o.Observer = obs
	})
	park(t, b, "a", 1)
	testkit.Eventually(t, "the parked call to expire", func() bool { return obs.get("expired a") == 1 })
	testkit.Eventually(t, "its child to come free", func() bool {
		c := b.Census()
		return c.Parked == 0 && c.Idle == 1
	})
}
