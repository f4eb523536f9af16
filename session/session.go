// Package session owns client sessions and the registry of live ones, and
// the JSON-RPC plumbing between each session's child (package child) and its
// client: request ids remapped into the child's own id space, responses
// matched back to the exchange that asked for them, and server-initiated
// traffic queued for the session's stream. It knows nothing of HTTP; package
// wrap is the front door.
package session

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/mcpwrap/mcpwrap/child"
	"github.com/mcpwrap/mcpwrap/internal/ratelog"
	"github.com/mcpwrap/mcpwrap/jsonrpc"
	"github.com/rs/zerolog"
)

// Errors the front door turns into statuses.
var (
	ErrNotFound        = errors.New("session not found")
	ErrEnded           = errors.New("session ended")
	ErrTooManySessions = errors.New("too many sessions")
	ErrStartsBusy      = errors.New("too many sessions starting at once")
	ErrClosed          = errors.New("shutting down")
	ErrStreamBusy      = errors.New("a stream is already open for this session")
)

// Observer hears of sessions starting and ending (metrics).
type Observer interface {
	SessionStarted(owner string)
	SessionEnded(owner, cause, exit string)
}

// codeSessionEnded is the JSON-RPC error code of the answer to a request
// that was in flight when its session ended.
const codeSessionEnded = -32000

// A Session is one client session and the child process that serves it.
type Session struct {
	id       string
	tenant   string // the owner's tenant (see Owner)
	user     string // the owner's user
	trans    Transport
	child    *child.Child
	log      zerolog.Logger
	started  time.Time
	onEnd    func(*Session) // the registry forgets the session; called just before ctx is done
	observer Observer
	queued   *budget          // bytes held for this session's readers
	limit    *ratelog.Limiter // shared with the child's stderr
	dropped  atomic.Int64     // stream messages dropped and not yet reported
	// callLimit is the request timeout: a call older than it no longer
	// keeps the session from idling out (0: a call always does).
	callLimit time.Duration
	retention time.Duration // how long a reply nobody reads waits for a resume

	slot   *startSlot      // held while the child starts; nil when starts are not bounded
	stream *EventLog       // server-initiated messages for the session's own stream
	ctx    context.Context // done once the session has ended and every exchange is answered
	end    context.CancelFunc
	cause  error // why the session ended; written before ctx is done

	mu         sync.Mutex // guards the fields below
	closing    bool       // no new requests; the router is winding down
	nextID     int64
	calls      map[string]*call     // by the id the child sees
	progress   map[string]*Exchange // by progress token
	inflight   []*Exchange          // exchanges still owed a response, oldest first
	listener   seat                 // the stream's reader
	lastActive time.Time
	used       bool   // it got more than initialize and notifications/initialized
	reason     string // why the session is being closed, if someone closes it
	lastKey    int64  // key of the newest exchange
	// replies are the exchanges a client may resume by key: those being
	// read and those waiting for their reader to come back.
	replies map[int64]*Exchange
}

// replayKeep is how many events a log keeps after they were written to a
// connection, for a client that reconnects: the ones the connection lost
// on the way are among them.
const replayKeep = 64

// call is one request in flight: who asked, and the id they used.
type call struct {
	ex       *Exchange // nil over HTTP+SSE: the answer goes to the stream
	clientID []byte
	token    string      // progress token, if the request carried one
	since    time.Time   // when it was sent
	timer    *time.Timer // answers it at the request timeout over HTTP+SSE; nil if none
}

// An Exchange is the requests one POST carried and the way back for
// everything related to them. Its log ends after the last response.
type Exchange struct {
	key      int64 // names its stream among the session's (the GET stream is 0)
	log      *EventLog
	detached chan struct{}
	once     sync.Once
	ids      [][]byte // its requests' client ids in order: written by Send under mu, read after it returns
	// Guarded by the session's mu:
	owed   int         // responses still to come
	reader seat        // who reads it
	parked *time.Timer // discards it unless resumed
}

// RequestIDs are the client ids of the exchange's requests, in the order
// they were sent.
func (e *Exchange) RequestIDs() [][]byte { return e.ids }

// Key names the exchange's stream among the session's: a client resumes it
// by this key (see Resume). The session's own stream is 0.
func (e *Exchange) Key() int64 { return e.key }

