package proxy

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestReadLine(t *testing.T) {
	long := strings.Repeat("x", 200)
	in := "a\r\nb\n\n" + long + "\nafter\nlast"
	r := bufio.NewReaderSize(strings.NewReader(in), 16)
	want := []string{"a", "b", "", "", "after", "last"}
	var got []string
	var tooLong int
	for range 20 {
		line, err := readLine(r, 100)
		if errors.Is(err, errTooLong) {
			tooLong++
			got = append(got, "")
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(line))
	}
	if strings.Join(got, "|") != strings.Join(want, "|") || tooLong != 1 {
		t.Errorf("got %q (%d too long), want %q (1 too long)", got, tooLong, want)
	}
}

func TestEventReader(t *testing.T) {
	stream := ": keep-alive\n" +
		"id: 1\ndata:\n\n" + // priming event: an id, no data
		"event: message\nid: 2\ndata: {\"a\":\ndata: 1}\n\n" +
		"retry: 1500\n\n" +
		"event: endpoint\r\ndata: /message?sessionid=x\r\n\r\n" +
		"data: no end"
	er := newEventReader(strings.NewReader(stream))

	ev, err := er.next()
	if err != nil || ev.name != "message" || string(ev.data) != "{\"a\":\n1}" || er.lastID != "2" {
		t.Fatalf("first event = %+v (id %q), %v", ev, er.lastID, err)
	}
	ev, err = er.next()
	if err != nil || ev.name != "endpoint" || string(ev.data) != "/message?sessionid=x" {
		t.Fatalf("second event = %+v, %v", ev, err)
	}
	if er.retry != 1500*time.Millisecond {
		t.Errorf("retry = %v, want 1.5s", er.retry)
	}
	if _, err = er.next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("unfinished event: err = %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestEventReaderPrimingOnly(t *testing.T) {
	er := newEventReader(strings.NewReader("id: abc\ndata: \n\n"))
	if _, err := er.next(); err != io.EOF {
		t.Fatalf("err = %v, want io.EOF", err)
	}
	if !er.hasID || er.lastID != "abc" {
		t.Errorf("lastID = %q (%v), want abc", er.lastID, er.hasID)
	}
}

func TestHeaderValue(t *testing.T) {
	for in, want := range map[string]string{
		"echo":            "echo",
		"test://a b":      "test://a b",
		"héllo":           "=?base64?aMOpbGxv?=",
		" padded":         "=?base64?IHBhZGRlZA==?=",
		"=?base64?abc?=":  "=?base64?PT9iYXNlNjQ/YWJjPz0=?=",
		"line\nbreak":     "=?base64?bGluZQpicmVhaw==?=",
		"":                "",
		"tab\tinside":     "=?base64?dGFiCWluc2lkZQ==?=",
		"ascii~!@#$%^&*(": "ascii~!@#$%^&*(",
	} {
		if got := headerValue(in); got != want {
			t.Errorf("headerValue(%q) = %q, want %q", in, got, want)
		}
	}
}
