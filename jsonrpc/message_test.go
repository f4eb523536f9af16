package jsonrpc

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		kind    Kind // Invalid: expect an error with code
		code    int
		id      string
		method  string
		params  string
		isError bool
	}{
		{name: "request", in: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, kind: Request, id: `1`, method: "tools/list"},
		{name: "request with params", in: `{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x"}}`, kind: Request, id: `"a"`, method: "tools/call", params: `{"name":"x"}`},
		{name: "array params", in: `{"jsonrpc":"2.0","id":1,"method":"m","params":[1,2]}`, kind: Request, id: `1`, method: "m", params: `[1,2]`},
		{name: "notification", in: `{"jsonrpc":"2.0","method":"notifications/initialized"}`, kind: Notification, method: "notifications/initialized"},
		{name: "result", in: `{"jsonrpc":"2.0","id":7,"result":{}}`, kind: Response, id: `7`},
		{name: "null result", in: `{"jsonrpc":"2.0","id":7,"result":null}`, kind: Response, id: `7`},
		{name: "error", in: `{"jsonrpc":"2.0","id":"x","error":{"code":-1,"message":"m"}}`, kind: Response, id: `"x"`, isError: true},
		{name: "error with null id", in: `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"m"}}`, kind: Response, id: `null`, isError: true},
		{name: "members in any order", in: `{"method":"ping","id":3,"jsonrpc":"2.0"}`, kind: Request, id: `3`, method: "ping"},
		{name: "unknown members ignored", in: `{"jsonrpc":"2.0","x":{"id":9},"id":1,"method":"m"}`, kind: Request, id: `1`, method: "m"},
		{name: "whitespace trimmed", in: " \r\n\t{ \"jsonrpc\" : \"2.0\" , \"id\" : 1 , \"method\" : \"m\" }\n", kind: Request, id: `1`, method: "m"},
		{name: "negative fractional id", in: `{"jsonrpc":"2.0","id":-1.5e3,"method":"m"}`, kind: Request, id: `-1.5e3`, method: "m"},
		{name: "escaped names and method", in: `{"json\u0072pc":"2\u002e0","\u0069d":1,"m\u0065thod":"tools\/call"}`, kind: Request, id: `1`, method: "tools/call"},
		{name: "surrogate pair in method", in: `{"jsonrpc":"2.0","method":"\ud83d\ude00"}`, kind: Notification, method: "😀"},
		{name: "lone surrogate becomes U+FFFD", in: `{"jsonrpc":"2.0","method":"a\ud800b"}`, kind: Notification, method: "a\uFFFDb"},
		// encoding/json.Valid accepts invalid UTF-8 in strings; decoders read it as U+FFFD.
		{name: "invalid UTF-8 in method", in: "{\"jsonrpc\":\"2.0\",\"method\":\"a\xffb\"}", kind: Notification, method: "a\uFFFDb"},
		{name: "invalid UTF-8 elsewhere", in: "{\"jsonrpc\":\"2.0\",\"id\":\"\xc3\",\"method\":\"m\",\"params\":{\"\xff\":\"\xfe\"}}", kind: Request, id: "\"\xc3\"", method: "m", params: "{\"\xff\":\"\xfe\"}"},

		{name: "empty input", in: ``, code: CodeParseError},
		{name: "only whitespace", in: " \n", code: CodeParseError},
		{name: "truncated", in: `{"jsonrpc":"2.0","id":1,"method":"m"`, code: CodeParseError},
		{name: "trailing garbage", in: `{"jsonrpc":"2.0","id":1,"method":"m"} x`, code: CodeParseError},
		{name: "two objects", in: `{"jsonrpc":"2.0","method":"m"}{"jsonrpc":"2.0","method":"m"}`, code: CodeParseError},
		{name: "trailing comma", in: `{"jsonrpc":"2.0","method":"m",}`, code: CodeParseError},
		{name: "leading zero", in: `{"jsonrpc":"2.0","id":01,"method":"m"}`, code: CodeParseError},
		{name: "raw control character", in: "{\"jsonrpc\":\"2.0\",\"method\":\"a\tb\"}", code: CodeParseError},
		{name: "bad escape", in: `{"jsonrpc":"2.0","method":"a\xb"}`, code: CodeParseError},
		{name: "short unicode escape", in: `{"jsonrpc":"2.0","method":"\u12"}`, code: CodeParseError},
		{name: "single quotes", in: `{'jsonrpc':'2.0'}`, code: CodeParseError},
		{name: "parse error wins over shape", in: `{"id":true,"x":[1,}`, code: CodeParseError},

		{name: "not an object", in: `[1]`, code: CodeInvalidRequest},
		{name: "string", in: `"x"`, code: CodeInvalidRequest},
		{name: "empty object", in: `{}`, code: CodeInvalidRequest},
		{name: "missing jsonrpc", in: `{"id":1,"method":"m"}`, code: CodeInvalidRequest},
		{name: "wrong version", in: `{"jsonrpc":"1.0","id":1,"method":"m"}`, code: CodeInvalidRequest},
		{name: "version as number", in: `{"jsonrpc":2.0,"id":1,"method":"m"}`, code: CodeInvalidRequest},
		{name: "bool id", in: `{"jsonrpc":"2.0","id":true,"method":"m"}`, code: CodeInvalidRequest},
		{name: "object id", in: `{"jsonrpc":"2.0","id":{},"method":"m"}`, code: CodeInvalidRequest},
		{name: "array id", in: `{"jsonrpc":"2.0","id":[1],"result":{}}`, code: CodeInvalidRequest},
		{name: "null id in request", in: `{"jsonrpc":"2.0","id":null,"method":"m"}`, code: CodeInvalidRequest},
		{name: "null id in result", in: `{"jsonrpc":"2.0","id":null,"result":{}}`, code: CodeInvalidRequest},
		{name: "method not string", in: `{"jsonrpc":"2.0","id":1,"method":5}`, code: CodeInvalidRequest},
		{name: "method null", in: `{"jsonrpc":"2.0","method":null}`, code: CodeInvalidRequest},
		{name: "params string", in: `{"jsonrpc":"2.0","method":"m","params":"x"}`, code: CodeInvalidRequest},
		{name: "params null", in: `{"jsonrpc":"2.0","method":"m","params":null}`, code: CodeInvalidRequest},
		{name: "method and result", in: `{"jsonrpc":"2.0","id":1,"method":"m","result":{}}`, code: CodeInvalidRequest},
		{name: "result and error", in: `{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"m"}}`, code: CodeInvalidRequest},
		{name: "response without id", in: `{"jsonrpc":"2.0","result":{}}`, code: CodeInvalidRequest},
		{name: "error not object", in: `{"jsonrpc":"2.0","id":1,"error":"boom"}`, code: CodeInvalidRequest},
		{name: "only id", in: `{"jsonrpc":"2.0","id":1}`, code: CodeInvalidRequest},
		{name: "duplicate id", in: `{"jsonrpc":"2.0","id":1,"id":2,"method":"m"}`, code: CodeInvalidRequest},
		{name: "duplicate method via escape", in: `{"jsonrpc":"2.0","method":"a","m\u0065thod":"b"}`, code: CodeInvalidRequest},
		{name: "duplicate jsonrpc", in: `{"jsonrpc":"2.0","jsonrpc":"2.0","method":"m"}`, code: CodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.in))
			if valid := json.Valid([]byte(tt.in)); valid != (tt.code != CodeParseError) {
				t.Fatalf("test case disagrees with json.Valid (%v)", valid)
			}
			if tt.kind == Invalid {
				var e *Error
				if !errors.As(err, &e) || e.Code != tt.code {
					t.Fatalf("Parse(%q) = %+v, %v; want code %d", tt.in, m, err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if m.Kind != tt.kind || string(m.ID) != tt.id || m.Method != tt.method || string(m.Params) != tt.params || m.IsError != tt.isError {
				t.Fatalf("Parse(%q) = kind %v id %q method %q params %q isError %v", tt.in, m.Kind, m.ID, m.Method, m.Params, m.IsError)
			}
			if tt.id == "" && m.ID != nil || tt.params == "" && m.Params != nil {
				t.Fatalf("absent id or params should be nil: %q %q", m.ID, m.Params)
			}
			if want := strings.Trim(tt.in, " \t\r\n"); string(m.Raw) != want {
				t.Fatalf("Raw = %q, want %q", m.Raw, want)
			}
		})
	}
}

