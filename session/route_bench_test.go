package session

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mcpwrap/mcpwrap/child"
	"github.com/mcpwrap/mcpwrap/jsonrpc"
	"github.com/rs/zerolog"
)

// responder is the cheapest JSON-RPC server there is: sed turns each
// request line into a response to it. Against it, what a benchmark measures
// is mcpwrap's own cost, not a server's.
var responder = child.Command{Path: "sed", Args: []string{"-u", `s/"method":"[^"]*".*$/"result":{}}/`}}

// BenchmarkRoundTripDirect is the baseline: a request written to
// the child's pipe and its response read back, nothing in between.
func BenchmarkRoundTripDirect(b *testing.B) {
	p, err := child.Start(responder, child.Options{}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer p.Stop(context.Background())
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_, _ = p.Send(context.Background(), fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"method":"ping"}`, i))
		if _, err := p.ReadLine(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRoundTripSession is the same traffic through a Session: id
// remapping, the router and the exchange.
func BenchmarkRoundTripSession(b *testing.B) {
	reg := NewRegistry(Options{Command: responder}, zerolog.Nop())
	s, err := reg.Start(context.Background(), Streamable, Owner{})
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Close(context.Background())
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		msg, _ := jsonrpc.Parse(fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"method":"ping"}`, i))
		ex, err := s.Send(ctx, []jsonrpc.Message{msg})
		if err != nil {
			b.Fatal(err)
		}
		readAll(ex.Events(), time.Minute)
	}
}

// BenchmarkRoundTripSessionParallel keeps eight requests in flight in one
// session, matched back by id.
func BenchmarkRoundTripSessionParallel(b *testing.B) {
	reg := NewRegistry(Options{Command: responder}, zerolog.Nop())
	s, err := reg.Start(context.Background(), Streamable, Owner{})
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Close(context.Background())
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(4) // 2 cores × 4 = 8 in flight
	b.RunParallel(func(pb *testing.PB) {
		msg, _ := jsonrpc.Parse([]byte(`{"jsonrpc":"2.0","id":"same-for-all","method":"ping"}`))
		for pb.Next() {
			ex, err := s.Send(ctx, []jsonrpc.Message{msg})
			if err != nil {
				b.Error(err)
				return
			}
			readAll(ex.Events(), time.Minute)
		}
	})
}
