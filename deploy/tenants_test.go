package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpwrap/mcpwrap/internal/testkit"
)

// childEnv is the environment a process started with.
func childEnv(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatalf("reading the environment of pid %d: %v", pid, err)
	}
	m := map[string]string{}
	for kv := range bytes.SplitSeq(b, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok {
			m[k] = v
		}
	}
	return m
}

// TestTenantEnvironments serves two named tenants from a tenants file and an
// unnamed token beside them. Each tenant's children get that tenant's
// environment and nobody else's; logs name the tenant and never show a
// token or a tenant's values; a session answers only to the token that
// opened it.
func TestTenantEnvironments(t *testing.T) {
	tenants := map[string]struct {
		Token string            `json:"token"`
		Env   map[string]string `json:"env"`
	}{
		"alice": {Token: "alice-token-51c3e0", Env: map[string]string{"SERVICE_API_KEY": "alice-key-9a1f", "ALICE_ONLY": "a-only-77"}},
		"bob":   {Token: "bob-token-0d8e42", Env: map[string]string{"SERVICE_API_KEY": "bob-key-3c7d"}},
	}
	b, err := json.Marshal(tenants)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "tenants.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	in := startMcpwrap(t, env{
		"MCPWRAP_TOKEN":        token,
		"MCPWRAP_TENANTS_FILE": file,
		"MCPWRAP_CHILD_ENV":    "COMMON_SETTING=shared-1",
	})
	url := in.Base + "/mcp"

	type seen struct {
		id  string
		env map[string]string
	}
	children := map[string]seen{}
	for name, tok := range map[string]string{"alice": tenants["alice"].Token, "bob": tenants["bob"].Token, "token1": token} {
		cs := connect(t, url, tok, nil)
		pid := testkit.AskPid(t, cs)
		children[name] = seen{cs.ID(), childEnv(t, pid)}
		if got := in.Started(t, cs.ID()).Str("tenant"); got != name {
			t.Errorf("%s's session is logged with tenant %q", name, got)
		}
	}

	for name, c := range children {
		for k, v := range c.env {
			if strings.HasPrefix(k, "MCPWRAP_") {
				t.Errorf("%s's child sees %s", name, k)
			}
			if strings.Contains(v, "-token-") || v == token {
				t.Errorf("%s's child sees a token in %s", name, k)
			}
		}
		if c.env["COMMON_SETTING"] != "shared-1" {
			t.Errorf("%s's child lacks MCPWRAP_CHILD_ENV: COMMON_SETTING=%q", name, c.env["COMMON_SETTING"])
		}
	}
	if got := children["alice"].env; got["SERVICE_API_KEY"] != "alice-key-9a1f" || got["ALICE_ONLY"] != "a-only-77" {
		t.Errorf("alice's child: SERVICE_API_KEY=%q ALICE_ONLY=%q", got["SERVICE_API_KEY"], got["ALICE_ONLY"])
	}
	if got := children["bob"].env; got["SERVICE_API_KEY"] != "bob-key-3c7d" || got["ALICE_ONLY"] != "" {
		t.Errorf("bob's child: SERVICE_API_KEY=%q ALICE_ONLY=%q, want bob's key and nothing of alice's", got["SERVICE_API_KEY"], got["ALICE_ONLY"])
	}
	if got := children["token1"].env; got["SERVICE_API_KEY"] != "" || got["ALICE_ONLY"] != "" {
		t.Errorf("the unnamed token's child sees a tenant's environment: %v", got)
	}

	// Another tenant's session does not exist, as far as bob can tell.
	status, _, body := testkit.Request{URL: url, Token: tenants["bob"].Token, Session: children["alice"].id, Body: `{"jsonrpc":"2.0","id":9,"method":"ping"}`}.Send(t)
	if status != http.StatusNotFound {
		t.Errorf("bob using alice's session: %d %s, want 404", status, body)
	}

	logs := in.Logs.Text()
	for _, secret := range []string{token, tenants["alice"].Token, tenants["bob"].Token, "alice-key-9a1f", "a-only-77", "bob-key-3c7d"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log shows the secret %q", secret)
		}
	}
}

// TestTenantSessionAcrossMachines: with the same tenants on two Machines, a
// tenant's session opened on A works through B, and another tenant's token
// does not get at it that way either.
func TestTenantSessionAcrossMachines(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tenants.json")
	const aliceToken, bobToken = "alice-token-2b9c71", "bob-token-6e0f13"
	body := `{"alice": {"token": "` + aliceToken + `", "env": {"SERVICE_API_KEY": "alice-key-4e2a"}},
	          "bob":   {"token": "` + bobToken + `", "env": {"SERVICE_API_KEY": "bob-key-8d1b"}}}`
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startMcpwrap(t, env{"FLY_MACHINE_ID": machineA, "MCPWRAP_TENANTS_FILE": file})
	b := startMcpwrap(t, env{"FLY_MACHINE_ID": machineB, "MCPWRAP_TENANTS_FILE": file})
	rt := newRouter(map[string]string{machineA: a.Base, machineB: b.Base}, func(r *http.Request) string {
		if isInitialize(r) {
			return machineA
		}
		return machineB
	})
	front := rt.serve(t)

	cs := connect(t, front+"/mcp", aliceToken, nil)
	pid := testkit.AskPid(t, cs)
	if got := childEnv(t, pid)["SERVICE_API_KEY"]; got != "alice-key-4e2a" {
		t.Errorf("alice's child on A has SERVICE_API_KEY=%q", got)
	}
	status, _, out := testkit.Request{URL: front + "/mcp", Token: bobToken, Session: cs.ID(), Body: `{"jsonrpc":"2.0","id":3,"method":"ping"}`}.Send(t)
	if status != http.StatusNotFound {
		t.Errorf("bob using alice's session through B: %d %s, want 404", status, out)
	}
	if len(rt.replayed()) == 0 {
		t.Error("nothing was replayed: the test did not go through B")
	}
}
