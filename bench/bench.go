package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ErrCallsFailed is returned, wrapped, when a run saw errors, so that a
// script or CI step notices without parsing the report.
var ErrCallsFailed = errors.New("bench: errors during the run")

// Run is `mcpwrap bench [flags] (URL | -- command args...)`. args excludes the word "bench".
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseArgs(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	w, err := cfg.workload()
	if err != nil {
		return err
	}

	var o opener
	var target string
	if cfg.url != "" {
		ho := newHTTPOpener(cfg)
		defer ho.closeIdle()
		o, target = ho, cfg.url
	} else {
		do := &directOpener{argv: cfg.command, maxMsg: cfg.MaxMessage}
		if cfg.ChildStderr {
			do.childStderr = stderr
		}
		o, target = do, fmt.Sprint(cfg.command)
	}

	var progress io.Writer
	if !cfg.Quiet {
		progress = stderr
	}
	rep := runLoad(ctx, cfg, o, w, progress)
	rep.Target = target
	if cfg.url != "" {
		rep.Mode = "url"
	} else {
		rep.Mode = "direct"
	}
	if cfg.JSON {
		err = rep.writeJSON(stdout)
	} else {
		err = rep.writeText(stdout)
	}
	if err != nil {
		return fmt.Errorf("bench: write report: %w", err)
	}
	if rep.ErrorsTotal > 0 {
		return fmt.Errorf("%w: %d", ErrCallsFailed, rep.ErrorsTotal)
	}
	return nil
}

// timedFrom is when session i's setup starts to count: when it was due
// (the start of the burst, or its turn in --open-every's pacing), not when
// its goroutine first ran, which a tool that forks children itself (direct
// mode) delays by hundreds of milliseconds in a burst; or, when it waited
// in the tool's own --open-inflight queue, when it left that queue (now).
func timedFrom(cfg *config, setupStart time.Time, i int, now time.Time) time.Time {
	if cfg.OpenInflight < cfg.Sessions {
		return now
	}
	return setupStart.Add(time.Duration(i) * cfg.OpenEvery)
}

// counters are read by the progress line while the run goes on.
type counters struct {
	opened, callsOK, errors atomic.Int64
}

// errorTally counts errors by kind and keeps the first of each for the
// report, since one example usually says what went wrong.
type errorTally struct {
	mu      sync.Mutex // guards the fields below
	counts  map[string]int
	example map[string]string
}

func (t *errorTally) add(err error) {
	k := kindOf(err)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.counts == nil {
		t.counts, t.example = map[string]int{}, map[string]string{}
	}
	t.counts[k]++
	if _, ok := t.example[k]; !ok {
		t.example[k] = err.Error()
	}
}

