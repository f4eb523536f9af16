package testkit

import (
	"net"
	"net/url"
	"sync"
	"testing"
	"time"
)

// A Cutter is a TCP proxy on 127.0.0.1 in front of one server, for tests of
// what a network does to connections: Cut drops every open one, as a
// network drop does; Freeze stops them carrying data while they stay open,
// as a laptop going to sleep does. New connections are carried as usual.
// It remembers how long each connection stayed open.
type Cutter struct {
	ln net.Listener
	to string // host:port of the server
	wg sync.WaitGroup

	mu      sync.Mutex // guards the fields below
	conns   map[net.Conn]*link
	longest time.Duration
	opened  int
}

// link is one proxied connection.
type link struct {
	in, out net.Conn
	since   time.Time
	frozen  chan struct{} // closed by Freeze
}

// NewCutter proxies to target, a URL whose host is the server's; the end
// of the test closes it.
func NewCutter(t testing.TB, target string) *Cutter {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cutter{ln: ln, to: u.Host, conns: map[net.Conn]*link{}}
	c.wg.Add(1)
	go c.accept()
	t.Cleanup(func() {
		ln.Close()
		c.Cut()
		c.wg.Wait()
	})
	return c
}

// URL is target (a URL on the server) reached through the cutter.
func (c *Cutter) URL(target string) string {
	u, _ := url.Parse(target)
	u.Host = c.ln.Addr().String()
	return u.String()
}

func (c *Cutter) accept() {
	defer c.wg.Done()
	for {
		in, err := c.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", c.to)
		if err != nil {
			in.Close()
			continue
		}
		l := &link{in: in, out: out, since: time.Now(), frozen: make(chan struct{})}
		c.mu.Lock()
		c.conns[in] = l
		c.opened++
		c.mu.Unlock()
		c.wg.Add(2)
		go c.pipe(l, out, in)
		go c.pipe(l, in, out)
	}
}

// pipe copies src to dst until either ends, or the link is frozen: then
// what arrives is swallowed until the connection is closed.
func (c *Cutter) pipe(l *link, dst, src net.Conn) {
	defer c.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-l.frozen:
			n = 0
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
	c.forget(l)
}

func (c *Cutter) forget(l *link) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conns[l.in] == l {
		c.longest = max(c.longest, time.Since(l.since))
		delete(c.conns, l.in)
	}
}

func (c *Cutter) open() []*link {
	c.mu.Lock()
	defer c.mu.Unlock()
	links := make([]*link, 0, len(c.conns))
	for _, l := range c.conns {
		links = append(links, l)
	}
	return links
}

// Cut drops every connection open now.
func (c *Cutter) Cut() {
	for _, l := range c.open() {
		l.in.Close()
		l.out.Close()
		c.forget(l)
	}
}

// Freeze makes every connection open now carry nothing more, while it
// stays open: neither end hears of it until it gives up on the silence.
func (c *Cutter) Freeze() {
	for _, l := range c.open() {
		select {
		case <-l.frozen:
		default:
			close(l.frozen)
		}
	}
}

// Stats says how many connections were opened and the longest any stayed
// open, those still open included.
func (c *Cutter) Stats() (opened int, longest time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	longest = c.longest
	for _, l := range c.conns {
		longest = max(longest, time.Since(l.since))
	}
	return c.opened, longest
}
