package jsonrpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// seeds are real MCP traffic plus the awkward corners of JSON.
var seeds = []string{
	`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"roots":{"listChanged":true},"sampling":{}},"clientInfo":{"name":"example","version":"1.0.0"}}}`,
	`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
	`{"jsonrpc":"2.0","id":"abc-7","method":"tools/call","params":{"name":"read_file","arguments":{"path":"/tmp/x"},"_meta":{"progressToken":"tok-1"}}}`,
	`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"_meta":{"progressToken":42},"name":"echo","arguments":{"text":"h\u00e9llo \ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t"}}}`,
	`{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"ok"}],"isError":false}}`,
	`{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"Method not found"}}`,
	`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}`,
	`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"tok-1","progress":50,"total":100}}`,
	`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"abc-7","reason":"user"}}`,
	`[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]`,
	`[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":2,"error":{"code":1,"message":"x"}}]`,
	`[]`,
	` {"jsonrpc" : "2.0" ,"id" : -1.5e+3 , "method" : "x" , "params" : [ [ [ ] ] , { } , null , true , false ] } `,
	`{"json\u0072pc":"2\u002e0","\u0069d":"\ud800","method":"caf\u00e9"}`,
	"{\"jsonrpc\":\"2.0\",\"id\":\"\xff\xfe\",\"method\":\"m\xc3\"}",
	`{"jsonrpc":"2.0","id":1,"id":2,"method":"x"}`,
	`{"jsonrpc":"2.0","id":true,"method":"x"}`,
	`{"jsonrpc":"2.0","id":1,"result":1,"error":{}}`,
	`{"jsonrpc":"1.0","id":1,"method":"x"}`,
	`{"id":1,"method":"x"}`,
	`{"jsonrpc":"2.0","id":1,"method":"x"`,
	`{"jsonrpc":"2.0","id":01,"method":"x"}`,
	`{"jsonrpc":"2.0","id":1,"method":"x","params":"s"}`,
	`[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]`,
	`"just a string"`,
	``,
}

func FuzzParse(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		valid := json.Valid(data)
		m, err := Parse(data)
		if !bytes.Equal(orig, data) {
			t.Fatal("Parse modified its input")
		}
		checkVerdict(t, "Parse", err, valid)
		if valid {
			want, wantErr := oracle(data)
			if (wantErr == nil) != (err == nil) {
				t.Fatalf("Parse error %v, oracle error %v", err, wantErr)
			}
			if err == nil && m.Kind != want {
				t.Fatalf("Parse kind %v, oracle %v", m.Kind, want)
			}
		}
		if err == nil {
			checkMessage(t, m, data)
		}

		msgs, batch, berr := ParseBody(data)
		checkVerdict(t, "ParseBody", berr, valid)
		if !batch && (berr == nil) != (err == nil) {
			t.Fatalf("ParseBody single error %v, Parse error %v", berr, err)
		}
		for _, bm := range msgs {
			checkMessage(t, bm, bm.Raw)
		}
	})
}

// checkVerdict holds Parse's notion of valid JSON to encoding/json's.
func checkVerdict(t *testing.T, what string, err error, valid bool) {
	t.Helper()
	if err == nil {
		if !valid {
			t.Fatalf("%s accepted what json.Valid rejects", what)
		}
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%s error %T is not *Error", what, err)
	}
	switch e.Code {
	case CodeParseError:
		if valid {
			t.Fatalf("%s: %v, but json.Valid accepts", what, err)
		}
	case CodeInvalidRequest:
		if !valid {
			t.Fatalf("%s: %v, but json.Valid rejects", what, err)
		}
	default:
		t.Fatalf("%s: unexpected code %d", what, e.Code)
	}
}

// checkMessage decodes an accepted message with encoding/json and holds the
// parsed fields to it, then remaps its id.
func checkMessage(t *testing.T, m Message, data []byte) {
	t.Helper()
	if !bytes.Equal(m.Raw, bytes.Trim(data, " \t\r\n")) {
		t.Fatalf("Raw %q is not the trimmed input", m.Raw)
	}
	obj := decodeObject(t, m.Raw)
	id, hasID := obj["id"]
	if hasID != (m.ID != nil) {
		t.Fatalf("id present %v, ID %q", hasID, m.ID)
	}
	if hasID && !reflect.DeepEqual(id, decode(t, m.ID)) {
		t.Fatalf("id %#v, ID %q", id, m.ID)
	}
	if method, ok := obj["method"].(string); ok != (m.Kind != Response) || method != m.Method {
		t.Fatalf("method %#v, Method %q (kind %v)", obj["method"], m.Method, m.Kind)
	}
	if params, ok := obj["params"]; ok != (m.Params != nil) || ok && !reflect.DeepEqual(params, decode(t, m.Params)) {
		t.Fatalf("params %#v, Params %q", params, m.Params)
	}
	if _, ok := obj["error"]; ok != m.IsError {
		t.Fatalf("error present %v, IsError %v", ok, m.IsError)
	}

	raw := bytes.Clone(m.Raw)
	for _, newID := range []string{`"client-1:7"`, `-12345`} {
		out := m.WithID([]byte(newID))
		if !bytes.Equal(raw, m.Raw) {
			t.Fatal("WithID modified Raw")
		}
		if !json.Valid(out) {
			t.Fatalf("WithID(%s) gave invalid JSON %q", newID, out)
		}
		rm, err := Parse(out)
		if err != nil {
			t.Fatalf("WithID(%s) output does not parse: %v", newID, err)
		}
		if string(rm.ID) != newID || rm.Method != m.Method || rm.IsError != m.IsError {
			t.Fatalf("WithID(%s) gave %q", newID, out)
		}
		if m.Kind == Notification && rm.Kind != Request || m.Kind != Notification && rm.Kind != m.Kind {
			t.Fatalf("WithID turned a %v into a %v", m.Kind, rm.Kind)
		}
	}
	if one := OneLine(m.Raw); bytes.ContainsAny(one, "\r\n") || !reflect.DeepEqual(decodeObject(t, one), obj) {
		t.Fatalf("OneLine(%q) = %q", m.Raw, one)
	}
}

