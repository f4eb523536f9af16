package wrap

import (
	"bytes"
	"github.com/mcpwrap/mcpwrap/internal/sse"
	"net/http/httptest"
	"testing"
)

// BenchmarkSSEEvent writes one message event, as every streamed message
// costs: the framing and a flush.
func BenchmarkSSEEvent(b *testing.B) {
	for _, size := range []int{200, 1 << 20} {
		data := bytes.Repeat([]byte("x"), size)
		b.Run(sizeName(size), func(b *testing.B) {
			w := httptest.NewRecorder()
			events := sse.Start(w)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				w.Body.Reset()
				if err := events.Event(sse.Event{Name: "message", Data: data}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return "1MiB"
	}
	return "200B"
}
