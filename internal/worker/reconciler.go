package worker

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/metrics"
)

// Checker is what the reconciler needs of the service (service.Service).
type Checker interface {
	ClaimChecks(ctx context.Context, n int) ([]*invoice.Invoice, error)
	Check(ctx context.Context, inv *invoice.Invoice, source invoice.Source) (invoice.Outcome, *invoice.Invoice, error)
}

// Reconciler polls DOKU's check status for invoices that are not final, because DOKU retries a
// notification only three times over 12 hours: a payment whose notification was lost is found here,
// an unpaid code expires here. Results go through Service.Check — the same transition the webhook
// uses — so a payment seen by both is recorded once.
type Reconciler struct {
	Service Checker
	Log     zerolog.Logger
	Metrics *metrics.Metrics

	Interval    time.Duration // how often to look for due checks
	Batch       int           // invoices checked per round at most
	Concurrency int           // check-status calls in flight at once: invoices are claimed this many at a time
}

// Run reconciles every Interval until ctx is cancelled.
func (r *Reconciler) Run(ctx context.Context) error {
	return every(ctx, r.Interval, r.Log, "reconciler", r.RunOnce)
}

// RunOnce claims one batch of due invoices and checks each once. It returns how many changed.
func (r *Reconciler) RunOnce(ctx context.Context) (int, error) {
	claim := func(n int) ([]*invoice.Invoice, error) { return r.Service.ClaimChecks(ctx, n) }
	changed, err := inWaves(r.Batch, r.Concurrency, claim, func(inv *invoice.Invoice) bool {
		log := r.Log.With().Str("invoice_number", inv.Number).Logger()
		outcome, out, err := r.Service.Check(ctx, inv, invoice.SourceReconciler)
		result := checkResult(outcome, err)
		r.Metrics.WorkerItem("reconciler", result)
		switch {
		case outcome == invoice.OutcomeExpired:
			// Possibly on our own clock while DOKU fails: the check's error is worth seeing here too.
			log.Info().Err(err).Str("status", string(out.Status)).Bool("expired_by_grace", out.ExpiredByGrace).Msg("reconciled invoice: expired")
			return true
		case err != nil:
			log.Warn().Err(err).Str("result", result).Msg("status check failed; will check again on schedule")
		case outcome.Mismatch():
			log.Error().Str("outcome", string(outcome)).Int64("invoice_amount", out.Amount).
				Msg("DOKU reports a payment that does not match the invoice; flagged for a person")
		case outcome == invoice.OutcomeApplied || outcome == invoice.OutcomeIdentified:
			log.Info().Str("outcome", string(outcome)).Str("status", string(out.Status)).Bool("paid_after_expiry", out.PaidAfterExpiry).
				Msg("reconciled invoice")
			return true
		}
		return false
	})
	r.Metrics.WorkerRound("reconciler", err != nil)
	return changed, err
}

// checkResult is how a reconciler check is counted: what it did, or why DOKU could not say.
func checkResult(outcome invoice.Outcome, err error) string {
	switch {
	case outcome == invoice.OutcomeExpired:
		return "expired"
	case err != nil:
		switch {
		case errors.Is(err, invoice.ErrDokuRejected):
			return "doku_rejected"
		case errors.Is(err, invoice.ErrDokuUnavailable):
			return "doku_unavailable"
		}
		return "store_failed"
	case outcome.Mismatch():
		return "mismatch"
	case outcome == invoice.OutcomeApplied || outcome == invoice.OutcomeIdentified:
		return "paid"
	case outcome == invoice.OutcomeIgnoredStatus:
		return "doku_other_status" // FAILED: nothing DOKU says we can act on
	}
	return "unchanged"
}
