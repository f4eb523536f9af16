package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpwrap/mcpwrap/internal/sse"
)

// httpOpener speaks stateful Streamable HTTP with net/http directly, so the
// client adds as little as possible to what it measures.
type httpOpener struct {
	url     string
	client  *http.Client
	header  http.Header // sent on every request: auth and --header values
	maxMsg  int
	drainAt time.Duration // how long to wait for an SSE stream to end after its response
}

func newHTTPOpener(cfg *config) *httpOpener {
	tr := &http.Transport{
		Proxy:       http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		// Every session and in-flight call may hold a connection; capping the
		// idle pool below that would make the tool dial per call and measure
		// its own handshakes.
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: cfg.Sessions*cfg.Inflight + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json, text/event-stream")
	if cfg.Token != "" {
		h.Set("Authorization", "Bearer "+cfg.Token)
	}
	for k, vs := range cfg.Headers {
		h[k] = append(h[k], vs...)
	}
	return &httpOpener{
		url:     cfg.url,
		client:  &http.Client{Transport: tr},
		header:  h,
		maxMsg:  cfg.MaxMessage,
		drainAt: time.Second,
	}
}

// closeIdle lets the server see the connections end once the run is over.
func (o *httpOpener) closeIdle() { o.client.CloseIdleConnections() }

func (o *httpOpener) open(ctx context.Context) (session, error) {
	s := &httpSession{o: o}
	m, err := s.call(ctx, "initialize", initializeParams)
	if err != nil {
		return nil, err
	}
	if m.Error != nil {
		return nil, kindf(kindRPC, "initialize: code %d: %s", m.Error.Code, m.Error.Message)
	}
	var res struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if err := json.Unmarshal(m.Result, &res); err != nil || res.ProtocolVersion == "" {
		return nil, kindf(kindBadResponse, "initialize result without protocolVersion")
	}
	s.version = res.ProtocolVersion
	if s.id == "" {
		// A server without sessions is allowed; the calls then go without
		// the header and there is nothing to DELETE.
		s.deleted = true
	}
	if err := s.notify(ctx, "notifications/initialized"); err != nil {
		// The server holds a session (and maybe a child) for this one;
		// ending it keeps a failed setup from piling up there.
		_ = s.close(context.WithoutCancel(ctx))
		return nil, err
	}
	return s, nil
}

type httpSession struct {
	o *httpOpener
	// id and version are set while the session opens, before any
	// concurrent use, and only read after.
	id      string // Mcp-Session-Id
	version string // negotiated, sent as MCP-Protocol-Version
	nextID  atomic.Int64

	mu      sync.Mutex // guards the field below
	deleted bool
}

func (s *httpSession) newRequest(ctx context.Context, method string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.o.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header = s.o.header.Clone()
	if s.id != "" {
		req.Header.Set("Mcp-Session-Id", s.id)
	}
	if s.version != "" {
		req.Header.Set("MCP-Protocol-Version", s.version)
	}
	return req, nil
}

func (s *httpSession) do(req *http.Request) (*http.Response, error) {
	resp, err := s.o.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, kinded(kindTimeout, err)
		}
		return nil, kinded(kindConnect, err)
	}
	return resp, nil
}

func (s *httpSession) notify(ctx context.Context, method string) error {
	req, err := s.newRequest(ctx, http.MethodPost, appendNotification(nil, method))
	if err != nil {
		return err
	}
	resp, err := s.do(req)
	if err != nil {
		return err
	}
	defer drainClose(resp.Body)
	if resp.StatusCode/100 != 2 {
		return statusError(resp, method)
	}
	return nil
}

