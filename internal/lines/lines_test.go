package lines

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// readers hand the same bytes over in different pieces: line ends and
// CRLF pairs must be found wherever the reads split them.
var readers = map[string]func(string) io.Reader{
	"whole":    func(s string) io.Reader { return strings.NewReader(s) },
	"one byte": func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
	"halves":   func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) },
}

func readAll(t *testing.T, r io.Reader, opts Options, slice bool) ([]string, error) {
	t.Helper()
	lr := NewReader(r, opts)
	defer lr.Release()
	var got []string
	for range 10000 {
		var line []byte
		var err error
		if slice {
			line, err = lr.ReadSlice()
		} else {
			line, err = lr.ReadLine()
		}
		if errors.Is(err, ErrTooLong) {
			got = append(got, "<too long>")
			if opts.SkipTooLong {
				continue
			}
		}
		if err != nil {
			return got, err
		}
		got = append(got, string(line))
	}
	t.Fatal("no end after 10000 lines")
	return nil, nil
}

func TestLines(t *testing.T) {
	long := strings.Repeat("x", bufSize+100)
	huge := strings.Repeat("y", 3*longChunk+7)
	tests := []struct {
		name string
		in   string
		opts Options
		want []string
		err  error // after the lines
	}{
		{"LF and CRLF", "a\nb\r\n\nc", Options{Max: 10}, []string{"a", "b", "", "c"}, io.EOF},
		{"a CR inside a line is kept", "a\rb\n", Options{Max: 10}, []string{"a\rb"}, io.EOF},
		{"event stream ends", "a\rb\r\nc\n\r\rd", Options{Max: 10, CR: true}, []string{"a", "b", "c", "", "", "d"}, io.EOF},
		{"CR then LF across lines", "a\r\n\r\n", Options{Max: 10, CR: true}, []string{"a", ""}, io.EOF},
		{"exactly the cap", "12345\n123456\n", Options{Max: 5}, []string{"12345", "<too long>"}, ErrTooLong},
		{"too long is sticky", "123456\nok\n", Options{Max: 5}, []string{"<too long>"}, ErrTooLong},
		{"too long skipped", "123456\nok\n1234567890\r\nfine", Options{Max: 5, SkipTooLong: true}, []string{"<too long>", "ok", "<too long>", "fine"}, io.EOF},
		{"a CR counts toward the cap", "12345\r\n", Options{Max: 5}, []string{"<too long>"}, ErrTooLong},
		{"long lines", long + "\n" + huge + "\nend\n" + long, Options{Max: 1 << 20}, []string{long, huge, "end", long}, io.EOF},
		{"long line in an event stream", long + "\r" + huge + "\r\nend", Options{Max: 1 << 20, CR: true}, []string{long, huge, "end"}, io.EOF},
		{"long line over the cap, skipped", huge + "\nnext\n" + long + "x\n", Options{Max: bufSize + 50, SkipTooLong: true}, []string{"<too long>", "next", "<too long>"}, io.EOF},
		{"long line over the cap", long + "\n", Options{Max: bufSize + 50}, []string{"<too long>"}, ErrTooLong},
		{"empty", "", Options{Max: 5}, nil, io.EOF},
	}
	for _, tt := range tests {
		for rname, mk := range readers {
			for _, slice := range []bool{false, true} {
				t.Run(tt.name+"/"+rname, func(t *testing.T) {
					got, err := readAll(t, mk(tt.in), tt.opts, slice)
					if !errors.Is(err, tt.err) {
						t.Errorf("err = %v, want %v", err, tt.err)
					}
					if !slices.Equal(got, tt.want) {
						t.Errorf("lines %q, want %q", short(got), short(tt.want))
					}
				})
			}
		}
	}
}

func short(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		if len(l) > 20 {
			l = l[:10] + "…" + l[len(l)-5:] + " (" + string(rune('0'+len(l)%10)) + ")"
		}
		out[i] = l
	}
	return out
}

func TestReadLineCanBeKept(t *testing.T) {
	lr := NewReader(strings.NewReader("first\nsecond\n"), Options{Max: 100})
	first, err := lr.ReadLine()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lr.ReadLine(); err != nil {
		t.Fatal(err)
	}
	lr.Release()
	// The buffer may now serve another reader.
	other := NewReader(strings.NewReader("overwrite\n"), Options{Max: 100})
	defer other.Release()
	if _, err := other.ReadSlice(); err != nil {
		t.Fatal(err)
	}
	if string(first) != "first" {
		t.Errorf("kept line = %q", first)
	}
}

func TestReadErrorsComeAfterTheLines(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("a\nb"), iotest.ErrReader(boom))
	got, err := readAll(t, r, Options{Max: 10}, false)
	if !errors.Is(err, boom) || !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("lines %q, err %v; want a, b then boom", got, err)
	}
	if _, err := readAll(t, emptyReader{}, Options{Max: 10}, false); !errors.Is(err, io.ErrNoProgress) {
		t.Errorf("a reader that never returns anything: %v, want io.ErrNoProgress", err)
	}
}

// onceReader hands over its data with err in one read, and fails the test
// if asked again: an error must be kept, not read for twice.
type onceReader struct {
	t    *testing.T
	data string
	err  error
	done bool
}

func (r *onceReader) Read(p []byte) (int, error) {
	if r.done {
		r.t.Error("read again after the error")
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	if r.data == "" {
		r.done = true
		return n, r.err
	}
	return n, nil
}

func TestErrorWithTheLastDataIsKept(t *testing.T) {
	boom := errors.New("boom")
	long := strings.Repeat("z", bufSize+10)
	for _, slice := range []bool{false, true} {
		got, err := readAll(t, &onceReader{t: t, data: long + "\nrest", err: boom}, Options{Max: 1 << 20}, slice)
		if !errors.Is(err, boom) || !slices.Equal(got, []string{long, "rest"}) {
			t.Errorf("slice %v: lines %q, err %v; want the long line, rest, then boom", slice, short(got), err)
		}
	}
}

type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, nil }

func TestReset(t *testing.T) {
	lr := NewReader(strings.NewReader("a\nleft over"), Options{Max: 10, CR: true})
	defer lr.Release()
	if line, err := lr.ReadSlice(); err != nil || string(line) != "a" {
		t.Fatalf("%q, %v", line, err)
	}
	lr.Reset(strings.NewReader("b\n"))
	if line, err := lr.ReadSlice(); err != nil || string(line) != "b" {
		t.Errorf("after Reset: %q, %v; want b", line, err)
	}
}

// BenchmarkReadSlice is the cost of finding lines: small ones, and ones far
// beyond the buffer.
func BenchmarkReadSlice(b *testing.B) {
	for _, tc := range []struct {
		name string
		size int
		cr   bool
	}{{"200B", 200, false}, {"200B-CR", 200, true}, {"1MiB", 1 << 20, false}, {"1MiB-CR", 1 << 20, true}} {
		line := append(bytes.Repeat([]byte("x"), tc.size), '\n')
		stream := bytes.Repeat(line, max(16, (1<<20)/len(line)))
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			r := bytes.NewReader(stream)
			lr := NewReader(r, Options{Max: 64 << 20, CR: tc.cr})
			for b.Loop() {
				r.Reset(stream)
				lr.Reset(r)
				for {
					if _, err := lr.ReadSlice(); err != nil {
						break
					}
				}
			}
		})
	}
}
