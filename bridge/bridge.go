package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpwrap/mcpwrap/child"
	"github.com/mcpwrap/mcpwrap/jsonrpc"
	"github.com/rs/zerolog"
)

// ModernVersion is the protocol revision the bridge serves.
const ModernVersion = "2026-07-28"

// legacyVersion is what the bridge initializes a legacy child with.
const legacyVersion = "2025-11-25"

// The _meta keys of a stateless-era request.
const (
	metaVersion      = "io.modelcontextprotocol/protocolVersion"
	metaCapabilities = "io.modelcontextprotocol/clientCapabilities"
	metaClientInfo   = "io.modelcontextprotocol/clientInfo"
	metaLogLevel     = "io.modelcontextprotocol/logLevel"
	metaServerInfo   = "io.modelcontextprotocol/serverInfo"
	metaSubscription = "io.modelcontextprotocol/subscriptionId"
)

// Era settings for Options.Era.
const (
	EraAuto   = "auto"
	EraLegacy = "legacy"
	EraModern = "modern"
)

type era int32

const (
	eraUnknown era = iota
	eraLegacy
	eraModern
)

// Options configure a Bridge.
type Options struct {
	Command child.Command // the wrapped server; each tenant's environment is added
	// Start starts a child; nil means child.Start with ChildOptions.
	Start        func(child.Command) (*child.Child, error)
	ChildOptions child.Options
	Era          string        // auto, legacy or modern
	MaxChildren  int           // children at once across every pool
	MaxPerTenant int           // children of one tenant at once, across its pools (0: MaxChildren)
	IdleTimeout  time.Duration // stop a child free for this long (0: never)
	QueueTimeout time.Duration // wait this long for a free child, then ErrBusy (0: as long as the client)
	StateTTL     time.Duration // how long a parked call waits for the client's retry
	StartTimeout time.Duration // bound on starting and initializing a child
	ProbeTimeout time.Duration // wait this long for the era probe's answer; silence means legacy (0: 5s)
	StdinTimeout time.Duration // a child taking no input this long is stuck: killed, its calls end (0: 10s)
	Secret       string        // keys requestState (HKDF); "" draws a key per boot
	MachineID    string        // this instance, named in requestState (FLY_MACHINE_ID)
	Observer     Observer      // optional
}

// The limits a request can be refused at, as Observer.StatelessRefused
// names them.
const (
	LimitTenant = "tenant" // Options.MaxPerTenant
	LimitTotal  = "total"  // Options.MaxChildren
)

// Observer hears of what the bridge does (metrics). Its methods are called
// without the bridge's locks held, and must not block.
type Observer interface {
	// StatelessServed counts a request the bridge answered, by the era of
	// the children that served it (legacy or modern) and the tenant.
	StatelessServed(era, owner string)
	// StatelessRefused counts a request refused after waiting the queue
	// timeout for a child, and the limit that was in the way.
	StatelessRefused(owner, limit string)
	// StatelessExpired counts a parked call whose client never came back.
	StatelessExpired(owner string)
}

// Request is one stateless-era request, validated by the HTTP side.
type Request struct {
	Tenant  string   // who may share children with whom
	Env     []string // the tenant's environment for its children
	Subject string   // the signed-in user, bound into requestState
	Msg     jsonrpc.Message
}

// Sink receives the notifications that belong to a request (progress, log
// messages, or a listen stream's notifications), in order. An error means
// the client is gone.
type Sink func(msg []byte) error

// Bridge serves stateless-era requests from pools of children.
type Bridge struct {
	opts   Options
	log    zerolog.Logger
	sealer *sealer
	hub    *hub
	parked *parking
	eraV   atomic.Int32

	probeMu sync.Mutex // one era probe at a time

	mu       sync.Mutex // guards the fields below
	pools    map[poolKey]*pool
	children int            // started or starting, across pools
	byTenant map[string]int // the same by tenant, so one tenant cannot take them all
	waiting  int            // requests waiting for a child to come free
	changed  chan struct{}  // closed and replaced when a child comes free or goes
	closed   bool
	info     *initInfo // what the last initialized child said of itself
	inFlight int       // requests being served, listen streams aside
	lastBusy time.Time // when the last of them ended

	stop chan struct{} // closed by Close
	wg   sync.WaitGroup
}

