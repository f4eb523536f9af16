package proxy

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mcpwrap/mcpwrap/internal/sse"
	"github.com/mcpwrap/mcpwrap/jsonrpc"
)

// Protocol versions from which requests carry the standard MCP headers
// (Mcp-Method, Mcp-Name); compared as strings, as the dates allow.
const modernVersion = "2026-07-28"

// maxRecoveries bounds how often one message may find its session gone and
// start a new one; a remote that loses every session must not loop us.
const maxRecoveries = 2

// sessionState is the remote session as one exchange saw it.
type sessionState struct {
	id      string // Mcp-Session-Id; empty before initialize and for stateless remotes
	version string // negotiated protocol version
	gen     uint64 // bumps with every new session
}

// streamable speaks Streamable HTTP (2025-03-26 and later) to the remote.
type streamable struct {
	s   *shim
	url *url.URL

	mu         sync.Mutex // guards the fields below
	st         sessionState
	recovering chan struct{} // closed when the running recovery ends
	listening  bool          // a GET stream runs for st.gen
	stopListen context.CancelFunc
	noGet      bool   // the remote answered 405 to GET: it offers no stream
	noGetGen   uint64 // the remote answered 404 to GET in this session
}

func (t *streamable) state(ctx context.Context) (sessionState, error) {
	for {
		t.mu.Lock()
		st, ch := t.st, t.recovering
		t.mu.Unlock()
		if ch == nil {
			return st, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return st, ctx.Err()
		}
	}
}

// header builds the headers of a POST carrying m within session st.
func (t *streamable) header(st sessionState, m *jsonrpc.Message) http.Header {
	h := t.s.baseHeader()
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json, text/event-stream")
	if m.Method == "initialize" {
		return h
	}
	if st.id != "" {
		h.Set("Mcp-Session-Id", st.id)
	}
	version := st.version
	// A 2026-07-28 client names its version in every request; the header
	// must match it.
	if v, _, _, ok := jsonrpc.Lookup(m.Params, "_meta", "io.modelcontextprotocol/protocolVersion"); ok {
		if s, ok := unquote(v); ok {
			version = s
		}
	}
	if version != "" {
		h.Set("MCP-Protocol-Version", version)
	}
	if version >= modernVersion && m.Method != "" {
		h.Set("Mcp-Method", m.Method)
		if name := requestName(m); name != "" {
			h.Set("Mcp-Name", headerValue(name))
		}
	}
	return h
}

// send posts m and reads the answer. A 404 for a session means the remote
// has forgotten it (restarted, reaped) without processing m, so the
// session is rebuilt and m sent again.
func (t *streamable) send(ctx context.Context, m *jsonrpc.Message, c *call) error {
	if m.Method == "initialize" && c != nil && !c.internal {
		return t.initialize(ctx, m, c)
	}
	for recoveries := 0; ; recoveries++ {
		st, err := t.state(ctx)
		if err != nil {
			return err
		}
		resp, err := t.s.do(ctx, request{method: http.MethodPost, url: t.url, header: t.header(st, m), body: m.Raw}, t.s.cfg.RetryFor)
		if err != nil {
			return err
		}
		if resp.StatusCode == http.StatusNotFound && st.id != "" {
			drain(resp)
			if m.Kind == jsonrpc.Response {
				// It answered a request of the lost session; the new one
				// never asked it.
				t.s.wg.Go(func() { t.recover(st.gen) })
				return errors.New("remote session lost; response dropped")
			}
			if recoveries >= maxRecoveries {
				return &rpcError{code: jsonrpc.CodeInternalError, msg: "remote keeps losing the session (404 after re-initializing)"}
			}
			if err := t.recover(st.gen); err != nil {
				return err
			}
			continue
		}
		err = t.answer(ctx, m, c, st, resp)
		if err == nil && m.Method == "notifications/initialized" {
			t.listen(st.gen)
		}
		return err
	}
}

