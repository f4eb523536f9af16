package jsonrpc

import "testing"

func TestLookup(t *testing.T) {
	doc := ` { "_meta" : { "progressToken" : "p-1" , "x" : [1,{"progressToken":2}] }, "name":"echo", "arguments":{"a":{"b":[true]}} } `
	tests := []struct {
		path []string
		want string
		ok   bool
	}{
		{nil, doc[1 : len(doc)-1], true},
		{[]string{"_meta", "progressToken"}, `"p-1"`, true},
		{[]string{"arguments", "a", "b"}, `[true]`, true},
		{[]string{"name"}, `"echo"`, true},
		{[]string{"name", "x"}, ``, false},                   // crosses a string
		{[]string{"_meta", "x", "progressToken"}, ``, false}, // crosses an array
		{[]string{"missing"}, ``, false},
		{[]string{"_meta", "missing"}, ``, false},
	}
	for _, tt := range tests {
		v, s, e, ok := Lookup([]byte(doc), tt.path...)
		if ok != tt.ok || string(v) != tt.want || ok && doc[s:e] != tt.want {
			t.Errorf("Lookup%q = %q [%d:%d] %v; want %q %v", tt.path, v, s, e, ok, tt.want, tt.ok)
		}
	}
}

func TestLookupEdges(t *testing.T) {
	tests := []struct {
		doc  string
		path []string
		want string
		ok   bool
	}{
		{`{"a":1,"a":2}`, []string{"a"}, `2`, true},     // last wins, like encoding/json
		{`{"\u0061":1}`, []string{"a"}, `1`, true},      // names compare decoded
		{"{\"\xff\":1}", []string{"\uFFFD"}, `1`, true}, // as encoding/json reads it
		{`{}`, []string{"a"}, ``, false},
		{`[{"a":1}]`, []string{"a"}, ``, false},
		{`{"a":1`, []string{"a"}, ``, false}, // malformed: no panic
		{`{"a"`, []string{"a"}, ``, false},
		{``, nil, ``, false},
		{`{"a":[}`, []string{"a"}, ``, false},
	}
	for _, tt := range tests {
		v, _, _, ok := Lookup([]byte(tt.doc), tt.path...)
		if ok != tt.ok || string(v) != tt.want {
			t.Errorf("Lookup(%q, %q) = %q %v; want %q %v", tt.doc, tt.path, v, ok, tt.want, tt.ok)
		}
	}
}

func TestSplice(t *testing.T) {
	b := []byte(`{"a":{"progressToken":"client"}}`)
	_, s, e, ok := Lookup(b, "a", "progressToken")
	if !ok {
		t.Fatal("token not found")
	}
	if got := Splice(b, s, e, []byte(`17`)); string(got) != `{"a":{"progressToken":17}}` {
		t.Fatalf("Splice = %s", got)
	}
	if string(b) != `{"a":{"progressToken":"client"}}` {
		t.Fatalf("Splice changed its input to %s", b)
	}
}

func TestProgressToken(t *testing.T) {
	tests := []struct{ params, want string }{
		{`{"_meta":{"progressToken":"abc"},"name":"x"}`, `"abc"`},
		{`{"name":"x","_meta":{"progressToken":12}}`, `12`},
		{`{"name":"x","arguments":{"progressToken":1}}`, ``}, // not under _meta
		{`{"name":"x"}`, ``},
		{``, ``},
		{`[1]`, ``},
	}
	for _, tt := range tests {
		if got := ProgressToken([]byte(tt.params)); string(got) != tt.want || tt.want == "" && got != nil {
			t.Errorf("ProgressToken(%s) = %q, want %q", tt.params, got, tt.want)
		}
	}
}

func TestIDKey(t *testing.T) {
	keys := map[string]bool{}
	for _, id := range []string{`1`, `"1"`, `1.0`, `"a"`, `-1`} {
		keys[IDKey([]byte(id))] = true
	}
	if len(keys) != 5 {
		t.Fatalf("distinct ids share keys: %v", keys)
	}
	m, _ := Parse([]byte(`{"jsonrpc":"2.0","id":"a","result":{}}`))
	if !keys[IDKey(m.ID)] {
		t.Fatal("a parsed id does not find its key")
	}
}
