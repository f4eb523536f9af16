package session

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/jsonrpc"
)

// A reader that reaches the end of a reply after a newer connection asked
// for it does not end the reply: its client may not have what it sent, so
// the newcomer resumes and gets the end too.
func TestAReaderAskedToLeaveDoesNotFinishTheReply(t *testing.T) {
	opts := sessOptions
	opts.Retention = time.Minute
	s := sessStartWith(t, opts, Streamable, responder)

	ex, err := s.Send(t.Context(), []jsonrpc.Message{sessMsg(t, `{"jsonrpc":"2.0","id":"r","method":"ping"}`)})
	if err != nil {
		t.Fatal(err)
	}
	seat := s.Kicked(ex)
	if got := sessCollect(t, ex); len(got) != 1 {
		t.Fatalf("the reply: %d messages, want its response", len(got))
	}

	// A newer connection asks for the reply before the first reader says
	// it is done.
	type resumed struct {
		ex  *Exchange
		err error
	}
	newcomer := make(chan resumed, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ex, _, err := s.Resume(ctx, ex.Key())
		newcomer <- resumed{ex, err}
	}()
	select {
	case <-seat:
	case <-time.After(30 * time.Second):
		t.Fatal("the resume did not ask the first reader to leave")
	}
	s.Finished(ex, seat)

	r := <-newcomer
	if r.err != nil {
		t.Fatalf("resuming a reply whose reader was asked to leave: %v", r.err)
	}
	evs, _, err := r.ex.Events().After(0)
	if err != nil || len(evs) != 1 || !evs[0].Response {
		t.Fatalf("the newcomer read %d events (%v), want the response", len(evs), err)
	}
	if _, _, err = r.ex.Events().After(evs[0].ID); !errors.Is(err, io.EOF) {
		t.Fatalf("after the response: %v, want the end", err)
	}
}
