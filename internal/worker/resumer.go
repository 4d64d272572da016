// Package worker holds the background loops. Each has Run(ctx) error, claims its work in short
// transactions that commit before anything external is called, and is safe with many replicas.
package worker

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/metrics"
)

// IssueClaimer hands out creating invoices that are due for another DOKU attempt, each with its issue
// lease taken (postgres.Store).
type IssueClaimer interface {
	ClaimDueIssues(ctx context.Context, limit int, lease, base, maxBackoff time.Duration, maxAttempts int) ([]*invoice.Invoice, error)
}

// Resumer finishes invoices left in creating — by a DOKU timeout or 5xx, or by a process that died
// between DOKU's answer and the store step — by resending their stored Request-Id and bytes. DOKU
// answers a resend with its original response (409), so the code recovered is the code issued.
type Resumer struct {
	Claimer IssueClaimer
	Service *invoice.Service
	Log     zerolog.Logger
	Metrics *metrics.Metrics

	Interval    time.Duration // how often to look for due invoices
	Batch       int           // invoices handled per round at most
	Concurrency int           // DOKU calls in flight at once: invoices are claimed this many at a time
	BaseBackoff time.Duration // delay after the first failed attempt; doubles each attempt
	MaxBackoff  time.Duration
	MaxAttempts int // after this many attempts an invoice is left for a person
}

// Run resumes invoices every Interval until ctx is cancelled.
func (r *Resumer) Run(ctx context.Context) error {
	return every(ctx, r.Interval, r.Log, "resumer", r.RunOnce)
}

// RunOnce claims one batch of due invoices and tries each once. It returns how many it finished
// (pending or failed).
func (r *Resumer) RunOnce(ctx context.Context) (int, error) {
	claim := func(n int) ([]*invoice.Invoice, error) {
		return r.Claimer.ClaimDueIssues(ctx, n, r.Service.IssueLease, r.BaseBackoff, r.MaxBackoff, r.MaxAttempts)
	}
	done, err := inWaves(r.Batch, r.Concurrency, claim, func(inv *invoice.Invoice) bool {
		log := r.Log.With().Str("invoice_number", inv.Number).Int("attempt", inv.IssueAttempts).Logger()
		out, err := r.Service.Issue(ctx, inv, invoice.SourceResumer)
		switch {
		case err == nil || invoice.ErrorCode(err) == invoice.CodeDokuRejected:
			log.Info().Str("status", string(out.Status)).Msg("resumed invoice")
			r.Metrics.WorkerItem("resumer", "finished")
			return true
		case inv.IssueAttempts >= r.MaxAttempts:
			log.Error().Err(err).Msg("giving up on invoice after the last attempt; it stays creating for a person to check with DOKU")
			r.Metrics.WorkerItem("resumer", "gave_up")
			if ferr := r.Service.FlagStuck(ctx, inv, err); ferr != nil {
				log.Error().Err(ferr).Msg("could not add the invoice to the attention queue; this line is the only record")
			}
		default:
			log.Warn().Err(err).Msg("resume attempt failed; will retry with backoff")
			r.Metrics.WorkerItem("resumer", "failed")
		}
		return false
	})
	r.Metrics.WorkerRound("resumer", err != nil)
	return done, err
}
