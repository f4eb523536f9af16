package session

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/child"
	"github.com/mcpwrap/mcpwrap/internal/testkit"
	"github.com/mcpwrap/mcpwrap/jsonrpc"
	"github.com/rs/zerolog"
)

// sessQueueBytes is the session byte budget of sessStart: small, so that
// the tests reach it.
const sessQueueBytes = 64 << 10

// sessOptions are small bounds, so that the tests reach them.
var sessOptions = Options{
	Child:    child.Options{MaxLine: 4096, CloseGrace: 200 * time.Millisecond, TermGrace: 300 * time.Millisecond},
	MaxQueue: 8,
}

// sessStart runs script under /bin/sh as the child of a new Streamable HTTP
// session.
func sessStart(t testing.TB, script string, args ...string) *Session {
	t.Helper()
	return sessStartOver(t, Streamable, script, args...)
}

// sessStartOver is sessStart for a session of transport tr.
func sessStartOver(t testing.TB, tr Transport, script string, args ...string) *Session {
	t.Helper()
	cmd := child.Command{Path: "/bin/sh", Args: append([]string{"-c", script, "sh"}, args...), Env: []string{"PATH=/usr/bin:/bin"}}
	return sessStartWith(t, sessOptions, tr, cmd)
}

// sessStartWith runs cmd as the child of a new session of transport tr with
// opts, closed (and checked to close) when the test ends.
func sessStartWith(t testing.TB, opts Options, tr Transport, cmd child.Command) *Session {
	t.Helper()
	c, err := child.Start(cmd, opts.Child, zerolog.Nop())
	if err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	s := newSession("test", Owner{}, c, opts, zerolog.Nop(), tr, nil, newBudget(sessQueueBytes, nil), nil)
	s.run()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("closing the session: %v", err)
		}
	})
	return s
}

func sessMsg(t testing.TB, line string) jsonrpc.Message {
	t.Helper()
	m, err := jsonrpc.Parse([]byte(line))
	if err != nil {
		t.Fatalf("parsing %s: %v", line, err)
	}
	return m
}

// readAll reads a log by cursor until it ends or limit passes, and returns
// what it read and how it ended (nil when limit passed).
func readAll(l *EventLog, limit time.Duration) ([]Outbound, error) {
	var out []Outbound
	var cursor int64
	deadline := time.After(limit)
	for {
		got, ready, err := l.After(cursor)
		for _, ev := range got {
			cursor = ev.ID
			out = append(out, ev.Outbound)
		}
		if err != nil {
			return out, err
		}
		select {
		case <-ready:
		case <-deadline:
			return out, nil
		}
	}
}

// sessCollect reads an exchange until its last response, within a bound.
func sessCollect(t testing.TB, ex *Exchange) []Outbound {
	t.Helper()
	out, err := readAll(ex.Events(), 10*time.Second)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("exchange not finished within 10s (%v); got %d messages", err, len(out))
	}
	return out
}

// sessWaitDone fails the test unless the session ends within a generous
// bound.
func sessWaitDone(t testing.TB, s *Session) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the session did not end within 30s")
	}
}

// sessFlood is a child that writes the same notification for the session's
// stream as fast as it can and never reads.
const sessFlood = `exec yes '{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"u"}}'`

// TestSessionEndsWhenItsSSEClientLeavesAFullStream: an HTTP+SSE client that
// stops reading, lets the stream's queue fill and then hangs up must not keep
// the router — the one goroutine that can end the session — waiting for a
// reader that is gone.
func TestSessionEndsWhenItsSSEClientLeavesAFullStream(t *testing.T) {
	s := sessStartOver(t, HTTPSSE, sessFlood)
	_, _, release, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the stream's queue to fill", func() bool { return s.stream.Len() == sessOptions.MaxQueue })
	// What the door does when the client hangs up.
	release()
	s.End()
	sessWaitDone(t, s)
}