// The nesting limit cannot be found by a fuzzer in reasonable time.
func TestParseDepthMatchesJSONValid(t *testing.T) {
	for _, depth := range []int{maxDepth - 1, maxDepth, maxDepth + 1} {
		// The message object itself is one level.
		n := depth - 1
		in := `{"jsonrpc":"2.0","method":"m","params":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`
		_, err := Parse([]byte(in))
		want := json.Valid([]byte(in))
		if (err == nil) != want {
			t.Errorf("depth %d: Parse error %v, json.Valid %v", depth, err, want)
		}
		if want != (depth <= maxDepth) {
			t.Errorf("depth %d: json.Valid says %v; its limit has moved", depth, want)
		}
		mixed := strings.Repeat(`{"a":[`, n/2) + strings.Repeat(`]}`, n/2)
		_, _, _, ok := Lookup([]byte(mixed), "a")
		if ok != json.Valid([]byte(mixed)) {
			t.Errorf("depth %d: Lookup ok %v, json.Valid %v", n, ok, !ok)
		}
	}
}

func TestParseBody(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		n     int
		batch bool
		code  int
	}{
		{name: "single", in: `{"jsonrpc":"2.0","id":1,"method":"m"}`, n: 1},
		{name: "batch", in: ` [ {"jsonrpc":"2.0","id":1,"method":"m"} , {"jsonrpc":"2.0","method":"n"} ] `, n: 2, batch: true},
		{name: "batch of responses", in: `[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":2,"error":{"code":1,"message":"x"}}]`, n: 2, batch: true},
		{name: "empty batch", in: `[]`, batch: true, code: CodeInvalidRequest},
		{name: "empty batch with space", in: `[ ]`, batch: true, code: CodeInvalidRequest},
		{name: "element not object", in: `[{"jsonrpc":"2.0","method":"m"},1]`, batch: true, code: CodeInvalidRequest},
		{name: "invalid element", in: `[{"jsonrpc":"2.0","method":5}]`, batch: true, code: CodeInvalidRequest},
		{name: "nested batch", in: `[[{"jsonrpc":"2.0","method":"m"}]]`, batch: true, code: CodeInvalidRequest},
		{name: "broken batch", in: `[{"jsonrpc":"2.0","method":"m"},]`, batch: true, code: CodeParseError},
		{name: "broken after shape error", in: `[1,{]`, batch: true, code: CodeParseError},
		{name: "trailing garbage", in: `[{"jsonrpc":"2.0","method":"m"}]]`, batch: true, code: CodeParseError},
		{name: "empty body", in: ``, code: CodeParseError},
		{name: "number", in: `42`, code: CodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs, batch, err := ParseBody([]byte(tt.in))
			if batch != tt.batch {
				t.Errorf("batch = %v", batch)
			}
			if tt.code != 0 {
				var e *Error
				if !errors.As(err, &e) || e.Code != tt.code || msgs != nil {
					t.Fatalf("ParseBody(%q) = %d msgs, %v; want code %d", tt.in, len(msgs), err, tt.code)
				}
				return
			}
			if err != nil || len(msgs) != tt.n {
				t.Fatalf("ParseBody(%q) = %d msgs, %v", tt.in, len(msgs), err)
			}
			for _, m := range msgs {
				if again, err := Parse(m.Raw); err != nil || again.Kind != m.Kind {
					t.Errorf("element %q does not parse on its own: %v", m.Raw, err)
				}
			}
		})
	}
}

