package proxy_test

import (
	"bufio"
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// The shim's requests carry credentials, so a redirect to another origin —
// another port of the same host, another host, or from https to http — is
// not followed: the client gets an error that says why, and the other
// origin sees nothing.
func TestRedirectsDoNotCarryCredentialsAcrossOrigins(t *testing.T) {
	var reached atomic.Int32 // requests that reached the other origin
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		http.Error(w, "not here", http.StatusNotFound)
	}))
	defer elsewhere.Close()
	redirect := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/mcp", http.StatusTemporaryRedirect)
	})
	plain := httptest.NewServer(redirect) // another port, same host
	defer plain.Close()
	tlsSrv := httptest.NewTLSServer(redirect) // https → http
	defer tlsSrv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct{ name, url string }{
		{"another port", plain.URL + "/mcp"},
		{"https to http", tlsSrv.URL + "/mcp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
			defer cancel()
			stdin, stdout := rawShim(t, ctx, []string{"MCPWRAP_TOKEN=" + testToken, "SSL_CERT_FILE=" + ca},
				"--header", "X-Api-Key: header-secret", "--retry-for", "1s", tc.url)
			if _, err := stdin.Write([]byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}` + "\n")); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			if !strings.Contains(line, `"error"`) || !strings.Contains(line, "redirected to another origin") {
				t.Errorf("answer %s, want an error naming the redirect", line)
			}
			for _, secret := range []string{testToken, "header-secret"} {
				if strings.Contains(line, secret) {
					t.Errorf("the answer carries a credential: %s", line)
				}
			}
		})
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("%d requests reached the other origin", n)
	}
}