// Outbound is one message from the child on its way to the client.
type Outbound struct {
	Data     []byte // one JSON-RPC message, ids already the client's own
	Response bool   // it answers one of the exchange's requests
	Error    bool   // it is an error response
}

// Events holds the child's messages for this exchange in the order the
// child wrote them, responses among them; it ends (io.EOF) after the last
// one, or with ErrLagged when its reader fell too far behind.
func (e *Exchange) Events() *EventLog { return e.log }

// Detach tells the session nobody reads this exchange any more. A dropped
// connection is not a cancellation: the child keeps working, and what it
// sends for the exchange is discarded.
func (e *Exchange) Detach() { e.detach(io.EOF) }

func (e *Exchange) detach(why error) {
	e.once.Do(func() { close(e.detached) })
	e.log.cut(why)
}

// Park hands an exchange back after its reader left before the end: a
// dropped connection is not a cancellation, so the child keeps working and
// what it sends waits in the log, within the session's budget, for the
// client to resume (Resume) within the retention time; after that it is
// discarded (Detach).
// seat is what Kicked or Resume gave the reader.
func (s *Session) Park(ex *Exchange, seat <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.replies[ex.key] != ex || !ex.reader.leave(seat) {
		return
	}
	if s.retention <= 0 || s.closing {
		s.dropReplyLocked(ex)
		return
	}
	ex.parked = time.AfterFunc(s.retention, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.replies[ex.key] == ex && !ex.reader.taken {
			s.log.Debug().Int64("stream", ex.key).Msg("nobody resumed a reply within the retention time; discarded")
			s.dropReplyLocked(ex)
		}
	})
}

// Kicked is closed when a client resuming the exchange's stream asks the
// reader that opened it (the POST) to leave; it names that reader's seat to
// Park and Finished.
func (s *Session) Kicked(ex *Exchange) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ex.reader.kick
}

// Resume makes the caller the reader of the exchange with key again, and
// gives what is closed when the next resume asks it to leave: ErrGone when
// there is no such exchange (any more). A reader still there may be on a
// connection that died without a word: it is asked to leave, and Resume
// waits for that within ctx (else ErrStreamBusy).
func (s *Session) Resume(ctx context.Context, key int64) (*Exchange, <-chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		ex := s.replies[key]
		if ex == nil {
			return nil, nil, ErrGone
		}
		if !ex.reader.taken {
			if ex.parked != nil {
				ex.parked.Stop()
				ex.parked = nil
			}
			kick, _ := ex.reader.sit()
			return ex, kick, nil
		}
		free := ex.reader.ask()
		s.mu.Unlock()
		select {
		case <-free:
			s.mu.Lock()
		case <-ctx.Done():
			s.mu.Lock()
			return nil, nil, ErrStreamBusy
		}
	}
}

// Finished tells the session the exchange's reader (in seat) read it to its
// end: it can no longer be resumed. A reader a newer connection has asked
// to leave parks the reply instead (see Park): its client resumes because
// it may not have what this reader sent.
func (s *Session) Finished(ex *Exchange, seat <-chan struct{}) {
	select {
	case <-seat:
		s.Park(ex, seat)
		return
	default:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.replies[ex.key] == ex {
		delete(s.replies, ex.key)
	}
	ex.reader.leave(seat)
	ex.log.cut(io.EOF) // what it kept for a reconnection is nobody's now
}

// dropReplyLocked discards an exchange nobody reads.
func (s *Session) dropReplyLocked(ex *Exchange) {
	if s.replies[ex.key] == ex {
		delete(s.replies, ex.key)
	}
	if ex.parked != nil {
		ex.parked.Stop()
		ex.parked = nil
	}
	ex.Detach()
}

// Transport is the MCP transport a session is served over; it decides where
// the child's messages go.
type Transport int

const (
	// Streamable is Streamable HTTP: a response goes back on the POST that
	// asked for it, and the rest to the session's optional stream.
	Streamable Transport = iota
	// HTTPSSE is the HTTP+SSE transport of protocol 2024-11-05: every
	// message goes to the session's one stream.
	HTTPSSE
)

func (t Transport) String() string {
	if t == HTTPSSE {
		return "http+sse"
	}
	return "streamable"
}

// ID is the session's id, as the client sends it back.
func (s *Session) ID() string { return s.id }

// Transport is the transport the session was started for.
func (s *Session) Transport() Transport { return s.trans }

// Reply puts a message of mcpwrap's own on an HTTP+SSE session's stream: the
// answer to a request the child is not asked to handle.
func (s *Session) Reply(msg []byte) {
	s.toStream(msg, "")
}

// BelongsTo reports whether o opened the session: only its owner may use
// it.
func (s *Session) BelongsTo(o Owner) bool { return s.tenant == o.Tenant && s.user == o.User }

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.ctx.Done() }

