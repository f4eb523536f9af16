package wrap_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpwrap/mcpwrap/child"
	"github.com/mcpwrap/mcpwrap/session"
	"github.com/mcpwrap/mcpwrap/wrap"
)

// responder is the cheapest JSON-RPC server there is: sed turns each
// request into a response to it. Against it, what is measured is mcpwrap's
// own cost: HTTP, auth, parsing, id remapping, the pipes, and back.
func responder(o *session.Options, _ *wrap.Options) {
	o.Command = child.Command{Path: "sed", Args: []string{"-u", `s/"method":"[^"]*".*$/"result":{}}/`}}
}

// BenchmarkHTTPRoundTrip is one POSTed request answered as JSON, through
// the whole handler, over real HTTP on 127.0.0.1 with keep-alive. (sed's
// regular expression is slow on long lines, so payloads stay small here;
// the 1 MiB figures come from mcpwrap bench.)
func BenchmarkHTTPRoundTrip(b *testing.B) {
	for _, size := range []int{64, 4096} {
		b.Run(fmt.Sprintf("payload=%d", size), func(b *testing.B) {
			s := start(b, responder)
			id := s.open(b)
			body := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + strings.Repeat("x", size) + `"}}}`
			client := &http.Client{}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodPost, s.URL, strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				req.Header.Set("Mcp-Session-Id", id)
				req.Header.Set("MCP-Protocol-Version", "2025-11-25")
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !strings.Contains(string(got), `"id":7`) {
					b.Fatalf("%d %s", resp.StatusCode, got)
				}
			}
		})
	}
}