// initialize sends the client's initialize, learns the session from the
// answer, and only then lets the client see it, so that the client's next
// message already travels in the new session.
func (t *streamable) initialize(ctx context.Context, m *jsonrpc.Message, c *call) error {
	st, err := t.exchangeInit(ctx, m, c)
	if c.finished() && c.resp != nil {
		// The remote answered; an error response goes to the client as is.
		if err == nil {
			t.setSession(st)
		}
		t.s.out.write(c.resp)
		return nil
	}
	return err
}

// exchangeInit posts an initialize and waits for its answer in c (held).
func (t *streamable) exchangeInit(ctx context.Context, m *jsonrpc.Message, c *call) (sessionState, error) {
	body := m.Raw
	if c.internal {
		body = m.WithID(c.id)
	}
	resp, err := t.s.do(ctx, request{method: http.MethodPost, url: t.url, header: t.header(sessionState{}, m), body: body}, t.s.cfg.RetryFor)
	if err != nil {
		return sessionState{}, err
	}
	switch resp.StatusCode {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed:
		b, _ := readBody(resp)
		return sessionState{}, &fallbackError{status: resp.StatusCode, body: b, err: statusError(resp, b)}
	}
	sid := resp.Header.Get("Mcp-Session-Id")
	if err := t.answer(ctx, m, c, sessionState{}, resp); err != nil {
		return sessionState{}, err
	}
	if !c.finished() {
		return sessionState{}, errors.New("initialize got no answer")
	}
	version, err := initResult(c.resp)
	if err != nil {
		return sessionState{}, err
	}
	return sessionState{id: sid, version: version}, nil
}

// setSession makes st the current session and ends the GET stream of the
// previous one.
func (t *streamable) setSession(st sessionState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st.gen = t.st.gen + 1
	t.st = st
	if t.stopListen != nil {
		t.stopListen()
		t.stopListen = nil
	}
	t.listening = false
}

// answer reads the remote's answer to a POST of m: nothing (202), one JSON
// body, or an SSE stream that ends with the response.
func (t *streamable) answer(ctx context.Context, m *jsonrpc.Message, c *call, st sessionState, resp *http.Response) error {
	switch {
	case resp.StatusCode == http.StatusAccepted:
		drain(resp)
		if c != nil {
			return errors.New("remote accepted the request without answering it")
		}
		return nil
	case resp.StatusCode/100 != 2:
		b, _ := readBody(resp)
		if resp.StatusCode != http.StatusUnauthorized && t.s.answerFromBody(c, b) {
			return nil
		}
		return statusError(resp, b)
	case mediaType(resp) == "text/event-stream":
		t.listenIfIdle(st.gen)
		return t.readResponseStream(ctx, c, st, resp)
	default:
		b, err := readBody(resp)
		if err != nil {
			return err
		}
		t.listenIfIdle(st.gen)
		if len(bytes.TrimSpace(b)) > 0 {
			t.s.deliver(b)
		}
		if c != nil && !c.finished() {
			return errors.New("remote answered without a response to the request")
		}
		return nil
	}
}