// TestSessionClosesWhileItsStreamReaderStalls: a stream reader that is still
// there but reads nothing holds neither the child (the stream's oldest
// messages fall off) nor a Close.
func TestSessionClosesWhileItsStreamReaderStalls(t *testing.T) {
	for _, tr := range []Transport{Streamable, HTTPSSE} {
		t.Run(tr.String(), func(t *testing.T) {
			s := sessStartOver(t, tr, sessFlood)
			_, _, release, err := s.Listen()
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			testkit.Eventually(t, "the stream's queue to fill", func() bool { return s.stream.Len() == sessOptions.MaxQueue })
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			if err := s.Close(ctx); err != nil {
				t.Fatalf("Close with a stalled stream reader: %v", err)
			}
		})
	}
}

// TestSessionClosesWhileAnExchangeReaderStalls: the same for the reader of a
// request's exchange, which the child floods with progress.
func TestSessionClosesWhileAnExchangeReaderStalls(t *testing.T) {
	s := sessStart(t, `read -r line; exec yes '{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"tok","progress":1}}'`)
	ex, err := s.Send(t.Context(), []jsonrpc.Message{sessMsg(t, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"progressToken":"tok"}}}`)})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the exchange's reader to be cut", func() bool {
		select {
		case <-ex.detached:
			return true
		default:
			return false
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close with a stalled exchange reader: %v", err)
	}
	// The exchange is finished too: its reader is not left waiting.
	if _, err := readAll(ex.Events(), 10*time.Second); !errors.Is(err, ErrLagged) {
		t.Errorf("the stalled exchange ended with %v, want ErrLagged", err)
	}
}

func TestSessionEndAnswersRequestsInFlight(t *testing.T) {
	// The child reads the request, then dies without answering.
	s := sessStart(t, `read -r line; echo dying >&2; exit 3`)
	ex, err := s.Send(t.Context(), []jsonrpc.Message{sessMsg(t, `{"jsonrpc":"2.0","id":"client-1","method":"tools/call"}`)})
	if err != nil {
		t.Fatal(err)
	}
	got := sessCollect(t, ex)
	if len(got) != 1 || !got[0].Response || !got[0].Error {
		t.Fatalf("got %+v, want one error response", got)
	}
	m := sessMsg(t, string(got[0].Data))
	if string(m.ID) != `"client-1"` {
		t.Errorf("answer id %s, want the client's own", m.ID)
	}
	if !strings.Contains(string(got[0].Data), "exit status 3") || !strings.Contains(string(got[0].Data), "-32000") {
		t.Errorf("answer %s, want code -32000 naming exit status 3", got[0].Data)
	}
	<-s.Done()
	if !errors.Is(s.Err(), ErrEnded) {
		t.Errorf("Err() = %v, want ErrEnded", s.Err())
	}
	if _, err := s.Send(t.Context(), []jsonrpc.Message{sessMsg(t, `{"jsonrpc":"2.0","id":2,"method":"ping"}`)}); !errors.Is(err, ErrEnded) {
		t.Errorf("Send after the end: %v, want ErrEnded", err)
	}
}

func TestSessionRemapsIDsAndCancellations(t *testing.T) {
	// The child records what it reads, then answers the first request
	// with the id it was given.
	file := filepath.Join(t.TempDir(), "stdin")
	s := sessStart(t, `cat > "$1"`, file)
	_, err := s.Send(t.Context(), []jsonrpc.Message{
		sessMsg(t, `{"jsonrpc":"2.0","id":"abc","method":"tools/call","params":{"name":"x"}}`),
		sessMsg(t, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"abc","reason":"r"}}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}` + "\n" +
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1,"reason":"r"}}` + "\n"
	var got []byte
	for i := 0; i < 200; i++ {
		got, _ = os.ReadFile(file)
		if len(got) >= len(want) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if string(got) != want {
		t.Errorf("the child read\n%s\nwant\n%s", got, want)
	}
}

// sessFuzzChild waits for the test's request, prints the fuzzed output in
// $1 (and a newline, so that the output cannot swallow what follows), then
// a notification carrying the mark in $2, then answers the request by
// turning it into a response, and reads on until its stdin closes. cat
// runs under the shell rather than in its place: with exec, the shell's
// stdout would close for good, and a child that closes its stdout has ended
// its session, however long it goes on reading.
const sessFuzzChild = `IFS= read -r first
cat "$1"
printf '\n{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{"mark":"%s"}}\n' "$2"
printf '%s\n' "$first" | sed 's/"method":"ping"/"result":{}/'
cat >/dev/null`

// FuzzRoute feeds arbitrary child output through a real session with a
// real child while one request is in flight. Whatever the child prints,
// the request gets exactly one answer, with the client's id; everything
// delivered is valid JSON-RPC; and the session ends cleanly.
//
//	go test ./session -run '^$' -fuzz '^FuzzRoute$' -fuzztime 60s
func FuzzRoute(f *testing.F) {
	for _, seed := range []string{
		``,
		`not json at all`,
		`{"jsonrpc":"2.0","id":1,"result":{"early":true}}`,
		`{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"no"}}`,
		`{"jsonrpc":"2.0","id":2,"result":{}}`,
		`{"jsonrpc":"2.0","id":"1","result":{}}`,
		`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1}}`,
		`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}`,
		`{"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}}`,
		"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\r\n{\"jsonrpc\":\"2.0\",\"method\":\"x\"}",
		`[{"jsonrpc":"2.0","id":1,"result":{}}]`,
		`{"jsonrpc":"2.0","id":1,"result":{}}{"jsonrpc":"2.0","id":1,"result":{}}`,
		`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse"}}`,
		"\x00\xff\xfe\n\n\n",
		strings.Repeat("x", 5000),
		strings.Repeat(`{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"u"}}`+"\n", 40),
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, out []byte) {
		file, err := os.CreateTemp(dir, "out")
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(file.Name())
		if _, err := file.Write(out); err != nil {
			t.Fatal(err)
		}
		file.Close()

		// The mark is new each run, so that no fuzzed output can forge it.
		mark := rand.Text()
		s := sessStart(t, sessFuzzChild, file.Name(), mark)
		ex, err := s.Send(t.Context(), []jsonrpc.Message{sessMsg(t, `{"jsonrpc":"2.0","id":"c-1","method":"ping"}`)})
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		responses := 0
		for _, m := range sessCollect(t, ex) {
			msg, err := jsonrpc.Parse(m.Data)
			if err != nil {
				t.Fatalf("delivered a message that is not JSON-RPC: %q: %v", m.Data, err)
			}
			if m.Response != (msg.Kind == jsonrpc.Response) {
				t.Errorf("Response flag %v for %s", m.Response, m.Data)
			}
			if !m.Response {
				continue
			}
			responses++
			if string(msg.ID) != `"c-1"` {
				t.Errorf("response id %s, want the client's id", msg.ID)
			}
			if m.Error != msg.IsError {
				t.Errorf("Error flag %v for %s", m.Error, m.Data)
			}
		}
		if responses != 1 {
			t.Errorf("%d responses to one request", responses)
		}
		// The mark follows the fuzzed output: once it is on the stream, the
		// router has read all of that output, so whatever it could do to the
		// session is done. (A forged early answer ends the exchange before
		// the router gets there.)
		testkit.Eventually(t, "the child's mark on the stream, or the session's end", func() bool {
			select {
			case <-s.Done():
				return true
			default:
			}
			held, _, _ := s.stream.After(0)
			return len(held) > 0 && strings.Contains(string(held[len(held)-1].Data), mark)
		})
		// Whatever is left for the stream stays within its bound.
		if n := s.stream.Len(); n > sessOptions.MaxQueue {
			t.Errorf("%d messages queued, bound %d", n, sessOptions.MaxQueue)
		}
		queued, _, _ := s.stream.After(0)
		for _, ev := range queued {
			if _, err := jsonrpc.Parse(ev.Data); err != nil {
				t.Errorf("queued a message that is not JSON-RPC: %q", ev.Data)
			}
		}
		select {
		case <-s.Done():
			// The child reads on with its stdout open: only a line over the
			// limit can have ended the session.
			if !errors.Is(s.Err(), child.ErrLineTooLong) {
				t.Errorf("session ended by output that fits: %v", s.Err())
			}
		default:
		}
	})
}

