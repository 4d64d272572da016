package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/merchant/o2o/internal/invoice"
)

// ClaimChecks hands the reconciler up to n invoices whose status check is due, each held for
// CheckLease so that no other replica checks it meanwhile.
func (s *Service) ClaimChecks(ctx context.Context, n int) ([]*invoice.Invoice, error) {
	return s.store.ClaimDueChecks(ctx, n, s.cfg.CheckLease, s.env)
}

// Check asks DOKU for inv's status and applies the answer through the shared transition (ApplyCheck):
// the reconciler and manual sync use it, so a payment found by polling is the same payment a
// notification would have recorded, and is recorded once whichever comes first. When DOKU cannot
// answer (an error, an unknown invoice), a pending invoice overdue by more than the grace period is
// expired anyway: DOKU's silence never keeps an invoice pending forever. For the reconciler the next
// check is planned either way, and an invoice that can no longer change leaves the schedule without
// DOKU being asked; a manual sync always asks.
func (s *Service) Check(ctx context.Context, inv *invoice.Invoice, source invoice.Source) (invoice.Outcome, *invoice.Invoice, error) {
	if source == invoice.SourceReconciler && !inv.MayChange(s.now(), s.cfg.Check) {
		updated, err := s.update(ctx, inv.Number, func(*invoice.Invoice) error { return nil })
		return invoice.OutcomeUnchanged, updated, err
	}
	start := s.now()
	r, gwErr := s.gateway.Check(context.WithoutCancel(ctx), inv.Number)
	ctx, cancel := s.detached(ctx)
	defer cancel()
	call := invoice.Event{Source: source, Kind: invoice.EventDokuCheck, Detail: map[string]any{"duration_ms": s.now().Sub(start).Milliseconds()}}
	var outcome invoice.Outcome
	updated, err := s.update(ctx, inv.Number, func(cur *invoice.Invoice) error {
		now := s.now()
		if gwErr != nil {
			call.Detail["result"], call.Detail["error"] = "failed", gwErr.Error()
			if cur.ExpireOverdue(now, s.cfg.Check.Grace, source, "past expiry and grace period while DOKU's check status fails: "+gwErr.Error()) {
				outcome = invoice.OutcomeExpired
			}
		} else {
			r.Source = source
			outcome = cur.ApplyCheck(r, now, s.cfg.Check.Grace)
			call.Detail["doku_status"], call.Detail["outcome"] = r.DokuStatus, outcome
		}
		cur.Record(call)
		if source == invoice.SourceReconciler {
			cur.ScheduleNextCheck(now, s.cfg.Check)
		}
		return nil
	})
	if err != nil {
		return "", inv, err
	}
	return outcome, updated, gwErr
}

// Sync is a manual "look at DOKU now" for one invoice, rate-limited per invoice so it cannot be used to
// hammer DOKU: a creating invoice is issued (with its stored Request-Id), a pending, paid or expired
// one is checked, and a failed one is returned as it is. When DOKU cannot answer, the slot is given
// back: the caller's retry, which the error invites, must not then be refused as too soon.
func (s *Service) Sync(ctx context.Context, number string) (*invoice.Invoice, invoice.Outcome, error) {
	claim, err := s.store.ClaimSync(ctx, number, s.cfg.SyncInterval)
	if err != nil {
		return nil, "", err
	}
	if !claim.Taken {
		// Racing syncs can compute the wait from before the winner's write: never advise less than 1 s.
		retry := max(claim.Wait, time.Second)
		return nil, "", &invoice.Error{Kind: invoice.ErrRateLimited, RetryAfter: retry,
			Message: fmt.Sprintf("this invoice was synced moments ago; sync again in %.0f s", retry.Seconds()+0.5)}
	}
	inv, err := s.store.Get(ctx, number)
	if err != nil {
		return nil, "", err
	}
	if err := s.ownInvoice(inv); err != nil {
		_ = s.store.ReleaseSync(context.WithoutCancel(ctx), number, claim)
		return inv, "", err
	}
	var outcome invoice.Outcome
	switch inv.Status {
	case invoice.StatusCreating:
		inv, err = s.finish(ctx, inv, invoice.SourceSync)
	case invoice.StatusFailed:
	default:
		outcome, inv, err = s.Check(ctx, inv, invoice.SourceSync)
	}
	if errors.Is(err, invoice.ErrDokuUnavailable) {
		_ = s.store.ReleaseSync(context.WithoutCancel(ctx), number, claim)
	}
	return s.withLinks(inv), outcome, err
}
