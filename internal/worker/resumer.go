// Package worker holds the background loops. Each has Run(ctx) error, asks the service for its work
// in claims that commit before anything external is called, and is safe with many replicas.
package worker

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/metrics"
	"github.com/merchant/o2o/internal/service"
)

// Issuer is what the resumer needs of the service (service.Service).
type Issuer interface {
	ClaimIssues(ctx context.Context, n int) ([]*invoice.Invoice, error)
	Resume(ctx context.Context, inv *invoice.Invoice) (service.Resumed, *invoice.Invoice, error)
}

// Resumer finishes invoices left in creating — by a DOKU timeout or 5xx, or by a process that died
// between DOKU's answer and the store step — through the service, which resends their stored
// Request-Id and bytes.
type Resumer struct {
	Service Issuer
	Log     zerolog.Logger
	Metrics *metrics.Metrics

	Interval    time.Duration // how often to look for due invoices
	Batch       int           // invoices handled per round at most
	Concurrency int           // DOKU calls in flight at once: invoices are claimed this many at a time
}

// Run resumes invoices every Interval until ctx is cancelled.
func (r *Resumer) Run(ctx context.Context) error {
	return every(ctx, r.Interval, r.Log, "resumer", r.RunOnce)
}

// RunOnce claims one batch of due invoices and tries each once. It returns how many it finished
// (pending or failed).
func (r *Resumer) RunOnce(ctx context.Context) (int, error) {
	claim := func(n int) ([]*invoice.Invoice, error) { return r.Service.ClaimIssues(ctx, n) }
	done, err := inWaves(r.Batch, r.Concurrency, claim, func(inv *invoice.Invoice) bool {
		log := r.Log.With().Str("invoice_number", inv.Number).Int("attempt", inv.IssueAttempts).Logger()
		result, out, err := r.Service.Resume(ctx, inv)
		r.Metrics.WorkerItem("resumer", string(result))
		switch result {
		case service.ResumeFinished:
			log.Info().Str("status", string(out.Status)).Msg("resumed invoice")
			return true
		case service.ResumeGaveUp:
			log.Error().Err(err).Msg("giving up on invoice after the last attempt; it stays creating, in the attention queue for a person to check with DOKU")
		default:
			log.Warn().Err(err).Msg("resume attempt failed; will retry with backoff")
		}
		return false
	})
	r.Metrics.WorkerRound("resumer", err != nil)
	return done, err
}