// Context is done when the session has ended, for a caller that would
// rather register a function (context.AfterFunc) than start a goroutine to
// wait for Done.
func (s *Session) Context() context.Context { return s.ctx }

// Err says why the session ended; nil while it runs.
func (s *Session) Err() error {
	select {
	case <-s.ctx.Done():
		return s.cause
	default:
		return nil
	}
}

// newSession pairs a started child with a new client session; run starts
// serving it.
func newSession(id string, owner Owner, c *child.Child, opts Options, log zerolog.Logger, t Transport, onEnd func(*Session), queued *budget, limit *ratelog.Limiter) *Session {
	s := &Session{
		queued:     queued,
		limit:      limit,
		callLimit:  opts.RequestTimeout,
		retention:  opts.Retention,
		replies:    map[int64]*Exchange{},
		id:         id,
		tenant:     owner.Tenant,
		user:       owner.User,
		observer:   opts.Observer,
		child:      c,
		log:        log,
		started:    time.Now(),
		onEnd:      onEnd,
		stream:     newEventLog(queued, opts.MaxQueue, replayKeep),
		calls:      map[string]*call{},
		progress:   map[string]*Exchange{},
		lastActive: time.Now(),
		trans:      t,
	}
	s.ctx, s.end = context.WithCancel(context.Background())
	return s
}

// run starts the goroutine that serves the session: from now on it may end.
func (s *Session) run() {
	go s.route()
}

// Send writes the client's messages to the child. Requests among them are
// registered before anything is written, so that no response can outrun its
// exchange; the exchange is nil when msgs holds no request. Each request gets
// an id of the child's own, so ids of different clients never collide.
func (s *Session) Send(ctx context.Context, msgs []jsonrpc.Message) (*Exchange, error) {
	lines := make([][]byte, 0, len(msgs))
	childIDs := make([]string, 0, len(msgs)) // "" where the line is no request
	var ex *Exchange

	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil, ErrEnded
	}
	s.lastActive = time.Now()
	for i := range msgs {
		m := &msgs[i]
		if m.Method != "initialize" && m.Method != "notifications/initialized" {
			s.used = true
		}
		switch {
		case m.Kind == jsonrpc.Request:
			c := &call{clientID: bytes.Clone(m.ID), since: s.lastActive}
			if s.trans != HTTPSSE {
				if ex == nil {
					s.lastKey++
					ex = &Exchange{key: s.lastKey, log: newEventLog(s.queued, 0, replayKeep), detached: make(chan struct{})}
					ex.reader.sit()
					s.inflight = append(s.inflight, ex)
					s.replies[ex.key] = ex
				}
				ex.owed++
				ex.ids = append(ex.ids, c.clientID)
				c.ex = ex
				if tok := jsonrpc.ProgressToken(m.Params); tok != nil {
					c.token = string(tok)
					s.progress[c.token] = ex
				}
			}
			s.nextID++
			childID := strconv.AppendInt(nil, s.nextID, 10)
			s.calls[string(childID)] = c
			if c.ex == nil && s.callLimit > 0 {
				// Over HTTP+SSE no reply waits for the answer: the session
				// itself gives up on it at the request timeout.
				id := string(childID)
				c.timer = time.AfterFunc(s.callLimit, func() {
					s.expire(id, true, "request timed out after "+s.callLimit.String())
				})
			}
			lines = append(lines, jsonrpc.OneLine(m.WithID(childID)))
			childIDs = append(childIDs, string(childID))
			continue
		case m.Method == "notifications/cancelled":
			lines = append(lines, jsonrpc.OneLine(s.remapCancelLocked(m)))
		default:
			lines = append(lines, jsonrpc.OneLine(m.Raw))
		}
		childIDs = append(childIDs, "")
	}
	s.mu.Unlock()

	n, err := s.child.Send(ctx, lines...)
	if err == nil || ctx.Err() == nil {
		// A child that cannot take its input has ended, or is about to:
		// its session answers every request it registered as it ends.
		return ex, nil
	}
	// A child that stops reading must not hold the client forever; what
	// was never written will never be answered.
	if s.trans == HTTPSSE {
		// Its answer belongs on the stream, which is still read.
		why := "request not delivered: the client gave up on it"
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && s.callLimit > 0 {
			why = "request timed out after " + s.callLimit.String()
		}
		for _, id := range childIDs[n:] {
			s.expire(id, false, why)
		}
	}
	s.forget(ex, childIDs[n:])
	return nil, fmt.Errorf("writing to the child: %w", ctx.Err())
}

