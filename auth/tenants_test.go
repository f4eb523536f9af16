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

// A GitHub account goes by its number and its login; a tenant may list
// either, and the number, which no one else can take, decides first.
func TestForIdentityTriesTheLastingNameFirst(t *testing.T) {
	tenants := auth.NewTenants([]auth.Tenant{
		{Name: "stale", Users: []string{"github:alice"}},
		{Name: "alice", Users: []string{"github:id:1001"}},
		{Name: "gh", Users: []string{"github:*"}},
	})
	for _, tc := range []struct {
		identities []string
		tenant     string
	}{
		{[]string{"github:id:1001", "github:alice"}, "alice"},         // the number beats a login listed earlier
		{[]string{"github:id:1001", "github:alice-renamed"}, "alice"}, // renamed: still hers
		{[]string{"github:id:2002", "github:alice"}, "stale"},         // someone else took the login
		{[]string{"github:id:2002", "github:bob"}, "gh"},
		{[]string{"", "github:alice"}, "stale"},
		{nil, ""},
	} {
		tn, ok := tenants.ForIdentity(tc.identities...)
		if ok != (tc.tenant != "") || tn.Name != tc.tenant {
			t.Errorf("ForIdentity(%q) = %q, %v; want %q", tc.identities, tn.Name, ok, tc.tenant)
		}
	}
}
