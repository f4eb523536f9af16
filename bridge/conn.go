package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpwrap/mcpwrap/child"
	"github.com/mcpwrap/mcpwrap/jsonrpc"
	"github.com/rs/zerolog"
)

// errGone is what a call waiting on a child learns when the child ends.
var errGone = errors.New("the server process ended")

// A conn is one child and the one goroutine that reads it. Every message the
// child writes is routed from there: responses to the request that waits
// for them, requests to the call that holds the child, change notifications
// to the tenant's listeners.
type conn struct {
	c    *child.Child
	log  zerolog.Logger
	seq  atomic.Int64
	hub  *hub
	pl   atomic.Pointer[pool] // moves once, when the era probe finds a modern child
	done chan struct{}        // closed when the reader has stopped: the child is gone

	stdinWait time.Duration // a write that waits longer kills the child (Options.StdinTimeout)

	mu      sync.Mutex             // guards the fields below
	pending map[string]chan []byte // child-side request id → its response
	holder  *call                  // a legacy child's exclusive call, or nil
	tokens  map[string]*call       // rewritten progress token → call (modern)
	calls   map[*call]struct{}     // the calls in flight on it (modern)

	// Guarded by the Bridge's mu.
	busy bool      // held by a call, or parked
	idle time.Time // when it last became free

	info initInfo // what initialize (or discover) said; set before it is shared
}

// initInfo is what a child says of itself.
type initInfo struct {
	ServerInfo   json.RawMessage `json:"serverInfo,omitempty"`
	Capabilities json.RawMessage `json:"capabilities,omitempty"`
	Instructions string          `json:"instructions,omitempty"`
}

func newConn(c *child.Child, p *pool, h *hub, stdinWait time.Duration, log zerolog.Logger) *conn {
	k := &conn{
		c: c, hub: h, stdinWait: stdinWait,
		log:     log.With().Int("pid", c.Pid()).Logger(),
		done:    make(chan struct{}),
		pending: map[string]chan []byte{},
		tokens:  map[string]*call{},
		calls:   map[*call]struct{}{},
		idle:    time.Now(),
	}
	k.pl.Store(p)
	go k.read()
	return k
}

func (k *conn) pool() *pool { return k.pl.Load() }

// write sends one message to the child. A child that takes no input for
// stdinWait is stuck: it is killed, and everything waiting on it learns it
// is gone, the reader and this writer included.
func (k *conn) write(msg []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), k.stdinWait)
	defer cancel()
	_, err := k.c.Send(ctx, jsonrpc.OneLine(msg))
	if err != nil && ctx.Err() != nil {
		k.log.Warn().Dur("waited_ms", k.stdinWait).Msg("the child took no input; killing it")
		k.c.Kill()
	}
	return err
}

// nextID is a child-side request id no client chose.
func (k *conn) nextID() []byte {
	return strconv.AppendQuote(nil, "mcpwrap-"+strconv.FormatInt(k.seq.Add(1), 10))
}

// send writes a request with a fresh id and returns where its response
// will arrive, and the id.
func (k *conn) send(msg jsonrpc.Message) (<-chan []byte, []byte, error) {
	return k.sendAs(msg, k.nextID())
}

// sendAs writes a request with id, which nextID gave.
func (k *conn) sendAs(msg jsonrpc.Message, id []byte) (<-chan []byte, []byte, error) {
	ch := make(chan []byte, 1)
	k.mu.Lock()
	k.pending[string(id)] = ch
	k.mu.Unlock()
	if err := k.write(msg.WithID(id)); err != nil {
		k.forget(id)
		return nil, nil, errGone
	}
	return ch, id, nil
}

func (k *conn) forget(id []byte) {
	k.mu.Lock()
	delete(k.pending, string(id))
	k.mu.Unlock()
}

