package jsonrpc

import (
	"encoding/binary"
	"math/bits"
)

// maxDepth is the deepest nesting encoding/json.Valid accepts; matching it
// keeps the two verdicts identical on pathological input.
const maxDepth = 10000

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// stopsString marks the bytes that end a run of plain string content.
var stopsString = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

func isSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t'
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// special flags, in the high bit of each byte lane, every byte that ends the
// fast path inside a string: a quote, a backslash or a control character.
// A lane above a flagged one may be flagged falsely (borrows run upward), so
// only the lowest flag is trusted.
func special(x uint64) uint64 {
	q := x ^ ('"' * ones)
	s := x ^ ('\\' * ones)
	return ((x - 0x20*ones) &^ x) | ((q - ones) &^ q) | ((s - ones) &^ s)
}

// scanString returns the offset just past the string starting with the quote
// at b[i], or -1 with the failing offset when the string is malformed.
func scanString(b []byte, i int) (end int, bad int) {
	i++
	// Names and short values are most strings; a plain loop is quickest for
	// them and a word at a time only pays off beyond.
	for n := min(len(b), i+16); i < n && !stopsString[b[i]]; i++ {
	}
	for {
		if i < len(b) && !stopsString[b[i]] {
			// Eight bytes at a time: long payload strings (file contents,
			// base64) are where the bytes of big messages live.
			for i+8 <= len(b) {
				m := special(binary.LittleEndian.Uint64(b[i:])) & highs
				if m != 0 {
					i += bits.TrailingZeros64(m) / 8
					break
				}
				i += 8
			}
			// The lowest flagged lane is a real hit, so this stops at once
			// after a hit above; otherwise it finishes the last few bytes.
			for i < len(b) && !stopsString[b[i]] {
				i++
			}
		}
		if i >= len(b) {
			return -1, len(b)
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, 0
		case c < 0x20:
			return -1, i
		default:
			n := escapeLen(b, i)
			if n == 0 {
				return -1, i
			}
			i += n
		}
	}
}

// escapeLen returns the length of the escape sequence at b[i] (a backslash),
// or 0 when it is not one JSON allows.
func escapeLen(b []byte, i int) int {
	if i+1 >= len(b) {
		return 0
	}
	switch b[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
		if i+6 > len(b) {
			return 0
		}
		for _, c := range b[i+2 : i+6] {
			if hexVal(c) < 0 {
				return 0
			}
		}
		return 6
	}
	return 0
}

func hexVal(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// scanNumber returns the offset just past the number starting at b[i], or -1
// with the failing offset.
func scanNumber(b []byte, i int) (end int, bad int) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return -1, i
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return -1, j
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return -1, j
		}
		i = j
	}
	return i, 0
}

func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

func literal(b []byte, i int, word string) (end int, bad int) {
	for k := 0; k < len(word); k++ {
		if i+k >= len(b) || b[i+k] != word[k] {
			return -1, i + k
		}
	}
	return i + len(word), 0
}

// openings remembers, for each open container, whether it is an object. The
// first 64 levels live in a word so ordinary messages never allocate.
type openings struct {
	low  uint64
	deep []uint64
}

func (o *openings) set(n int, object bool) {
	if n < 64 {
		o.low = o.low&^(1<<n) | b2u(object)<<n
		return
	}
	n -= 64
	if o.deep == nil {
		o.deep = make([]uint64, maxDepth/64+1)
	}
	w, s := n/64, uint(n%64)
	o.deep[w] = o.deep[w]&^(1<<s) | b2u(object)<<s
}

func (o *openings) object(n int) bool {
	if n < 64 {
		return o.low&(1<<n) != 0
	}
	n -= 64
	return o.deep[n/64]&(1<<uint(n%64)) != 0
}

func b2u(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

// skipValue validates the JSON value starting at b[i] (leading whitespace
// allowed) and returns the offset just past it. depth is how many containers
// already enclose it. On failure end is -1 and bad is the failing offset.
func skipValue(b []byte, i, depth int) (end int, bad int) {
	var open openings
	n := 0 // containers opened by this call
	for {
		// A value is expected at i.
		i = skipSpace(b, i)
		if i >= len(b) {
			return -1, i
		}
		var e int
		switch c := b[i]; c {
		case '{', '[':
			n++
			if depth+n > maxDepth {
				return -1, i
			}
			open.set(n-1, c == '{')
			i = skipSpace(b, i+1)
			if i < len(b) && (b[i] == '}' && c == '{' || b[i] == ']' && c == '[') {
				n--
				e = i + 1
				break
			}
			if c == '{' {
				if _, i, bad = member(b, i); i < 0 {
					return -1, bad
				}
			}
			continue
		case '"':
			e, bad = scanString(b, i)
		case 't':
			e, bad = literal(b, i, "true")
		case 'f':
			e, bad = literal(b, i, "false")
		case 'n':
			e, bad = literal(b, i, "null")
		default:
			if c == '-' || '0' <= c && c <= '9' {
				e, bad = scanNumber(b, i)
			} else {
				return -1, i
			}
		}
		if e < 0 {
			return -1, bad
		}
		i = e
		// A value ended at i: close containers or move to the next element.
		for {
			if n == 0 {
				return i, 0
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return -1, i
			}
			object := open.object(n - 1)
			c := b[i]
			if c == ',' {
				i++
				if object {
					if _, i, bad = member(b, skipSpace(b, i)); i < 0 {
						return -1, bad
					}
				}
				break
			}
			if object && c == '}' || !object && c == ']' {
				n--
				i++
				continue
			}
			return -1, i
		}
	}
}

// member reads `"name" :` at b[i] and returns the end of the name and the
// offset of what follows the colon.
func member(b []byte, i int) (keyEnd, next, bad int) {
	if i >= len(b) || b[i] != '"' {
		return -1, -1, i
	}
	if keyEnd, bad = scanString(b, i); keyEnd < 0 {
		return -1, -1, bad
	}
	i = skipSpace(b, keyEnd)
	if i >= len(b) || b[i] != ':' {
		return -1, -1, i
	}
	return keyEnd, i + 1, 0
}
