package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mcpwrap/mcpwrap/jsonrpc"
)

// ErrBusy is returned when no child became free within the queue timeout.
var ErrBusy = errors.New("every child is busy")

// ErrTenantBusy is the ErrBusy of a request whose tenant holds every child
// it may (Options.MaxPerTenant), while other tenants may still have room.
// errors.Is(ErrTenantBusy, ErrBusy) holds, so the HTTP side answers both
// alike.
var ErrTenantBusy error = tenantBusy{}

type tenantBusy struct{}

func (tenantBusy) Error() string        { return "every child this tenant may have is busy" }
func (tenantBusy) Is(target error) bool { return target == ErrBusy }

// ErrClosed is returned once the bridge is shutting down.
var ErrClosed = errors.New("the bridge is shutting down")

// poolKey names the children that may serve a request: those of one tenant
// (its environment) and, for a legacy child, initialized with one set of
// client capabilities, since a legacy server may decide what it offers from
// them.
type poolKey struct {
	tenant string
	caps   string // canonical JSON of the client capabilities; "" for modern children
}

// pool is the children of one key.
type pool struct {
	b    *Bridge
	key  poolKey
	env  []string
	caps json.RawMessage

	// Guarded by b.mu.
	conns []*conn
	cache map[string][]byte // list results by method and cursor (legacy)
}

// getPool returns the pool for key, creating it.
func (b *Bridge) getPool(key poolKey, env []string, caps json.RawMessage) *pool {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.pools[key]
	if p == nil {
		p = &pool{b: b, key: key, env: env, caps: caps, cache: map[string][]byte{}}
		b.pools[key] = p
	}
	return p
}

