package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestBuiltInAuthorizationServer signs in on the key page of the real
// binary and uses the access token it issues with the Go SDK client.
func TestBuiltInAuthorizationServer(t *testing.T) {
	w := startWrapper(t, launch{env: map[string]string{"MCPWRAP_AUTH_SECRET": strings.Repeat("k", 40)}})

	var meta struct {
		Issuer string `json:"issuer"`
	}
	getJSON(t, w.Base+"/.well-known/oauth-authorization-server", &meta)
	if meta.Issuer != w.Base {
		t.Fatalf("issuer %q, want the address listened on %s", meta.Issuer, w.Base)
	}

	resp, err := http.Post(w.Base+"/register", "application/json", strings.NewReader(`{"redirect_uris":["http://127.0.0.1/cb"],"client_name":"e2e"}`))
	if err != nil {
		t.Fatal(err)
	}
	var reg struct {
		ClientID string `json:"client_id"`
	}
	json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	verifier := strings.Repeat("x", 50)
	sum := sha256.Sum256([]byte(verifier))
	redirect := "http://127.0.0.1:5678/cb"
	page := pageBody(t, browser, http.MethodGet, w.Base+"/authorize?"+url.Values{
		"response_type": {"code"}, "client_id": {reg.ClientID}, "redirect_uri": {redirect}, "state": {"s1"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"resource": {w.URL},
	}.Encode(), nil)
	form := hiddenFields(page)
	form.Set("key", e2eToken)
	consent := pageBody(t, browser, http.MethodPost, w.Base+"/authorize/key", form)
	allow := hiddenFields(consent[strings.LastIndex(consent, "<form"):])
	req, _ := http.NewRequest(http.MethodPost, w.Base+"/authorize/consent", strings.NewReader(allow.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, err := resp.Location()
	if err != nil || back.Query().Get("code") == "" {
		t.Fatalf("consent: %s %v", resp.Status, err)
	}

	resp, err = http.PostForm(w.Base+"/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "code_verifier": {verifier},
		"client_id": {reg.ClientID}, "redirect_uri": {redirect}, "resource": {w.URL},
	})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if tok.AccessToken == "" {
		t.Fatalf("token: %s", resp.Status)
	}

	client := mcp.NewClient(&mcp.Implementation{Name: "mcpwrap-e2e", Version: "1"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{
		Endpoint:   w.URL,
		HTTPClient: &http.Client{Transport: bearer{tok.AccessToken, http.DefaultTransport}},
	}, nil)
	if err != nil {
		t.Fatalf("connecting with the access token: %v", err)
	}
	defer cs.Close()
	if _, err := cs.ListTools(t.Context(), nil); err != nil {
		t.Fatalf("listing tools: %v", err)
	}

	// A token signed under another secret is refused.
	forged := tok.AccessToken[:len(tok.AccessToken)-4] + "AAAA"
	r, _ := http.NewRequest(http.MethodPost, w.URL, strings.NewReader(`{}`))
	r.Header.Set("Authorization", "Bearer "+forged)
	resp, err = http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged token: %s", resp.Status)
	}
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %s %v", u, resp.Status, err)
	}
}

func pageBody(t *testing.T, c *http.Client, method, u string, form url.Values) string {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(form.Encode()))
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s", method, u, resp.Status)
	}
	return string(b)
}

var hiddenInput = regexp.MustCompile(`name="([a-z]+)" value="([^"]*)"`)

// hiddenFields are the hidden fields of the first form in body.
func hiddenFields(body string) url.Values {
	if end := strings.Index(body, "</form>"); end >= 0 {
		body = body[:end]
	}
	v := url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(body, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}
