package session

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/mcpwrap/mcpwrap/child"
	"github.com/mcpwrap/mcpwrap/internal/ratelog"
	"github.com/rs/zerolog"
)

// Options say what each session runs and what bounds it.
type Options struct {
	Command     child.Command
	Child       child.Options
	MaxSessions int
	// MaxStarting bounds the children starting at once, each from its
	// spawn to its first line on stdout or startHold, whichever comes
	// first: a burst of sessions then starts in turns instead of every
	// child sharing the CPU until all of them are late. 0: no bound.
	MaxStarting int
	MaxQueue    int // messages held for a stream nobody reads (deprecated: bytes bound it)
	// MaxQueuedBytes bounds the bytes one session holds for its readers
	// (its stream and its replies); MaxQueuedBytesTotal bounds them across
	// sessions. 0 picks 4 MiB and 256 MiB.
	MaxQueuedBytes      int64
	MaxQueuedBytesTotal int64
	IdleTimeout         time.Duration // end sessions without a request for this long; 0 never
	// UnusedTimeout ends sooner a session that never had a request besides
	// initialize (0: only IdleTimeout applies).
	UnusedTimeout time.Duration
	// RequestTimeout, when set, is how long a call in flight keeps its
	// session from idling out.
	RequestTimeout time.Duration
	// Retention is how long the reply of a request whose client left
	// waits for the client to resume it (Last-Event-ID); 0: it is
	// discarded at once.
	Retention time.Duration
	// LogRate bounds the log lines of one session (its child's stderr and
	// the warnings about it) a second, in bursts of LogBurst; 0 no bound.
	LogRate, LogBurst int
	MachineID         string // the instance this registry runs on; session ids name it (see MachineOf)
	// Warm, when set, starts each session's child: one started ahead of
	// demand when it has one for the session's command. Its owner closes it.
	Warm     *child.Warm
	Observer Observer // optional
}

// Registry holds the live sessions by id.
type Registry struct {
	opts   Options
	log    zerolog.Logger
	queued *budget        // bytes held for readers across every session
	starts chan struct{}  // a token per child starting; nil: no bound
	wg     sync.WaitGroup // one per live session, until it has ended

	mu       sync.Mutex // guards the fields below
	sessions map[string]*Session
	starting int // sessions counted against MaxSessions while their child starts
	closed   bool
	empty    time.Time // since when no session has existed
}

// NewRegistry makes an empty registry; ReapIdle ends its idle sessions.
func NewRegistry(opts Options, log zerolog.Logger) *Registry {
	if opts.MaxQueue < 1 {
		opts.MaxQueue = 1024
	}
	if opts.MaxQueuedBytes <= 0 {
		opts.MaxQueuedBytes = 4 << 20
	}
	if opts.MaxQueuedBytesTotal <= 0 {
		opts.MaxQueuedBytesTotal = 256 << 20
	}
	r := &Registry{opts: opts, log: log, queued: newBudget(opts.MaxQueuedBytesTotal, nil), sessions: map[string]*Session{}, empty: time.Now()}
	if opts.MaxStarting > 0 {
		r.starts = make(chan struct{}, opts.MaxStarting)
	}
	return r
}

// startHold is the longest a child holds its start slot without a word:
// a server that says nothing until asked (an HTTP+SSE session's, before
// its client's initialize) or that waits on something slow must not keep
// others from starting for long.
const startHold = time.Second

// A startSlot is one of the MaxStarting places of children starting at
// once; free gives it back, once, whoever calls first (the child's first
// line, its failure to start, or startHold).
type startSlot struct {
	once  sync.Once
	slots chan struct{}
}

// takeStartSlot waits, within ctx, for a place to start a child.
func (r *Registry) takeStartSlot(ctx context.Context) (*startSlot, error) {
	if r.starts == nil {
		return nil, nil
	}
	select {
	case r.starts <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w (%d): %w", ErrStartsBusy, r.opts.MaxStarting, context.Cause(ctx))
	}
	sl := &startSlot{slots: r.starts}
	time.AfterFunc(startHold, sl.free)
	return sl, nil
}

func (sl *startSlot) free() {
	if sl == nil {
		return
	}
	sl.once.Do(func() { <-sl.slots })
}

// QueuedBytes is how many bytes every session together holds for its
// readers now.
func (r *Registry) QueuedBytes() int64 {
	return r.queued.Used()
}

// Owner is who a session belongs to: a tenant and, when someone signed in,
// the user of it who opened the session; and the environment the tenant's
// children get on top of the common one. Only the same tenant and user may
// use the session.
type Owner struct {
	Tenant string
	User   string
	Env    []string
}

