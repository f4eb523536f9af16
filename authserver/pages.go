package authserver

import (
	"bytes"
	"context"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// page is everything a page template may show. Sealed values and form
// tokens go into hidden fields; a key typed by the user never comes back.
type page struct {
	Title   string
	Kind    string // signin, consent, message
	Message string
	Detail  string
	Error   string

	Client       string
	Document     string // verified host of a CIMD client
	RedirectHost string
	Resource     string
	Identity     string

	Base      string // the issuer's path prefix, for form actions
	Field     string // the sealed field's name: request or grant
	Sealed    string
	CSRF      string
	Key       bool
	Upstreams []upstreamButton
}

type upstreamButton struct{ ID, Label string }

var pages = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
  :root { color-scheme: light dark; --fg: #1d2330; --muted: #5b6475; --bg: #f3f5f9; --card: #fff; --line: #d9dee8; --accent: #2f5bd3; --bad: #b42318; --badbg: #fdecea; }
  @media (prefers-color-scheme: dark) { :root { --fg: #e8ebf2; --muted: #a4acbd; --bg: #12151c; --card: #1c2029; --line: #333a48; --accent: #7c9cf5; --bad: #ffb4a9; --badbg: #3b1d1a; } }
  * { box-sizing: border-box; }
  body { margin: 0; min-height: 100vh; display: flex; align-items: center; justify-content: center; padding: 16px;
         font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
  main { width: 100%; max-width: 420px; background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 28px 24px; }
  h1 { font-size: 1.3rem; margin: 0 0 12px; }
  p { margin: 0 0 14px; }
  .muted { color: var(--muted); font-size: .92rem; }
  .error { color: var(--bad); background: var(--badbg); border-radius: 8px; padding: 10px 12px; margin: 0 0 14px; }
  label { display: block; font-weight: 600; margin: 0 0 6px; }
  input[type=password] { width: 100%; font: inherit; padding: 10px 12px; border: 1px solid var(--line); border-radius: 8px; background: transparent; color: inherit; }
  button { width: 100%; font: inherit; font-weight: 600; padding: 11px 14px; border-radius: 8px; border: 1px solid var(--accent); cursor: pointer; margin-top: 12px; }
  .primary { background: var(--accent); color: #fff; }
  .secondary { background: transparent; color: var(--accent); }
  .or { text-align: center; color: var(--muted); margin: 18px 0 6px; font-size: .9rem; }
  dl { margin: 0 0 14px; display: grid; grid-template-columns: auto 1fr; gap: 6px 12px; }
  dt { color: var(--muted); }
  dd { margin: 0; overflow-wrap: anywhere; font-weight: 600; }
  .row { display: flex; gap: 10px; }
  .row form { flex: 1; }
</style>
</head>
<body>
<main>
{{if eq .Kind "signin"}}
  <h1>Sign in to connect {{if .Client}}{{.Client}}{{else}}an app{{end}}</h1>
  <p class="muted">to {{.Resource}}</p>
  {{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
  {{if .Key}}
  <form method="post" action="{{.Base}}/authorize/key">
    <input type="hidden" name="{{.Field}}" value="{{.Sealed}}">
    <input type="hidden" name="csrf" value="{{.CSRF}}">
    <label for="key">Your access key</label>
    <input type="password" id="key" name="key" autocomplete="off" autocapitalize="off" spellcheck="false" required autofocus>
    <button class="primary" type="submit">Continue</button>
  </form>
  {{end}}
  {{if .Upstreams}}{{if .Key}}<p class="or">or</p>{{end}}
  {{range .Upstreams}}
  <form method="post" action="{{$.Base}}/authorize/upstream">
    <input type="hidden" name="{{$.Field}}" value="{{$.Sealed}}">
    <input type="hidden" name="csrf" value="{{$.CSRF}}">
    <input type="hidden" name="provider" value="{{.ID}}">
    <button class="secondary" type="submit">Continue with {{.Label}}</button>
  </form>
  {{end}}{{end}}
{{else if eq .Kind "consent"}}
  <h1>Allow {{if .Client}}{{.Client}}{{else}}this app{{end}} to use this server?</h1>
  <dl>
    <dt>App</dt><dd>{{if .Client}}{{.Client}}{{else}}(unnamed){{end}}</dd>
    {{if .Document}}<dt>Published by</dt><dd>{{.Document}}</dd>{{end}}
    <dt>Returns to</dt><dd>{{.RedirectHost}}</dd>
    <dt>Server</dt><dd>{{.Resource}}</dd>
    <dt>Signed in as</dt><dd>{{.Identity}}</dd>
  </dl>
  {{if not .Document}}<p class="muted">The app named itself; only allow it if you just started connecting it and it returns to the place you expect.</p>{{end}}
  <div class="row">
    <form method="post" action="{{.Base}}/authorize/consent">
      <input type="hidden" name="{{.Field}}" value="{{.Sealed}}">
      <input type="hidden" name="csrf" value="{{.CSRF}}">
      <input type="hidden" name="action" value="deny">
      <button class="secondary" type="submit">Cancel</button>
    </form>
    <form method="post" action="{{.Base}}/authorize/consent">
      <input type="hidden" name="{{.Field}}" value="{{.Sealed}}">
      <input type="hidden" name="csrf" value="{{.CSRF}}">
      <input type="hidden" name="action" value="allow">
      <button class="primary" type="submit">Allow</button>
    </form>
  </div>
{{else}}
  <h1>{{.Message}}</h1>
  {{if .Identity}}<p>You signed in as <strong>{{.Identity}}</strong>.</p>{{end}}
  {{if .Detail}}<p class="muted">{{.Detail}}</p>{{end}}
{{end}}
</main>
</body>
</html>
`))

// render writes a page with headers that keep it from being framed, cached
// or leaking its URL, and a policy that allows no script at all. Forms may
// post to this server and, for the redirect that follows a post, to
// formTargets: Chromium applies form-action to those redirects.
func (s *Server) render(w http.ResponseWriter, status int, p page, formTargets ...string) {
	p.Base = s.prefix
	p.Resource = s.opts.Resource
	var buf bytes.Buffer
	if err := pages.Execute(&buf, p); err != nil {
		s.log.Error().Err(err).Msg("rendering a page")
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	formAction := "'self'"
	for _, t := range formTargets {
		if src := cspSource(t); src != "" {
			formAction += " " + src
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action "+formAction+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// cspSource is the CSP source expression for where a URL leads: its origin,
// or for a private-use scheme the scheme alone ("cursor:"). Anything that
// could end the directive early gives "".
func cspSource(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return ""
	}
	src := strings.ToLower(u.Scheme) + ":"
	if u.Scheme == "http" || u.Scheme == "https" {
		src += "//" + u.Host
	}
	for _, c := range src {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("+.-:/[]", c)) {
			return ""
		}
	}
	return src
}

// redirectHost is where a redirect URI leads, as a person reads it.
func redirectHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	if u.Scheme == "http" || u.Scheme == "https" {
		if isLoopbackHost(u.Hostname()) {
			return u.Host + " (an app on this device)"
		}
		return u.Host
	}
	return u.Scheme + "://" + u.Host + " (an app on this device)"
}

func (s *Server) signInPage(w http.ResponseWriter, r *http.Request, status int, sealed, message string) {
	var req authRequest
	_ = s.keys.request.open(sealed, &req)
	p := page{
		Title:  "Sign in",
		Kind:   "signin",
		Error:  message,
		Client: req.ClientName,
		Field:  "request",
		Sealed: sealed,
		CSRF:   s.formToken(w, r, "request", sealed),
		Key:    s.opts.Tokens != nil && s.opts.Tokens.Len() > 0,
	}
	var targets []string
	if s.github != nil {
		p.Upstreams = append(p.Upstreams, upstreamButton{"github", "GitHub"})
		targets = append(targets, s.github.authURL)
	}
	if s.oidc != nil {
		p.Upstreams = append(p.Upstreams, upstreamButton{"oidc", s.oidc.label()})
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		if pr, err := s.oidc.provider(ctx, s.opts.HTTPClient); err == nil {
			targets = append(targets, pr.Endpoint().AuthURL)
		}
		cancel()
	}
	s.render(w, status, p, targets...)
}

// consentPage asks to allow req for who signed in: g without its request
// and expiry, which it sets.
func (s *Server) consentPage(w http.ResponseWriter, r *http.Request, req authRequest, g grant) {
	g.Request, g.Expires = req, s.now().Add(signInTTL).Unix()
	sealed, err := s.keys.grant.seal(g)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.render(w, http.StatusOK, page{
		Title:        "Allow access",
		Kind:         "consent",
		Client:       req.ClientName,
		Document:     req.Document,
		RedirectHost: redirectHost(req.RedirectURI),
		Identity:     g.Subject,
		Field:        "grant",
		Sealed:       sealed,
		CSRF:         s.formToken(w, r, "grant", sealed),
	}, req.RedirectURI)
}

func (s *Server) messagePage(w http.ResponseWriter, r *http.Request, status int, message, detail string) {
	s.render(w, status, page{Title: message, Kind: "message", Message: message, Detail: detail})
}

func (s *Server) refusedPage(w http.ResponseWriter, r *http.Request, identity, account string) {
	ev := s.log.Info().Str("identity", identity)
	detail := "Ask the server's owner to add this account, then connect again from the app."
	if account != "" {
		ev = ev.Str("account", account)
		detail = "Ask the server's owner to add this account (" + account + ", which stays with it if it is renamed), then connect again from the app."
	}
	ev.Msg("sign-in refused: identity in no tenant")
	s.render(w, http.StatusForbidden, page{
		Title:    "Not allowed",
		Kind:     "message",
		Message:  "This account may not use this server",
		Identity: identity,
		Detail:   detail,
	})
}

func (s *Server) expiredPage(w http.ResponseWriter, r *http.Request) {
	s.messagePage(w, r, http.StatusBadRequest, "This sign-in has expired", "Go back to the app and connect again.")
}

func (s *Server) serverError(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error().Err(err).Str("path", r.URL.Path).Msg("authorization server error")
	s.messagePage(w, r, http.StatusInternalServerError, "Something went wrong", "Try again in a moment.")
}
