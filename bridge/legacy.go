package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/mcpwrap/mcpwrap/jsonrpc"
)

// Error codes of the stateless era.
const (
	codeMissingCapability = -32021
	codeResourceNotFound  = -32002 // a legacy code; the stateless era says -32602
)

// gatherWindow is how long a call waits, after its child's first request
// to the client, for more: a server that asks for several inputs at once
// sends them together, and the client should get them in one round.
const gatherWindow = 50 * time.Millisecond

// finishGrace bounds how long a cancelled or abandoned call may keep its
// child before the child is killed to get it back.
const finishGrace = 10 * time.Second

// bridge serves a request from a child of the initialize-based era.
func (b *Bridge) bridge(ctx context.Context, req Request, meta requestMeta, sink Sink) ([]byte, error) {
	p := b.getPool(poolKey{tenant: req.Tenant, caps: canonical(meta.Capabilities)}, req.Env, meta.Capabilities)
	switch req.Msg.Method {
	case "server/discover":
		return b.discover(ctx, p, req)
	case "tools/call", "prompts/get", "resources/read":
		if state := requestState(req.Msg.Params); state != "" {
			return b.resume(ctx, req, meta, state, sink)
		}
		return b.exclusive(ctx, p, req, meta, sink)
	case "subscriptions/listen":
		return b.listen(ctx, p, req, sink)
	case "tools/list", "prompts/list", "resources/list", "resources/templates/list":
		return b.list(ctx, p, req)
	}
	k, err := p.acquire(ctx, false, true)
	if err != nil {
		return nil, err
	}
	return b.shared(ctx, k, req)
}

// shared sends a request that needs no child of its own.
func (b *Bridge) shared(ctx context.Context, k *conn, req Request) ([]byte, error) {
	resp, err := k.roundTrip(ctx, request(req.Msg.Method, legacyParams(req.Msg.Params)))
	if errors.Is(err, errGone) {
		return jsonrpc.ErrorResponse(req.Msg.ID, jsonrpc.CodeInternalError, "the server process ended"), nil
	}
	if err != nil {
		return nil, err
	}
	return decorate(resp, req.Msg.ID, req.Msg.Method, k.info.ServerInfo), nil
}

// list serves a list from the pool's cache, or any of its children.
func (b *Bridge) list(ctx context.Context, p *pool, req Request) ([]byte, error) {
	cursor, _, _, _ := jsonrpc.Lookup(req.Msg.Params, "cursor")
	key := req.Msg.Method + "\x00" + string(cursor)
	b.mu.Lock()
	cached := p.cache[key]
	b.mu.Unlock()
	if cached != nil {
		return withID(cached, req.Msg.ID), nil
	}
	k, err := p.acquire(ctx, false, true)
	if err != nil {
		return nil, err
	}
	resp, err := b.shared(ctx, k, req)
	if err == nil && !isError(resp) {
		b.mu.Lock()
		p.cache[key] = resp
		b.mu.Unlock()
	}
	return resp, err
}

// discover answers server/discover from what a child said at initialize.
// It never queues: a client probing the server must get an answer.
func (b *Bridge) discover(ctx context.Context, p *pool, req Request) ([]byte, error) {
	b.mu.Lock()
	info := b.info
	b.mu.Unlock()
	if info == nil {
		k, err := p.acquire(ctx, false, false)
		if err != nil {
			return nil, err
		}
		info = &k.info
	}
	res := map[string]any{
		"supportedVersions": []string{ModernVersion},
		"capabilities":      orEmpty(info.Capabilities),
		"resultType":        "complete",
		"ttlMs":             0,
		"cacheScope":        "private",
	}
	if info.Instructions != "" {
		res["instructions"] = info.Instructions
	}
	if len(info.ServerInfo) > 0 {
		res["_meta"] = map[string]any{metaServerInfo: info.ServerInfo}
	}
	return resultResponse(req.Msg.ID, res), nil
}

// exclusive starts a call that holds a child alone, so that every request
// and log line the child sends meanwhile belongs to it.
func (b *Bridge) exclusive(ctx context.Context, p *pool, req Request, meta requestMeta, sink Sink) ([]byte, error) {
	k, err := p.acquire(ctx, true, true)
	if err != nil {
		return nil, err
	}
	c := newCall(k, req, meta)
	k.mu.Lock()
	k.holder = c
	k.mu.Unlock()
	resp, id, err := k.send(request(req.Msg.Method, legacyParams(req.Msg.Params)))
	if err != nil {
		return b.goneResponse(c), nil
	}
	c.resp, c.respID = resp, id
	return b.drive(ctx, c, sink)
}

