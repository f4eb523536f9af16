package child

import (
	"context"
	"sync"
	"testing"

	"github.com/rs/zerolog"
)

// BenchmarkStopMany stops 300 children at once: the cost of ending sessions
// in bulk (shutdown, a load balancer draining), where every child's exit
// asks whether anything is left in its group.
func BenchmarkStopMany(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		procs := make([]*Child, 300)
		for i := range procs {
			p, err := Start(Command{Path: "cat"}, Options{}, zerolog.Nop())
			if err != nil {
				b.Fatal(err)
			}
			procs[i] = p
		}
		b.StartTimer()
		var wg sync.WaitGroup
		for _, p := range procs {
			wg.Go(func() { _ = p.Stop(context.Background()) })
		}
		wg.Wait()
	}
}

// BenchmarkStartMany starts 300 children at once, as a burst of new
// sessions does.
func BenchmarkStartMany(b *testing.B) {
	for b.Loop() {
		procs := make([]*Child, 300)
		var wg sync.WaitGroup
		for i := range procs {
			wg.Go(func() {
				p, err := Start(Command{Path: "cat"}, Options{}, zerolog.Nop())
				if err != nil {
					b.Error(err)
					return
				}
				procs[i] = p
			})
		}
		wg.Wait()
		b.StopTimer()
		for _, p := range procs {
			if p != nil {
				wg.Go(func() { _ = p.Stop(context.Background()) })
			}
		}
		wg.Wait()
		b.StartTimer()
	}
}
