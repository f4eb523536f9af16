package testkit

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestLogBookWriteSplitsLines(t *testing.T) {
	b := NewLogBook()
	for _, chunk := range []string{`{"message":"a","n":1}` + "\n" + `{"mess`, `age":"b"}` + "\nnot json\n", "unfinished"} {
		if n, err := b.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
	}
	all := b.All()
	if len(all) != 3 {
		t.Fatalf("%d lines, want 3: %v", len(all), all)
	}
	if all[0].Msg() != "a" || all[0].Int("n") != 1 || !all[0].Parsed() {
		t.Errorf("first line %v", all[0])
	}
	if all[1].Msg() != "b" {
		t.Errorf("a line written in two pieces: %v", all[1])
	}
	if all[2].Msg() != "not json" || all[2].Parsed() {
		t.Errorf("a line that is not JSON: %v", all[2])
	}
	if text := b.Text(); !strings.HasSuffix(text, "\nunfinished") {
		t.Errorf("Text lacks the unfinished line: %q", text)
	}
}

func TestLogBookWait(t *testing.T) {
	b := NewLogBook()
	r, w := io.Pipe()
	read := make(chan struct{})
	go func() {
		defer close(read)
		b.Read(r)
	}()
	wrote := make(chan error, 1)
	go func() {
		_, err := io.WriteString(w, `{"message":"early"}`+"\n"+`{"message":"late","session":"s1"}`+"\n")
		wrote <- err
	}()
	l, err := b.Wait("late", Patience, func(l Line) bool { return l.Str("session") == "s1" })
	if err != nil || l.Msg() != "late" {
		t.Fatalf("Wait: %v, %v", l, err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	w.Close()
	<-read
	if _, err := b.Wait("never", Patience, func(l Line) bool { return l.Msg() == "never" }); !errors.Is(err, ErrLogEnded) {
		t.Errorf("Wait on an ended log: %v, want ErrLogEnded", err)
	}
	if got := len(b.Find(func(l Line) bool { return true })); got != 2 {
		t.Errorf("Find: %d lines, want 2", got)
	}
}
