package worker

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/metrics"
)

// Purging is what the purge worker needs of the service (service.Service).
type Purging interface {
	Purge(ctx context.Context, holder string, onBatch func(table string, step invoice.PurgeStep)) (bool, error)
}

// Purger keeps the tables that grow with traffic bounded: every Interval, on whichever replica takes
// the purge's lease, it removes what is past its retention window, in batches (service.Purge).
type Purger struct {
	Service  Purging
	Log      zerolog.Logger
	Metrics  *metrics.Metrics
	Interval time.Duration
	// Holder names this replica in the lease.
	Holder string
}

// Run purges every Interval until ctx is cancelled.
func (p *Purger) Run(ctx context.Context) error {
	return every(ctx, p.Interval, p.Log, "purge", func(ctx context.Context) (int, error) {
		n, _, err := p.RunOnce(ctx)
		return n, err
	})
}

// RunOnce purges once, if this replica gets the lease; it returns the rows removed or thinned and
// whether it ran.
func (p *Purger) RunOnce(ctx context.Context) (int, bool, error) {
	start := time.Now()
	counts := map[string]int{}
	ran, err := p.Service.Purge(ctx, p.Holder, func(table string, step invoice.PurgeStep) {
		counts[table] += step.Deleted
		p.Metrics.Purged(table, step.Deleted)
		if step.Related > 0 {
			counts["webhook_attempts"] += step.Related
			p.Metrics.Purged("webhook_attempts", step.Related)
		}
	})
	if ran {
		p.Metrics.WorkerRound("purge", err != nil)
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	if ran && (total > 0 || err != nil) {
		ev := p.Log.Info()
		if err != nil {
			ev = p.Log.Warn().Err(err)
		}
		d := zerolog.Dict()
		for t, n := range counts {
			d.Int(t, n)
		}
		ev.Dict("purged", d).Dur("took", time.Since(start)).Msg("purged what is past its retention")
	}
	return total, ran, err
}
