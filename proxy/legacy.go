package proxy

import (
	"context"
	"errors"
	"fmt"
	"github.com/mcpwrap/mcpwrap/internal/sse"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mcpwrap/mcpwrap/jsonrpc"
)

// endpointWait bounds the wait for the endpoint event that opens an
// HTTP+SSE stream; a server that sends something else is not one.
const endpointWait = 10 * time.Second

// legacy speaks the HTTP+SSE transport of 2024-11-05: one GET stream carries
// everything the remote sends, and messages are POSTed to the endpoint the
// stream names first. The session lives exactly as long as the stream.
type legacy struct {
	s   *shim
	url *url.URL

	mu         sync.Mutex // guards the fields below
	endpoint   *url.URL   // nil while no stream is open
	gen        uint64     // bumps with every stream
	stop       context.CancelFunc
	recovering chan struct{}
	inflight   map[*call]*flight
}

// flight is a request whose answer must come on stream gen.
type flight struct {
	gen      uint64
	accepted bool // the remote took the POST; until then a 404 may still send it again
}

// open connects the stream, waits for its endpoint event, and starts
// passing on what comes next.
func (t *legacy) open(ctx context.Context) error {
	sctx, cancel := context.WithCancel(t.s.ctx)
	// The caller may give up while connecting; once open, the stream is the
	// shim's.
	unwatch := context.AfterFunc(ctx, cancel)
	defer unwatch()

	h := t.s.baseHeader()
	h.Set("Accept", "text/event-stream")
	resp, err := t.s.do(sctx, request{method: http.MethodGet, url: t.url, header: h}, t.s.cfg.RetryFor)
	if err != nil {
		cancel()
		return err
	}
	if resp.StatusCode != http.StatusOK || mediaType(resp) != "text/event-stream" {
		b, _ := readBody(resp)
		cancel()
		return statusError(resp, b)
	}
	timer := time.AfterFunc(endpointWait, cancel)
	er := sse.NewReader(resp.Body, maxMessage)
	ev, err := er.Next()
	if !timer.Stop() {
		err = errors.New("no endpoint event in time")
	}
	if err == nil && ev.Name != "endpoint" {
		err = fmt.Errorf("first event is %q, not endpoint", ev.Name)
	}
	var ep *url.URL
	if err == nil {
		ep, err = t.resolve(string(ev.Data))
	}
	if err != nil {
		resp.Body.Close()
		cancel()
		return fmt.Errorf("HTTP+SSE stream: %w", err)
	}

	t.mu.Lock()
	t.gen++
	gen := t.gen
	t.endpoint, t.stop = ep, cancel
	t.mu.Unlock()
	t.s.wg.Go(func() {
		defer cancel()
		err := t.pump(er)
		resp.Body.Close()
		er.Release()
		t.lost(gen, err)
	})
	return nil
}

// resolve turns the endpoint event's data into the POST URL. It must stay on
// the remote's own origin: the token goes along with every POST.
func (t *legacy) resolve(data string) (*url.URL, error) {
	ref, err := url.Parse(strings.TrimSpace(data))
	if err != nil {
		return nil, errors.New("endpoint event is not a URL")
	}
	ep := t.url.ResolveReference(ref)
	if ep.Scheme != t.url.Scheme || ep.Host != t.url.Host {
		return nil, errors.New("endpoint event points to another origin; refusing to send the token there")
	}
	return ep, nil
}

func (t *legacy) pump(er *sse.Reader) error {
	for {
		ev, err := er.Next()
		if err != nil {
			return err
		}
		if ev.Name == "" || ev.Name == "message" {
			t.s.deliver(ev.Data)
		}
	}
}