func TestBatchErrorNamesElement(t *testing.T) {
	_, _, err := ParseBody([]byte(`[{"jsonrpc":"2.0","method":"m"},{"jsonrpc":"2.0","id":true,"method":"m"}]`))
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(e.Message, "element 1") {
		t.Fatalf("error %v does not name element 1", err)
	}
}

func TestWithID(t *testing.T) {
	tests := []struct{ in, id, want string }{
		{`{"jsonrpc":"2.0","id":1,"method":"m"}`, `"s-1"`, `{"jsonrpc":"2.0","id":"s-1","method":"m"}`},
		{` {"id" : "long-client-id" ,"jsonrpc":"2.0","result":{}} `, `7`, `{"id" : 7 ,"jsonrpc":"2.0","result":{}}`},
		{`{"jsonrpc":"2.0","method":"m"}`, `3`, `{"id":3,"jsonrpc":"2.0","method":"m"}`},
		{`{"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"x"}}`, `"c"`, `{"jsonrpc":"2.0","id":"c","error":{"code":1,"message":"x"}}`},
	}
	for _, tt := range tests {
		in := []byte(tt.in)
		m, err := Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.WithID([]byte(tt.id)); string(got) != tt.want {
			t.Errorf("WithID(%s) on %s = %s, want %s", tt.id, tt.in, got, tt.want)
		}
		if string(in) != tt.in {
			t.Errorf("WithID changed its input to %s", in)
		}
	}
}