// acquire returns a child of p for a call of its own (exclusive) or to
// share (a modern child, or a legacy one for a list). It starts a child when
// none fits and the limits allow, both the total and the tenant's own;
// otherwise it waits for one to come free, up to the queue timeout when
// queue is set (server/discover never queues), and is refused with ErrBusy,
// or ErrTenantBusy when the tenant's limit was the one in the way.
func (p *pool) acquire(ctx context.Context, exclusive, queue bool) (*conn, error) {
	b := p.b
	var timeout <-chan time.Time
	if queue && b.opts.QueueTimeout > 0 {
		t := time.NewTimer(b.opts.QueueTimeout)
		defer t.Stop()
		timeout = t.C
	}
	waiting := false
	defer func() {
		if waiting {
			b.mu.Lock()
			b.waiting--
			b.mu.Unlock()
		}
	}()
	tenant := p.key.tenant
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return nil, ErrClosed
		}
		if k := p.pickLocked(exclusive); k != nil {
			b.mu.Unlock()
			return k, nil
		}
		tenantFull := b.byTenant[tenant] >= b.opts.MaxPerTenant
		if b.children < b.opts.MaxChildren && !tenantFull {
			// Reserved for the child started below.
			b.children++
			b.byTenant[tenant]++
			b.mu.Unlock()
			k, err := p.start(ctx)
			b.mu.Lock()
			if err != nil {
				b.children--
				b.untallyLocked(tenant)
				b.signalLocked()
				b.mu.Unlock()
				return nil, err
			}
			if b.closed {
				b.mu.Unlock()
				b.wg.Go(func() { _ = k.c.Stop(context.Background()) })
				return nil, ErrClosed
			}
			p.conns = append(p.conns, k)
			if exclusive {
				k.busy = true
			}
			b.mu.Unlock()
			return k, nil
		}
		if !exclusive {
			if k := p.anyLocked(); k != nil {
				b.mu.Unlock()
				return k, nil
			}
		}
		if p.reclaimLocked(tenantFull) {
			b.mu.Unlock()
			continue
		}
		if !waiting {
			waiting = true
			b.waiting++
		}
		changed := b.changed
		b.mu.Unlock()
		select {
		case <-changed:
		case <-timeout:
			if tenantFull {
				b.refused(tenant, LimitTenant)
				return nil, ErrTenantBusy
			}
			b.refused(tenant, LimitTotal)
			return nil, ErrBusy
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// pickLocked finds a free child: for an exclusive call one nobody holds,
// for a shared use any that is not parked on a call, idle ones first.
func (p *pool) pickLocked(exclusive bool) *conn {
	for _, k := range p.conns {
		if !k.busy {
			if exclusive {
				k.busy = true
			}
			return k
		}
	}
	if !exclusive && p.b.isModern() {
		for _, k := range p.conns {
			return k
		}
	}
	return nil
}

// anyLocked is any live child of the pool: a list may go to one held by
// a call, since a legacy server answers requests concurrently.
func (p *pool) anyLocked() *conn {
	if len(p.conns) == 0 {
		return nil
	}
	return p.conns[0]
}

// reclaimLocked stops an idle child of another pool to make room, when a
// limit is reached: a free child elsewhere must not starve this pool. When
// the tenant's own limit is in the way, only the tenant's other pools can
// give one back; otherwise any other pool can.
func (p *pool) reclaimLocked(ownTenant bool) bool {
	var oldest *conn
	for _, q := range p.b.pools {
		if q == p || ownTenant && q.key.tenant != p.key.tenant {
			continue
		}
		for _, k := range q.conns {
			k.mu.Lock()
			inFlight := len(k.calls)
			k.mu.Unlock()
			if !k.busy && inFlight == 0 && (oldest == nil || k.idle.Before(oldest.idle)) {
				oldest = k
			}
		}
	}
	if oldest == nil {
		return false
	}
	oldest.pool().dropLocked(oldest)
	p.b.wg.Go(func() { _ = oldest.c.Stop(context.Background()) })
	return true
}

// release gives an exclusive child back.
func (p *pool) release(k *conn) {
	b := p.b
	b.mu.Lock()
	k.mu.Lock()
	k.holder = nil
	k.mu.Unlock()
	k.busy = false
	k.idle = time.Now()
	b.signalLocked()
	b.mu.Unlock()
}

// remove forgets a child that ended.
func (p *pool) remove(k *conn) {
	p.b.mu.Lock()
	p.dropLocked(k)
	p.b.mu.Unlock()
}

func (p *pool) dropLocked(k *conn) {
	if i := slices.Index(p.conns, k); i >= 0 {
		p.conns = slices.Delete(p.conns, i, i+1)
		p.b.children--
		p.b.untallyLocked(p.key.tenant)
		p.b.signalLocked()
	}
}

// listChanged forgets the cached lists a change notification makes stale.
func (p *pool) listChanged(method string) {
	kind := strings.TrimSuffix(strings.TrimPrefix(method, "notifications/"), "/list_changed")
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	for q := range p.b.pools {
		if p.b.pools[q].key.tenant != p.key.tenant {
			continue
		}
		for k := range p.b.pools[q].cache {
			if strings.HasPrefix(k, kind+"/") {
				delete(p.b.pools[q].cache, k)
			}
		}
	}
}

// start starts a child for p and makes it ready: initialized with the
// pool's capabilities for a legacy server. The first child ever started
// also settles the era when it is not forced.
func (p *pool) start(ctx context.Context) (*conn, error) {
	b := p.b
	cmd := b.opts.Command
	if len(p.env) > 0 {
		cmd.Env = append(append([]string(nil), cmd.Env...), p.env...)
	}
	c, err := b.opts.Start(cmd)
	if err != nil {
		return nil, err
	}
	k := newConn(c, p, b.hub, b.opts.StdinTimeout, b.log)
	if err := b.ready(ctx, p, k); err != nil {
		k.c.Kill()
		_ = k.c.Stop(context.Background())
		return nil, err
	}
	return k, nil
}

// ready prepares a fresh child: the era probe when it is unknown, then
// initialize for a legacy one.
func (b *Bridge) ready(ctx context.Context, p *pool, k *conn) error {
	ctx, cancel := context.WithTimeout(ctx, b.opts.StartTimeout)
	defer cancel()
	if b.era() == eraUnknown {
		b.probeMu.Lock()
		defer b.probeMu.Unlock()
	}
	if b.era() == eraUnknown {
		// A server of the initialize-based era may also say nothing to a
		// request before initialize; silence is an answer too.
		pctx, pcancel := context.WithTimeout(ctx, b.opts.ProbeTimeout)
		resp, err := k.roundTrip(pctx, request("server/discover", modernMeta(nil)))
		pcancel()
		if err != nil && (ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded)) {
			return fmt.Errorf("probing the child's protocol era: %w", err)
		}
		var r struct {
			Result *initInfo `json:"result"`
		}
		if err == nil && json.Unmarshal(resp, &r) == nil && r.Result != nil {
			b.setEra(eraModern)
			b.log.Info().Msg("the wrapped server speaks protocol 2026-07-28: requests pass through")
			k.info = *r.Result
			return nil
		}
		b.setEra(eraLegacy)
		b.log.Info().Msg("the wrapped server speaks the initialize-based protocol: bridging 2026-07-28 to it")
	}
	if b.era() == eraModern {
		return nil
	}
	return b.initialize(ctx, p, k)
}

