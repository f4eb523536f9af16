package main

// The one root logger, and what keeps a child's words from acting on a
// terminal.

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mcpwrap/mcpwrap/config"
	"github.com/rs/zerolog"
)

// newLogger is the one root logger: JSON by default, console on a terminal.
func newLogger(cfg config.Config, w io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil || cfg.LogLevel == "" {
		level = zerolog.InfoLevel
	}
	format := cfg.LogFormat
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				format = "console"
			}
		}
	}
	if format == "console" {
		// Field values with control characters are quoted already; the
		// message (a child's stderr line among them) is not, and a
		// terminal would obey the escape sequences in it.
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, FormatMessage: func(i any) string {
			if i == nil {
				return ""
			}
			return escapeControls(fmt.Sprint(i))
		}}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

// escapeControls writes control characters and invalid UTF-8 in s as Go
// escapes (\x1b, \u0085), so that a log line cannot move the cursor, clear
// the screen or forge another line on a terminal.
func escapeControls(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsControl(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
