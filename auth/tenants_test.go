package auth_test

import (
	"testing"

	"github.com/mcpwrap/mcpwrap/auth"
)

func TestForIdentity(t *testing.T) {
	tenants := auth.NewTenants([]auth.Tenant{
		{Name: "corp", Users: []string{"google:*@corp.com", "oidc:*.admin@corp.com"}},
		{Name: "alice", Users: []string{"google:alice@corp.com", "github:Alice"}},
		{Name: "gh", Users: []string{"github:*"}},
		{Name: "plain", Users: []string{"bob@corp.com", "*@plain.com", "*"}},
	})
	for _, tc := range []struct{ identity, tenant string }{
		{"google:alice@corp.com", "alice"}, // exact beats a pattern listed earlier
		{"GOOGLE:Alice@Corp.com", "alice"},
		{"google:carol@corp.com", "corp"},
		{"google:carol@corp.com.evil.com", ""},
		{"google:carol@evilcorp.com", ""},
		{"oidc:carol@corp.com", ""},
		{"oidc:carol.admin@corp.com", "corp"},
		{"github:alice", "alice"},
		{"github:anyone", "gh"},
		{"gitlab:anyone", ""},
		{"bob@corp.com", "plain"},
		{"BOB@corp.com", "plain"},
		{"carol@plain.com", ""}, // no glob without a provider prefix
		{"*", "plain"},          // literally, only
		{"anyone", ""},
		{"", ""},
	} {
		tn, ok := tenants.ForIdentity(tc.identity)
		if ok != (tc.tenant != "") || tn.Name != tc.tenant {
			t.Errorf("ForIdentity(%q) = %q, %v; want %q", tc.identity, tn.Name, ok, tc.tenant)
		}
	}
	var none *auth.Tenants
	if _, ok := none.ForIdentity("github:alice"); ok {
		t.Error("no tenants at all matched an identity")
	}
}