// forget unregisters requests that were never written to the child.
func (s *Session) forget(ex *Exchange, childIDs []string) {
	if ex != nil {
		ex.Detach()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ex != nil {
		delete(s.replies, ex.key)
		ex.reader.leave(ex.reader.kick)
	}
	for _, id := range childIDs {
		if c, ok := s.calls[id]; ok {
			s.dropCallLocked(id, c)
		}
	}
	s.forgetLocked(ex)
}

// dropCallLocked forgets a call in flight.
func (s *Session) dropCallLocked(childID string, c *call) {
	delete(s.calls, childID)
	if c.token != "" {
		delete(s.progress, c.token)
	}
	if c.timer != nil {
		c.timer.Stop()
	}
}

// expire answers a call of an HTTP+SSE session on its stream with an error
// and forgets it; with cancel, the child is told to stop working on it.
func (s *Session) expire(childID string, cancel bool, why string) {
	s.mu.Lock()
	c, ok := s.calls[childID]
	if ok {
		s.dropCallLocked(childID, c)
	}
	s.mu.Unlock()
	if !ok {
		return // answered meanwhile
	}
	if cancel {
		s.tell(cancelled(childID, why))
	}
	s.toStream(jsonrpc.ErrorResponse(c.clientID, jsonrpc.CodeInternalError, why), "")
}

// remapCancelLocked rewrites the requestId of a cancellation to the id the
// child knows the request by.
func (s *Session) remapCancelLocked(m *jsonrpc.Message) []byte {
	rid, start, end, ok := jsonrpc.Lookup(m.Raw, "params", "requestId")
	if !ok {
		return m.Raw
	}
	for childID, c := range s.calls {
		if bytes.Equal(c.clientID, rid) {
			return jsonrpc.Splice(m.Raw, start, end, []byte(childID))
		}
	}
	return m.Raw
}

// Listen makes the caller the reader of the session's stream; release gives
// it up, and kicked is closed when a reader that resumes the stream asks
// this one to leave (see TakeOver). Only one reader at a time: a second
// gets ErrStreamBusy. What the child sends while nobody listens waits in
// the stream's log, within the session's byte budget; the oldest falls off
// first.
func (s *Session) Listen() (stream *EventLog, kicked <-chan struct{}, release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, nil, nil, ErrEnded
	}
	if s.listener.taken {
		return nil, nil, nil, ErrStreamBusy
	}
	kick, _ := s.listener.sit()
	return s.stream, kick, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.listener.leave(kick) && s.closing {
			// Nobody else may listen now: what is left is nobody's.
			s.stream.cut(io.EOF)
		}
	}, nil
}

// TakeOver is Listen for a client that resumes the stream: its reader of
// before may be on a connection that died without a word, so it is asked to
// leave, and TakeOver waits for that within ctx.
func (s *Session) TakeOver(ctx context.Context) (stream *EventLog, kicked <-chan struct{}, release func(), err error) {
	for {
		stream, kicked, release, err = s.Listen()
		if !errors.Is(err, ErrStreamBusy) {
			return stream, kicked, release, err
		}
		s.mu.Lock()
		free := s.listener.ask()
		s.mu.Unlock()
		select {
		case <-free:
		case <-ctx.Done():
			return nil, nil, nil, ErrStreamBusy
		}
	}
}

// A seat is the place of a log's one reader. A newcomer resuming the log
// may ask the reader there to leave. Its fields are guarded by the
// session's mu.
type seat struct {
	taken bool
	kick  chan struct{} // closed to ask the reader to leave
	free  chan struct{} // closed when it has left
}

// sit takes the seat.
func (st *seat) sit() (kick, free chan struct{}) {
	st.taken = true
	st.kick, st.free = make(chan struct{}), make(chan struct{})
	return st.kick, st.free
}

