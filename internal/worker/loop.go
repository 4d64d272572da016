package worker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/invoice"
)

// every runs round now and then every interval until ctx is cancelled. A failed round is logged and
// the next one tries again: the workers' state lives in the database, so there is nothing to reset.
func every(ctx context.Context, interval time.Duration, log zerolog.Logger, name string, round func(context.Context) (int, error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := round(ctx); err != nil && ctx.Err() == nil {
			log.Warn().Err(err).Msg(name + " round failed; will retry")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// each runs fn for every claimed invoice with at most concurrency at once (the calls to DOKU in
// flight), and returns how many fn reported as done.
func each(invs []*invoice.Invoice, concurrency int, fn func(*invoice.Invoice) bool) int {
	var (
		wg   sync.WaitGroup
		done atomic.Int64
		sem  = make(chan struct{}, max(concurrency, 1))
	)
	for _, inv := range invs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if fn(inv) {
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(done.Load())
}