// runLoad opens the sessions, all at once up to --open-inflight, then runs
// the calls of every session at once with --inflight each, then holds and
// closes them. The run context's end (--max-duration) stops new work; what
// it interrupts is reported as cut short, not as errors.
func runLoad(parent context.Context, cfg *config, o opener, w workload, progress io.Writer) *report {
	ctx, cancel := context.WithTimeout(parent, cfg.MaxDuration)
	defer cancel()
	start := time.Now()
	var c counters
	var tally errorTally
	// Failures that come from the cap or the caller stopping the run are
	// not the target's fault.
	fail := func(err error) {
		if ctx.Err() != nil {
			return
		}
		c.errors.Add(1)
		tally.add(err)
	}

	stopProgress := startProgress(progress, cfg, &c, start)
	defer stopProgress()

	// Open.
	sessions := make([]session, cfg.Sessions)
	setups := make([]time.Duration, cfg.Sessions)
	sem := make(chan struct{}, cfg.OpenInflight)
	var wg sync.WaitGroup
	setupStart := time.Now()
	for i := range sessions {
		wg.Go(func() {
			if cfg.OpenEvery > 0 && i > 0 {
				pace := time.NewTimer(time.Until(setupStart.Add(time.Duration(i) * cfg.OpenEvery)))
				defer pace.Stop()
				select {
				case <-pace.C:
				case <-ctx.Done():
					return
				}
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				return
			}
			cctx, ccancel := context.WithTimeout(ctx, cfg.Timeout)
			defer ccancel()
			t0 := timedFrom(cfg, setupStart, i, time.Now())
			s, err := o.open(cctx)
			if err != nil {
				fail(err)
				return
			}
			setups[i] = time.Since(t0)
			sessions[i] = s
			c.opened.Add(1)
		})
	}
	wg.Wait()
	setupWall := time.Since(setupStart)

	// Call.
	lat := make([][]time.Duration, cfg.Sessions*cfg.Inflight)
	callStart := time.Now()
	for i, s := range sessions {
		if s == nil {
			continue
		}
		var issued atomic.Int64
		for k := range cfg.Inflight {
			slot := i*cfg.Inflight + k
			wg.Go(func() {
				mine := make([]time.Duration, 0, cfg.Calls/cfg.Inflight+1)
				for ctx.Err() == nil && issued.Add(1) <= int64(cfg.Calls) {
					cctx, ccancel := context.WithTimeout(ctx, cfg.Timeout)
					t0 := time.Now()
					m, err := s.call(cctx, "tools/call", w.params)
					d := time.Since(t0)
					ccancel()
					if err == nil {
						err = checkToolResult(m, w.want, w.wantLen)
					}
					if err != nil {
						fail(err)
						continue
					}
					mine = append(mine, d)
					c.callsOK.Add(1)
				}
				lat[slot] = mine
			})
		}
	}
	wg.Wait()
	callWall := time.Since(callStart)
	cutShort := ctx.Err() != nil

	// Hold: a script reads the target's memory while every session is open.
	if cfg.ReadyFile != "" {
		if err := os.WriteFile(cfg.ReadyFile, []byte("ready\n"), 0o644); err != nil {
			fail(fmt.Errorf("write ready file: %w", err))
		}
	}
	if cfg.Hold > 0 {
		t := time.NewTimer(cfg.Hold)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}

	// Close, even when the run was cut short: children and server-side
	// sessions must not outlive the run.
	closeCtx, closeCancel := context.WithTimeout(context.WithoutCancel(parent), cfg.Timeout)
	defer closeCancel()
	for _, s := range sessions {
		if s == nil {
			continue
		}
		wg.Go(func() {
			if err := s.close(closeCtx); err != nil && parent.Err() == nil {
				c.errors.Add(1)
				tally.add(err)
			}
		})
	}
	wg.Wait()
	stopProgress()

	var setupOK []time.Duration
	for i, s := range sessions {
		if s != nil {
			setupOK = append(setupOK, setups[i])
		}
	}
	var calls []time.Duration
	for _, l := range lat {
		calls = append(calls, l...)
	}
	rep := &report{
		Sessions:        cfg.Sessions,
		Opened:          int(c.opened.Load()),
		CallsPerSession: cfg.Calls,
		InFlight:        cfg.Inflight,
		Tool:            cfg.Tool,
		PayloadBytes:    cfg.Payload,
		ResponseBytes:   cfg.Response,
		CutShort:        cutShort,
		Elapsed:         time.Since(start),
		SetupWall:       setupWall,
		CallWall:        callWall,
		CallsOK:         len(calls),
		Errors:          tally.counts,
		ErrorExamples:   tally.example,
		ErrorsTotal:     int(c.errors.Load()),
	}
	rep.setup = summarize(setupOK)
	rep.call = summarize(calls)
	if callWall > 0 && len(calls) > 0 {
		rep.CallsPerSec = float64(len(calls)) / callWall.Seconds()
	}
	if cfg.args != nil || cfg.Response > 0 {
		// No echo text was sent, so no payload size applies.
		rep.PayloadBytes = 0
	}
	return rep
}

// startProgress prints a line every cfg.progress while the run goes on, so
// a long run shows it is alive; a run shorter than that prints none. The
// returned stop waits for the printer and may be called more than once.
func startProgress(w io.Writer, cfg *config, c *counters, start time.Time) (stop func()) {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(cfg.progress)
		defer t.Stop()
		total := cfg.Sessions * cfg.Calls
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(w, "bench: %4.0fs  sessions %d/%d  calls %d/%d  errors %d\n",
					time.Since(start).Seconds(), c.opened.Load(), cfg.Sessions,
					c.callsOK.Load(), total, c.errors.Load())
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		<-finished
	}
}
