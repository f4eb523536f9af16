package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/mcpwrap/mcpwrap/jsonrpc"
)

// Backoff between attempts at an unreachable or starting remote. A Fly
// Machine takes a few seconds to start, so the ceiling stays low enough to
// notice it soon after it is up.
const (
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = 2 * time.Second
	// maxRetryWait caps a stream's retry: field, which the remote sets.
	maxRetryWait = 30 * time.Second
)

// errUnauthorized is the remote answering 401.
var errUnauthorized = &rpcError{
	code: jsonrpc.CodeInternalError,
	msg:  "the remote rejected the token (401 Unauthorized); check MCPWRAP_TOKEN, --token or --token-file",
}

// unreachableError is the remote still not answering when the retry budget
// ran out.
type unreachableError struct {
	after time.Duration
	last  string
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("remote unreachable: no answer after retrying for %s (last: %s)", e.after.Round(time.Millisecond), e.last)
}

// errRedirect is a redirect to another origin, which the shim does not
// follow: every request carries credentials (the token, --header values),
// and they must never reach another host, port or scheme — an https page
// redirecting to http would send them in clear text.
var errRedirect = errors.New("the remote redirected to another origin; not following it with credentials")

// followWithinOrigin follows a redirect only within the origin of the
// first request (scheme, host and port), and at most a few times.
func followWithinOrigin(req *http.Request, via []*http.Request) error {
	first := via[0].URL
	if !sameOrigin(req.URL, first) {
		return fmt.Errorf("%w (%s://%s to %s://%s)", errRedirect, first.Scheme, first.Host, req.URL.Scheme, req.URL.Host)
	}
	if len(via) >= 5 {
		return errors.New("stopped after 5 redirects")
	}
	return nil
}

// request describes one HTTP request to the remote.
type request struct {
	method string
	url    *url.URL
	header http.Header
	body   []byte
}

// baseHeader is what every request to the remote carries.
func (s *shim) baseHeader() http.Header {
	h := s.cfg.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if s.cfg.Token != "" {
		h.Set("Authorization", "Bearer "+s.cfg.Token)
	}
	return h
}

// do sends r, trying again while the remote cannot be reached or answers
// 502, 503 or 504 (what a platform proxy says while the machine behind it
// starts), until retryFor has passed. Only failures that mean the request
// was not processed are retried; a connection lost mid-request is not.
func (s *shim) do(ctx context.Context, r request, retryFor time.Duration) (*http.Response, error) {
	start := time.Now()
	delay := firstBackoff
	stale := 0
	authTried := false
	home := sameOrigin(r.url, s.cfg.URL)
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, r.method, r.url.String(), bytes.NewReader(r.body))
		if err != nil {
			return nil, fmt.Errorf("build %s request: %w", r.method, err)
		}
		req.Header = r.header.Clone()
		// Credentials go to the remote's origin only, wherever an HTTP+SSE
		// endpoint event points.
		var sent string
		switch {
		case !home:
			req.Header.Del("Authorization")
		case s.oauth != nil:
			if sent, err = s.oauth.accessToken(ctx); err != nil {
				return nil, err
			}
			if sent != "" {
				req.Header.Set("Authorization", "Bearer "+sent)
			}
		}
		var reused bool
		req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
		}))
		resp, err := s.http.Do(req)
		var why string
		wait := delay
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil && isDialError(err):
			why = dialReason(err)
		case err != nil && reused && isStaleConn(err) && stale < maxStale:
			// A kept-alive connection that the remote dropped while idle
			// (it stopped or restarted); the request died with it. Forget
			// every idle connection and go again on a fresh one.
			stale++
			s.http.CloseIdleConnections()
			s.log.Debug().Str("method", r.method).Err(err).Msg("kept-alive connection was dead; retrying on a new one")
			continue
		case err != nil:
			return nil, fmt.Errorf("%s %s: %w", r.method, r.url.Redacted(), err)
		case resp.StatusCode == http.StatusBadGateway, resp.StatusCode == http.StatusServiceUnavailable, resp.StatusCode == http.StatusGatewayTimeout:
			why = resp.Status
			if ra := retryAfter(resp.Header.Get("Retry-After")); ra > wait {
				wait = ra
			}
			drain(resp)
		case home && s.oauth != nil && wantsAuth(resp):
			if authTried {
				if resp.StatusCode == http.StatusForbidden {
					return resp, nil
				}
				drain(resp)
				return nil, errRejectedAfterSignIn
			}
			// One refresh or sign-in per request, then one more try: a
			// remote that keeps refusing must not keep the browser busy.
			authTried = true
			status, header := resp.StatusCode, resp.Header
			drain(resp)
			if err := s.oauth.recover(ctx, status, header, sent); err != nil {
				return nil, err
			}
			continue
		default:
			return resp, nil
		}
		// Jitter keeps many shims from knocking at once after an outage.
		wait = time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64()))
		if elapsed := time.Since(start); elapsed+wait > retryFor {
			return nil, &unreachableError{after: elapsed, last: why}
		}
		ev := s.log.Debug()
		if attempt == 1 {
			ev = s.log.Info()
		}
		ev.Str("method", r.method).Str("reason", why).Dur("retry_in_ms", wait).Msg("remote not ready; retrying")
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		delay = min(delay*2, maxBackoff)
	}
}

