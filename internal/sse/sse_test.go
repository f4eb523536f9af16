package sse

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func readAll(t *testing.T, r io.Reader, maxEvent int) ([]Event, *Reader, error) {
	t.Helper()
	er := NewReader(r, maxEvent)
	var evs []Event
	for range 1000 {
		ev, err := er.Next()
		if err != nil {
			return evs, er, err
		}
		evs = append(evs, ev)
	}
	t.Fatal("no end after 1000 events")
	return nil, nil, nil
}

func TestReader(t *testing.T) {
	long := strings.Repeat("x", 200<<10)
	tests := []struct {
		name   string
		stream string
		want   []Event
		err    error
	}{
		{"one message event", "event: message\ndata: {\"id\":1}\n\n", []Event{{Name: "message", Data: []byte(`{"id":1}`)}}, io.EOF},
		{"priming event with empty data is not returned", "id: 0\ndata:\n\nid: 1\ndata: x\n\n", []Event{{ID: "1", Data: []byte("x")}}, io.EOF},
		{"the last id goes with later events", "id: 7\ndata: a\n\ndata: b\n\n", []Event{{ID: "7", Data: []byte("a")}, {ID: "7", Data: []byte("b")}}, io.EOF},
		{"data lines join with a newline", "data: a\ndata: b\ndata:c\n\n", []Event{{Data: []byte("a\nb\nc")}}, io.EOF},
		{"CRLF line ends", "event: message\r\ndata: y\r\n\r\n", []Event{{Name: "message", Data: []byte("y")}}, io.EOF},
		{"lone CR line ends", "event: endpoint\rdata: /m?s=1\r\r", []Event{{Name: "endpoint", Data: []byte("/m?s=1")}}, io.EOF},
		{"comments, retry and unknown fields are passed over", ": keep-alive\nretry: 100\nfoo: bar\ndata: z\n\n", []Event{{Data: []byte("z")}}, io.EOF},
		{"only one space after the colon is dropped", "data:  two\n\n", []Event{{Data: []byte(" two")}}, io.EOF},
		{"an event cut off by the end of the stream is dropped", "data: whole\n\ndata: cut", []Event{{Data: []byte("whole")}}, io.ErrUnexpectedEOF},
		{"a long data line", "data: " + long + "\n\n", []Event{{Data: []byte(long)}}, io.EOF},
	}
	for _, tt := range tests {
		for _, split := range []bool{false, true} {
			t.Run(tt.name, func(t *testing.T) {
				var r io.Reader = strings.NewReader(tt.stream)
				if split {
					r = iotest.OneByteReader(r)
				}
				got, _, err := readAll(t, r, 1<<20)
				if !errors.Is(err, tt.err) {
					t.Errorf("stream ended with %v, want %v", err, tt.err)
				}
				if len(got) != len(tt.want) {
					t.Fatalf("got %d events, want %d: %q", len(got), len(tt.want), got)
				}
				for i := range got {
					g, w := got[i], tt.want[i]
					if g.Name != w.Name || g.ID != w.ID || string(g.Data) != string(w.Data) {
						t.Errorf("event %d = {%q %q %.40q}, want {%q %q %.40q}", i, g.Name, g.ID, g.Data, w.Name, w.ID, w.Data)
					}
				}
			})
		}
	}
}

func TestReaderCap(t *testing.T) {
	for _, stream := range []string{
		"data: " + strings.Repeat("x", 5000) + "\n\n",                     // one long line
		strings.Repeat("data: "+strings.Repeat("x", 600)+"\n", 10) + "\n", // many short ones
	} {
		_, _, err := readAll(t, strings.NewReader(stream), 4096)
		if !errors.Is(err, ErrTooLong) {
			t.Errorf("event over the cap: got %v, want ErrTooLong", err)
		}
	}
}

