package jsonrpc

import "bytes"

// Lookup finds the raw value at a path of object keys inside a JSON value,
// e.g. Lookup(params, "_meta", "progressToken"). It returns the value and its
// [start,end) offsets in b. b is assumed valid JSON: only the objects on
// the path are walked, and malformed bytes met on the way give ok=false,
// never a panic. ok=false also when a key is missing or a
// non-object is crossed. Keys compare by decoded text, so an escaped name
// matches. When a name repeats, the last one wins, as in encoding/json and
// JSON.parse, so the value found is the one the receiving program reads;
// that costs a walk over the whole of each object on the path.
func Lookup(b []byte, path ...string) (value []byte, start, end int, ok bool) {
	start, end = skipSpace(b, 0), -1
	for _, key := range path {
		if start >= len(b) || b[start] != '{' {
			return nil, 0, 0, false
		}
		found := false
		var vs, ve int
		i := skipSpace(b, start+1)
		if i < len(b) && b[i] == '}' {
			return nil, 0, 0, false
		}
		for {
			ke, v, _ := member(b, i)
			if v < 0 {
				return nil, 0, 0, false
			}
			v = skipSpace(b, v)
			e, _ := skipValue(b, v, 0)
			if e < 0 {
				return nil, 0, 0, false
			}
			if stringEquals(b[i:ke], key) {
				found, vs, ve = true, v, e
			}
			i = skipSpace(b, e)
			if i < len(b) && b[i] == ',' {
				i = skipSpace(b, i+1)
				continue
			}
			if i < len(b) && b[i] == '}' {
				break
			}
			return nil, 0, 0, false
		}
		if !found {
			return nil, 0, 0, false
		}
		start, end = vs, ve
	}
	if end < 0 {
		if end, _ = skipValue(b, start, 0); end < 0 {
			return nil, 0, 0, false
		}
	}
	return b[start:end], start, end, true
}

// Splice returns a new slice equal to b with b[start:end] replaced by v.
func Splice(b []byte, start, end int, v []byte) []byte {
	out := make([]byte, 0, len(b)-(end-start)+len(v))
	out = append(out, b[:start]...)
	out = append(out, v...)
	return append(out, b[end:]...)
}

var progressTokenName = []byte(`"progressToken"`)

// ProgressToken returns the raw value of params._meta.progressToken, or nil.
// Most messages carry none, so it first looks for the quoted name with
// bytes.Contains, which is far cheaper than walking the JSON. A name written
// with escapes ("progress\u0054oken") is therefore not seen; no MCP client
// writes it that way.
func ProgressToken(params []byte) []byte {
	if !bytes.Contains(params, progressTokenName) {
		return nil
	}
	v, _, _, ok := Lookup(params, "_meta", "progressToken")
	if !ok {
		return nil
	}
	return v
}

// IDKey returns a map key for an id token. The key is the raw token: the
// string id "1" and the number 1 stay distinct, and so do 1 and 1.0. Raw
// equality is enough because each id mcpwrap tracks comes back from the same
// encoder that sent it. To look up without allocating, index the map with
// string(id) directly; the compiler elides that copy.
func IDKey(id []byte) string {
	return string(id)
}