// sameOrigin reports whether a and b share scheme, host and port.
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(hostPort(a), hostPort(b))
}

// hostPort is u's host with the scheme's default port made explicit.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if strings.EqualFold(u.Scheme, "https") {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// maxStale bounds the retries on dead kept-alive connections; one usually
// suffices, since the first failure empties the pool.
const maxStale = 3

// isStaleConn reports the ways a request fails on a connection the remote
// closed while it sat idle, which is what a stopped or restarted machine
// leaves in the pool. Go retries these by itself only for idempotent
// methods. The same errors could mean a remote that died while working on
// the request; the retry then meets the new process, which no longer knows
// the session and answers 404, so the request still runs at most once.
func isStaleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// isDialError reports a failure to connect at all, which is always safe to
// retry: the remote has seen nothing.
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// dialReason gives the innermost cause of a dial failure, without the URL.
func dialReason(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}

// retryAfter reads a Retry-After given in seconds; dates are rare enough on
// a 503 to leave to the ordinary backoff.
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, 30*time.Second)
}

// drain reads a little of an unwanted body so the connection can be reused.
func drain(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
}

// readBody reads a whole response body, up to maxMessage.
func readBody(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxMessage+1))
	if err != nil {
		return nil, fmt.Errorf("read response body: %w", err)
	}
	if len(b) > maxMessage {
		return nil, errTooLong
	}
	return b, nil
}

// mediaType returns the response's content type without parameters.
func mediaType(resp *http.Response) string {
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return mt
}

// statusError turns an unexpected answer into an error for the client: the
// status and the start of the body, which is where servers explain.
func statusError(resp *http.Response, body []byte) error {
	if resp.StatusCode == http.StatusUnauthorized {
		return errUnauthorized
	}
	snippet := strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, string(body))
	snippet = strings.TrimSpace(snippet)
	if len(snippet) > 200 {
		snippet = snippet[:200] + "…"
	}
	msg := "remote answered " + resp.Status
	if snippet != "" {
		msg += ": " + snippet
	}
	return &rpcError{code: jsonrpc.CodeInternalError, msg: msg}
}

// answerFromBody delivers body as c's answer when it is a JSON-RPC response
// to c, as servers explain a 4xx. An error with a null id (the remote could
// not tell the id) is taken as c's too, so the client sees the remote's own
// code and message. It reports whether it delivered.
func (s *shim) answerFromBody(c *call, body []byte) bool {
	if c == nil {
		return false
	}
	m, err := jsonrpc.Parse(bytes.TrimSpace(body))
	if err != nil || m.Kind != jsonrpc.Response {
		return false
	}
	switch {
	case jsonrpc.IDKey(m.ID) == jsonrpc.IDKey(c.id):
		s.deliver(m.Raw)
	case m.IsError && string(m.ID) == "null":
		s.deliver(m.WithID(c.id))
	default:
		return false
	}
	return true
}

// fallbackError is a Streamable HTTP initialize answered 400, 404 or 405:
// the sign, per the spec's backward-compatibility section, to try HTTP+SSE.
type fallbackError struct {
	status int
	body   []byte
	err    error
}

func (e *fallbackError) Error() string { return e.err.Error() }

// answer gives the client what the remote said to its initialize, since
// HTTP+SSE did not work out either.
func (e *fallbackError) answer(s *shim, c *call) error {
	if s.answerFromBody(c, e.body) {
		if c.hold && !c.internal {
			s.out.write(c.resp)
		}
		return nil
	}
	return e.err
}