// drive runs a call until it has an answer for the client: the child's
// response, or the requests the child made, as an input-required result.
func (b *Bridge) drive(ctx context.Context, c *call, sink Sink) ([]byte, error) {
	var asked []jsonrpc.Message
	var gather <-chan time.Time
	for {
		select {
		case r := <-c.resp:
			drain(c, sink)
			c.k.pool().release(c.k)
			return decorate(r, c.clientID, c.method, c.k.info.ServerInfo), nil
		case n := <-c.notes:
			c.took(len(n))
			if err := sink(n); err != nil {
				b.cancel(c, asked, "the client closed the stream")
				return nil, err
			}
		case m := <-c.asks:
			c.took(len(m.Raw))
			if m.Method == "ping" {
				_ = c.k.write(resultResponse(m.ID, map[string]any{}))
				continue
			}
			need := capabilityFor(m.Method)
			if need == "" {
				_ = c.k.write(jsonrpc.ErrorResponse(m.ID, jsonrpc.CodeMethodNotFound, "the client cannot answer "+m.Method))
				continue
			}
			if _, ok := c.caps[need]; !ok {
				b.cancel(c, append(asked, m), "the client lacks the "+need+" capability")
				return missingCapability(c.clientID, need), nil
			}
			asked = append(asked, m)
			gather = time.After(gatherWindow)
		case <-gather:
			return b.park(c, asked), nil
		case <-c.goneCh:
			return b.goneResponse(c), nil
		case <-ctx.Done():
			b.cancel(c, asked, "the client closed the stream")
			return nil, ctx.Err()
		}
	}
}

// cancel ends a call nobody will take the answer of: the child's requests
// are refused, the child is told to cancel, and the child goes back to the
// pool once it has answered (or is killed if it will not).
func (b *Bridge) cancel(c *call, asked []jsonrpc.Message, reason string) {
	for _, m := range asked {
		_ = c.k.write(jsonrpc.ErrorResponse(m.ID, jsonrpc.CodeInternalError, reason))
	}
	for _, id := range c.open {
		_ = c.k.write(jsonrpc.ErrorResponse(id, jsonrpc.CodeInternalError, reason))
	}
	c.open = nil
	c.k.cancel(c.respID, reason)
	b.wg.Go(func() { b.finish(c, reason) })
}

// finish waits for an abandoned call's child to be done with it.
func (b *Bridge) finish(c *call, reason string) {
	t := time.NewTimer(finishGrace)
	defer t.Stop()
	for {
		select {
		case <-c.resp:
			c.k.pool().release(c.k)
			return
		case m := <-c.asks:
			c.took(len(m.Raw))
			_ = c.k.write(jsonrpc.ErrorResponse(m.ID, jsonrpc.CodeInternalError, reason))
		case n := <-c.notes:
			c.took(len(n))
		case <-c.goneCh:
			return
		case <-t.C:
			c.k.log.Warn().Msg("a cancelled call kept its child busy; killing the child")
			c.k.c.Kill()
			return
		}
	}
}

// abandon ends a parked call whose client never came back.
func (b *Bridge) abandon(c *call, reason string) {
	b.cancel(c, nil, reason)
}

// park keeps a call's child waiting for the client's answers and returns
// the input-required result that asks for them.
func (b *Bridge) park(c *call, asked []jsonrpc.Message) []byte {
	if c.open == nil {
		c.open = map[string][]byte{}
	}
	if c.asked == nil {
		c.asked = map[string]jsonrpc.Message{}
	}
	for _, m := range asked {
		key := inputKey(m.ID)
		c.open[key] = m.ID
		c.asked[key] = m
	}
	return b.repark(c)
}