// New makes a bridge; call Run to reap idle children and expired calls,
// and Close to end it.
func New(opts Options, log zerolog.Logger) (*Bridge, error) {
	if opts.MaxChildren <= 0 {
		opts.MaxChildren = 100
	}
	if opts.MaxPerTenant <= 0 || opts.MaxPerTenant > opts.MaxChildren {
		opts.MaxPerTenant = opts.MaxChildren
	}
	if opts.StateTTL <= 0 {
		opts.StateTTL = 10 * time.Minute
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	if opts.ProbeTimeout <= 0 {
		opts.ProbeTimeout = 5 * time.Second
	}
	if opts.StdinTimeout <= 0 {
		opts.StdinTimeout = 10 * time.Second
	}
	if opts.Start == nil {
		copts := opts.ChildOptions
		opts.Start = func(cmd child.Command) (*child.Child, error) { return child.Start(cmd, copts, log) }
	}
	s, err := newSealer(opts.Secret)
	if err != nil {
		return nil, err
	}
	b := &Bridge{
		opts: opts, log: log, sealer: s,
		hub:      newHub(),
		parked:   newParking(),
		pools:    map[poolKey]*pool{},
		byTenant: map[string]int{},
		changed:  make(chan struct{}),
		stop:     make(chan struct{}),
		lastBusy: time.Now(),
	}
	switch opts.Era {
	case EraLegacy:
		b.setEra(eraLegacy)
	case EraModern:
		b.setEra(eraModern)
	case "", EraAuto:
	default:
		return nil, fmt.Errorf("bridge: unknown child era %q (auto, legacy or modern)", opts.Era)
	}
	return b, nil
}

func (e era) String() string {
	switch e {
	case eraLegacy:
		return EraLegacy
	case eraModern:
		return EraModern
	}
	return "unknown"
}

func (b *Bridge) era() era       { return era(b.eraV.Load()) }
func (b *Bridge) setEra(e era)   { b.eraV.Store(int32(e)) }
func (b *Bridge) isModern() bool { return b.era() == eraModern }

// untallyLocked forgets one child of tenant that ended or never started.
func (b *Bridge) untallyLocked(tenant string) {
	if b.byTenant[tenant]--; b.byTenant[tenant] <= 0 {
		delete(b.byTenant, tenant)
	}
}

func (b *Bridge) refused(tenant, limit string) {
	if b.opts.Observer != nil {
		b.opts.Observer.StatelessRefused(tenant, limit)
	}
}

func (b *Bridge) signalLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *Bridge) rememberInfo(i initInfo) {
	b.mu.Lock()
	b.info = &i
	b.mu.Unlock()
}

// Run reaps idle children and calls parked too long, until ctx ends or
// the bridge closes.
func (b *Bridge) Run(ctx context.Context) {
	every := time.Second
	if d := b.opts.IdleTimeout / 4; d > every {
		every = min(d, 30*time.Second)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.stop:
			return
		case now := <-t.C:
			b.reap(now)
		}
	}
}

func (b *Bridge) reap(now time.Time) {
	for _, c := range b.parked.expired(now) {
		c.log().Info().Msg("the client never came back for a parked call; ending it")
		b.abandon(c, "the client did not answer in time")
		if b.opts.Observer != nil {
			b.opts.Observer.StatelessExpired(c.tenant)
		}
	}
	if b.opts.IdleTimeout <= 0 {
		return
	}
	var stale []*conn
	b.mu.Lock()
	for _, p := range b.pools {
		for _, k := range p.conns {
			k.mu.Lock()
			inFlight := len(k.calls)
			k.mu.Unlock()
			if !k.busy && inFlight == 0 && now.Sub(k.idle) >= b.opts.IdleTimeout {
				stale = append(stale, k)
			}
		}
	}
	for _, k := range stale {
		k.pool().dropLocked(k)
	}
	b.mu.Unlock()
	for _, k := range stale {
		b.wg.Go(func() { _ = k.c.Stop(context.Background()) })
	}
}

// Stats says how many children run (or start) now, and how many of them a
// call holds (running or parked).
func (b *Bridge) Stats() (children, held int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.pools {
		for _, k := range p.conns {
			if k.busy {
				held++
			}
		}
	}
	return b.children, held
}

// Census is what the bridge's children are doing now, for metrics.
type Census struct {
	Era      string // legacy, modern, or unknown before the first child said
	Starting int    // being started and made ready
	Idle     int    // free
	Busy     int    // held by a call, or (a modern child) serving requests
	Parked   int    // held by a call waiting for its client's input
	Waiting  int    // requests waiting for a child to come free
}

