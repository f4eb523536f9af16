package bridge

import (
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/mcpwrap/mcpwrap/jsonrpc"
	"github.com/rs/zerolog"
)

// noteQueue and queueBytes bound what a call holds for its client, who
// reads slowly or is between two rounds: notifications past them are
// dropped, since a progress or log line is worth less than holding the
// child up, and a request to the client is refused.
const (
	noteQueue  = 256
	queueBytes = 32 << 20
)

// A call is one client request in flight on a child: for a legacy child it
// holds the child alone, across rounds while it is parked.
type call struct {
	k        *conn
	tenant   string
	subject  string
	method   string
	digest   string
	clientID []byte // the id of the client's current request
	caps     map[string]json.RawMessage
	token    []byte // the client's progress token, when mcpwrap rewrote it
	listen   bool

	resp   <-chan []byte // the child's response to the request
	respID []byte        // its child-side id
	notes  chan []byte   // progress and log messages for the client
	asks   chan jsonrpc.Message
	goneCh chan struct{}
	once   sync.Once

	mu       sync.Mutex // guards the fields below
	logLevel string     // the level the current request asked for; "" for none
	queued   int        // bytes in notes and asks

	// While parked, owned by the parking lot; then by the retry.
	park     string
	open     map[string][]byte          // input key → the child's request id
	asked    map[string]jsonrpc.Message // input key → the child's request
	deadline time.Time
}

func newCall(k *conn, req Request, meta requestMeta) *call {
	c := &call{
		k:        k,
		tenant:   req.Tenant,
		subject:  req.Subject,
		method:   req.Msg.Method,
		digest:   requestDigest(req.Msg.Method, req.Msg.Params),
		clientID: req.Msg.ID,
		notes:    make(chan []byte, noteQueue),
		asks:     make(chan jsonrpc.Message, 64),
		goneCh:   make(chan struct{}),
	}
	_ = json.Unmarshal(meta.Capabilities, &c.caps)
	c.setLogLevel(meta.LogLevel)
	return c
}

// setLogLevel says which log messages the client's current request wants:
// each round of a call is a request of its own.
func (c *call) setLogLevel(level string) {
	c.mu.Lock()
	c.logLevel = level
	c.mu.Unlock()
}

func (c *call) wantsLogs() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logLevel
}

func (c *call) log() *zerolog.Logger {
	l := c.k.log.With().Str("tenant", c.tenant).Str("method", c.method).Logger()
	return &l
}

// gone says the child ended.
func (c *call) gone() { c.once.Do(func() { close(c.goneCh) }) }

// reserve counts n bytes into the call's queues, or says they do not fit.
func (c *call) reserve(n int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.queued+n > queueBytes {
		return false
	}
	c.queued += n
	return true
}

// took gives back the bytes of a message taken from notes or asks.
func (c *call) took(n int) {
	c.mu.Lock()
	c.queued -= n
	c.mu.Unlock()
}

// ask hands the call a request the child sent; false when it cannot take
// more.
func (c *call) ask(msg jsonrpc.Message) bool {
	if !c.reserve(len(msg.Raw)) {
		return false
	}
	select {
	case c.asks <- msg:
		return true
	default:
		c.took(len(msg.Raw))
		return false
	}
}

func (c *call) note(msg []byte) {
	if c.reserve(len(msg)) {
		select {
		case c.notes <- msg:
			return
		default:
			c.took(len(msg))
		}
	}
	c.k.log.Warn().Str("method", c.method).Msg("dropped a notification for a client that does not keep up")
}

// progress relays a progress notification, with the client's own token.
func (c *call) progress(msg jsonrpc.Message) {
	if c.token == nil {
		c.note(msg.Raw)
		return
	}
	var p map[string]json.RawMessage
	if json.Unmarshal(msg.Params, &p) != nil {
		return
	}
	p["progressToken"] = c.token
	b, _ := json.Marshal(p)
	c.note(notification(msg.Method, b))
}

// logLevels in rising severity, as RFC 5424 orders them.
var logLevels = []string{"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"}

// logMessage relays a log message when the request asked for its level.
func (c *call) logMessage(msg jsonrpc.Message) {
	want := slices.Index(logLevels, c.wantsLogs())
	if want < 0 {
		return // the request asked for no logs
	}
	var p struct {
		Level string `json:"level"`
	}
	_ = json.Unmarshal(msg.Params, &p)
	if got := slices.Index(logLevels, p.Level); got >= 0 && got < want {
		return
	}
	c.note(msg.Raw)
}

// subscription relays a notification the child sent on a listen stream,
// with the client's listen id as its subscription.
func (c *call) subscription(msg jsonrpc.Message) {
	c.note(withMeta(msg, metaSubscription, c.clientID))
}

// withMeta re-encodes a notification with one _meta key set.
func withMeta(msg jsonrpc.Message, key string, v json.RawMessage) []byte {
	var p map[string]json.RawMessage
	_ = json.Unmarshal(msg.Params, &p)
	if p == nil {
		p = map[string]json.RawMessage{}
	}
	var meta map[string]json.RawMessage
	_ = json.Unmarshal(p["_meta"], &meta)
	if meta == nil {
		meta = map[string]json.RawMessage{}
	}
	meta[key] = v
	p["_meta"], _ = json.Marshal(meta)
	b, _ := json.Marshal(p)
	return notification(msg.Method, b)
}
