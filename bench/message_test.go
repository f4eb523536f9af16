package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

func TestAppendRequestIsValidJSON(t *testing.T) {
	b := appendRequest(nil, 42, "tools/call", []byte(`{"name":"echo","arguments":{"text":"a\"b"}}`))
	var m struct {
		JSONRPC string `json:"jsonrpc"`
		ID      int64  `json:"id"`
		Method  string `json:"method"`
		Params  struct {
			Name      string
			Arguments map[string]string
		} `json:"params"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if m.JSONRPC != "2.0" || m.ID != 42 || m.Method != "tools/call" || m.Params.Arguments["text"] != `a"b` {
		t.Errorf("decoded %+v from %s", m, b)
	}
	n := appendNotification(nil, "notifications/initialized")
	if !json.Valid(n) || string(n) != `{"jsonrpc":"2.0","method":"notifications/initialized"}` {
		t.Errorf("notification %s", n)
	}
}

func TestCheckToolResult(t *testing.T) {
	res := func(s string) *message { return &message{ID: json.RawMessage("1"), Result: json.RawMessage(s)} }
	tests := []struct {
		name     string
		m        *message
		want     string
		wantLen  int
		wantKind string // empty: no error
	}{
		{"echo matches", res(`{"content":[{"type":"text","text":"hi"}]}`), "hi", 2, ""},
		{"echo differs", res(`{"content":[{"type":"text","text":"ho"}]}`), "hi", 2, kindBadResponse},
		{"length differs", res(`{"content":[{"type":"text","text":"xxx"}]}`), "", 4, kindBadResponse},
		{"no content", res(`{"content":[]}`), "", 4, kindBadResponse},
		{"unchecked tool", res(`{"content":[]}`), "", -1, ""},
		{"tool error", res(`{"content":[{"type":"text","text":"boom"}],"isError":true}`), "", -1, kindTool},
		{"rpc error", &message{ID: json.RawMessage("1"), Error: &rpcError{Code: -32602, Message: "bad"}}, "", -1, kindRPC},
		{"result not an object", res(`[1]`), "", -1, kindBadResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkToolResult(tt.m, tt.want, tt.wantLen)
			if tt.wantKind == "" {
				if err != nil {
					t.Errorf("unexpected error %v", err)
				}
				return
			}
			if got := kindOf(err); got != tt.wantKind {
				t.Errorf("kind %q (%v), want %q", got, err, tt.wantKind)
			}
		})
	}
}

func TestKindOf(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("call: %w", kindf("http_413", "too big")), "http_413"},
		{fmt.Errorf("read: %w", errTooLarge), kindTooLarge},
		{fmt.Errorf("wait: %w", context.DeadlineExceeded), kindTimeout},
		{errors.New("mystery"), "other"},
	}
	for _, tt := range tests {
		if got := kindOf(tt.err); got != tt.want {
			t.Errorf("kindOf(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
