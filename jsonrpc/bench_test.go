package jsonrpc

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

const mib = 1 << 20

// benchInputs are the shapes that matter: a typical small request, a large
// tools/call (a file's text as one argument string, with escapes) and a large
// response whose bytes are many small structured records.
var benchInputs = func() []struct {
	name string
	b    []byte
} {
	small := `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"get_weather","arguments":{"city":"Paris"},"_meta":{"progressToken":"tok-42"}}}`

	var text strings.Builder
	line := `\tif err := run(ctx, os.Args[1:]); err != nil { fmt.Fprintf(os.Stderr, \"error: %v\\n\", err) } // caf\u00e9 ok\n`
	for text.Len() < mib {
		text.WriteString(line)
	}
	request := `{"jsonrpc":"2.0","id":"req-7","method":"tools/call","params":{"_meta":{"progressToken":7},"name":"write_file","arguments":{"path":"/src/main.go","content":"` + text.String() + `"}}}`

	var recs strings.Builder
	for i := 0; recs.Len() < mib; i++ {
		if i > 0 {
			recs.WriteByte(',')
		}
		recs.WriteString(`{"id":` + strconv.Itoa(i) + `,"name":"item-` + strconv.Itoa(i) + `","tags":["alpha","beta"],"score":` + strconv.Itoa(i%100) + `.25,"active":true,"owner":null}`)
	}
	response := `{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"see structured content"}],"structuredContent":{"items":[` + recs.String() + `]},"isError":false}}`

	return []struct {
		name string
		b    []byte
	}{
		{"small", []byte(small)},
		{"request-1MiB", []byte(request)},
		{"response-1MiB", []byte(response)},
	}
}()

func BenchmarkParse(b *testing.B) {
	for _, in := range benchInputs {
		b.Run(in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.b)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(in.b); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkJSONValid(b *testing.B) {
	for _, in := range benchInputs {
		b.Run(in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.b)))
			b.ReportAllocs()
			for b.Loop() {
				if !json.Valid(in.b) {
					b.Fatal("invalid")
				}
			}
		})
	}
}

func BenchmarkJSONUnmarshal(b *testing.B) {
	for _, in := range benchInputs {
		b.Run(in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.b)))
			b.ReportAllocs()
			for b.Loop() {
				var m map[string]any
				if err := json.Unmarshal(in.b, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkWithID(b *testing.B) {
	m, err := Parse(benchInputs[1].b)
	if err != nil {
		b.Fatal(err)
	}
	id := []byte(`"3f2a9c1e:req-7"`)
	b.SetBytes(int64(len(m.Raw)))
	b.ReportAllocs()
	for b.Loop() {
		_ = m.WithID(id)
	}
}

func BenchmarkProgressToken(b *testing.B) {
	for _, in := range benchInputs[:2] {
		m, err := Parse(in.b)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(in.name, func(b *testing.B) {
			b.SetBytes(int64(len(m.Params)))
			b.ReportAllocs()
			for b.Loop() {
				if ProgressToken(m.Params) == nil {
					b.Fatal("no token")
				}
			}
		})
	}
}

// BenchmarkSpeedup runs Parse and json.Valid alternately on the same input and
// reports how many times faster Parse is. Alternating puts both under the same
// machine load, so the ratio holds even where ns/op wanders.
func BenchmarkSpeedup(b *testing.B) {
	for _, in := range benchInputs {
		b.Run(in.name, func(b *testing.B) {
			// Repeat small inputs so the clock's own cost does not count.
			reps := max(1, 64<<10/len(in.b))
			var parse, valid time.Duration
			for b.Loop() {
				t0 := time.Now()
				for range reps {
					if _, err := Parse(in.b); err != nil {
						b.Fatal(err)
					}
				}
				t1 := time.Now()
				for range reps {
					if !json.Valid(in.b) {
						b.Fatal("invalid")
					}
				}
				parse += t1.Sub(t0)
				valid += time.Since(t1)
			}
			b.ReportMetric(float64(valid)/float64(parse), "x-json.Valid")
		})
	}
}
