package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mcpwrap/mcpwrap/config"
)

// TestConsoleLogEscapesControlCharacters: a child's stderr line becomes a
// log message; on a terminal its escape sequences must not reach the
// screen, nor its carriage returns forge a line.
func TestConsoleLogEscapesControlCharacters(t *testing.T) {
	t.Setenv("NO_COLOR", "1") // colour codes are escapes of our own
	var buf bytes.Buffer
	log := newLogger(config.Config{LogFormat: "console", LogLevel: "info"}, &buf)
	log.Info().Str("field", "a\x1b[2Jb").Msg("evil\x1b[2J\rforged\x07 \xff bell é")
	out := buf.String()
	if strings.ContainsAny(out, "\x1b\r\x07") {
		t.Fatalf("control characters reached the console: %q", out)
	}
	for _, want := range []string{`evil\x1b[2J\rforged\a`, "é"} {
		if !strings.Contains(out, want) {
			t.Errorf("console line %q lacks %q", out, want)
		}
	}
}
