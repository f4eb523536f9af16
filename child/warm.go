package child

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mcpwrap/mcpwrap/internal/ratelog"
	"github.com/rs/zerolog"
)

// Warm keeps children started ahead of demand, so that whoever needs one
// takes it instead of waiting for a program (Node, Python) to boot. A warm
// child has been started and nothing else: nobody has written to it, so
// taking one is the same as starting one, only sooner.
//
// Children are kept per command: each distinct environment (a tenant's, say)
// is a command of its own with a set of its own, made on the first Start for
// it (or by Prime), since a child's environment is fixed when it starts. A
// warm child belongs to nobody: it is no session, and counts toward no
// limit. One that dies while warm is replaced; one that dies soon after it
// started (or a command that cannot start) is retried with a growing pause
// and reported once for each run of such failures, not each time.
type Warm struct {
	n    int
	opts Options
	log  zerolog.Logger
	wg   sync.WaitGroup // one per goroutine Warm runs
	stop chan struct{}  // closed by Close

	mu     sync.Mutex // guards the fields below
	sets   map[string]*warmSet
	closed bool
}

// warmSet is the warm children of one command.
type warmSet struct {
	cmd  Command
	kick chan struct{} // asks the filler to look again

	// Guarded by Warm.mu.
	ready    []*warmChild
	failures int       // warm children in a row that died young, or starts that failed
	retryAt  time.Time // no start before this after a failure
	reported bool      // this run of failures has been logged
}

type warmChild struct {
	c       *Child
	started time.Time
	taken   chan struct{} // closed when Start hands the child out
}

const (
	// warmYoung is how long a warm child must live for its death not to
	// count as a failure to start.
	warmYoung = 10 * time.Second
	// warmBackoff is the first pause after a failure; it doubles with each
	// one in a row, up to warmBackoffMax.
	warmBackoff    = 100 * time.Millisecond
	warmBackoffMax = 30 * time.Second
)

// NewWarm keeps n children ready per command, started with opts; their
// LogLimit, shared, bounds the stderr lines of children while they are warm
// (Start gives a child its owner's). Close stops them.
func NewWarm(n int, opts Options, log zerolog.Logger) *Warm {
	return &Warm{n: n, opts: opts, log: log, stop: make(chan struct{}), sets: map[string]*warmSet{}}
}

// Start returns a child running cmd: a warm one when one is ready, else a
// new one started now. Either way, cmd's set is topped up in the
// background. The child's log lines go to log from now on, bounded by limit.
func (w *Warm) Start(cmd Command, limit *ratelog.Limiter, log zerolog.Logger) (*Child, error) {
	if c := w.take(cmd); c != nil {
		c.Adopt(log, limit)
		log.Debug().Int("pid", c.Pid()).Msg("took a warm child")
		return c, nil
	}
	opts := w.opts
	opts.LogLimit = limit
	return Start(cmd, opts, log)
}

// Prime starts cmd's set before anyone asks for it.
func (w *Warm) Prime(cmd Command) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.setLocked(cmd)
}

// Len is the number of warm children ready now, for every command.
func (w *Warm) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.sets {
		n += len(s.ready)
	}
	return n
}

// take hands out the oldest live warm child of cmd, or nil.
func (w *Warm) take(cmd Command) *Child {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.setLocked(cmd)
	if s == nil {
		return nil
	}
	for i, k := range s.ready {
		select {
		case <-k.c.Done():
			continue // its watcher removes it and counts the failure
		default:
		}
		s.ready = slices.Delete(s.ready, i, i+1)
		close(k.taken)
		// A child somebody used has done its job: whatever failed before
		// is over.
		w.recoveredLocked(s)
		poke(s.kick)
		return k.c
	}
	poke(s.kick)
	return nil
}