// leave gives up the seat taken when kick was made, and reports whether it
// did: a reader asked to leave may find a newcomer there already.
func (st *seat) leave(kick <-chan struct{}) bool {
	if !st.taken || (<-chan struct{})(st.kick) != kick {
		return false
	}
	st.taken = false
	close(st.free)
	return true
}

// ask asks the reader to leave, and returns what is closed when it has.
func (st *seat) ask() <-chan struct{} {
	select {
	case <-st.kick:
	default:
		close(st.kick)
	}
	return st.free
}

// Close ends the session: the child is stopped (stdin closed, then SIGTERM,
// then SIGKILL to its process group), requests in flight are answered with
// an error, and Close returns once all of that is done or ctx ends.
func (s *Session) Close(ctx context.Context) error {
	return s.closeFor(ctx, causeClosed)
}

// Why a session ended, as logs and metrics say it.
const (
	causeClosed    = "closed"     // the client ended it (DELETE, or its HTTP+SSE stream closed)
	causeIdle      = "idle"       // no request for the idle timeout
	causeUnused    = "unused"     // nothing but initialize for the unused-session timeout
	causeShutdown  = "shutdown"   // mcpwrap is stopping
	causeChildExit = "child_exit" // the child exited by itself
	causeError     = "error"      // the child broke the protocol (a line over the limit)
)

// End begins closing the session and returns at once, where Close waits:
// from now on Send fails with ErrEnded, while the child is stopped in the
// background and Done is closed once the session has ended.
func (s *Session) End() {
	s.markClosing(causeClosed)
	go s.child.Stop(context.Background())
}

func (s *Session) markClosing(cause string) {
	s.mu.Lock()
	s.closing = true
	if s.reason == "" {
		s.reason = cause
	}
	s.mu.Unlock()
}

func (s *Session) closeFor(ctx context.Context, cause string) error {
	s.markClosing(cause)
	err := s.child.Stop(ctx)
	select {
	case <-s.ctx.Done():
	case <-ctx.Done():
		return ctx.Err()
	}
	return err
}

// idleSince reports when the session last had a request, whether it may be
// ended for idleness, and whether it was ever used beyond initialize. It is
// not idle while busy (a request in flight is never idle, however long the
// tool runs) unless the request timeout has passed for every call in flight,
// nor once it is closing already.
func (s *Session) idleSince() (last time.Time, idle, used bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return s.lastActive, false, s.used
	}
	for _, c := range s.calls {
		if s.callLimit <= 0 || time.Since(c.since) < s.callLimit {
			return s.lastActive, false, s.used
		}
	}
	return s.lastActive, true, s.used
}

// tell writes notes to the child without making the caller wait for it:
// a child too busy to read them within noteWait would not act on them
// either.
func (s *Session) tell(notes ...[]byte) {
	if len(notes) == 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), noteWait)
		defer cancel()
		_, _ = s.child.Send(ctx, notes...)
	}()
}

// noteWait bounds how long a note the caller does not wait for (a
// cancellation) may wait for a child's input.
const noteWait = time.Second

// route is the one reader of the child's stdout. Every message the child
// writes goes to exactly one place: its exchange, or the session's stream.
func (s *Session) route() {
	var cause error
	for first := true; ; first = false {
		line, err := s.child.ReadLine()
		if first {
			s.slot.free() // the child is up (or gone): another may start
		}
		if err != nil {
			cause = err
			break
		}
		if !utf8.Valid(line) {
			// Passed on as it is, a response would be lost to a client
			// whose decoder refuses it; U+FFFD keeps it readable.
			line = bytes.ToValidUTF8(line, []byte("\uFFFD"))
		}
		msg, err := jsonrpc.Parse(line)
		if err != nil {
			s.warn().Err(err).Str("line", preview(line)).Msg("child wrote a line that is not JSON-RPC; dropped")
			continue
		}
		s.deliver(&msg)
	}
	s.finish(cause)
}

