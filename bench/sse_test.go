package bench

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func readAllEvents(t *testing.T, stream string, maxEvent int) ([]sseEvent, error) {
	t.Helper()
	r := newSSEReader(strings.NewReader(stream), maxEvent)
	var evs []sseEvent
	for {
		ev, err := r.next()
		if err != nil {
			return evs, err
		}
		evs = append(evs, ev)
	}
}

func TestSSEReader(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		want   []sseEvent
	}{
		{
			name:   "one message event",
			stream: "event: message\ndata: {\"id\":1}\n\n",
			want:   []sseEvent{{name: "message", data: []byte(`{"id":1}`)}},
		},
		{
			name:   "priming event with empty data is skipped",
			stream: "id: 0\ndata:\n\nid: 1\ndata: x\n\n",
			want:   []sseEvent{{id: "1", data: []byte("x")}},
		},
		{
			name:   "data lines join with a newline",
			stream: "data: a\ndata: b\ndata:c\n\n",
			want:   []sseEvent{{data: []byte("a\nb\nc")}},
		},
		{
			name:   "CRLF line ends",
			stream: "event: message\r\ndata: y\r\n\r\n",
			want:   []sseEvent{{name: "message", data: []byte("y")}},
		},
		{
			name:   "comments, retry and unknown fields are passed over",
			stream: ": keep-alive\nretry: 100\nfoo: bar\ndata: z\n\n",
			want:   []sseEvent{{data: []byte("z")}},
		},
		{
			name:   "only one space after the colon is dropped",
			stream: "data:  two\n\n",
			want:   []sseEvent{{data: []byte(" two")}},
		},
		{
			name:   "an event without its closing blank line is dropped",
			stream: "data: whole\n\ndata: cut",
			want:   []sseEvent{{data: []byte("whole")}},
		},
		{
			name:   "a long data line",
			stream: "data: " + strings.Repeat("x", 200<<10) + "\n\n",
			want:   []sseEvent{{data: []byte(strings.Repeat("x", 200<<10))}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAllEvents(t, tt.stream, 1<<20)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("stream ended with %v, want EOF", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d events, want %d: %q", len(got), len(tt.want), got)
			}
			for i := range got {
				g, w := got[i], tt.want[i]
				if g.name != w.name || g.id != w.id || string(g.data) != string(w.data) {
					t.Errorf("event %d = {%q %q %.40q}, want {%q %q %.40q}", i, g.name, g.id, g.data, w.name, w.id, w.data)
				}
			}
		})
	}
}

func TestSSEReaderCap(t *testing.T) {
	for _, stream := range []string{
		"data: " + strings.Repeat("x", 5000) + "\n\n",                     // one long line
		strings.Repeat("data: "+strings.Repeat("x", 600)+"\n", 10) + "\n", // many short ones
	} {
		_, err := readAllEvents(t, stream, 4096)
		if !errors.Is(err, errTooLarge) {
			t.Errorf("event over the cap: got %v, want errTooLarge", err)
		}
	}
}