// Census counts the children by what they are doing now.
func (b *Bridge) Census() Census {
	parked := b.parked.conns()
	b.mu.Lock()
	defer b.mu.Unlock()
	c := Census{Era: b.era().String(), Waiting: b.waiting, Starting: b.children}
	for _, p := range b.pools {
		for _, k := range p.conns {
			c.Starting--
			k.mu.Lock()
			inFlight := len(k.calls)
			k.mu.Unlock()
			switch {
			case parked[k]:
				c.Parked++
			case k.busy || inFlight > 0:
				c.Busy++
			default:
				c.Idle++
			}
		}
	}
	return c
}

// IdleFor is how long no request has been served and no call has been
// parked waiting for its client: 0 while there is one. An open listen
// stream does not count, so that a forgotten client cannot keep an
// instance up.
func (b *Bridge) IdleFor() time.Duration {
	parked := b.parked.count()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inFlight > 0 || parked > 0 {
		return 0
	}
	return time.Since(b.lastBusy)
}

// Close ends every listen stream with a final result and stops every
// child, in parallel, within ctx.
func (b *Bridge) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.wg.Wait()
		return nil
	}
	b.closed = true
	close(b.stop)
	var all []*conn
	for _, p := range b.pools {
		all = append(all, p.conns...)
	}
	b.signalLocked()
	b.mu.Unlock()
	b.hub.close()
	var errs []error
	var emu sync.Mutex
	for _, k := range all {
		b.wg.Go(func() {
			if err := k.c.Stop(ctx); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
			<-k.done // its reader ends with its stdout
		})
	}
	b.wg.Wait()
	return errors.Join(errs...)
}

// Serve answers one request: its response, with the client's id, or an
// error the HTTP side turns into a status (ErrBusy, ErrClosed, *Elsewhere,
// or the context's when the client left). Notifications that belong to the
// request go to sink while it runs.
func (b *Bridge) Serve(ctx context.Context, req Request, sink Sink) ([]byte, error) {
	resp, err := b.serve(ctx, req, sink)
	if err == nil && b.opts.Observer != nil {
		b.opts.Observer.StatelessServed(b.era().String(), req.Tenant)
	}
	return resp, err
}

func (b *Bridge) serve(ctx context.Context, req Request, sink Sink) ([]byte, error) {
	if req.Msg.Method != "subscriptions/listen" {
		b.mu.Lock()
		b.inFlight++
		b.mu.Unlock()
		defer func() {
			b.mu.Lock()
			b.inFlight--
			b.lastBusy = time.Now()
			b.mu.Unlock()
		}()
	}
	meta := readMeta(req.Msg.Params)
	if b.era() == eraUnknown {
		// The first child settles the era; any pool will do.
		p := b.getPool(poolKey{tenant: req.Tenant, caps: canonical(meta.Capabilities)}, req.Env, meta.Capabilities)
		k, err := p.acquire(ctx, false, req.Msg.Method != "server/discover")
		if err != nil {
			return nil, err
		}
		if b.isModern() {
			// A modern child serves its whole tenant.
			b.mu.Lock()
			if i := slices.Index(p.conns, k); i >= 0 {
				p.conns = slices.Delete(p.conns, i, i+1)
				mp := b.pools[poolKey{tenant: req.Tenant}]
				if mp == nil {
					mp = &pool{b: b, key: poolKey{tenant: req.Tenant}, env: req.Env, cache: map[string][]byte{}}
					b.pools[mp.key] = mp
				}
				mp.conns = append(mp.conns, k)
				k.pl.Store(mp)
			}
			b.mu.Unlock()
		}
	}
	if b.isModern() {
		return b.passThrough(ctx, req, sink)
	}
	return b.bridge(ctx, req, meta, sink)
}

// requestMeta is what the bridge reads of a request's _meta.
type requestMeta struct {
	Capabilities json.RawMessage
	LogLevel     string
}

func readMeta(params []byte) requestMeta {
	var p struct {
		Meta struct {
			Capabilities json.RawMessage `json:"io.modelcontextprotocol/clientCapabilities"`
			LogLevel     string          `json:"io.modelcontextprotocol/logLevel"`
		} `json:"_meta"`
	}
	_ = json.Unmarshal(params, &p)
	return requestMeta{Capabilities: p.Meta.Capabilities, LogLevel: p.Meta.LogLevel}
}

// canonical is a JSON value in one spelling: objects' keys sorted, no
// spaces. Two capability sets that mean the same share a pool.
func canonical(v json.RawMessage) string {
	if len(v) == 0 {
		return "{}"
	}
	var x any
	if json.Unmarshal(v, &x) != nil {
		return "{}"
	}
	b, _ := json.Marshal(x)
	return string(b)
}