// repark parks c under a fresh id and asks for what is still open.
func (b *Bridge) repark(c *call) []byte {
	c.park = randomID()
	c.deadline = time.Now().Add(b.opts.StateTTL)
	inputs := map[string]any{}
	for key := range c.open {
		m := c.asked[key]
		inputs[key] = map[string]any{"method": m.Method, "params": orEmpty(m.Params)}
	}
	state := b.sealer.seal(stateClaims{
		Machine: b.opts.MachineID,
		Park:    c.park,
		Tenant:  c.tenant,
		Subject: c.subject,
		Request: c.digest,
		Expires: c.deadline.UnixMilli(),
	})
	res := map[string]any{
		"resultType":    "input_required",
		"inputRequests": inputs,
		"requestState":  state,
	}
	if len(c.k.info.ServerInfo) > 0 {
		res["_meta"] = map[string]any{metaServerInfo: c.k.info.ServerInfo}
	}
	resp := resultResponse(c.clientID, res)
	// From here the parking lot owns c: a retry or the reaper may take it.
	b.parked.put(c)
	return resp
}

// resume continues a parked call with the client's answers.
func (b *Bridge) resume(ctx context.Context, req Request, meta requestMeta, state string, sink Sink) ([]byte, error) {
	claims, err := peek(state)
	if err == nil && claims.Machine != "" && claims.Machine != b.opts.MachineID {
		return nil, &Elsewhere{Machine: claims.Machine}
	}
	if err == nil {
		claims, err = b.sealer.open(state, time.Now())
	}
	if err == nil && (claims.Tenant != req.Tenant || claims.Subject != req.Subject ||
		claims.Request != requestDigest(req.Msg.Method, req.Msg.Params)) {
		err = ErrStateForeign
	}
	var c *call
	if err == nil {
		c, err = b.parked.take(claims.Park)
	}
	if err != nil {
		return stateError(req.Msg.ID, err), nil
	}
	c.clientID = req.Msg.ID
	c.setLogLevel(meta.LogLevel)
	select {
	case <-c.goneCh:
		return b.goneResponse(c), nil
	default:
	}
	var p struct {
		Responses map[string]json.RawMessage `json:"inputResponses"`
	}
	_ = json.Unmarshal(req.Msg.Params, &p)
	for key := range c.open {
		if r, ok := p.Responses[key]; ok && (len(r) == 0 || r[0] != '{') {
			// Nothing is handed to the child: the same state may be
			// retried with a proper answer.
			b.parked.restore(c)
			return jsonrpc.ErrorResponse(req.Msg.ID, jsonrpc.CodeInvalidParams,
				"Invalid params: inputResponses["+strconv.Quote(key)+"] is not a result object"), nil
		}
	}
	for key, id := range c.open {
		if r, ok := p.Responses[key]; ok {
			if err := c.k.write(resultResponse(id, r)); err != nil {
				return b.goneResponse(c), nil
			}
			delete(c.open, key)
			delete(c.asked, key)
		}
	}
	if len(c.open) > 0 {
		// The spec asks a server missing answers to ask again.
		return b.repark(c), nil
	}
	return b.drive(ctx, c, sink)
}

// stateError is the -32602 that says what is wrong with a requestState.
func stateError(id []byte, err error) []byte {
	return jsonrpc.ErrorResponse(id, jsonrpc.CodeInvalidParams, "Invalid params: "+err.Error())
}

// inputKey names a child's request among a call's input requests.
func inputKey(id []byte) string {
	if s, err := strconv.Unquote(string(id)); err == nil {
		return "request-" + s
	}
	return "request-" + string(id)
}

// capabilityFor is the client capability a server-to-client request needs.
func capabilityFor(method string) string {
	switch method {
	case "sampling/createMessage":
		return "sampling"
	case "elicitation/create":
		return "elicitation"
	case "roots/list":
		return "roots"
	}
	return ""
}

func missingCapability(id []byte, capability string) []byte {
	b, _ := json.Marshal(map[string]any{
		"jsonrpc": "2.0",
		"id":      json.RawMessage(id),
		"error": map[string]any{
			"code":    codeMissingCapability,
			"message": "Missing required client capability: " + capability,
			"data":    map[string]any{"requiredCapabilities": map[string]any{capability: map[string]any{}}},
		},
	})
	return b
}

// requestState is a request's params.requestState, or "".
func requestState(params []byte) string {
	var p struct {
		State string `json:"requestState"`
	}
	_ = json.Unmarshal(params, &p)
	return p.State
}