// lost handles the end of stream gen: the requests waiting for an answer on
// it will never get one, and the session is gone with it.
func (t *legacy) lost(gen uint64, err error) {
	t.mu.Lock()
	if t.gen == gen {
		t.endpoint = nil
	}
	var orphans []*call
	for c, f := range t.inflight {
		if f.gen == gen && f.accepted {
			orphans = append(orphans, c)
			delete(t.inflight, c)
		}
	}
	t.mu.Unlock()
	if t.s.ctx.Err() != nil {
		return
	}
	for _, c := range orphans {
		t.s.fail(c, &rpcError{code: jsonrpc.CodeInternalError, msg: "connection to the remote was lost before it answered; the request may or may not have run"})
	}
	if errors.Is(err, io.EOF) {
		err = errors.New("stream ended")
	}
	// The session died with the stream, so nothing can come for it. A new
	// one waits for the client's next message: making it now would start a
	// process on the remote and keep an auto-stopping machine awake for
	// nobody.
	t.s.log.Warn().Err(err).Msg("HTTP+SSE stream lost; a new session is made when the client next sends")
}

// current returns where to POST, reconnecting first when the stream is
// gone.
func (t *legacy) current(ctx context.Context) (*url.URL, uint64, error) {
	for range 3 {
		t.mu.Lock()
		ep, gen, ch := t.endpoint, t.gen, t.recovering
		t.mu.Unlock()
		switch {
		case ch != nil:
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, 0, ctx.Err()
			}
		case ep != nil:
			return ep, gen, nil
		default:
			if err := t.recover(gen); err != nil {
				return nil, 0, err
			}
		}
	}
	return nil, 0, errors.New("remote HTTP+SSE stream keeps failing")
}

func (t *legacy) post(ctx context.Context, ep *url.URL, body []byte) (*http.Response, error) {
	h := t.s.baseHeader()
	h.Set("Content-Type", "application/json")
	return t.s.do(ctx, request{method: http.MethodPost, url: ep, header: h, body: body}, t.s.cfg.RetryFor)
}