// A reply whose reader left waits for a resume within the retention time,
// and is discarded after it. A resume asks a reader still seated to leave.
func TestSessionKeepsALeftReplyForTheRetentionTime(t *testing.T) {
	s := sessStart(t, `while read -r line; do :; done`) // never answers
	send := func(id int) *Exchange {
		t.Helper()
		ex, err := s.Send(t.Context(), []jsonrpc.Message{sessMsg(t, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call"}`, id))})
		if err != nil {
			t.Fatal(err)
		}
		return ex
	}

	s.retention = time.Hour
	ex := send(1)
	first := s.Kicked(ex)
	s.Park(ex, first)
	again, seat, err := s.Resume(t.Context(), ex.Key())
	if err != nil || again != ex {
		t.Fatalf("Resume after Park = %v, %v; want the exchange", again, err)
	}
	// A second resume while this reader sits asks it to leave; it does not
	// here, so the resume gives up at its deadline.
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, _, err := s.Resume(ctx, ex.Key()); !errors.Is(err, ErrStreamBusy) {
		t.Fatalf("Resume while read = %v, want ErrStreamBusy", err)
	}
	select {
	case <-seat:
	default:
		t.Fatal("the seated reader was not asked to leave")
	}
	s.Park(ex, first) // a reader that was replaced has no say any more
	if _, _, err := s.Resume(ctx, ex.Key()); !errors.Is(err, ErrStreamBusy) {
		t.Fatalf("Resume after a stale Park = %v, want ErrStreamBusy", err)
	}

	s.retention = 50 * time.Millisecond
	left := send(2)
	s.Park(left, s.Kicked(left))
	testkit.Eventually(t, "the left reply to be discarded", func() bool {
		_, _, err := left.Events().After(0)
		return err != nil
	})
	if _, _, err := s.Resume(t.Context(), left.Key()); !errors.Is(err, ErrGone) {
		t.Errorf("Resume after the retention time = %v, want ErrGone", err)
	}
}

// A reader that has the last response of an exchange finds the exchange's
// end with it: there is no moment when the response is there but the end is
// not, when a reader that goes would leave a finished reply to be parked.
func TestSessionEndsAnExchangeWithItsLastResponse(t *testing.T) {
	s := sessStart(t, `i=0; while read -r line; do i=$((i+1)); echo "{\"jsonrpc\":\"2.0\",\"id\":$i,\"result\":{}}"; done`)
	for id := range 500 {
		ex, err := s.Send(t.Context(), []jsonrpc.Message{sessMsg(t, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"ping"}`, id))})
		if err != nil {
			t.Fatal(err)
		}
		var cursor int64
		for cursor == 0 {
			got, ready, err := ex.Events().After(0)
			if err != nil {
				t.Fatalf("exchange %d ended before its response: %v", id, err)
			}
			if len(got) > 0 {
				cursor = got[len(got)-1].ID
				break
			}
			select {
			case <-ready:
			case <-time.After(10 * time.Second):
				t.Fatalf("no response to exchange %d within 10s", id)
			}
		}
		if _, _, err := ex.Events().After(cursor); !errors.Is(err, io.EOF) {
			t.Fatalf("exchange %d: after its last response After = %v, want io.EOF", id, err)
		}
	}
}
