package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpwrap/mcpwrap/auth"
)

// upstreamSignIn follows a sign-in through a stand-in provider with an HTTP
// client and returns the page it ends on.
func (f *fixture) upstreamSignIn(c *http.Client, provider, redirect, client string) response {
	f.t.Helper()
	page := get(f.t, c, f.authorizeURL(client, redirect, newPKCE(), nil))
	var form url.Values
	for _, chunk := range strings.Split(page.body, "<form")[1:] {
		if strings.Contains(chunk, `value="`+provider+`"`) {
			form = fields("<form" + chunk)
		}
	}
	if form == nil {
		f.t.Fatalf("no %s button: %s", provider, page.body)
	}
	r := post(f.t, c, f.base+"/authorize/upstream", form)
	for i := 0; r.location != nil && i < 5; i++ {
		r = get(f.t, c, r.location.String())
	}
	return r
}

func TestGitHubSignIn(t *testing.T) {
	gh := newGitHubStandIn(t)
	f := newFixture(t, withUpstreams(gh, nil))
	redirect := "https://claude.ai/api/mcp/auth_callback"
	client := f.register(redirect)

	c := browser(t)
	consent := f.upstreamSignIn(c, "github", redirect, client)
	if consent.status != http.StatusOK || !strings.Contains(consent.body, "github:alice") {
		t.Fatalf("after GitHub: %d %s", consent.status, consent.body)
	}
	back := post(t, c, f.base+"/authorize/consent", lastForm(consent.body))
	if back.location == nil || back.location.Query().Get("code") == "" {
		t.Fatalf("consent: %d %v", back.status, back.location)
	}

	gh.setUser("mallory")
	refused := f.upstreamSignIn(browser(t), "github", redirect, client)
	if refused.status != http.StatusForbidden || !strings.Contains(refused.body, "github:mallory") || !strings.Contains(refused.body, "may not use this server") {
		t.Fatalf("unmapped user: %d %s", refused.status, refused.body)
	}
}

func TestOIDCSignIn(t *testing.T) {
	op := newOIDCStandIn(t)
	f := newFixture(t, withUpstreams(nil, op))
	redirect := "http://127.0.0.1/callback"
	client := f.register(redirect)
	consent := f.upstreamSignIn(browser(t), "oidc", "http://127.0.0.1:5555/callback", client)
	if consent.status != http.StatusOK || !strings.Contains(consent.body, "oidc:bob@corp.example") {
		t.Fatalf("after OIDC: %d %s", consent.status, consent.body)
	}
	op.mu.Lock()
	op.unverified = true
	op.mu.Unlock()
	if r := f.upstreamSignIn(browser(t), "oidc", redirect, client); r.status != http.StatusBadGateway {
		t.Errorf("unverified email: %d %s", r.status, r.body)
	}
}

func TestUpstreamStateIsSingleUseAndBound(t *testing.T) {
	gh := newGitHubStandIn(t)
	f := newFixture(t, withUpstreams(gh, nil))
	redirect := "https://claude.ai/api/mcp/auth_callback"
	client := f.register(redirect)

	c := browser(t)
	page := get(t, c, f.authorizeURL(client, redirect, newPKCE(), nil))
	form := fields(strings.Split(page.body, `action="/authorize/upstream"`)[1])
	toGitHub := post(t, c, f.base+"/authorize/upstream", form)
	callback := get(t, c, toGitHub.location.String()).location
	cookies := c.Jar.Cookies(callback)

	// Another browser, without the state cookie, cannot finish it.
	if r := get(t, browser(t), callback.String()); r.status != http.StatusBadRequest {
		t.Errorf("callback in another browser: %d", r.status)
	}
	// A forged state with the right cookie is refused.
	forged := *callback
	q := forged.Query()
	q.Set("state", "forged")
	forged.RawQuery = q.Encode()
	if r := get(t, c, forged.String()); r.status != http.StatusBadRequest {
		t.Errorf("forged state: %d", r.status)
	}
	if r := get(t, c, callback.String()); r.status != http.StatusOK {
		t.Fatalf("callback: %d %s", r.status, r.body)
	}
	// Replayed with the cookie it had: used up.
	replay := browser(t)
	replay.Jar.SetCookies(callback, cookies)
	if r := get(t, replay, callback.String()); r.status != http.StatusBadRequest || !strings.Contains(r.body, "already used") {
		t.Errorf("replayed state: %d %s", r.status, r.body)
	}
}

