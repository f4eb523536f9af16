package bridge

import (
	"errors"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/jsonrpc"
	"github.com/rs/zerolog"
)

func TestRequestStateSealing(t *testing.T) {
	now := time.Now()
	claims := stateClaims{Machine: "m1", Park: "p", Tenant: "t", Subject: "s", Request: "r", Expires: now.Add(time.Minute).UnixMilli()}
	a, err := newSealer("secret")
	if err != nil {
		t.Fatal(err)
	}
	state := a.seal(claims)
	if got, err := a.open(state, now); err != nil || got != claims {
		t.Fatalf("open(seal) = %+v, %v", got, err)
	}
	// Instances sharing the secret accept each other's states.
	b, _ := newSealer("secret")
	if _, err := b.open(state, now); err != nil {
		t.Errorf("another instance with the same secret: %v", err)
	}
	for what, s := range map[string]*sealer{"another secret": must(newSealer("other")), "a boot key": must(newSealer(""))} {
		if _, err := s.open(state, now); !errors.Is(err, ErrStateTampered) {
			t.Errorf("%s: %v, want ErrStateTampered", what, err)
		}
	}
	for _, bad := range []string{state + "x", "x" + state, "", "nodot", state[:len(state)-2]} {
		if _, err := a.open(bad, now); !errors.Is(err, ErrStateTampered) {
			t.Errorf("open(%q): %v, want ErrStateTampered", bad, err)
		}
	}
	// A payload changed and re-encoded without the key.
	forged := claims
	forged.Tenant = "mallory"
	payload := a.seal(forged)
	sig := state[len(state)-43:]
	if _, err := a.open(payload[:len(payload)-43]+sig, now); !errors.Is(err, ErrStateTampered) {
		t.Errorf("forged tenant: %v, want ErrStateTampered", err)
	}
	if _, err := a.open(state, now.Add(2*time.Minute)); !errors.Is(err, ErrStateExpired) {
		t.Errorf("after the deadline: %v, want ErrStateExpired", err)
	}
	if got, err := peek(state); err != nil || got.Machine != "m1" {
		t.Errorf("peek = %+v, %v", got, err)
	}
}

func must(s *sealer, err error) *sealer {
	if err != nil {
		panic(err)
	}
	return s
}

func TestRequestDigestIgnoresWhatChangesBetweenRounds(t *testing.T) {
	a := requestDigest("tools/call", []byte(`{"name":"x","arguments":{"a":1,"b":2},"_meta":{"k":1}}`))
	b := requestDigest("tools/call", []byte(`{"arguments":{"b":2,"a":1},"name":"x","requestState":"s","inputResponses":{"k":{}}}`))
	if a != b {
		t.Errorf("the rounds of one call digest differently")
	}
	if a == requestDigest("tools/call", []byte(`{"name":"y","arguments":{"a":1,"b":2}}`)) ||
		a == requestDigest("prompts/get", []byte(`{"name":"x","arguments":{"a":1,"b":2}}`)) {
		t.Errorf("different requests digest the same")
	}
}

func TestACallHoldsABoundedNumberOfBytesForItsClient(t *testing.T) {
	c := &call{k: &conn{log: zerolog.Nop()}, notes: make(chan []byte, noteQueue), asks: make(chan jsonrpc.Message, 64)}
	big := make([]byte, queueBytes/2)
	c.note(big)
	c.note(big)
	c.note([]byte("one byte too many"))
	if len(c.notes) != 2 {
		t.Fatalf("%d notes held, want 2: the budget is %d bytes", len(c.notes), queueBytes)
	}
	if c.ask(jsonrpc.Message{Raw: []byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}`)}) {
		t.Errorf("a request to the client was taken past the budget")
	}
	n := <-c.notes
	c.took(len(n))
	c.note([]byte("fits again"))
	if len(c.notes) != 2 {
		t.Errorf("after one was taken, %d notes held, want 2", len(c.notes))
	}
}
