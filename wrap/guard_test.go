package wrap_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpwrap/mcpwrap/session"
	"github.com/mcpwrap/mcpwrap/wrap"
)

// errorCode is the JSON-RPC error code in a body, or 0.
func errorCode(t *testing.T, body string) int {
	t.Helper()
	var m struct {
		Error *struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &m); err != nil || m.Error == nil {
		t.Errorf("body is not a JSON-RPC error: %q", body)
		return 0
	}
	return m.Error.Code
}

func TestTokenIsRequired(t *testing.T) {
	s := start(t)
	for _, tc := range []struct{ name, auth string }{
		{"missing", "-"},
		{"wrong", "Bearer not-the-token"},
		{"wrong scheme", "Basic " + token},
		{"empty bearer", "Bearer "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The conformance suite's first request, and a later one.
			for _, body := range []string{initBody, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`} {
				r, b := s.do(t, raw{auth: tc.auth, body: body})
				if r.StatusCode != http.StatusUnauthorized {
					t.Errorf("%d %s, want 401", r.StatusCode, b)
				}
				if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate = %q", r.Header.Get("WWW-Authenticate"))
				}
			}
			r, _ := s.do(t, raw{method: http.MethodGet, auth: tc.auth, accept: "text/event-stream"})
			if r.StatusCode != http.StatusUnauthorized {
				t.Errorf("GET: %d, want 401", r.StatusCode)
			}
		})
	}
	if n := s.Reg.Len(); n != 0 {
		t.Errorf("%d sessions started without a token", n)
	}
	// The scheme is case-insensitive.
	r, b := s.do(t, raw{auth: "bearer " + token, body: initBody})
	if r.StatusCode != http.StatusOK {
		t.Errorf("lower-case scheme: %d %s", r.StatusCode, b)
	}
}

func TestForeignOriginIsRefused(t *testing.T) {
	s := start(t, func(_ *session.Options, w *wrap.Options) {
		w.AllowedOrigins = []string{"https://app.example.com"}
	})
	for origin, want := range map[string]int{
		"http://evil.example.com":  http.StatusForbidden,
		"null":                     http.StatusForbidden,
		"http://localhost:6274":    http.StatusOK,
		"http://127.0.0.1:9":       http.StatusOK,
		"https://app.example.com":  http.StatusOK,
		"https://app.example.com.": http.StatusForbidden,
	} {
		r, b := s.do(t, raw{origin: origin, body: initBody})
		if r.StatusCode != want {
			t.Errorf("Origin %s: %d %s, want %d", origin, r.StatusCode, b, want)
		}
	}
}

func TestBadInputGetsAClearErrorAndHarmsNoOne(t *testing.T) {
	s := start(t, func(_ *session.Options, w *wrap.Options) { w.MaxMessage = 64 << 10 })
	bystander := connect(t, s.URL, nil)
	id := s.open(t)
	huge := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + strings.Repeat("x", 65<<10) + `"}}}`
	for _, tc := range []struct {
		name   string
		req    raw
		status int
		code   int // JSON-RPC error code, 0 to skip
	}{
		{"malformed JSON", raw{session: id, body: `{"jsonrpc":"2.0",`}, 400, -32700},
		{"not JSON-RPC", raw{session: id, body: `{"hello":"world"}`}, 400, -32600},
		{"wrong version", raw{session: id, body: `{"jsonrpc":"1.0","id":1,"method":"ping"}`}, 400, -32600},
		{"empty body", raw{session: id, body: ``}, 400, -32700},
		{"wrong Content-Type", raw{session: id, contentType: "text/plain", body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`}, 415, 0},
		{"Accept without SSE", raw{session: id, accept: "application/json", body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`}, 406, 0},
		{"GET without SSE", raw{method: http.MethodGet, session: id, accept: "application/json"}, 406, 0},
		{"body over the limit", raw{session: id, body: huge}, 413, 0},
		{"unknown method", raw{method: http.MethodPut, session: id, body: `{}`}, 405, 0},
		{"no session", raw{body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`}, 400, 0},
		{"unknown session", raw{session: "no-such-session", body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`}, 404, 0},
		{"unsupported protocol version", raw{session: id, version: "1999-01-01", body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`}, 400, 0},
		{"initialize again", raw{session: id, body: initBody}, 400, -32600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, b := s.do(t, tc.req)
			if r.StatusCode != tc.status {
				t.Fatalf("%d %s, want %d", r.StatusCode, b, tc.status)
			}
			if tc.status == 405 && r.Header.Get("Allow") == "" {
				t.Errorf("405 without Allow")
			}
			if tc.code != 0 {
				if got := errorCode(t, b); got != tc.code {
					t.Errorf("JSON-RPC code %d, want %d", got, tc.code)
				}
			} else if r.Header.Get("Content-Type") == "application/json" {
				errorCode(t, b) // whatever its code, a JSON body is a JSON-RPC error
			}
		})
	}
	// Neither the session that got the bad input nor another one noticed.
	r, b := s.do(t, raw{session: id, body: `{"jsonrpc":"2.0","id":9,"method":"ping"}`})
	if r.StatusCode != http.StatusOK || !strings.Contains(b, `"result"`) {
		t.Errorf("ping after bad input: %d %s", r.StatusCode, b)
	}
	if err := bystander.Ping(ctxFor(t), nil); err != nil {
		t.Errorf("bystander: %v", err)
	}
}

func TestHealthSaysWhetherItCanServe(t *testing.T) {
	s := start(t, func(o *session.Options, _ *wrap.Options) { o.MaxSessions = 1 })
	health := func() (int, string) {
		resp, err := http.Get(s.srv.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := health(); code != http.StatusOK {
		t.Fatalf("healthz: %d %s", code, body)
	}
	s.open(t)
	// Full is not unhealthy: the sessions it holds must stay reachable.
	if code, body := health(); code != http.StatusOK || !strings.Contains(body, `"full":true`) {
		t.Errorf("healthz at the session limit: %d %s, want 200 and full", code, body)
	}
	r, _ := s.do(t, raw{body: initBody})
	if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Errorf("initialize beyond the limit: %d Retry-After=%q", r.StatusCode, r.Header.Get("Retry-After"))
	}

	missing := start(t, func(o *session.Options, _ *wrap.Options) { o.Command.Path = "/nonexistent/server" })
	resp, err := http.Get(missing.srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("healthz with a missing command: %d, want 503", resp.StatusCode)
	}
}
