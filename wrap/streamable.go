package wrap

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpwrap/mcpwrap/jsonrpc"
	"github.com/mcpwrap/mcpwrap/session"
)

const (
	headerSessionID = "Mcp-Session-Id"
	headerVersion   = "Mcp-Protocol-Version"
)

// versions are the protocol revisions whose Streamable HTTP rules this
// endpoint follows. A request without the version header is 2025-03-26.
var versions = []string{"2025-11-25", "2025-06-18", "2025-03-26"}

// streamable is the single Streamable HTTP endpoint.
func (h *Handler) streamable(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		h.post(w, r)
	case http.MethodGet:
		h.get(w, r)
	case http.MethodDelete:
		h.delete(w, r)
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		writeError(w, http.StatusMethodNotAllowed, nil, codeBadRequest, "Method Not Allowed")
	}
}

// version checks the MCP-Protocol-Version header and answers a bad one
// itself.
func version(w http.ResponseWriter, r *http.Request) (string, bool) {
	v := r.Header.Get(headerVersion)
	if v == "" {
		return "2025-03-26", true
	}
	if !slices.Contains(versions, v) {
		writeError(w, http.StatusBadRequest, nil, codeBadRequest,
			"Bad Request: unsupported MCP-Protocol-Version "+v+" (supported: 2025-11-25, 2025-06-18, 2025-03-26)")
		return "", false
	}
	return v, true
}

// lookup finds the session a request names, answering the request itself
// when it names none (400) or one it cannot use (see find).
func (h *Handler) lookup(w http.ResponseWriter, r *http.Request) (*session.Session, bool) {
	id := r.Header.Get(headerSessionID)
	if id == "" {
		writeError(w, http.StatusBadRequest, nil, codeBadRequest, "Bad Request: Mcp-Session-Id header is required")
		return nil, false
	}
	return h.find(w, r, id, session.Streamable)
}

// codeSessionNotFound accompanies 404 for an unknown or ended session.
const codeSessionNotFound = -32001

func (h *Handler) post(w http.ResponseWriter, r *http.Request) {
	if !isJSON(r.Header.Get("Content-Type")) {
		writeError(w, http.StatusUnsupportedMediaType, nil, codeBadRequest, "Unsupported Media Type: Content-Type must be application/json")
		return
	}
	if !accepts(r, "application/json") || !accepts(r, "text/event-stream") {
		writeError(w, http.StatusNotAcceptable, nil, codeBadRequest, "Not Acceptable: Accept must include application/json and text/event-stream")
		return
	}
	if eraOf(r, nil) == modern {
		h.serveModern(w, r, nil, nil)
		return
	}
	ver, ok := version(w, r)
	if !ok {
		return
	}
	// The session is found before the body is read: a request for another
	// instance's session is replayed there unread, whatever its size.
	var s *session.Session
	if r.Header.Get(headerSessionID) != "" {
		if s, ok = h.lookup(w, r); !ok {
			return
		}
	}
	body, release, ok := h.readBody(w, r)
	if !ok {
		return
	}
	defer release()
	msgs, batch, err := jsonrpc.ParseBody(body)
	if err != nil {
		parseError(w, err)
		return
	}
	noteMessages(r, msgs, len(body))
	if eraOf(r, msgs) == modern {
		h.serveModern(w, r, msgs, release)
		return
	}
	if batch && ver >= "2025-06-18" {
		writeError(w, http.StatusBadRequest, nil, jsonrpc.CodeInvalidRequest, "Invalid Request: batches are not part of protocol "+ver)
		return
	}
	if !h.batchFits(w, msgs, batch) {
		return
	}
	init := slices.IndexFunc(msgs, func(m jsonrpc.Message) bool { return m.Method == "initialize" })
	if s == nil {
		if init < 0 || len(msgs) != 1 || msgs[0].Kind != jsonrpc.Request {
			// Also the answer a dual-era client's stateless probe
			// (server/discover) expects from a server of this era.
			writeError(w, http.StatusBadRequest, nil, codeBadRequest, "Bad Request: Mcp-Session-Id header is required")
			return
		}
		h.initialize(w, r, msgs[0], batch)
		return
	}
	if init >= 0 {
		writeError(w, http.StatusBadRequest, msgs[init].ID, jsonrpc.CodeInvalidRequest, "Invalid Request: the session is already initialized")
		return
	}
	ctx, cancel := h.deadline(r)
	defer cancel()
	ex, err := s.Send(ctx, msgs)
	switch {
	case errors.Is(err, session.ErrEnded):
		writeError(w, http.StatusNotFound, nil, codeSessionNotFound, "Session not found")
		return
	case err != nil && r.Context().Err() != nil:
		return // the client left
	case err != nil:
		// The child would not read its input before the deadline.
		answers := h.timedOut(s, requestIDs(msgs))
		h.send(w, s, func(g *writeGuard) { writeJSON(w, g, answers, batch) })
		return
	case ex == nil:
		w.WriteHeader(http.StatusAccepted)
		return
	}
	release() // the child has the messages now; the reply may take long
	h.reply(ctx, w, r, s, ex, batch, ver)
}

