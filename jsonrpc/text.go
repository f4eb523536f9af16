package jsonrpc

import (
	"unicode/utf16"
	"unicode/utf8"
)

// nextRune decodes the character at s[i] inside a validated JSON string body
// and returns it with the number of bytes it took. It reads text the way
// encoding/json does, so names and methods compare equal to what a Go
// decoder sees: an invalid UTF-8 byte and an unpaired surrogate escape both
// become U+FFFD.
func nextRune(s []byte, i int) (r rune, n int) {
	c := s[i]
	if c < utf8.RuneSelf && c != '\\' {
		return rune(c), 1
	}
	if c != '\\' {
		return utf8.DecodeRune(s[i:])
	}
	switch s[i+1] {
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 't':
		return '\t', 2
	case 'u':
		r = hex4(s[i+2:])
		if !utf16.IsSurrogate(r) {
			return r, 6
		}
		if i+12 <= len(s) && s[i+6] == '\\' && s[i+7] == 'u' {
			if pair := utf16.DecodeRune(r, hex4(s[i+8:])); pair != utf8.RuneError {
				return pair, 12
			}
		}
		return utf8.RuneError, 6
	}
	return rune(s[i+1]), 2 // '"', '\\' or '/'
}

func hex4(s []byte) rune {
	var r rune
	for _, c := range s[:4] {
		r = r<<4 | rune(hexVal(c))
	}
	return r
}

// unquote decodes a validated JSON string token, quotes included.
func unquote(quoted []byte) string {
	s := quoted[1 : len(quoted)-1]
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		r, n := nextRune(s, i)
		out = utf8.AppendRune(out, r)
		i += n
	}
	return string(out)
}

// stringEquals reports whether the JSON value v is a string token whose text
// is want, without allocating.
func stringEquals(v []byte, want string) bool {
	if len(v) < 2 || v[0] != '"' {
		return false
	}
	s := v[1 : len(v)-1]
	if !hasEscapeOrHigh(s) {
		return string(s) == want
	}
	var buf [utf8.UTFMax]byte
	k := 0
	for i := 0; i < len(s); {
		r, n := nextRune(s, i)
		i += n
		w := utf8.EncodeRune(buf[:], r)
		if k+w > len(want) || string(buf[:w]) != want[k:k+w] {
			return false
		}
		k += w
	}
	return k == len(want)
}

// appendQuoted appends s as a JSON string. Invalid UTF-8 becomes U+FFFD so
// the output is always valid for strict decoders.
func appendQuoted(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, s[i:i+n]...)
			}
			i += n
			continue
		}
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, `\n`...)
		case c == '\r':
			dst = append(dst, `\r`...)
		case c == '\t':
			dst = append(dst, `\t`...)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			dst = append(dst, c)
		}
		i++
	}
	return append(dst, '"')
}
