package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/mcpwrap/mcpwrap/internal/lines"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpwrap/mcpwrap/jsonrpc"
	"github.com/rs/zerolog"
)

// Run is `mcpwrap proxy [flags] URL`. args excludes the word "proxy". It returns nil when stdin ends (after DELETE), or when ctx ends.
func Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "login" || args[0] == "logout") {
		return runAccount(ctx, args[0], args[1:], getenv, stderr)
	}
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // the usage is printed; asking for it is no error
	}
	if err != nil {
		return err
	}
	log, redact := newLogger(cfg, stderr)
	s := newShim(cfg, log, stdout)
	s.redact = redact
	if err := s.useOAuth(getenv, stderr); err != nil {
		return err
	}
	return s.run(ctx, stdin)
}

// newLogger returns the shim's logger, on stderr, and the redactor every
// line passes through.
func newLogger(cfg Config, stderr io.Writer) (zerolog.Logger, *redactor) {
	level, _ := zerolog.ParseLevel(cfg.LogLevel) // checked by parseConfig
	redact := newRedactor(cfg)
	log := zerolog.New(&redactingWriter{w: stderr, r: redact}).Level(level).With().Timestamp().Str("remote", cfg.URL.Redacted()).Logger()
	return log, redact
}

// newRedactor hides the secrets the shim holds: the token and the values of
// extra headers, which often carry API keys. Nothing logs them on purpose;
// this is for what the remote echoes back in an error body. OAuth adds its
// tokens as it gets them.
func newRedactor(cfg Config) *redactor {
	rd := &redactor{}
	rd.add(cfg.Token, cfg.ClientSecret)
	for _, vs := range cfg.Header {
		rd.add(vs...)
	}
	rd.mu.Lock()
	rd.fixed, rd.secrets = rd.secrets, nil
	rd.mu.Unlock()
	return rd
}

// redactingWriter passes each log line through the redactor. zerolog writes
// a line in one call, so a secret is never split between two writes.
type redactingWriter struct {
	w io.Writer
	r *redactor
}

