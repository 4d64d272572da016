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

// inWaves claims up to batch invoices, concurrency at a time, and runs fn on each wave before claiming
// the next. A claim is taken just before its call: claimed invoices never wait behind others while a
// lease or a schedule slot runs out, which would let another replica take them too. It returns how
// many fn reported as done.
func inWaves(batch, concurrency int, claim func(n int) ([]*invoice.Invoice, error), fn func(*invoice.Invoice) bool) (int, error) {
	concurrency = max(concurrency, 1)
	done := 0
	for claimed := 0; claimed < batch; {
		invs, err := claim(min(concurrency, batch-claimed))
		if err != nil {
			return done, err
		}
		if len(invs) == 0 {
			break
		}
		claimed += len(invs)
		done += each(invs, fn)
	}
	return done, nil
}

// each runs fn for every invoice of a wave at once, and returns how many fn reported as done.
func each(invs []*invoice.Invoice, fn func(*invoice.Invoice) bool) int {
	var (
		wg   sync.WaitGroup
		done atomic.Int64
	)
	for _, inv := range invs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if fn(inv) {
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(done.Load())
}