// readResponseStream passes on the events of a POST's SSE answer until c is
// answered. When the stream breaks first and the remote gave event ids, the
// answer is fetched by resuming with Last-Event-ID.
func (t *streamable) readResponseStream(ctx context.Context, c *call, st sessionState, resp *http.Response) error {
	resp.Body = watchIdle(resp.Body, t.s.cfg.ReadIdle)
	er := sse.NewReader(resp.Body, maxMessage)
	defer er.Release()
	err := t.pump(er, c)
	resp.Body.Close()
	if c == nil || c.finished() {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if _, ok := er.LastEventID(); !ok {
		if err == nil {
			err = errors.New("stream ended")
		}
		return &rpcError{code: jsonrpc.CodeInternalError, msg: "remote closed the response stream before answering: " + err.Error()}
	}
	t.s.log.Debug().Str("id", string(c.id)).Msg("response stream closed before the answer; resuming with Last-Event-ID")
	return t.resume(ctx, c, st, er)
}

// pump delivers events until the stream ends or c is answered.
func (t *streamable) pump(er *sse.Reader, c *call) error {
	for {
		ev, err := er.Next()
		if err != nil {
			return err
		}
		if ev.Name != "" && ev.Name != "message" {
			continue
		}
		t.s.deliver(ev.Data)
		if c != nil && c.finished() {
			return nil
		}
	}
}

// resume re-attaches to a broken response stream with GET and
// Last-Event-ID, as often as the stream makes progress.
func (t *streamable) resume(ctx context.Context, c *call, st sessionState, er *sse.Reader) error {
	for range 100 {
		last, _ := er.LastEventID()
		if wait := er.Retry(0, maxRetryWait); wait > 0 {
			if err := sleep(ctx, wait); err != nil {
				return err
			}
		}
		h := t.getHeader(st)
		er.ResumeHeader(h)
		resp, err := t.s.do(ctx, request{method: http.MethodGet, url: t.url, header: h}, t.s.cfg.RetryFor)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || mediaType(resp) != "text/event-stream" {
			b, _ := readBody(resp)
			if resp.StatusCode == http.StatusNotFound {
				t.s.wg.Go(func() { t.recover(st.gen) })
				return &rpcError{code: jsonrpc.CodeInternalError, msg: "remote session ended before the request was answered; it may or may not have run"}
			}
			return statusError(resp, b)
		}
		resp.Body = watchIdle(resp.Body, t.s.cfg.ReadIdle)
		er.Reset(resp.Body)
		err = t.pump(er, c)
		resp.Body.Close()
		if c.finished() {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if now, _ := er.LastEventID(); now == last {
			return &rpcError{code: jsonrpc.CodeInternalError, msg: "remote stream ended again without progress before answering"}
		}
		t.s.log.Debug().Err(err).Msg("response stream broke; resuming")
	}
	return &rpcError{code: jsonrpc.CodeInternalError, msg: "gave up resuming the response stream"}
}

func (t *streamable) getHeader(st sessionState) http.Header {
	h := t.s.baseHeader()
	h.Set("Accept", "text/event-stream")
	if st.id != "" {
		h.Set("Mcp-Session-Id", st.id)
	}
	if st.version != "" {
		h.Set("MCP-Protocol-Version", st.version)
	}
	return h
}

// listenIfIdle opens the GET stream when the session has one to offer and
// none runs, which covers a stream given up on while the remote was away.
func (t *streamable) listenIfIdle(gen uint64) {
	t.mu.Lock()
	idle := !t.listening && !t.noGet && t.noGetGen != gen && t.st.gen == gen && t.st.id != "" && t.recovering == nil
	t.mu.Unlock()
	if idle {
		t.listen(gen)
	}
}

// listen starts the GET stream for server-initiated messages of session gen.
func (t *streamable) listen(gen uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.listening || t.noGet || t.noGetGen == gen || t.st.gen != gen || t.st.id == "" || t.s.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(t.s.ctx)
	t.listening, t.stopListen = true, cancel
	st := t.st
	t.s.wg.Go(func() {
		defer cancel()
		t.runListen(ctx, st)
		t.mu.Lock()
		if t.st.gen == st.gen {
			t.listening, t.stopListen = false, nil
		}
		t.mu.Unlock()
	})
}

// runListen keeps the GET stream open, reconnecting with Last-Event-ID,
// until the session changes or the remote stays away past the retry budget;
// the next successful POST starts it again.
func (t *streamable) runListen(ctx context.Context, st sessionState) {
	var er *sse.Reader
	defer func() {
		if er != nil {
			er.Release()
		}
	}()
	for range 10000 {
		h := t.getHeader(st)
		if er != nil {
			er.ResumeHeader(h)
		}
		resp, err := t.s.do(ctx, request{method: http.MethodGet, url: t.url, header: h}, t.s.cfg.RetryFor)
		if err != nil {
			if ctx.Err() == nil {
				t.s.log.Warn().Err(err).Msg("GET stream: giving up for now")
			}
			return
		}
		switch {
		case resp.StatusCode == http.StatusMethodNotAllowed:
			drain(resp)
			t.mu.Lock()
			t.noGet = true
			t.mu.Unlock()
			t.s.log.Debug().Msg("remote offers no GET stream")
			return
		case resp.StatusCode == http.StatusNotFound:
			drain(resp)
			// The session is gone, but nothing needs a new one yet. Making
			// it now would start a process on the remote and keep an
			// auto-stopping machine awake for nobody; the client's next
			// message makes it instead.
			t.mu.Lock()
			t.noGetGen = st.gen
			t.mu.Unlock()
			t.s.log.Info().Msg("GET stream: the remote no longer knows the session; a new one is made when the client next sends")
			return
		case resp.StatusCode == http.StatusConflict:
			// The remote still holds our previous stream open; it lets go
			// of it soon.
			drain(resp)
			if sleep(ctx, time.Second) != nil {
				return
			}
			continue
		case resp.StatusCode != http.StatusOK || mediaType(resp) != "text/event-stream":
			b, _ := readBody(resp)
			t.s.log.Warn().Err(statusError(resp, b)).Msg("GET stream refused")
			return
		}
		resp.Body = watchIdle(resp.Body, t.s.cfg.ReadIdle)
		if er == nil {
			er = sse.NewReader(resp.Body, maxMessage)
		} else {
			er.Reset(resp.Body)
		}
		err = t.pump(er, nil)
		resp.Body.Close()
		if ctx.Err() != nil {
			return
		}
		t.s.log.Debug().Err(err).Msg("GET stream ended; reconnecting")
		if sleep(ctx, er.Retry(firstBackoff, maxRetryWait)) != nil {
			return
		}
	}
}

// recover replaces the lost session gen with a new one built from the
// client's own initialize, then reopens the GET stream. Concurrent callers
// share one recovery. It runs on the shim's context, not a request's: a
// cancelled request must not leave everyone without a session.
func (t *streamable) recover(gen uint64) error {
	t.mu.Lock()
	if t.recovering != nil {
		ch := t.recovering
		t.mu.Unlock()
		<-ch
		return nil
	}
	if t.st.gen != gen {
		t.mu.Unlock()
		return nil // already replaced
	}
	ch := make(chan struct{})
	t.recovering = ch
	old := t.st.id
	if t.stopListen != nil {
		t.stopListen()
		t.stopListen = nil
	}
	t.listening = false
	t.mu.Unlock()

	rctx, cancel := t.s.reinitContext()
	st, err := t.reinitialize(rctx)
	cancel()
	t.mu.Lock()
	if err == nil {
		st.gen = t.st.gen + 1
		t.st = st
	}
	t.recovering = nil
	t.mu.Unlock()
	close(ch)

	if err != nil {
		if t.s.ctx.Err() == nil {
			t.s.log.Error().Err(err).Msg("remote session lost and re-initializing failed")
		}
		return err
	}
	t.s.log.Info().Str("old_session", old).Str("new_session", st.id).Msg("remote session lost; re-initialized it transparently")
	t.listen(st.gen)
	return nil
}

// reinitialize replays the client's initialize under an id of the shim's
// own and completes the handshake with notifications/initialized.
func (t *streamable) reinitialize(ctx context.Context) (sessionState, error) {
	init := t.s.initRequest()
	if init == nil {
		return sessionState{}, errors.New("the client never sent initialize, so there is nothing to replay")
	}
	m, err := jsonrpc.Parse(init)
	if err != nil {
		return sessionState{}, err
	}
	c := t.s.track(ctx, t.s.internalID(), true, true)
	defer c.cancel()
	st, err := t.exchangeInit(ctx, &m, c)
	if err != nil {
		t.s.take(c.id)
		var fb *fallbackError
		if errors.As(err, &fb) {
			err = fb.err
		}
		return sessionState{}, err
	}
	note, _ := jsonrpc.Parse([]byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`))
	resp, err := t.s.do(ctx, request{method: http.MethodPost, url: t.url, header: t.header(st, &note), body: note.Raw}, t.s.cfg.RetryFor)
	if err != nil {
		return sessionState{}, err
	}
	if err := t.answer(ctx, &note, nil, st, resp); err != nil {
		return sessionState{}, err
	}
	for _, r := range t.s.setup(ctx) {
		resp, err := t.s.do(ctx, request{method: http.MethodPost, url: t.url, header: t.header(st, &r.m), body: r.m.Raw}, t.s.cfg.RetryFor)
		if err == nil {
			err = t.answer(ctx, &r.m, r.c, st, resp)
		}
		if err == nil {
			err = errorIn(r.c.resp)
		}
		t.s.take(r.c.id)
		r.c.cancel()
		if err != nil {
			t.s.log.Warn().Err(err).Str("method", r.c.method).Msg("could not restore the client's session setup")
		}
	}
	return st, nil
}

// close ends the remote session with DELETE, as the spec asks of a client
// that is done with it.
func (t *streamable) close(ctx context.Context) {
	t.mu.Lock()
	st := t.st
	t.mu.Unlock()
	if st.id == "" {
		return
	}
	resp, err := t.s.do(ctx, request{method: http.MethodDelete, url: t.url, header: t.getHeader(st)}, shutdownGrace/2)
	if err != nil {
		t.s.log.Warn().Err(err).Msg("could not end the remote session")
		return
	}
	drain(resp)
	t.s.log.Debug().Int("status", resp.StatusCode).Msg("ended the remote session")
}

// requestName is what Mcp-Name carries for the methods that have one.
func requestName(m *jsonrpc.Message) string {
	var key string
	switch m.Method {
	case "tools/call", "prompts/get":
		key = "name"
	case "resources/read":
		key = "uri"
	default:
		return ""
	}
	v, _, _, ok := jsonrpc.Lookup(m.Params, key)
	if !ok {
		return ""
	}
	s, _ := unquote(v)
	return s
}

// headerValue encodes a value that cannot travel as plain header text the
// way SEP-2243 describes: =?base64?...?=.
func headerValue(s string) string {
	plain := s == "" || (s[0] != ' ' && s[0] != '\t' && s[len(s)-1] != ' ' && s[len(s)-1] != '\t')
	for i := 0; plain && i < len(s); i++ {
		plain = s[i] >= 0x20 && s[i] <= 0x7e
	}
	if plain && !(strings.HasPrefix(s, "=?base64?") && strings.HasSuffix(s, "?=")) {
		return s
	}
	return "=?base64?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?="
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// unquote decodes a raw JSON string token.
func unquote(v []byte) (string, bool) {
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", false
	}
	return s, true
}

// watchIdle closes body when nothing arrives on it for idle (0: never), so
// that a stream whose connection died without a word (a laptop asleep, a
// proxy that forgot it) ends in bounded time and is resumed. mcpwrap sends a
// keep-alive comment every MCPWRAP_KEEPALIVE, so a live stream is never
// silent that long.
func watchIdle(body io.ReadCloser, idle time.Duration) io.ReadCloser {
	if idle <= 0 {
		return body
	}
	return &idleBody{ReadCloser: body, idle: idle, timer: time.AfterFunc(idle, func() { body.Close() })}
}

// idleBody is a response body watched for silence.
type idleBody struct {
	io.ReadCloser
	idle  time.Duration
	timer *time.Timer
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.timer.Reset(b.idle)
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	return b.ReadCloser.Close()
}
