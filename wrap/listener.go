package wrap

import (
	"errors"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// LimitConnections caps the connections ln hands out at max. A connection
// past the cap is answered 503 with Retry-After and closed at once, rather
// than left waiting in the kernel's backlog: a flood of idle connections
// then costs the flooder, and a client learns it should come back. The cap
// keeps file descriptors for the children, whose pipes need them too.
func LimitConnections(ln net.Listener, max int, log zerolog.Logger) net.Listener {
	if max <= 0 {
		return ln
	}
	return &limitListener{Listener: ln, slots: make(chan struct{}, max), log: log}
}

type limitListener struct {
	net.Listener
	slots chan struct{}
	log   zerolog.Logger

	mu      sync.Mutex // guards the fields below
	refused int        // connections refused since the last warning
	warned  time.Time
}

// overloaded is the whole answer a connection past the cap gets.
var overloaded = func() []byte {
	body := `{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Service Unavailable: too many connections"}}`
	return []byte("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\n" +
		"Connection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &slotConn{Conn: c, release: func() { <-l.slots }}, nil
		default:
		}
		l.refuse(c)
	}
}

// refuse answers a connection past the cap without reading from it, and
// warns once in a while with a count instead of once per connection.
func (l *limitListener) refuse(c net.Conn) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write(overloaded)
	_ = c.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refused++
	if time.Since(l.warned) >= 10*time.Second {
		l.log.Warn().Int("refused", l.refused).Int("max_connections", cap(l.slots)).Msg("connection limit reached; refusing new connections with 503")
		l.refused, l.warned = 0, time.Now()
	}
}

// slotConn gives its slot back when closed, once.
type slotConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// outOfDescriptors reports whether err means the process or the system ran
// out of file descriptors: a passing overload, not a broken server.
func outOfDescriptors(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}
