package proxy

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/rs/zerolog"
)

// callback is the loopback listener the authorization server sends the
// browser back to (RFC 8252, section 7.3).
type callback struct {
	redirectURI string
	srv         *http.Server
	redact      *redactor
	served      chan struct{} // closed when Serve has returned

	mu     sync.Mutex // guards the fields below
	state  string     // the state of the authorization URL in use
	result chan callbackResult
}

type callbackResult struct {
	res *auth.AuthorizationResult
	err error
}

// errAuthorizationRefused is the authorization server sending the browser
// back with an error instead of a code.
var errAuthorizationRefused = errors.New("the authorization server refused the sign-in")

// listenCallback opens the listener on 127.0.0.1: on the port of redirectURI
// when given (a registration the server knows), else on any free port.
func listenCallback(redirectURI string, redact *redactor) (*callback, error) {
	addr := "127.0.0.1:0"
	if redirectURI != "" {
		u, err := url.Parse(redirectURI)
		if err != nil || u.Hostname() != "127.0.0.1" {
			return nil, fmt.Errorf("stored redirect URI is not on 127.0.0.1")
		}
		addr = u.Host
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for the sign-in callback: %w", err)
	}
	cb := &callback{
		redirectURI: "http://" + ln.Addr().String() + "/callback",
		redact:      redact,
		served:      make(chan struct{}),
		result:      make(chan callbackResult, 1),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/callback", cb.handle)
	cb.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(cb.served)
		_ = cb.srv.Serve(ln)
	}()
	return cb, nil
}

// close stops the listener and waits for it.
func (cb *callback) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := cb.srv.Shutdown(ctx); err != nil {
		cb.srv.Close()
	}
	<-cb.served
}

// expect makes the callback take the answer to authURL. It comes before
// the browser is sent there, which may answer at once.
func (cb *callback) expect(authURL string) error {
	u, err := url.Parse(authURL)
	if err != nil {
		return fmt.Errorf("authorization URL: %w", err)
	}
	cb.mu.Lock()
	cb.state = u.Query().Get("state")
	cb.mu.Unlock()
	return nil
}

// wait returns what the browser brings back for the URL expect was given.
func (cb *callback) wait(ctx context.Context) (*auth.AuthorizationResult, error) {
	select {
	case r := <-cb.result:
		return r.res, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("no answer from the browser: %w", ctx.Err())
	}
}

func (cb *callback) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	cb.redact.add(q.Get("code"))
	cb.mu.Lock()
	want := cb.state
	cb.mu.Unlock()
	// A request without the state of this sign-in is a stale tab or
	// someone else's doing; it must not end the sign-in.
	if want == "" || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(want)) != 1 {
		page(w, http.StatusBadRequest, "This sign-in link is out of date", "Go back to your MCP client and try again.")
		return
	}
	var res callbackResult
	if e := q.Get("error"); e != "" {
		res.err = fmt.Errorf("%w: %s %s", errAuthorizationRefused, oneLine(e), oneLine(q.Get("error_description")))
		page(w, http.StatusOK, "Sign-in failed", "The authorization server said: "+e+". Close this tab and try again from your MCP client.")
	} else {
		res.res = &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}
		page(w, http.StatusOK, "Signed in", "mcpwrap proxy is signed in. You can close this tab.")
	}
	select {
	case cb.result <- res:
	default: // answered already
	}
}

// oneLine keeps what an authorization server says from breaking a log line.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32em;margin:4em auto;padding:0 1em;color:#222}</style>
</head><body><h1>{{.Title}}</h1><p>{{.Text}}</p></body></html>
`))

func page(w http.ResponseWriter, status int, title, text string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_ = pageTemplate.Execute(w, struct{ Title, Text string }{title, text})
}

// browserOpener returns the function that shows the user an authorization
// URL: it always logs the URL, and unless noBrowser, runs $BROWSER (a
// list of commands separated like PATH; %s stands for the URL, else the URL is
// the last argument) or the platform's opener. The command's output goes to
// stderr, never to stdout, which belongs to the client.
func browserOpener(browser string, noBrowser bool, stderr io.Writer, log zerolog.Logger) func(string) {
	return func(authURL string) {
		log.Warn().Str("url", authURL).Msg("sign-in needed: open this URL in a browser")
		if noBrowser {
			return
		}
		for _, argv := range browserCommands(browser, runtime.GOOS, authURL) {
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.Stdout, cmd.Stderr = stderr, stderr
			if err := cmd.Start(); err != nil {
				log.Debug().Str("command", argv[0]).Err(err).Msg("could not start the browser")
				continue
			}
			// A browser may run for as long as the user keeps it open, so
			// nothing waits for it but this goroutine, which only reaps it.
			go func() {
				if err := cmd.Wait(); err != nil {
					log.Warn().Str("command", argv[0]).Err(err).Msg("the browser command failed; open the URL above yourself")
				}
			}()
			return
		}
		log.Warn().Msg("found no way to open a browser; open the URL above yourself")
	}
}

// browserCommands lists the commands to try, in order, for opening authURL.
func browserCommands(browser, goos, authURL string) [][]string {
	sep := ":"
	if goos == "windows" {
		sep = ";"
	}
	var out [][]string
	for _, c := range strings.Split(browser, sep) {
		f := strings.Fields(c)
		if len(f) == 0 {
			continue
		}
		subst := false
		for i := range f {
			if strings.Contains(f[i], "%s") {
				f[i] = strings.ReplaceAll(f[i], "%s", authURL)
				subst = true
			}
		}
		if !subst {
			f = append(f, authURL)
		}
		out = append(out, f)
	}
	if len(out) > 0 {
		return out
	}
	switch goos {
	case "darwin":
		return [][]string{{"open", authURL}}
	case "windows":
		return [][]string{{"rundll32", "url.dll,FileProtocolHandler", authURL}}
	default:
		return [][]string{{"xdg-open", authURL}}
	}
}
