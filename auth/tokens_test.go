package auth_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/mcpwrap/mcpwrap/auth"
)

func TestTokensNameTheirTenant(t *testing.T) {
	tokens := auth.NewTokens([]auth.Tenant{
		{Name: "acme", Token: "acme-token", Env: []string{"K=acme"}},
		{Name: "sso-only", Users: []string{"github:alice"}}, // no static token
		{Name: "globex", Token: "globex-token"},
	})
	if tokens.Len() != 2 {
		t.Fatalf("Len = %d, want 2 (a tenant without a token adds none)", tokens.Len())
	}
	for _, tc := range []struct {
		header     string
		wantTenant string
		wantCode   string // "" with wantTenant "": refused without a credential
	}{
		{"Bearer acme-token", "acme", ""},
		{"bearer globex-token", "globex", ""},
		{"BEARER  acme-token ", "acme", ""},
		{"Bearer wrong", "", "invalid_token"},
		{"Bearer ", "", ""},
		{"Basic acme-token", "", ""},
		{"", "", ""},
	} {
		r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		p, err := tokens.Authenticate(r)
		if tc.wantTenant != "" {
			if err != nil || p.Tenant != tc.wantTenant {
				t.Errorf("%q: %+v, %v; want tenant %s", tc.header, p, err, tc.wantTenant)
			}
			if tc.wantTenant == "acme" && !slices.Equal(p.Env, []string{"K=acme"}) {
				t.Errorf("%q: env %v", tc.header, p.Env)
			}
			continue
		}
		var ref *auth.Refusal
		if !errors.As(err, &ref) {
			t.Errorf("%q: err %v, want a refusal", tc.header, err)
			continue
		}
		if ref.Status != http.StatusUnauthorized || ref.Code != tc.wantCode {
			t.Errorf("%q: refusal %d %q, want 401 %q", tc.header, ref.Status, ref.Code, tc.wantCode)
		}
		if ref.Challenge == "" {
			t.Errorf("%q: no challenge", tc.header)
		}
	}
}

func TestTokenInTheQueryIsNotACredential(t *testing.T) {
	tokens := auth.NewTokens([]auth.Tenant{{Name: "acme", Token: "acme-token"}})
	r := httptest.NewRequest(http.MethodGet, "/mcp?access_token=acme-token", nil)
	if _, err := tokens.Authenticate(r); err == nil {
		t.Fatal("a token in the query string was accepted")
	}
}
