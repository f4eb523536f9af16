package bridge

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/mcpwrap/mcpwrap/jsonrpc"
)

// passThrough serves a request from a child that speaks the stateless
// era itself. Its children hold no client state, so one per tenant serves
// every request at once; mcpwrap only gives each request an id of its own,
// a progress token of its own, and relays what belongs to it.
func (b *Bridge) passThrough(ctx context.Context, req Request, sink Sink) ([]byte, error) {
	p := b.getPool(poolKey{tenant: req.Tenant}, req.Env, nil)
	k, err := p.acquire(ctx, false, req.Msg.Method != "server/discover")
	if err != nil {
		return nil, err
	}
	c := newCall(k, req, readMeta(req.Msg.Params))
	c.listen = req.Msg.Method == "subscriptions/listen"
	msg := req.Msg
	id := k.nextID()
	var token string
	if tok, start, end, ok := jsonrpc.Lookup(msg.Raw, "params", "_meta", "progressToken"); ok {
		token = strconv.Quote("mcpwrap-progress-" + string(id[1:len(id)-1]))
		c.token = tok
		if m, err := jsonrpc.Parse(jsonrpc.Splice(msg.Raw, start, end, []byte(token))); err == nil {
			msg = m
		}
	}
	k.mu.Lock()
	k.calls[c] = struct{}{}
	if token != "" {
		k.tokens[token] = c
	}
	if c.listen {
		k.tokens["sub:"+string(id)] = c
	}
	k.mu.Unlock()
	defer func() {
		k.mu.Lock()
		delete(k.calls, c)
		delete(k.tokens, token)
		delete(k.tokens, "sub:"+string(id))
		k.mu.Unlock()
		b.mu.Lock()
		k.idle = time.Now()
		b.mu.Unlock()
	}()

	resp, _, err := k.sendAs(msg, id)
	if err != nil {
		return b.goneResponse(c), nil
	}
	stop := b.stop
	for {
		select {
		case r := <-resp:
			drain(c, sink)
			return withID(r, req.Msg.ID), nil
		case n := <-c.notes:
			c.took(len(n))
			if err := sink(n); err != nil {
				k.forget(id)
				k.cancel(id, "the client closed the stream")
				return nil, err
			}
		case <-c.goneCh:
			drain(c, sink)
			if c.listen {
				return listenEnd(req.Msg.ID), nil
			}
			return b.goneResponse(c), nil
		case <-stop:
			if c.listen {
				drain(c, sink)
				return listenEnd(req.Msg.ID), nil
			}
			stop = nil // keep serving: Close stops the child, which ends this
		case <-ctx.Done():
			k.forget(id)
			k.cancel(id, "the client closed the stream")
			return nil, ctx.Err()
		}
	}
}

// drain sends what is queued for the client before the response.
func drain(c *call, sink Sink) {
	for {
		select {
		case n := <-c.notes:
			c.took(len(n))
			if sink(n) != nil {
				return
			}
		default:
			return
		}
	}
}

// goneResponse answers a request whose child ended under it.
func (b *Bridge) goneResponse(c *call) []byte {
	why := "the server process ended"
	if tail := c.k.c.StderrTail(); len(tail) > 0 {
		why += ": " + tail[len(tail)-1]
	}
	return jsonrpc.ErrorResponse(c.clientID, jsonrpc.CodeInternalError, why)
}

// withID re-encodes a child's response under the client's id.
func withID(resp []byte, id []byte) []byte {
	m, err := jsonrpc.Parse(resp)
	if err != nil {
		return jsonrpc.ErrorResponse(id, jsonrpc.CodeInternalError, "the server sent a malformed response")
	}
	return m.WithID(id)
}

// listenEnd is the result that ends a listen stream gracefully.
func listenEnd(id []byte) []byte {
	b, _ := json.Marshal(map[string]any{
		"jsonrpc": "2.0",
		"id":      json.RawMessage(id),
		"result": map[string]any{
			"resultType": "complete",
			"_meta":      map[string]any{metaSubscription: json.RawMessage(id)},
		},
	})
	return b
}