// setLocked returns cmd's set, making it (and its filler) the first time;
// nil once closed or when no child is to be kept.
func (w *Warm) setLocked(cmd Command) *warmSet {
	if w.closed || w.n <= 0 {
		return nil
	}
	key := fmt.Sprintf("%q %q %q %q %t", cmd.Path, cmd.Args, cmd.Env, cmd.Dir, cmd.PTY)
	s := w.sets[key]
	if s == nil {
		s = &warmSet{cmd: cmd, kick: make(chan struct{}, 1)}
		w.sets[key] = s
		w.wg.Go(func() { w.fill(s) })
	}
	return s
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// fill keeps s topped up until Close. It is the only goroutine that starts
// s's children, one at a time, so a slow program never has a crowd of
// starts in flight.
func (w *Warm) fill(s *warmSet) {
	log := w.log.With().Bool("warm", true).Logger()
	var pause *time.Timer
	for {
		w.mu.Lock()
		need := !w.closed && len(s.ready) < w.n
		wait := time.Until(s.retryAt)
		w.mu.Unlock()
		if need && wait <= 0 {
			w.startOne(s, log)
			continue
		}
		var retry <-chan time.Time
		if need {
			pause = time.NewTimer(wait)
			retry = pause.C
		}
		select {
		case <-w.stop:
			if pause != nil {
				pause.Stop()
			}
			return
		case <-s.kick:
		case <-retry:
		}
		if pause != nil {
			pause.Stop()
			pause = nil
		}
	}
}

// startOne starts one warm child for s and watches it until it is taken.
func (w *Warm) startOne(s *warmSet, log zerolog.Logger) {
	c, err := Start(s.cmd, w.opts, log)
	if err != nil {
		w.failed(s, log, func(ev *zerolog.Event) {
			ev.Err(err).Msg("warm child cannot start; retrying with a growing pause, reported once")
		})
		return
	}
	k := &warmChild{c: c, started: time.Now(), taken: make(chan struct{})}
	// Even after Close, the child joins the set: Close stops what the set
	// holds once every filler has returned.
	w.mu.Lock()
	s.ready = append(s.ready, k)
	w.mu.Unlock()
	log.Debug().Int("pid", c.Pid()).Msg("warm child started")
	w.wg.Go(func() { w.watch(s, k, log) })
}

// watch replaces k when it dies before anyone takes it.
func (w *Warm) watch(s *warmSet, k *warmChild, log zerolog.Logger) {
	select {
	case <-k.taken:
		return
	case <-w.stop:
		return
	case <-k.c.Done():
	}
	w.mu.Lock()
	i := slices.Index(s.ready, k)
	if i >= 0 {
		s.ready = slices.Delete(s.ready, i, i+1)
	}
	w.mu.Unlock()
	if i < 0 {
		// Taken (or closed) just as it died: its end is its owner's.
		return
	}
	if time.Since(k.started) < warmYoung {
		w.failed(s, log, func(ev *zerolog.Event) {
			ev.Int("pid", k.c.Pid()).Str("exit", k.c.Exit().String()).Strs("stderr", k.c.StderrTail()).
				Msg("warm child exited soon after it started; retrying with a growing pause, reported once")
		})
		return
	}
	w.mu.Lock()
	w.recoveredLocked(s)
	w.mu.Unlock()
	log.Warn().Int("pid", k.c.Pid()).Str("exit", k.c.Exit().String()).Msg("warm child exited; replacing it")
	poke(s.kick)
}

// failed counts a failure of s and pauses its starts, doubling the pause
// with each failure in a row. report writes the failure's log line: an
// error for the first of a run, a debug line for the rest, so that a
// command that cannot run does not fill the log.
func (w *Warm) failed(s *warmSet, log zerolog.Logger, report func(*zerolog.Event)) {
	w.mu.Lock()
	s.failures++
	s.retryAt = time.Now().Add(min(warmBackoff<<min(s.failures-1, 20), warmBackoffMax))
	first := !s.reported
	s.reported = true
	failures := s.failures
	w.mu.Unlock()
	if first {
		report(log.Error())
	} else {
		report(log.Debug().Int("failures", failures))
	}
	poke(s.kick)
}

// recoveredLocked ends a run of failures.
func (w *Warm) recoveredLocked(s *warmSet) {
	if s.reported {
		w.log.Info().Int("failures", s.failures).Msg("warm children start again")
	}
	s.failures, s.retryAt, s.reported = 0, time.Time{}, false
}

// Close stops keeping children and stops every warm one in parallel,
// waiting for them or for ctx; when ctx ends first, the rest are killed
// and Close waits only for them to be reaped. It is safe to call twice.
func (w *Warm) Close(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	close(w.stop)
	w.mu.Unlock()
	// A filler mid-start adds its child to the set before it returns.
	w.wg.Wait()

	w.mu.Lock()
	var warm []*Child
	for _, s := range w.sets {
		for _, k := range s.ready {
			warm = append(warm, k.c)
		}
		s.ready = nil
	}
	w.mu.Unlock()
	errs := make(chan error, len(warm))
	for _, c := range warm {
		go func() { errs <- c.Stop(ctx) }()
	}
	var err error
	for range warm {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	return err
}