// An upstream callback that reaches another instance is replayed to the one
// that started the sign-in, where its single use is kept.
func TestUpstreamCallbackOnAnotherMachineIsReplayed(t *testing.T) {
	gh := newGitHubStandIn(t)
	a := newFixture(t, func(o *Options) { withUpstreams(gh, nil)(o); o.MachineID = "m1" })
	b := newFixture(t, func(o *Options) {
		withUpstreams(gh, nil)(o)
		o.Issuer, o.Resource, o.MachineID = a.issuer, a.srv.opts.Resource, "m2"
	})
	redirect := "https://claude.ai/api/mcp/auth_callback"
	client := a.register(redirect)
	c := browser(t)
	page := get(t, c, a.authorizeURL(client, redirect, newPKCE(), nil))
	form := fields(strings.Split(page.body, `action="/authorize/upstream"`)[1])
	toGitHub := post(t, c, a.base+"/authorize/upstream", form)
	callback := get(t, c, toGitHub.location.String()).location

	// The same callback, cookie and all, at the other instance.
	other := browser(t)
	onB, _ := url.Parse(b.base + callback.RequestURI())
	other.Jar.SetCookies(onB, c.Jar.Cookies(callback))
	if r := get(t, other, onB.String()); r.status != http.StatusMisdirectedRequest || r.header.Get("Fly-Replay") != "instance=m1" {
		t.Fatalf("callback on m2: %d %v", r.status, r.header)
	}
	if r := get(t, c, callback.String()); r.status != http.StatusOK || !strings.Contains(r.body, "github:alice") {
		t.Fatalf("callback on m1: %d", r.status)
	}
}

func TestGoogleVouchesOnlyForDomainsItManages(t *testing.T) {
	for _, tc := range []struct {
		email, hd string
		want      bool
	}{
		{"alice@gmail.com", "", true},
		{"alice@googlemail.com", "", true},
		{"bob@corp.com", "corp.com", true},
		{"bob@corp.com", "CORP.com", true},
		{"bob@corp.com", "", false},          // a consumer account made for a corp address
		{"bob@corp.com", "other.com", false}, // another Workspace's token
		{"nobody", "", false},
	} {
		if got := googleVouches(tc.email, tc.hd); got != tc.want {
			t.Errorf("googleVouches(%q, %q) = %v, want %v", tc.email, tc.hd, got, tc.want)
		}
	}
}

// Anyone may start an upstream sign-in and come back with a made-up code.
// Such callbacks must not fill the set that keeps states single-use: a
// state is used up only by a code the provider redeemed, so a flood of
// them leaves room for real sign-ins, and a real one still cannot be
// replayed.
func TestUpstreamStateFloodCannotFillTheSet(t *testing.T) {
	gh := newGitHubStandIn(t)
	f := newFixture(t, withUpstreams(gh, nil))
	f.srv.states = newUsedSet(4)
	redirect := "https://claude.ai/api/mcp/auth_callback"
	client := f.register(redirect)

	// start follows the sign-in to the provider and returns the browser and
	// the callback the provider would send it to.
	start := func() (*http.Client, *url.URL) {
		c := browser(t)
		page := get(t, c, f.authorizeURL(client, redirect, newPKCE(), nil))
		form := fields(strings.Split(page.body, `action="/authorize/upstream"`)[1])
		toGitHub := post(t, c, f.base+"/authorize/upstream", form)
		return c, get(t, c, toGitHub.location.String()).location
	}
	for i := range 12 {
		c, callback := start()
		forged := *callback
		q := forged.Query()
		q.Set("code", "made-up-code")
		forged.RawQuery = q.Encode()
		if r := get(t, c, forged.String()); r.status != http.StatusBadGateway {
			t.Fatalf("made-up code %d: %d %s", i, r.status, r.body)
		}
	}

	c, callback := start()
	cookies := c.Jar.Cookies(callback)
	if r := get(t, c, callback.String()); r.status != http.StatusOK || !strings.Contains(r.body, "github:alice") {
		t.Fatalf("a real sign-in after the flood: %d %s", r.status, r.body)
	}
	replay := browser(t)
	replay.Jar.SetCookies(callback, cookies)
	if r := get(t, replay, callback.String()); r.status != http.StatusBadRequest || !strings.Contains(r.body, "already used") {
		t.Errorf("replayed callback: %d %s", r.status, r.body)
	}
}