func (t *legacy) send(ctx context.Context, m *jsonrpc.Message, c *call) error {
	for recoveries := 0; ; recoveries++ {
		ep, gen, err := t.current(ctx)
		if err != nil {
			return err
		}
		if c != nil {
			t.track(c, gen)
		}
		resp, err := t.post(ctx, ep, m.Raw)
		if err != nil {
			t.untrack(c)
			return err
		}
		if resp.StatusCode == http.StatusNotFound {
			// The remote forgot the session and did not process m.
			drain(resp)
			t.untrack(c)
			if m.Kind == jsonrpc.Response {
				t.s.wg.Go(func() { t.recover(gen) })
				return errors.New("remote session lost; response dropped")
			}
			if recoveries >= maxRecoveries {
				return &rpcError{code: jsonrpc.CodeInternalError, msg: "remote keeps losing the session (404 after re-initializing)"}
			}
			if err := t.recover(gen); err != nil {
				return err
			}
			continue
		}
		if resp.StatusCode/100 != 2 {
			t.untrack(c)
			b, _ := readBody(resp)
			if resp.StatusCode != http.StatusUnauthorized && t.s.answerFromBody(c, b) {
				return nil
			}
			return statusError(resp, b)
		}
		drain(resp)
		if c != nil && !t.accepted(c, gen) {
			return &rpcError{code: jsonrpc.CodeInternalError, msg: "connection to the remote was lost before it answered; the request may or may not have run"}
		}
		if c == nil || !c.hold {
			return nil // the answer comes on the stream
		}
		// initialize: the client may see the answer only after it is known
		// where the session stands.
		select {
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if c.resp != nil {
			if _, err := initResult(c.resp); err != nil {
				t.s.log.Warn().Err(err).Msg("remote refused initialize")
			}
			t.s.out.write(c.resp)
		}
		return nil
	}
}

func (t *legacy) track(c *call, gen uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.inflight == nil {
		t.inflight = map[*call]*flight{}
	}
	for o := range t.inflight {
		if o.finished() {
			delete(t.inflight, o)
		}
	}
	t.inflight[c] = &flight{gen: gen}
}

// accepted marks c as taken by the remote and reports whether its stream
// still runs to bring the answer.
func (t *legacy) accepted(c *call, gen uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gen != gen || t.endpoint == nil {
		delete(t.inflight, c)
		return false
	}
	if f := t.inflight[c]; f != nil {
		f.accepted = true
	}
	return true
}

func (t *legacy) untrack(c *call) {
	if c == nil {
		return
	}
	t.mu.Lock()
	delete(t.inflight, c)
	t.mu.Unlock()
}

// recover replaces the lost stream gen with a new one and, once the client
// has initialized, a new session built from its own initialize. Concurrent
// callers share one recovery.
func (t *legacy) recover(gen uint64) error {
	t.mu.Lock()
	if t.recovering != nil {
		ch := t.recovering
		t.mu.Unlock()
		<-ch
		return nil
	}
	if t.gen != gen {
		t.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	t.recovering = ch
	if t.stop != nil {
		t.stop()
	}
	t.endpoint = nil
	t.mu.Unlock()

	rctx, cancel := t.s.reinitContext()
	err := t.reinitialize(rctx)
	cancel()
	t.mu.Lock()
	t.recovering = nil
	t.mu.Unlock()
	close(ch)
	if err != nil {
		if t.s.ctx.Err() == nil {
			t.s.log.Error().Err(err).Msg("remote session lost and re-initializing failed")
		}
		return err
	}
	t.s.log.Info().Msg("remote session lost; re-initialized it transparently")
	return nil
}

func (t *legacy) reinitialize(ctx context.Context) error {
	if err := t.open(ctx); err != nil {
		return err
	}
	init := t.s.initRequest()
	if init == nil {
		return nil
	}
	m, err := jsonrpc.Parse(init)
	if err != nil {
		return err
	}
	t.mu.Lock()
	ep, gen := t.endpoint, t.gen
	t.mu.Unlock()
	if ep == nil {
		return errors.New("stream lost while re-initializing")
	}
	c := t.s.track(ctx, t.s.internalID(), true, true)
	if err := t.roundTrip(ctx, ep, gen, c, m.WithID(c.id)); err != nil {
		return fmt.Errorf("initialize: %w", err)
	}
	if _, err := initResult(c.resp); err != nil {
		return err
	}
	resp, err := t.post(ctx, ep, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`))
	if err != nil {
		return err
	}
	drain(resp)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("notifications/initialized: remote answered %s", resp.Status)
	}
	for _, r := range t.s.setup(ctx) {
		err := t.roundTrip(ctx, ep, gen, r.c, r.m.Raw)
		if err == nil {
			err = errorIn(r.c.resp)
		}
		if err != nil {
			t.s.log.Warn().Err(err).Str("method", r.c.method).Msg("could not restore the client's session setup")
		}
	}
	return nil
}

// roundTrip posts a request of the shim's own and waits for its answer on
// stream gen, into c.resp.
func (t *legacy) roundTrip(ctx context.Context, ep *url.URL, gen uint64, c *call, body []byte) error {
	defer c.cancel()
	t.track(c, gen)
	resp, err := t.post(ctx, ep, body)
	if err != nil {
		t.s.take(c.id)
		return err
	}
	if resp.StatusCode/100 != 2 {
		b, _ := readBody(resp)
		t.s.take(c.id)
		return statusError(resp, b)
	}
	drain(resp)
	if !t.accepted(c, gen) {
		t.s.take(c.id)
		return errors.New("stream lost before the answer")
	}
	wait := time.NewTimer(t.s.cfg.RetryFor + endpointWait)
	defer wait.Stop()
	select {
	case <-c.done:
		return nil
	case <-wait.C:
		t.s.take(c.id)
		return errors.New("no answer")
	case <-ctx.Done():
		t.s.take(c.id)
		return ctx.Err()
	}
}

// close ends the stream, which ends an HTTP+SSE session.
func (t *legacy) close(context.Context) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stop != nil {
		t.stop()
	}
	t.endpoint = nil
}
