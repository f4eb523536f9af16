package wrap

import (
	"bytes"
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
			sse := startSSE(w, newWriteGuard(w, 0))
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				w.Body.Reset()
				if err := sse.event("message", data); err != nil {
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