// A tenant may list a GitHub account by its number (github:id:1001), which
// stays with the account when it is renamed and never passes to whoever
// takes the login next; a refresh re-checks the account by that number too.
func TestGitHubAccountByNumber(t *testing.T) {
	gh := newGitHubStandIn(t)
	byNumber := func(o *Options) {
		withUpstreams(gh, nil)(o)
		o.Tenant = auth.NewTenants([]auth.Tenant{{Name: "acme", Users: []string{"github:id:1001"}}}).ForIdentity
	}
	f := newFixture(t, byNumber)
	redirect := "http://127.0.0.1/cb"
	client := f.register(redirect)

	p := newPKCE()
	c := browser(t)
	page := get(t, c, f.authorizeURL(client, redirect, p, nil))
	form := fields(strings.Split(page.body, `action="/authorize/upstream"`)[1])
	r := post(t, c, f.base+"/authorize/upstream", form)
	for i := 0; r.location != nil && i < 5; i++ {
		r = get(t, c, r.location.String())
	}
	if r.status != http.StatusOK || !strings.Contains(r.body, "github:alice") {
		t.Fatalf("account 1001 as alice: %d %s", r.status, r.body)
	}
	back := post(t, c, f.base+"/authorize/consent", lastForm(r.body))
	if back.location == nil || back.location.Query().Get("code") == "" {
		t.Fatalf("consent: %d %v", back.status, back.location)
	}
	tok := f.redeem(client, redirect, back.location.Query().Get("code"), p.verifier)
	if tok.status != http.StatusOK || tok.RefreshToken == "" {
		t.Fatalf("token: %+v", tok)
	}

	gh.setAccount("alice-renamed", 1001)
	if r := f.upstreamSignIn(browser(t), "github", redirect, client); r.status != http.StatusOK || !strings.Contains(r.body, "github:alice-renamed") {
		t.Errorf("account 1001 after a rename: %d %s", r.status, r.body)
	}
	gh.setAccount("alice", 2002)
	if r := f.upstreamSignIn(browser(t), "github", redirect, client); r.status != http.StatusForbidden || !strings.Contains(r.body, "github:id:2002") {
		t.Errorf("someone else under the login alice: %d %s", r.status, r.body)
	}

	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {client}}
	if r := tokenAt(t, f.base, refresh); r.status != http.StatusOK {
		t.Errorf("refresh while account 1001 is listed: %+v", r)
	}
	// The same secret with the tenants file changed: the number is gone,
	// and the login the account signed in with is listed instead — which
	// no longer says it is this account.
	removed := newFixture(t, func(o *Options) {
		byNumber(o)
		o.Tenant = auth.NewTenants([]auth.Tenant{{Name: "acme", Users: []string{"github:id:3003"}}, {Name: "globex", Users: []string{"github:alice"}}}).ForIdentity
	})
	if r := tokenAt(t, removed.base, refresh); r.Error != "invalid_grant" {
		t.Errorf("refresh after account 1001 left the tenant: %+v, want invalid_grant", r)
	}
}