func decode(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	// Numbers stay text: a valid number such as 1e999 does not fit a float64.
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return v
}

func decodeObject(t *testing.T, b []byte) map[string]any {
	t.Helper()
	obj, ok := decode(t, b).(map[string]any)
	if !ok {
		t.Fatalf("%q is not an object", b)
	}
	return obj
}

// oracle classifies valid JSON by the rules in Parse's doc comment, using
// encoding/json's decoder, independently of the scanner.
func oracle(data []byte) (Kind, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return Invalid, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return Invalid, errors.New("not an object")
	}
	if topLevelDuplicate(data) {
		return Invalid, errors.New("duplicate")
	}
	if obj["jsonrpc"] != "2.0" {
		return Invalid, errors.New("version")
	}
	if p, ok := obj["params"]; ok {
		switch p.(type) {
		case map[string]any, []any:
		default:
			return Invalid, errors.New("params")
		}
	}
	id, hasID := obj["id"]
	idOK := false
	switch id.(type) {
	case string, json.Number:
		idOK = true
	}
	result, hasResult := obj["result"]
	_ = result
	errv, hasError := obj["error"]
	if method, ok := obj["method"]; ok {
		if _, isString := method.(string); !isString || hasResult || hasError || hasID && !idOK {
			return Invalid, errors.New("method")
		}
		if hasID {
			return Request, nil
		}
		return Notification, nil
	}
	if hasResult == hasError || !hasID {
		return Invalid, errors.New("response")
	}
	if hasError {
		if _, ok := errv.(map[string]any); !ok || !idOK && id != nil {
			return Invalid, errors.New("error")
		}
		return Response, nil
	}
	if !idOK {
		return Invalid, errors.New("result id")
	}
	return Response, nil
}

// topLevelDuplicate reports a repeated routing member, read with the
// decoder's token stream (which decodes escaped names).
func topLevelDuplicate(data []byte) bool {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	seen := map[string]bool{}
	depth := 0
	key := true
	for {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		if depth == 1 && key {
			if name, ok := tok.(string); ok {
				switch name {
				case "jsonrpc", "id", "method", "params", "result", "error":
					if seen[name] {
						return true
					}
					seen[name] = true
				}
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if depth == 1 {
				key = !key
			}
			depth++
			continue
		case json.Delim('}'), json.Delim(']'):
			depth--
			if depth == 0 {
				return false
			}
			continue
		}
		if depth == 1 {
			key = !key
		}
	}
}

func FuzzLookup(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s), "params", "_meta")
	}
	f.Add([]byte(`{"_meta":{"progressToken":1},"_meta":{"progressToken":"last"}}`), "_meta", "progressToken")
	f.Add([]byte(`{"\u005fmeta":{"progress\u0054oken":[1,{"a":2}]}}`), "_meta", "progressToken")
	f.Add([]byte(`{"a":{"b":{}},"c":[{"b":1}]}`), "a", "b")
	f.Fuzz(func(t *testing.T, data []byte, k1, k2 string) {
		valid := json.Valid(data)
		for _, path := range [][]string{nil, {k1}, {k1, k2}} {
			v, start, end, ok := Lookup(data, path...)
			if ok && !bytes.Equal(v, data[start:end]) {
				t.Fatalf("Lookup%q: value %q is not data[%d:%d]", path, v, start, end)
			}
			if !valid {
				continue
			}
			want, found := follow(decode(t, data), path)
			if ok != found {
				t.Fatalf("Lookup%q ok=%v, decoder found=%v", path, ok, found)
			}
			if ok && !reflect.DeepEqual(decode(t, v), want) {
				t.Fatalf("Lookup%q = %q, decoder has %#v", path, v, want)
			}
			if ok {
				out := Splice(data, start, end, []byte(`"spliced"`))
				if got, _, _, _ := Lookup(out, path...); string(got) != `"spliced"` {
					t.Fatalf("after Splice, Lookup%q = %q", path, got)
				}
			}
		}
		if valid {
			want, found := follow(decode(t, data), []string{"_meta", "progressToken"})
			got := ProgressToken(data)
			if found && got != nil && !reflect.DeepEqual(decode(t, got), want) || got != nil && !found {
				t.Fatalf("ProgressToken = %q, decoder has %#v", got, want)
			}
			if found && got == nil && bytes.Contains(data, []byte(`"progressToken"`)) {
				t.Fatalf("ProgressToken missed %#v", want)
			}
		}
	})
}

func follow(v any, path []string) (any, bool) {
	for _, k := range path {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = obj[k]; !ok {
			return nil, false
		}
	}
	return v, true
}