// initialize does a legacy handshake with the pool's capabilities.
func (b *Bridge) initialize(ctx context.Context, p *pool, k *conn) error {
	params, _ := json.Marshal(map[string]any{
		"protocolVersion": legacyVersion,
		"capabilities":    json.RawMessage(orEmpty(p.caps)),
		"clientInfo":      map[string]string{"name": "mcpwrap", "version": "bridge"},
	})
	resp, err := k.roundTrip(ctx, request("initialize", params))
	if err != nil {
		return fmt.Errorf("initializing the child: %w", err)
	}
	var r struct {
		Result *initInfo       `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(resp, &r); err != nil || r.Result == nil {
		return fmt.Errorf("initializing the child: it answered %s", r.Error)
	}
	k.info = *r.Result
	b.rememberInfo(*r.Result)
	if err := k.write(notification("notifications/initialized", nil)); err != nil {
		return errGone
	}
	var caps struct {
		Logging   json.RawMessage `json:"logging"`
		Resources struct {
			Subscribe bool `json:"subscribe"`
		} `json:"resources"`
	}
	_ = json.Unmarshal(r.Result.Capabilities, &caps)
	if caps.Logging != nil {
		// Every log line is wanted: each request says which it wants,
		// and the bridge filters.
		_, _ = k.roundTrip(ctx, request("logging/setLevel", []byte(`{"level":"debug"}`)))
	}
	if caps.Resources.Subscribe {
		for _, uri := range b.hub.uris(p.key.tenant) {
			params, _ := json.Marshal(map[string]string{"uri": uri})
			_, _ = k.roundTrip(ctx, request("resources/subscribe", params))
		}
	}
	return nil
}

func orEmpty(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("{}")
	}
	return b
}

// request builds a request message for the child (its id is set on send).
func request(method string, params []byte) jsonrpc.Message {
	b, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		Method  string          `json:"method"`
		Params  json.RawMessage `json:"params,omitempty"`
	}{"2.0", method, params})
	m, err := jsonrpc.Parse(b)
	if err != nil {
		panic("bridge: building a request: " + err.Error())
	}
	return m
}

// modernMeta is params carrying the stateless-era _meta mcpwrap itself
// sends (the era probe).
func modernMeta(params map[string]any) []byte {
	if params == nil {
		params = map[string]any{}
	}
	params["_meta"] = map[string]any{
		metaVersion:      ModernVersion,
		metaCapabilities: map[string]any{},
		metaClientInfo:   map[string]string{"name": "mcpwrap", "version": "bridge"},
	}
	b, _ := json.Marshal(params)
	return b
}