// deadline is the context a request's messages are sent and answered
// under: the client's, bounded by the request timeout when one is set.
func (h *Handler) deadline(r *http.Request) (context.Context, context.CancelFunc) {
	if h.opts.RequestTimeout > 0 {
		return context.WithTimeout(r.Context(), h.opts.RequestTimeout)
	}
	return context.WithCancel(r.Context())
}

// batchFits refuses a batch longer than MaxBatch, before anything of it
// reaches the child.
func (h *Handler) batchFits(w http.ResponseWriter, msgs []jsonrpc.Message, batch bool) bool {
	if !batch || h.opts.MaxBatch <= 0 || len(msgs) <= h.opts.MaxBatch {
		return true
	}
	writeError(w, http.StatusBadRequest, nil, jsonrpc.CodeInvalidRequest,
		"Invalid Request: a batch of "+strconv.Itoa(len(msgs))+" messages; at most "+strconv.Itoa(h.opts.MaxBatch)+" are accepted")
	return false
}

// requestIDs are the ids of the requests among msgs.
func requestIDs(msgs []jsonrpc.Message) [][]byte {
	var ids [][]byte
	for _, m := range msgs {
		if m.Kind == jsonrpc.Request {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

// timedOut makes the answers to requests given up on at the request
// timeout.
func (h *Handler) timedOut(s *session.Session, ids [][]byte) [][]byte {
	answers := internalErrors(ids, "request timed out after "+h.opts.RequestTimeout.String())
	s.Log().Warn().Int("requests", len(answers)).Dur("timeout_ms", h.opts.RequestTimeout).Msg("request timed out")
	return answers
}

// lostAnswers are errors for the requests among ids that held does not
// answer: a reply cut for falling behind could not carry their responses.
func lostAnswers(ids [][]byte, held []session.Event) [][]byte {
	answered := map[string]bool{}
	for _, ev := range held {
		if id, _, _, ok := jsonrpc.Lookup(ev.Data, "id"); ok {
			answered[string(id)] = true
		}
	}
	ids = slices.DeleteFunc(slices.Clone(ids), func(id []byte) bool { return answered[string(id)] })
	return internalErrors(ids, "response dropped: more was queued for the session's readers than MCPWRAP_MAX_QUEUED_BYTES allows")
}

// internalErrors answers each of ids with an internal error saying message.
func internalErrors(ids [][]byte, message string) [][]byte {
	answers := make([][]byte, 0, len(ids))
	for _, id := range ids {
		answers = append(answers, jsonrpc.ErrorResponse(id, jsonrpc.CodeInternalError, message))
	}
	return answers
}

// send writes a response through a write guard that ends with the
// handler and hurries once the session has ended.
func (h *Handler) send(w http.ResponseWriter, s *session.Session, write func(*writeGuard)) {
	g := newWriteGuard(w, h.opts.SlowReaderTimeout)
	defer g.watch(s.Context())()
	write(g)
}

// initialize starts a session for an initialize request. The session lives
// on only if the child answers it successfully.
func (h *Handler) initialize(w http.ResponseWriter, r *http.Request, msg jsonrpc.Message, batch bool) {
	ctx, cancel := h.deadline(r)
	defer cancel()
	s, err := h.reg.Start(ctx, session.Streamable, ownerOf(r))
	if err != nil {
		writeError(w, startStatus(w, err), msg.ID, jsonrpc.CodeInternalError, "cannot start a session: "+err.Error())
		return
	}
	w.Header().Set(headerSessionID, s.ID())
	ex, err := s.Send(ctx, []jsonrpc.Message{msg})
	if errors.Is(err, session.ErrEnded) {
		// The child died (or shutdown began) before it was asked
		// anything: there is no session to name, but the request is
		// still owed an answer.
		w.Header().Del(headerSessionID)
		if cause := s.Err(); cause != nil {
			err = cause
		}
		writeError(w, http.StatusInternalServerError, msg.ID, jsonrpc.CodeInternalError, "cannot start a session: "+err.Error())
		return
	}
	if err != nil && r.Context().Err() == nil {
		w.Header().Del(headerSessionID)
		answers := h.timedOut(s, [][]byte{msg.ID})
		h.send(w, s, func(g *writeGuard) { writeJSON(w, g, answers, batch) })
	}
	ok := err == nil && h.reply(ctx, w, r, s, ex, batch, "")
	if !ok {
		// Closing can take the child's whole grace period; the client
		// should not wait for it.
		s.End()
	}
}

// reply streams an exchange's answer. While only responses come, they are
// held and sent as one JSON body; the first message of another kind
// (progress, logging, a request to the client) turns the reply into an SSE
// stream that ends after the last response. A reply that stays silent for a
// keep-alive interval becomes a stream too, so that its keep-alives can stop
// proxies from cutting a long call. ctx bounds it (the request timeout).
// Every write has the slow-reader deadline: a client that stops reading is
// cut, and the session goes on. A client that leaves, or whose stream is
// closed for polling, may resume the stream by GET (see resume) while the
// call goes on. It reports whether every request got a response that is not
// an error.
func (h *Handler) reply(ctx context.Context, w http.ResponseWriter, r *http.Request, s *session.Session, ex *session.Exchange, batch bool, ver string) bool {
	g := newWriteGuard(w, h.opts.SlowReaderTimeout)
	defer g.watch(s.Context())()
	return h.follow(ctx, w, r, g, s, ex, s.Kicked(ex), nil, 0, batch, ver)
}

// follow reads an exchange's log from cursor to the client: a reply (sse
// nil: JSON until it must stream) or a resumed stream. seat is closed when
// a client resuming the stream wants this reader gone.
func (h *Handler) follow(ctx context.Context, w http.ResponseWriter, r *http.Request, g *writeGuard, s *session.Session, ex *session.Exchange, seat <-chan struct{}, sse *sseWriter, cursor int64, batch bool, ver string) bool {
	keepAlive := time.NewTicker(h.opts.KeepAlive)
	defer keepAlive.Stop()
	var poll <-chan time.Time
	if p := h.pollAfter(ver); p > 0 {
		t := time.NewTimer(p)
		defer t.Stop()
		poll = t.C
	}
	key := ex.Key()
	var held []session.Event
	// stream turns the reply into an SSE stream, sending what was held.
	stream := func() error {
		if sse != nil {
			return nil
		}
		sse = startSSE(w, g)
		from := cursor
		if len(held) > 0 {
			from = held[0].ID - 1
		}
		if err := h.prime(sse, key, from, ver); err != nil {
			return err
		}
		for _, ev := range held {
			if err := sse.message(eventID(key, ev.ID), ev.Data); err != nil {
				return err
			}
		}
		held = nil
		return nil
	}
	if sse != nil {
		if err := h.prime(sse, key, cursor, ver); err != nil {
			s.Park(ex, seat)
			return false
		}
	}
	ok := true
	events := ex.Events()
	// leave parks the reply for the client to resume, unless its stream
	// already carried the last event: the end can come while the reader
	// waits, and a reply the client has whole is finished however the
	// reader goes (else it would hold its bytes for the retention time).
	// One a newer connection asks for goes on there (Finished parks it).
	leave := func() {
		if _, _, err := events.After(cursor); sse != nil && len(held) == 0 && errors.Is(err, io.EOF) {
			s.Finished(ex, seat)
			return
		}
		s.Park(ex, seat)
	}
	for {
		got, ready, err := events.After(cursor)
		for _, ev := range got {
			if ev.Error {
				ok = false
			}
			if sse == nil && ev.Response {
				held = append(held, ev)
				cursor = ev.ID
				continue
			}
			if stream() != nil || sse.message(eventID(key, ev.ID), ev.Data) != nil {
				// What did not reach the client waits for it to resume.
				s.Park(ex, seat)
				return false
			}
			cursor = ev.ID
		}
		switch {
		case errors.Is(err, io.EOF):
			s.Finished(ex, seat)
			if sse == nil {
				writeJSON(w, g, datas(held), batch)
			}
			return ok
		case err != nil:
			// Cut for falling behind (the session said so in its log).
			switch {
			case sse == nil && ver >= "2025-11-25":
				// Nothing was sent yet: the child outran the reply's bound
				// before the client read a byte. A client that can resume
				// gets a primed stream, and its resume the 410 that says
				// what fell off.
				s.Finished(ex, seat)
				_ = stream()
			case sse == nil:
				// An earlier client cannot resume: what it is owed is
				// answered with errors rather than an empty 200.
				s.Abandon(ex, "response dropped: the reply fell behind")
				writeJSON(w, g, append(datas(held), lostAnswers(ex.RequestIDs(), held)...), batch)
			default:
				s.Finished(ex, seat)
			}
			return false
		}
		select {
		case <-ready:
		case <-keepAlive.C:
			if stream() != nil || sse.comment() != nil {
				leave()
				return false
			}
		case <-seat:
			s.Park(ex, seat) // a newer connection of the client's goes on
			return false
		case <-poll:
			// The client resumes by GET after the retry interval; what
			// comes meanwhile waits in the log.
			_ = stream()
			leave()
			return ok
		case <-ctx.Done():
			if r.Context().Err() != nil {
				leave() // the client left; that is not a cancellation
				return false
			}
			h.timeout(w, g, s, ex, sse, datas(held), batch)
			return false
		}
	}
}

// pollAfter is how long a stream of protocol ver stays open before the
// client is asked to resume it: only 2025-11-25 clients know that a
// stream closed without its answer is to be resumed.
func (h *Handler) pollAfter(ver string) time.Duration {
	if ver < "2025-11-25" {
		return 0
	}
	return h.opts.SSEPollAfter
}

// prime starts a stream of protocol 2025-11-25 with an event a client can
// resume from (and tells earlier clients only how soon to come back). The
// priming event's id names the stream position (cursor) like any other,
// plus a serial: a client that reconnects and sees a new id knows the
// server is making progress even while the call stays silent.
func (h *Handler) prime(sse *sseWriter, key, cursor int64, ver string) error {
	if ver < "2025-11-25" {
		if h.opts.SSERetry <= 0 {
			return nil
		}
		sse.g.arm()
		return sse.w.Retry(h.opts.SSERetry)
	}
	n := h.primes.Add(1)
	return sse.prime(h.opts.SSERetry, eventID(key, cursor)+"."+strconv.FormatInt(n, 10))
}

// eventID names an event by its stream (0 is the session's GET stream, the
// others a POST's reply) and its place in it, so that a Last-Event-ID says
// which stream to resume and from where.
func eventID(key, id int64) string {
	return strconv.FormatInt(key, 10) + "." + strconv.FormatInt(id, 10)
}

// parseEventID reads an id made by eventID or prime.
func parseEventID(s string) (key, id int64, ok bool) {
	k, rest, found := strings.Cut(s, ".")
	if !found {
		return 0, 0, false
	}
	pos, _, _ := strings.Cut(rest, ".")
	key, err1 := strconv.ParseInt(k, 10, 64)
	id, err2 := strconv.ParseInt(pos, 10, 64)
	if err1 != nil || err2 != nil || key < 0 || id < 0 {
		return 0, 0, false
	}
	return key, id, true
}

// datas are the events' messages.
func datas(evs []session.Event) [][]byte {
	out := make([][]byte, len(evs))
	for i, ev := range evs {
		out[i] = ev.Data
	}
	return out
}

// timeout answers the requests still open when the request timeout passes,
// after telling the child to cancel them; answers already held go with
// them.
func (h *Handler) timeout(w http.ResponseWriter, g *writeGuard, s *session.Session, ex *session.Exchange, sse *sseWriter, held [][]byte, batch bool) {
	answers := h.timedOut(s, s.Abandon(ex, "request timed out"))
	if sse != nil {
		for _, a := range answers {
			_ = sse.event("message", a)
		}
		return
	}
	writeJSON(w, g, append(held, answers...), batch)
}

// writeJSON sends responses as one application/json body: the response
// itself, or an array of them for a batch.
func writeJSON(w http.ResponseWriter, g *writeGuard, responses [][]byte, batch bool) {
	var body []byte
	if !batch && len(responses) == 1 {
		body = responses[0]
	} else {
		body = append(append([]byte{'['}, bytes.Join(responses, []byte{','})...), ']')
	}
	// A length lets the client size its buffer once, and the body go out
	// without chunk framing.
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	g.arm()
	_, _ = w.Write(body)
}

// get opens the session's standalone stream: what the child sends that
// belongs to no request (list changes, resource updates, and its requests
// when no call is in flight). With Last-Event-ID it resumes a stream
// instead: the standalone one, or a POST's reply, from after that event.
func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	if !accepts(r, "text/event-stream") {
		writeError(w, http.StatusNotAcceptable, nil, codeBadRequest, "Not Acceptable: Accept must include text/event-stream")
		return
	}
	ver, ok := version(w, r)
	if !ok {
		return
	}
	s, ok := h.lookup(w, r)
	if !ok {
		return
	}
	key, cursor, resumed := int64(0), int64(-1), false
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		if key, cursor, ok = parseEventID(last); !ok {
			writeError(w, http.StatusBadRequest, nil, codeBadRequest, "Bad Request: Last-Event-ID "+strconv.Quote(last)+" was not given by this server")
			return
		}
		resumed = true
	}
	if key != 0 {
		h.resume(w, r, s, key, cursor, ver)
		return
	}
	var stream *session.EventLog
	var kicked <-chan struct{}
	var release func()
	var err error
	if resumed {
		ctx, cancel := context.WithTimeout(r.Context(), takeOverWait)
		stream, kicked, release, err = s.TakeOver(ctx)
		cancel()
	} else {
		stream, kicked, release, err = s.Listen()
	}
	switch {
	case errors.Is(err, session.ErrStreamBusy):
		writeError(w, http.StatusConflict, nil, codeBadRequest, "Conflict: only one stream per session is allowed")
		return
	case err != nil:
		writeError(w, http.StatusNotFound, nil, codeSessionNotFound, "Session not found")
		return
	}
	defer release()
	if !resumed {
		cursor = stream.Read() // a new reader: what an earlier one read is not sent again
	} else if err := stream.Resumable(cursor); err != nil {
		gone(w, r.Header.Get("Last-Event-ID"), err)
		return
	}
	g := newWriteGuard(w, h.opts.SlowReaderTimeout)
	defer g.watch(s.Context())()
	sse := startSSE(w, g)
	if h.prime(sse, 0, cursor, ver) != nil {
		return
	}
	h.pump(r.Context(), sse, stream, kicked, cursor, true, h.pollAfter(ver))
}

// resume continues a POST's reply stream after cursor, for a client whose
// connection dropped or was closed for polling.
func (h *Handler) resume(w http.ResponseWriter, r *http.Request, s *session.Session, key, cursor int64, ver string) {
	last := r.Header.Get("Last-Event-ID")
	ctx, cancel := context.WithTimeout(r.Context(), takeOverWait)
	ex, seat, err := s.Resume(ctx, key)
	cancel()
	switch {
	case errors.Is(err, session.ErrStreamBusy):
		writeError(w, http.StatusConflict, nil, codeBadRequest, "Conflict: the stream of Last-Event-ID "+strconv.Quote(last)+" is being read")
		return
	case err != nil:
		gone(w, last, err)
		return
	}
	if err := ex.Events().Resumable(cursor); err != nil {
		s.Finished(ex, seat) // what is left of it can never be delivered whole
		gone(w, last, err)
		return
	}
	g := newWriteGuard(w, h.opts.SlowReaderTimeout)
	defer g.watch(s.Context())()
	h.follow(r.Context(), w, r, g, s, ex, seat, startSSE(w, g), cursor, false, ver)
}

// takeOverWait bounds how long a resuming client waits for the reader of
// before to leave: one on a connection that died without a word leaves at
// its next write, a keep-alive at the latest.
const takeOverWait = 10 * time.Second

// gone refuses a resumption the session can no longer serve whole.
func gone(w http.ResponseWriter, last string, err error) {
	writeError(w, http.StatusGone, nil, codeBadRequest,
		"Gone: cannot resume after Last-Event-ID "+strconv.Quote(last)+": "+err.Error())
}

// pump copies the session's stream to an SSE stream from after cursor until
// the client leaves or the stream ends with its session, with keep-alive
// comments in between; with ids, each event carries its id on the
// session's stream (key 0). A client that does not keep up is cut by the
// write deadline, and a reader kicked out by a resuming one leaves. With poll set, the stream is closed after that long for
// the client to resume.
func (h *Handler) pump(ctx context.Context, sse *sseWriter, stream *session.EventLog, kicked <-chan struct{}, cursor int64, ids bool, poll time.Duration) {
	keepAlive := time.NewTicker(h.opts.KeepAlive)
	defer keepAlive.Stop()
	var polled <-chan time.Time
	if poll > 0 {
		t := time.NewTimer(poll)
		defer t.Stop()
		polled = t.C
	}
	for {
		got, ready, err := stream.After(cursor)
		for _, ev := range got {
			id := ""
			if ids {
				id = eventID(0, ev.ID)
			}
			if sse.message(id, ev.Data) != nil {
				return
			}
			cursor = ev.ID
		}
		if err != nil {
			return // the session ended, and everything it said is out
		}
		select {
		case <-ready:
		case <-keepAlive.C:
			if err := sse.comment(); err != nil {
				return
			}
		case <-polled:
			return
		case <-kicked:
			return // the client resumed on a newer connection
		case <-ctx.Done():
			return
		}
	}
}

// delete ends a session at the client's request.
func (h *Handler) delete(w http.ResponseWriter, r *http.Request) {
	if _, ok := version(w, r); !ok {
		return
	}
	s, ok := h.lookup(w, r)
	if !ok {
		return
	}
	// The child's lifetime belongs to its session, not to this request.
	_ = s.Close(context.WithoutCancel(r.Context()))
	w.WriteHeader(http.StatusNoContent)
}