func (s *httpSession) call(ctx context.Context, method string, params []byte) (*message, error) {
	id := s.nextID.Add(1)
	// The stream of an SSE response is cut through this context when the
	// server leaves it open after the response.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := s.newRequest(ctx, http.MethodPost, appendRequest(nil, id, method, params))
	if err != nil {
		return nil, err
	}
	resp, err := s.do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		defer drainClose(resp.Body)
		return nil, statusError(resp, method)
	}
	if method == "initialize" {
		s.id = resp.Header.Get("Mcp-Session-Id")
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	var m *message
	switch ct {
	case "application/json":
		m, err = s.readJSON(resp)
	case "text/event-stream":
		m, err = s.readSSE(resp.Body, id, cancel)
	default:
		return nil, kindf(kindBadResponse, "%s: content type %q", method, ct)
	}
	if err != nil {
		if errors.Is(err, errTooLarge) {
			return nil, kinded(kindTooLarge, err)
		}
		if ctx.Err() != nil {
			return nil, kinded(kindTimeout, err)
		}
		return nil, kinded(kindBadResponse, fmt.Errorf("%s: %w", method, err))
	}
	if got, ok := m.idNumber(); !ok || got != id {
		return nil, kindf(kindBadResponse, "%s: response id %s, want %d", method, m.ID, id)
	}
	return m, nil
}

func (s *httpSession) readJSON(resp *http.Response) (*message, error) {
	if resp.ContentLength > int64(s.o.maxMsg) {
		return nil, errTooLarge
	}
	var buf bytes.Buffer
	if resp.ContentLength > 0 {
		buf.Grow(int(resp.ContentLength))
	}
	n, err := buf.ReadFrom(io.LimitReader(resp.Body, int64(s.o.maxMsg)+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if n > int64(s.o.maxMsg) {
		return nil, errTooLarge
	}
	m := new(message)
	if err := json.Unmarshal(buf.Bytes(), m); err != nil {
		return nil, fmt.Errorf("decode body: %w", err)
	}
	return m, nil
}

// readSSE reads events until the response to id. Requests and
// notifications the server sends first are passed over: the benchmark
// declares no capabilities, so nothing it could be asked needs an answer.
func (s *httpSession) readSSE(body io.Reader, id int64, cut context.CancelFunc) (*message, error) {
	r := sse.NewReader(body, s.o.maxMsg)
	defer r.Release()
	for {
		ev, err := r.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, errors.New("event stream ended before the response")
			}
			return nil, err
		}
		if ev.Name != "" && ev.Name != "message" {
			continue
		}
		m := new(message)
		if err := json.Unmarshal(ev.Data, m); err != nil {
			return nil, fmt.Errorf("decode event: %w", err)
		}
		if !m.isResponse() {
			continue
		}
		if got, ok := m.idNumber(); ok && got == id {
			s.finishStream(body, cut)
			return m, nil
		}
	}
}

// finishStream reads the stream to its end, since servers close it after
// the response and a body closed before EOF costs the connection. A server
// that keeps it open gets a short grace before the body is closed anyway.
func (s *httpSession) finishStream(body io.Reader, cut context.CancelFunc) {
	t := time.AfterFunc(s.o.drainAt, cut)
	defer t.Stop()
	_, _ = io.Copy(io.Discard, io.LimitReader(body, int64(s.o.maxMsg)))
}

func (s *httpSession) close(ctx context.Context) error {
	s.mu.Lock()
	if s.deleted {
		s.mu.Unlock()
		return nil
	}
	s.deleted = true
	s.mu.Unlock()
	req, err := s.newRequest(ctx, http.MethodDelete, nil)
	if err != nil {
		return err
	}
	resp, err := s.do(req)
	if err != nil {
		return kinded(kindClose, err)
	}
	defer drainClose(resp.Body)
	// 405 is how a server says clients may not end sessions; that is allowed.
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusMethodNotAllowed {
		return kinded(kindClose, statusError(resp, "DELETE"))
	}
	return nil
}

// statusError keeps the start of the body, which usually says why.
func statusError(resp *http.Response, what string) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return kindf(httpStatusKind(resp.StatusCode), "%s: %s: %s", what, resp.Status, bytes.TrimSpace(b))
}

func drainClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	_ = body.Close()
}