// Start makes a session for owner: a fresh id and a child process of its
// own, served over transport t. ctx bounds the wait for a start slot when
// MaxStarting children are starting already (ErrStartsBusy).
func (r *Registry) Start(ctx context.Context, t Transport, owner Owner) (*Session, error) {
	r.mu.Lock()
	switch {
	case r.closed:
		r.mu.Unlock()
		return nil, ErrClosed
	case r.opts.MaxSessions > 0 && len(r.sessions)+r.starting >= r.opts.MaxSessions:
		r.mu.Unlock()
		return nil, ErrTooManySessions
	}
	r.starting++
	r.wg.Add(1)
	r.mu.Unlock()
	// notStarted gives back what was reserved for a session that did not start.
	notStarted := func() {
		r.mu.Lock()
		r.starting--
		r.mu.Unlock()
		r.wg.Done()
	}
	slot, err := r.takeStartSlot(ctx)
	if err != nil {
		notStarted()
		return nil, err
	}

	id := newID(r.opts.MachineID)
	log := r.log.With().Str("session", id).Logger()
	if owner.Tenant != "" {
		log = log.With().Str("tenant", owner.Tenant).Logger()
	}
	if owner.User != "" {
		log = log.With().Str("user", owner.User).Logger()
	}
	cmd := r.opts.Command
	if len(owner.Env) > 0 {
		cmd.Env = append(append([]string(nil), cmd.Env...), owner.Env...)
	}
	limit := ratelog.New(r.opts.LogRate, r.opts.LogBurst)
	copts := r.opts.Child
	copts.LogLimit = limit
	var c *child.Child
	if r.opts.Warm != nil {
		c, err = r.opts.Warm.Start(cmd, limit, log)
	} else {
		c, err = child.Start(cmd, copts, log)
	}
	if err != nil {
		slot.free()
		notStarted()
		log.Error().Err(err).Msg("session not started")
		return nil, err
	}
	// The observer hears of the start before the session can end, and
	// outside the lock, so that it may ask the registry anything.
	if r.opts.Observer != nil {
		r.opts.Observer.SessionStarted(owner.Tenant)
	}
	s := newSession(id, owner, c, r.opts, log, t, r.remove, newBudget(r.opts.MaxQueuedBytes, r.queued), limit)
	s.slot = slot
	r.mu.Lock()
	r.starting--
	r.sessions[id] = s
	closed := r.closed
	r.mu.Unlock()
	log.Info().Int("pid", c.Pid()).Stringer("transport", t).Msg("session started")
	// Only a registered session may end: its end removes it.
	s.run()
	if closed {
		// Shutdown began while the child started: it must not outlive it.
		go s.closeFor(context.Background(), causeShutdown)
	}
	return s, nil
}

// Get finds a live session.
func (r *Registry) Get(id string) (*Session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sessions[id]
	if !ok {
		return nil, ErrNotFound
	}
	return s, nil
}

// Len is the number of live sessions.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sessions)
}

func (r *Registry) remove(s *Session) {
	r.mu.Lock()
	delete(r.sessions, s.id)
	if len(r.sessions) == 0 {
		r.empty = time.Now()
	}
	r.mu.Unlock()
	r.wg.Done()
}

// IdleFor is how long no session has existed; zero while one does.
func (r *Registry) IdleFor() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.sessions)+r.starting > 0 {
		return 0
	}
	return time.Since(r.empty)
}

// Healthy reports whether this instance can serve: it is not shutting down,
// and the wrapped command is there to run.
func (r *Registry) Healthy() error {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return r.opts.Command.Check()
}

// Full reports whether MaxSessions are live (or starting) now.
func (r *Registry) Full() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.opts.MaxSessions > 0 && len(r.sessions)+r.starting >= r.opts.MaxSessions
}

// Close refuses new sessions, ends every live one in parallel, and waits for
// them all or for ctx. When ctx ends first, every child group still running
// is sent SIGKILL at once, and Close waits only a moment longer for them to
// be reaped: its caller has run out of time.
func (r *Registry) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	live := make([]*Session, 0, len(r.sessions))
	for _, s := range r.sessions {
		live = append(live, s)
	}
	r.mu.Unlock()

	for _, s := range live {
		go s.closeFor(ctx, causeShutdown)
	}
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	// Past the deadline: kill every group from here rather than wait for
	// each session's goroutine to get round to it (on a starved CPU that
	// took seconds), then give the kernel a bounded moment to reap. The
	// caller is out of time: a container runtime is about to SIGKILL us.
	for _, s := range live {
		s.child.Kill()
	}
	t := time.NewTimer(registryReapWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		r.log.Warn().Int("sessions", r.Len()).Msg("children killed but not yet reaped at the deadline")
	}
	return ctx.Err()
}

// registryReapWait bounds how long Close waits, once its deadline has
// passed, for killed children to be reaped.
const registryReapWait = 500 * time.Millisecond

// ReapIdle ends sessions idle past the idle timeout until ctx ends, and
// sessions never used beyond initialize past the (shorter) unused timeout.
// Only requests count as activity: an open stream with keep-alives does not
// keep a session (or the machine under it) awake.
func (r *Registry) ReapIdle(ctx context.Context) {
	every := 30 * time.Second
	for _, d := range []time.Duration{r.opts.IdleTimeout, r.opts.UnusedTimeout} {
		if d > 0 {
			every = min(every, d/4)
		}
	}
	if r.opts.IdleTimeout <= 0 && r.opts.UnusedTimeout <= 0 {
		return
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r.mu.Lock()
		live := make([]*Session, 0, len(r.sessions))
		for _, s := range r.sessions {
			live = append(live, s)
		}
		r.mu.Unlock()
		for _, s := range live {
			last, idle, used := s.idleSince()
			if !idle {
				continue
			}
			switch since := time.Since(last); {
			case r.opts.IdleTimeout > 0 && since > r.opts.IdleTimeout:
				s.log.Info().Dur("idle_ms", since).Msg("ending idle session")
				go s.closeFor(context.Background(), causeIdle)
			case !used && r.opts.UnusedTimeout > 0 && since > r.opts.UnusedTimeout:
				s.log.Info().Dur("idle_ms", since).Msg("ending a session never used beyond initialize")
				go s.closeFor(context.Background(), causeUnused)
			}
		}
	}
}