func TestErrorResponse(t *testing.T) {
	msg := "bad \"thing\"\n\x01 caf\u00e9 \xff"
	out := ErrorResponse([]byte(`"a"`), CodeMethodNotFound, msg)
	var got struct {
		Version string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if got.Version != "2.0" || string(got.ID) != `"a"` || got.Error.Code != CodeMethodNotFound || got.Error.Message != strings.ToValidUTF8(msg, "\uFFFD") {
		t.Fatalf("ErrorResponse = %s", out)
	}
	m, err := Parse(out)
	if err != nil || m.Kind != Response || !m.IsError {
		t.Fatalf("ErrorResponse does not parse as an error response: %v", err)
	}
	if m, err := Parse(ErrorResponse(nil, CodeParseError, "x")); err != nil || string(m.ID) != "null" {
		t.Fatalf("nil id: %q, %v", m.ID, err)
	}
}

func TestErrorIsError(t *testing.T) {
	_, err := Parse([]byte(`{`))
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeParseError || !strings.Contains(err.Error(), "-32700") {
		t.Fatalf("got %v", err)
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{Invalid: "invalid", Request: "request", Notification: "notification", Response: "response", 9: "invalid"} {
		if k.String() != want {
			t.Errorf("Kind(%d).String() = %q", k, k.String())
		}
	}
}

func TestOneLine(t *testing.T) {
	in := []byte("{\n\"a\":\r\n1}")
	if got := OneLine(in); string(got) != "{ \"a\":  1}" || string(in) != "{\n\"a\":\r\n1}" {
		t.Fatalf("OneLine = %q (input now %q)", got, in)
	}
	flat := []byte(`{"a":1}`)
	if got := OneLine(flat); &got[0] != &flat[0] {
		t.Fatal("OneLine copied a line without newlines")
	}
}

// Routing every message must stay allocation-free for known methods.
func TestParseAllocations(t *testing.T) {
	in := []byte(`{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"},"_meta":{"progressToken":"p1"}}}`)
	n := testing.AllocsPerRun(100, func() {
		m, err := Parse(in)
		if err != nil || ProgressToken(m.Params) == nil {
			t.Fatal("parse failed")
		}
	})
	if n != 0 {
		t.Fatalf("Parse + ProgressToken allocated %v times per message", n)
	}
}