// deliver sends one message from the child where it belongs.
func (s *Session) deliver(msg *jsonrpc.Message) {
	s.mu.Lock()
	var ex *Exchange
	out := msg.Raw
	last := false
	switch msg.Kind {
	case jsonrpc.Response:
		c, ok := s.calls[string(msg.ID)]
		if !ok {
			s.mu.Unlock()
			s.warn().Str("id", string(msg.ID)).Msg("child answered a request nobody asked (or one given up on); dropped")
			return
		}
		s.dropCallLocked(string(msg.ID), c)
		// A session is in use until its last answer, however long the
		// call took: the idle clock starts now, not at the request.
		s.lastActive = time.Now()
		out = msg.WithID(c.clientID)
		ex = c.ex
		if ex != nil {
			ex.owed--
			last = ex.owed == 0
			if last {
				s.forgetLocked(ex)
			}
		}
	case jsonrpc.Notification:
		if msg.Method == "notifications/progress" {
			if tok, _, _, ok := jsonrpc.Lookup(msg.Params, "progressToken"); ok {
				ex = s.progress[string(tok)]
			}
		}
		if ex == nil && requestScoped(msg.Method) {
			ex = s.oldestLocked()
		}
	case jsonrpc.Request:
		// A stdio child cannot say which request it is serving when it asks
		// for sampling or elicitation; while one is in flight it is the
		// likeliest, and its stream is the one a client is sure to read.
		ex = s.oldestLocked()
	}
	s.mu.Unlock()

	switch {
	case ex != nil:
		s.toExchange(ex, Outbound{Data: out, Response: msg.Kind == jsonrpc.Response, Error: msg.IsError}, msg.Method, last)
	default:
		s.toStream(out, msg.Method)
	}
}

// toExchange appends a message to an exchange's log, and with last ends the
// log with it. It never waits: a reader so far behind that the session's
// budget is full is cut, and the session goes on without it.
func (s *Session) toExchange(ex *Exchange, o Outbound, method string, last bool) {
	select {
	case <-ex.detached:
		s.log.Debug().Str("method", method).Msg("client left its request; message dropped")
		return
	default:
	}
	taken, _ := ex.log.appendEnding(o, false, last)
	for !taken {
		// The session's own stream yields its oldest messages, which fall
		// off whenever the budget is full anyway: a reply is owed to a
		// client that waits for it, a queued notification to nobody yet.
		fell := s.stream.shed(int64(len(o.Data)))
		if fell == 0 {
			break
		}
		s.noteDropped(fell, method)
		taken, _ = ex.log.appendEnding(o, false, last)
	}
	if !taken {
		ex.detach(ErrLagged)
		s.warn().Str("method", method).Int64("queued_bytes", s.queued.Used()).Msg("a reply's reader fell behind the session's queue bound; reader cut")
	}
}

// warn is a warning about the session, within its log rate: nil (which
// logs nothing) when over it. The first one allowed after a pause says how
// many were held back.
func (s *Session) warn() *zerolog.Event {
	ok, held := s.limit.Allow()
	if !ok {
		return nil
	}
	ev := s.log.Warn()
	if held > 0 {
		ev = ev.Int("suppressed", held)
	}
	return ev
}

// requestScoped names the notifications that belong to the request being
// served (logging, progress); the rest concern the session as a whole.
func requestScoped(method string) bool {
	return method == "notifications/message" || method == "notifications/progress"
}

// oldestLocked is the oldest exchange still being read, or nil.
func (s *Session) oldestLocked() *Exchange {
	for _, ex := range s.inflight {
		select {
		case <-ex.detached:
		default:
			return ex
		}
	}
	return nil
}

func (s *Session) forgetLocked(ex *Exchange) {
	for i, e := range s.inflight {
		if e == ex {
			s.inflight = append(s.inflight[:i], s.inflight[i+1:]...)
			return
		}
	}
}

// toStream appends a message to the session's stream. It never waits: when
// the session's byte budget (or the message bound) is full, the oldest
// messages fall off, with a warning within the session's log rate.
func (s *Session) toStream(out []byte, method string) {
	taken, fell := s.stream.append(Outbound{Data: out}, true)
	s.noteDropped(fell, method)
	if !taken {
		s.log.Debug().Str("method", method).Msg("stream ended; message dropped")
	}
}

// noteDropped counts stream messages that fell off; one warning, within
// the session's log rate, says how many fell since the last one it could
// say.
func (s *Session) noteDropped(fell int, method string) {
	if fell == 0 {
		return
	}
	if n := s.dropped.Add(int64(fell)); s.limit.Would() {
		s.dropped.Add(-n)
		s.warn().Str("method", method).Int64("dropped", n).Int64("queued_bytes", s.queued.Used()).Msg("stream queue full; oldest messages dropped")
	}
}