// TestResume: the id and retry a stream gave survive a reconnection, and
// become the next request's Last-Event-ID and wait.
func TestResume(t *testing.T) {
	er := NewReader(strings.NewReader(": hi\nid: 1\ndata:\n\nretry: 1500\nid: 2\ndata: {}\n\n"), 1024)
	defer er.Release()
	h := http.Header{}
	if er.ResumeHeader(h) || h.Get("Last-Event-ID") != "" {
		t.Error("Last-Event-ID set before any id")
	}
	if got := er.Retry(time.Second, time.Minute); got != time.Second {
		t.Errorf("Retry before retry: = %v, want the fallback", got)
	}
	if _, err := er.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := er.Next(); err != io.EOF {
		t.Fatalf("err = %v, want io.EOF", err)
	}
	er.Reset(strings.NewReader("id: 3\ndata: x\n\nretry: 99999999\n\n"))
	if id, ok := er.LastEventID(); !ok || id != "2" {
		t.Errorf("after Reset LastEventID = %q, %v; want 2", id, ok)
	}
	if got := er.Retry(time.Second, time.Minute); got != 1500*time.Millisecond {
		t.Errorf("Retry = %v, want 1.5s", got)
	}
	if !er.ResumeHeader(h) || h.Get("Last-Event-ID") != "2" {
		t.Errorf("Last-Event-ID = %q, want 2", h.Get("Last-Event-ID"))
	}
	ev, err := er.Next()
	if err != nil || ev.ID != "3" {
		t.Fatalf("event %+v, %v", ev, err)
	}
	if _, err := er.Next(); err != io.EOF {
		t.Fatalf("err = %v, want io.EOF", err)
	}
	if got := er.Retry(time.Second, time.Minute); got != time.Minute {
		t.Errorf("Retry = %v, want the ceiling", got)
	}
	// An empty id clears it: nothing to resume from.
	er.Reset(strings.NewReader("id\ndata: y\n\n"))
	if _, err := er.Next(); err != nil {
		t.Fatal(err)
	}
	if id, ok := er.LastEventID(); ok || id != "" {
		t.Errorf("after an empty id LastEventID = %q, %v", id, ok)
	}
}

// TestWriterRoundTrip: what the Writer writes, the Reader reads back.
func TestWriterRoundTrip(t *testing.T) {
	rec := httptest.NewRecorder()
	w := Start(rec)
	if ct := rec.Header().Get("Content-Type"); ct != "text/event-stream" || !rec.Flushed {
		t.Errorf("Content-Type %q, flushed %v: want the headers out at once", ct, rec.Flushed)
	}
	big := bytes.Repeat([]byte("y"), 100<<10)
	for _, err := range []error{
		w.Comment(),
		w.Retry(2 * time.Second),
		w.Event(Event{Name: "endpoint", Data: []byte("/message?sessionId=1")}),
		w.Event(Event{ID: "42", Data: big}),
		w.Event(Event{Data: []byte(`{"jsonrpc":"2.0"}`)}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, er, err := readAll(t, rec.Body, 1<<20)
	if err != io.EOF {
		t.Fatalf("err = %v", err)
	}
	if len(got) != 3 || got[0].Name != "endpoint" || string(got[0].Data) != "/message?sessionId=1" ||
		got[1].ID != "42" || !bytes.Equal(got[1].Data, big) || string(got[2].Data) != `{"jsonrpc":"2.0"}` {
		t.Errorf("read back %.200q", got)
	}
	if er.Retry(0, time.Hour) != 2*time.Second {
		t.Errorf("retry read back as %v", er.Retry(0, time.Hour))
	}
}

// BenchmarkRead reads a stream of message events, as the shim and the
// benchmark tool do.
func BenchmarkRead(b *testing.B) {
	for _, size := range []int{200, 1 << 20} {
		ev := "event: message\nid: 7\ndata: " + strings.Repeat("x", size) + "\n\n"
		stream := []byte(strings.Repeat(ev, 16))
		name := "200B"
		if size > 200 {
			name = "1MiB"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			for b.Loop() {
				r := NewReader(bytes.NewReader(stream), 64<<20)
				for range 16 {
					if _, err := r.Next(); err != nil {
						b.Fatal(err)
					}
				}
				r.Release()
			}
		})
	}
}

// A JSON-RPC line may hold a bare CR as whitespace between tokens; to a
// reader of event streams that ends a line. The writer splits the data
// there into several data lines, so the event arrives whole, the breaks
// read back as LF, and the JSON stays the same message.
func TestWriterSplitsDataAtLineBreaks(t *testing.T) {
	rec := httptest.NewRecorder()
	w := Start(rec)
	msg := "{\"jsonrpc\":\"2.0\",\r\"id\":1,\r\r\"result\":{}\r}"
	if err := w.Event(Event{Name: "message", Data: []byte(msg)}); err != nil {
		t.Fatal(err)
	}
	if err := w.Event(Event{Name: "message", Data: []byte(`{"jsonrpc":"2.0","id":2,"result":{}}`)}); err != nil {
		t.Fatal(err)
	}
	got, _, err := readAll(t, rec.Body, 1<<20)
	if err != io.EOF {
		t.Fatalf("err = %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("read %d events, want 2: %q", len(got), got)
	}
	if want := "{\"jsonrpc\":\"2.0\",\n\"id\":1,\n\n\"result\":{}\n}"; string(got[0].Data) != want {
		t.Errorf("first event %q, want %q", got[0].Data, want)
	}
	if string(got[1].Data) != `{"jsonrpc":"2.0","id":2,"result":{}}` {
		t.Errorf("second event %q", got[1].Data)
	}
}