// roundTrip sends a request and waits for its response.
func (k *conn) roundTrip(ctx context.Context, msg jsonrpc.Message) ([]byte, error) {
	ch, id, err := k.send(msg)
	if err != nil {
		return nil, err
	}
	select {
	case resp := <-ch:
		return resp, nil
	case <-k.done:
		return nil, errGone
	case <-ctx.Done():
		k.forget(id)
		k.cancel(id, "request cancelled")
		return nil, ctx.Err()
	}
}

// cancel tells the child to stop working on request id.
func (k *conn) cancel(id []byte, reason string) {
	p, _ := json.Marshal(map[string]any{"requestId": json.RawMessage(id), "reason": reason})
	_ = k.write(notification("notifications/cancelled", p))
}

// notification encodes a notification.
func notification(method string, params []byte) []byte {
	b, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		Method  string          `json:"method"`
		Params  json.RawMessage `json:"params,omitempty"`
	}{"2.0", method, params})
	return b
}

// read is the only reader of the child's stdout.
func (k *conn) read() {
	defer func() {
		k.mu.Lock()
		holder := k.holder
		calls := make([]*call, 0, len(k.calls))
		for c := range k.calls {
			calls = append(calls, c)
		}
		k.mu.Unlock()
		close(k.done)
		if holder != nil {
			holder.gone()
		}
		for _, c := range calls {
			c.gone()
		}
		k.pool().remove(k)
	}()
	for {
		line, err := k.c.ReadLine()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				// A line over the limit, or a broken pipe: the stream
				// cannot be read on, so the child cannot serve.
				k.log.Warn().Err(err).Msg("cannot read the child any more; killing it")
				k.c.Kill()
			}
			return
		}
		msg, err := jsonrpc.Parse(line)
		if err != nil {
			k.log.Warn().Err(err).Msg("the child wrote a line that is not JSON-RPC; ignored")
			continue
		}
		switch msg.Kind {
		case jsonrpc.Response:
			k.mu.Lock()
			ch := k.pending[string(msg.ID)]
			delete(k.pending, string(msg.ID))
			k.mu.Unlock()
			if ch != nil {
				ch <- msg.Raw
			}
		case jsonrpc.Request:
			k.mu.Lock()
			holder := k.holder
			k.mu.Unlock()
			if holder == nil || !holder.ask(msg) {
				_ = k.write(jsonrpc.ErrorResponse(msg.ID, jsonrpc.CodeMethodNotFound,
					"no client can answer "+msg.Method+" outside a call"))
			}
		case jsonrpc.Notification:
			k.notify(msg)
		}
	}
}

// notify routes a notification from the child.
func (k *conn) notify(msg jsonrpc.Message) {
	if sub, _, _, ok := jsonrpc.Lookup(msg.Params, "_meta", metaSubscription); ok {
		k.mu.Lock()
		c := k.tokens["sub:"+string(sub)]
		k.mu.Unlock()
		if c != nil {
			c.subscription(msg)
		}
		return
	}
	switch msg.Method {
	case "notifications/progress":
		tok, _, _, _ := jsonrpc.Lookup(msg.Params, "progressToken")
		k.mu.Lock()
		c := k.tokens[string(tok)]
		if c == nil {
			c = k.holder
		}
		k.mu.Unlock()
		if c != nil {
			c.progress(msg)
		}
	case "notifications/message":
		k.mu.Lock()
		c := k.holder
		if c == nil {
			// A modern child shares no request context with a log
			// line on stdio; it can belong only to a sole call that
			// asked for logs.
			for o := range k.calls {
				if o.wantsLogs() != "" {
					if c != nil {
						c = nil
						break
					}
					c = o
				}
			}
		}
		k.mu.Unlock()
		if c != nil {
			c.logMessage(msg)
		}
	case "notifications/tools/list_changed", "notifications/prompts/list_changed",
		"notifications/resources/list_changed", "notifications/resources/updated":
		k.pool().listChanged(msg.Method)
		k.hub.publish(k.pool().key.tenant, msg)
	}
}