// finish runs once, in the router, when the child's stdout is finished: it answers every
// request still in flight, stops what is left of the child, and reports.
func (s *Session) finish(readErr error) {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()

	// Stdout ends a moment before the exit status is known; wait for it so
	// the error names it, and make sure nothing of the child stays behind.
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	if errors.Is(readErr, child.ErrLineTooLong) {
		// The child is stuck writing the rest of a line nobody will read;
		// asking it to stop politely would only wait out the graces.
		s.log.Error().Err(readErr).Msg("ending the session")
		cancel()
	}
	_ = s.child.Stop(stopCtx)
	cancel()
	exit := s.child.Exit()

	cause := fmt.Errorf("%w: child %s", ErrEnded, exit)
	if readErr != nil && !errors.Is(readErr, io.EOF) {
		cause = fmt.Errorf("%w: %w (child %s)", ErrEnded, readErr, exit)
	}

	s.mu.Lock()
	calls := s.calls
	s.calls = map[string]*call{}
	s.inflight = nil
	s.mu.Unlock()
	owed := map[*Exchange]int{}
	for _, c := range calls {
		if c.timer != nil {
			c.timer.Stop()
		}
		e := jsonrpc.ErrorResponse(c.clientID, codeSessionEnded, cause.Error())
		if c.ex == nil {
			s.toStream(e, "")
			continue
		}
		s.toExchange(c.ex, Outbound{Data: e, Response: true, Error: true}, "", false)
		owed[c.ex]++
	}
	for ex, n := range owed {
		if ex.owed == n {
			ex.log.close()
		}
	}
	s.mu.Lock()
	for _, ex := range s.replies {
		if !ex.reader.taken {
			s.dropReplyLocked(ex) // nobody may come back for it now
		}
	}
	s.stream.close()
	if !s.listener.taken {
		s.stream.cut(io.EOF) // nobody is there to read it, and nobody may come
	}
	s.mu.Unlock()

	s.mu.Lock()
	reason := s.reason
	s.mu.Unlock()
	switch {
	case reason != "":
	case readErr != nil && !errors.Is(readErr, io.EOF):
		reason = causeError
	default:
		reason = causeChildExit
	}
	ev := s.log.Info()
	if reason == causeChildExit || reason == causeError {
		// Nobody asked the child to go: its last words say why it did.
		ev = s.log.Warn().Strs("stderr_tail", s.child.StderrTail())
	}
	// What the log rate held back is said once more at the end.
	if held, dropped := s.limit.Flush(), s.dropped.Load(); held > 0 || dropped > 0 {
		s.log.Warn().Int("suppressed", held).Int64("dropped", dropped).Msgf("suppressed %d log lines", held)
	}
	ev.Int("pid", s.child.Pid()).Str("exit", exit.String()).Str("cause", reason).Dur("duration_ms", time.Since(s.started)).Int("in_flight", len(calls)).Msg("session ended")
	if s.observer != nil {
		s.observer.SessionEnded(s.tenant, reason, exit.String())
	}

	// The registry forgets the session before anyone hears it ended, so
	// that whoever sees Done closed finds it gone (a second DELETE is 404).
	if s.onEnd != nil {
		s.onEnd(s)
	}
	s.cause = cause
	s.end()
}

func preview(b []byte) string {
	const n = 200
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// Abandon gives up on the requests of ex still in flight (the client's
// deadline passed): the child is told to cancel them, and the client ids
// they carried are returned so the caller can answer them itself.
func (s *Session) Abandon(ex *Exchange, reason string) [][]byte {
	ex.Detach()
	var ids [][]byte
	var notes [][]byte
	s.mu.Lock()
	for childID, c := range s.calls {
		if c.ex != ex {
			continue
		}
		s.dropCallLocked(childID, c)
		ids = append(ids, c.clientID)
		notes = append(notes, cancelled(childID, reason))
	}
	s.forgetLocked(ex)
	delete(s.replies, ex.key)
	ex.reader.leave(ex.reader.kick)
	s.mu.Unlock()
	s.tell(notes...)
	return ids
}

func cancelled(childID, reason string) []byte {
	r, _ := json.Marshal(reason)
	return fmt.Appendf(nil, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":%s,"reason":%s}}`, childID, r)
}

// Log is the session's logger, tagged with its id.
func (s *Session) Log() *zerolog.Logger { return &s.log }