// legacyParams are a request's params as a legacy server expects them:
// without the stateless era's _meta keys (a dual-era server would take them
// as a stateless request) and without the retry's fields.
func legacyParams(params []byte) []byte {
	var p map[string]json.RawMessage
	if json.Unmarshal(params, &p) != nil || p == nil {
		return params
	}
	delete(p, "inputResponses")
	delete(p, "requestState")
	if raw, ok := p["_meta"]; ok {
		var meta map[string]json.RawMessage
		_ = json.Unmarshal(raw, &meta)
		for _, k := range []string{metaVersion, metaCapabilities, metaClientInfo, metaLogLevel} {
			delete(meta, k)
		}
		if len(meta) == 0 {
			delete(p, "_meta")
		} else {
			p["_meta"], _ = json.Marshal(meta)
		}
	}
	b, _ := json.Marshal(p)
	return b
}

// cacheable are the methods whose results carry ttlMs and cacheScope.
var cacheable = map[string]bool{
	"server/discover": true, "tools/list": true, "prompts/list": true, "resources/list": true,
	"resources/templates/list": true, "resources/read": true,
}

// decorate turns a legacy child's response into a stateless-era one for
// the client's id: resultType, server info, caching hints, and the error
// codes the stateless era renamed.
func decorate(resp []byte, id []byte, method string, serverInfo json.RawMessage) []byte {
	var r struct {
		Result map[string]json.RawMessage `json:"result"`
		Error  *struct {
			Code    int             `json:"code"`
			Message string          `json:"message"`
			Data    json.RawMessage `json:"data,omitempty"`
		} `json:"error"`
	}
	if json.Unmarshal(resp, &r) != nil {
		return jsonrpc.ErrorResponse(id, jsonrpc.CodeInternalError, "the server sent a malformed response")
	}
	if r.Error != nil {
		if r.Error.Code == codeResourceNotFound {
			r.Error.Code = jsonrpc.CodeInvalidParams
		}
		b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": json.RawMessage(id), "error": r.Error})
		return b
	}
	res := r.Result
	if res == nil {
		res = map[string]json.RawMessage{}
	}
	if _, ok := res["resultType"]; !ok {
		res["resultType"] = json.RawMessage(`"complete"`)
	}
	if cacheable[method] {
		if _, ok := res["ttlMs"]; !ok {
			res["ttlMs"] = json.RawMessage(`0`)
		}
		if _, ok := res["cacheScope"]; !ok {
			res["cacheScope"] = json.RawMessage(`"private"`)
		}
	}
	if len(serverInfo) > 0 {
		var meta map[string]json.RawMessage
		_ = json.Unmarshal(res["_meta"], &meta)
		if meta == nil {
			meta = map[string]json.RawMessage{}
		}
		meta[metaServerInfo] = serverInfo
		res["_meta"], _ = json.Marshal(meta)
	}
	return resultResponse(id, res)
}

func resultResponse(id []byte, result any) []byte {
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": json.RawMessage(id), "result": result})
	return b
}

func isError(resp []byte) bool {
	_, _, _, ok := jsonrpc.Lookup(resp, "error")
	return ok
}

// parking holds the calls waiting for their clients' retries, and
// remembers which were taken so a replay is named as one.
type parking struct {
	mu    sync.Mutex // guards the fields below
	calls map[string]*call
	used  map[string]time.Time // park id → until when to remember it
}

func newParking() *parking {
	return &parking{calls: map[string]*call{}, used: map[string]time.Time{}}
}

func (p *parking) put(c *call) {
	p.mu.Lock()
	p.calls[c.park] = c
	p.mu.Unlock()
}

// conns are the children parked calls hold.
func (p *parking) conns() map[*conn]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[*conn]bool, len(p.calls))
	for _, c := range p.calls {
		out[c.k] = true
	}
	return out
}

func (p *parking) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.calls)
}

// take removes a parked call; a state works once.
func (p *parking) take(id string) (*call, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.calls[id]
	if c == nil {
		if _, ok := p.used[id]; ok {
			return nil, ErrStateReplayed
		}
		return nil, ErrStateUnknown
	}
	delete(p.calls, id)
	p.used[id] = c.deadline
	return c, nil
}

// restore parks again a call that take returned, under the same id.
func (p *parking) restore(c *call) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.used, c.park)
	p.calls[c.park] = c
}

// expired removes and returns the calls past their deadline.
func (p *parking) expired(now time.Time) []*call {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*call
	for id, c := range p.calls {
		if now.After(c.deadline) {
			delete(p.calls, id)
			p.used[id] = c.deadline
			out = append(out, c)
		}
	}
	for id, until := range p.used {
		if now.After(until.Add(time.Minute)) {
			delete(p.used, id)
		}
	}
	return out
}