func (rw *redactingWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(rw.w, rw.r.Replace(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// shutdownGrace is how long messages already read from stdin may take to
// reach the remote once stdin has ended, and also the budget for the DELETE
// that ends the remote session. The Go SDK gives its stdio server 5 s
// between closing stdin and SIGTERM; two budgets fit inside it.
const shutdownGrace = 2 * time.Second

// transport carries messages to the remote in one of the two HTTP transports.
type transport interface {
	// send delivers m. For a request, c tracks it: send either completes c
	// (through shim.deliver) before it returns nil, or leaves c to be
	// completed later by a stream, or returns an error for the client.
	send(ctx context.Context, m *jsonrpc.Message, c *call) error
	// close ends the remote session; nothing else runs when it is called.
	close(ctx context.Context)
}

// call is a client request waiting for its response from the remote.
type call struct {
	id     []byte
	method string
	// ctx ends when the client cancels the request or the shim stops.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed once the request is answered or failed
	// hold keeps the response in resp for the sender, which writes it out
	// itself once it has learnt what it needs from it (initialize).
	hold bool
	// internal marks a request of the shim's own; its response never
	// reaches the client.
	internal bool
	resp     []byte
}

func (c *call) finished() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// shim joins the client's stdio to the remote.
type shim struct {
	cfg     Config
	log     zerolog.Logger
	redact  *redactor
	oauth   *oauth // nil with a static token: then the shim never signs in
	out     *lineWriter
	http    *http.Client
	ctx     context.Context // ends when run returns
	wg      sync.WaitGroup  // every goroutine started by the shim
	reinits atomic.Uint64   // numbers the ids of replayed initialize requests
	// starting is closed when the client's initialize has its answer; what
	// the client sends meanwhile waits for it. Only run's loop uses it.
	starting chan struct{}

	mu      sync.Mutex // guards the fields below
	pending map[string]*call
	initReq []byte // the client's initialize request, replayed after session loss
	tr      transport
	// What else the client set up in its session, restored in a new one:
	// the last logging/setLevel params and the params of each
	// resources/subscribe by URI.
	logLevel []byte
	subs     map[string][]byte
}

func newShim(cfg Config, log zerolog.Logger, stdout io.Writer) *shim {
	rt := http.DefaultTransport.(*http.Transport).Clone()
	// Many requests may be in flight at once; keep their connections.
	rt.MaxIdleConnsPerHost = 32
	s := &shim{
		cfg:     cfg,
		log:     log,
		out:     &lineWriter{w: stdout, failed: make(chan struct{})},
		http:    &http.Client{Transport: rt, CheckRedirect: followWithinOrigin},
		pending: map[string]*call{},
		subs:    map[string][]byte{},
		redact:  newRedactor(cfg),
	}
	s.tr = &streamable{s: s, url: cfg.URL}
	return s
}

func (s *shim) run(parent context.Context, stdin io.Reader) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	s.ctx = ctx
	if s.oauth != nil {
		s.oauth.base = ctx
	}

	// The reader is the one goroutine that may outlive run: a blocked read
	// on stdin cannot be interrupted, and stdin is not ours to close. It
	// only ever ends in a send that the select below no longer takes.
	fromClient := make(chan []byte)
	readErr := make(chan error, 1)
	go func() {
		r := lines.NewReader(stdin, lines.Options{Max: maxMessage, SkipTooLong: true})
		for {
			line, err := r.ReadLine()
			if errors.Is(err, lines.ErrTooLong) {
				s.log.Error().Err(err).Msg("dropped a message from the client: too long")
				continue
			}
			if err != nil {
				// What was read before the end gets shutdownGrace to reach
				// the remote, even while the loop below is busy sending.
				time.AfterFunc(shutdownGrace, cancel)
				readErr <- err
				return
			}
			select {
			case fromClient <- line:
			case <-ctx.Done():
				return
			}
		}
	}()

	var forwards sync.WaitGroup
loop:
	for {
		select {
		case line := <-fromClient:
			s.handleLine(ctx, line, &forwards)
		case err := <-readErr:
			if !errors.Is(err, io.EOF) {
				s.log.Error().Err(err).Msg("reading stdin failed")
			}
			s.log.Debug().Msg("stdin ended")
			break loop
		case <-s.out.failed:
			s.log.Error().Err(s.out.error()).Msg("writing stdout failed; the client is gone")
			break loop
		case <-ctx.Done():
			break loop
		}
	}

	// Let messages already read reach the remote, briefly, then stop
	// everything before ending the session, so that nothing races the
	// DELETE and mistakes its effect for a lost session.
	waitFor(&forwards, shutdownGrace)
	cancel()
	forwards.Wait()
	s.wg.Wait()

	endCtx, endCancel := context.WithTimeout(context.WithoutCancel(parent), shutdownGrace)
	defer endCancel()
	s.transport().close(endCtx)
	s.http.CloseIdleConnections()
	return nil
}

// waitFor waits for wg at most d.
func waitFor(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// handleLine forwards one line from the client. Requests go concurrently,
// since the client may have many in flight. Notifications and responses go
// in order, one after another: their POSTs are short, and
// notifications/initialized must reach the remote before what follows it.
func (s *shim) handleLine(ctx context.Context, line []byte, forwards *sync.WaitGroup) {
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	m, err := jsonrpc.Parse(line)
	if err != nil {
		// Without a parse there is no id to answer to.
		s.log.Warn().Err(err).Msg("client sent a message that is not JSON-RPC; dropped")
		return
	}
	if m.Method != "initialize" && s.starting != nil {
		// A client may write its whole start at once, as a stdio server
		// allows; what follows initialize belongs to the session its answer
		// makes, so it waits for that answer, in order.
		select {
		case <-s.starting:
		case <-ctx.Done():
			return
		}
		s.starting = nil
	}
	switch m.Kind {
	case jsonrpc.Request:
		c := s.track(ctx, m.ID, m.Method == "initialize", false)
		c.method = m.Method
		s.remember(&m)
		var started chan struct{}
		if m.Method == "initialize" {
			started = make(chan struct{})
			s.starting = started
		}
		forwards.Go(func() {
			defer c.cancel()
			if started != nil {
				defer close(started)
			}
			s.forward(ctx, &m, c)
		})
	default:
		if m.Kind == jsonrpc.Notification && m.Method == "notifications/cancelled" {
			defer s.cancelled(m.Params)
		}
		s.forward(ctx, &m, nil)
	}
}

// forward sends m with whichever transport is current, switching to
// HTTP+SSE when the remote turns out to speak only that.
func (s *shim) forward(ctx context.Context, m *jsonrpc.Message, c *call) {
	callCtx := ctx
	if c != nil {
		callCtx = c.ctx
	}
	err := s.transport().send(callCtx, m, c)
	var fb *fallbackError
	if errors.As(err, &fb) {
		err = s.fallback(callCtx, m, c, fb)
	}
	if err == nil {
		return
	}
	if c == nil {
		if ctx.Err() == nil {
			s.log.Warn().Err(err).Str("method", m.Method).Stringer("kind", m.Kind).Msg("message not delivered to the remote")
		}
		return
	}
	if ctx.Err() != nil {
		return // shutting down; nobody is waiting
	}
	s.fail(c, err)
}

// fallback handles a Streamable HTTP initialize that failed the way the
// spec's backward-compatibility section describes: it tries the HTTP+SSE
// transport on the same URL, and when that fails too, gives the client the
// original answer.
func (s *shim) fallback(ctx context.Context, m *jsonrpc.Message, c *call, fb *fallbackError) error {
	s.log.Info().Int("status", fb.status).Msg("remote refused initialize over Streamable HTTP; trying HTTP+SSE")
	lg := &legacy{s: s, url: s.cfg.URL}
	if err := lg.open(ctx); err != nil {
		s.log.Info().Err(err).Msg("remote does not speak HTTP+SSE either")
		return fb.answer(s, c)
	}
	s.mu.Lock()
	s.tr = lg
	s.mu.Unlock()
	s.log.Info().Msg("remote speaks HTTP+SSE (2024-11-05); using it")
	return lg.send(ctx, m, c)
}

// remember keeps what a new session needs to look like the client's own.
func (s *shim) remember(m *jsonrpc.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch m.Method {
	case "initialize":
		s.initReq = m.Raw
	case "logging/setLevel":
		s.logLevel = m.Params
	case "resources/subscribe", "resources/unsubscribe":
		uri, _, _, ok := jsonrpc.Lookup(m.Params, "uri")
		if !ok {
			return
		}
		if m.Method == "resources/subscribe" {
			s.subs[string(uri)] = m.Params
		} else {
			delete(s.subs, string(uri))
		}
	}
}

// restoring is a request that restores part of the client's session.
type restoring struct {
	c *call
	m jsonrpc.Message
}

// setup returns the requests that restore the client's log level and
// subscriptions in a new session, each under an id of the shim's own.
func (s *shim) setup(ctx context.Context) []restoring {
	s.mu.Lock()
	type req struct {
		method string
		params []byte
	}
	var reqs []req
	if s.logLevel != nil {
		reqs = append(reqs, req{"logging/setLevel", s.logLevel})
	}
	for _, p := range s.subs {
		reqs = append(reqs, req{"resources/subscribe", p})
	}
	s.mu.Unlock()
	var out []restoring
	for _, r := range reqs {
		c := s.track(ctx, s.internalID(), true, true)
		c.method = r.method
		body := []byte(`{"jsonrpc":"2.0","id":`)
		body = append(body, c.id...)
		body = strconv.AppendQuote(append(body, `,"method":`...), r.method)
		body = append(append(body, `,"params":`...), r.params...)
		m, err := jsonrpc.Parse(append(body, '}'))
		if err != nil {
			// The params came from a message that parsed; this cannot fail.
			s.take(c.id)
			continue
		}
		out = append(out, restoring{c: c, m: m})
	}
	return out
}

func (s *shim) transport() transport {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tr
}

func (s *shim) initRequest() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.initReq
}

// track registers a request so its response can be matched.
func (s *shim) track(ctx context.Context, id []byte, hold, internal bool) *call {
	cctx, cancel := context.WithCancel(ctx)
	c := &call{id: id, ctx: cctx, cancel: cancel, done: make(chan struct{}), hold: hold || internal, internal: internal}
	s.mu.Lock()
	s.pending[jsonrpc.IDKey(id)] = c
	s.mu.Unlock()
	return c
}

// take removes the call for id, if it is still waiting.
func (s *shim) take(id []byte) *call {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.pending[jsonrpc.IDKey(id)]
	if c != nil {
		delete(s.pending, jsonrpc.IDKey(id))
	}
	return c
}

// fail answers c with a JSON-RPC error, unless it was answered already.
func (s *shim) fail(c *call, err error) {
	s.mu.Lock()
	if s.pending[jsonrpc.IDKey(c.id)] != c {
		s.mu.Unlock()
		return
	}
	delete(s.pending, jsonrpc.IDKey(c.id))
	s.mu.Unlock()
	code, msg := jsonrpc.CodeInternalError, s.redact.Replace("mcpwrap proxy: "+err.Error())
	var re *rpcError
	if errors.As(err, &re) {
		code = re.code
	}
	ev := s.log.Warn()
	if c.internal || c.method == "server/discover" {
		// The probe of a 2026-07-28 client fails against every older
		// remote; that is expected, not worth a warning.
		ev = s.log.Debug()
	}
	ev.Str("id", string(c.id)).Str("method", c.method).Err(err).Msg("answered the client with an error")
	resp := jsonrpc.ErrorResponse(c.id, code, msg)
	if c.internal {
		c.resp = resp
	} else {
		// A held call's sender has given up on it, so this is the answer.
		s.out.write(resp)
	}
	close(c.done)
}

// cancelled forgets a request the client has given up on: a response that
// still comes is dropped, and its HTTP exchange is ended. The remote heard of
// the cancellation already, since the notification went first.
func (s *shim) cancelled(params []byte) {
	id, _, _, ok := jsonrpc.Lookup(params, "requestId")
	if !ok {
		return
	}
	if c := s.take(id); c != nil {
		close(c.done)
		c.cancel()
	}
}

// deliver routes what the remote sent: responses to the calls waiting for
// them, everything else straight to the client.
func (s *shim) deliver(b []byte) {
	msgs, _, err := jsonrpc.ParseBody(b)
	if err != nil {
		s.log.Warn().Err(err).Msg("remote sent a message that is not JSON-RPC; dropped")
		return
	}
	for i := range msgs {
		m := &msgs[i]
		if m.Kind != jsonrpc.Response {
			s.out.write(m.Raw)
			continue
		}
		c := s.take(m.ID)
		if c == nil {
			s.log.Debug().Str("id", string(m.ID)).Msg("response for no waiting request; dropped")
			continue
		}
		if c.hold {
			c.resp = m.Raw
		} else {
			s.out.write(m.Raw)
		}
		close(c.done)
	}
}

// reinitSlack is how long a replayed handshake may take once the remote
// answers at all; a remote that accepts connections and then says nothing
// must not hold every request of the client forever.
const reinitSlack = 30 * time.Second

// reinitContext bounds a session recovery. It hangs off the shim's context,
// not a request's: a cancelled request must not leave everyone without a
// session.
func (s *shim) reinitContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, s.cfg.RetryFor+reinitSlack)
}

// internalID returns a fresh id for a request the shim itself makes; the
// prefix keeps it apart from the client's ids.
func (s *shim) internalID() []byte {
	return strconv.AppendQuote(nil, fmt.Sprintf("mcpwrap-proxy-%d", s.reinits.Add(1)))
}

// rpcError is an error with the JSON-RPC code the client should see.
type rpcError struct {
	code int
	msg  string
}

func (e *rpcError) Error() string { return e.msg }

// initResult reads the protocol version out of an initialize response, or
// the error the remote gave instead.
func initResult(resp []byte) (version string, err error) {
	var r struct {
		Result *struct {
			ProtocolVersion string `json:"protocolVersion"`
		} `json:"result"`
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(resp, &r); err != nil {
		return "", fmt.Errorf("initialize response: %w", err)
	}
	if r.Error != nil {
		return "", &rpcError{code: r.Error.Code, msg: "remote refused initialize: " + r.Error.Message}
	}
	if r.Result == nil {
		return "", errors.New("initialize response has no result")
	}
	return r.Result.ProtocolVersion, nil
}

// errorIn returns the error a response carries, if any.
func errorIn(resp []byte) error {
	var r struct {
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(resp, &r); err != nil {
		return fmt.Errorf("response: %w", err)
	}
	if r.Error != nil {
		return errors.New(r.Error.Message)
	}
	return nil
}

// lineWriter writes one message per line to the client.
type lineWriter struct {
	mu     sync.Mutex // guards the fields below and serializes writes
	w      io.Writer
	err    error
	failed chan struct{} // closed on the first write error
}

func (lw *lineWriter) write(msg []byte) {
	msg = jsonrpc.OneLine(msg)
	buf := make([]byte, 0, len(msg)+1)
	buf = append(append(buf, msg...), '\n')
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.err != nil {
		return
	}
	if _, err := lw.w.Write(buf); err != nil {
		lw.err = err
		close(lw.failed)
	}
}

func (lw *lineWriter) error() error {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.err
}
