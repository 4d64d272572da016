package service

import (
	"context"
	"errors"

	"github.com/merchant/o2o/internal/invoice"
)

// ClaimIssues hands the resumer up to n creating invoices due for another attempt, each with its
// issue lease taken.
func (s *Service) ClaimIssues(ctx context.Context, n int) ([]*invoice.Invoice, error) {
	return s.store.ClaimDueIssues(ctx, n, s.cfg.Issue.Lease, s.cfg.Issue.MaxAttempts, s.env)
}

// Resumed is what one resume attempt came to.
type Resumed string

const (
	ResumeFinished Resumed = "finished" // pending or failed now
	ResumeFailed   Resumed = "failed"   // still creating; tried again after a backoff
	ResumeGaveUp   Resumed = "gave_up"  // still creating after the last attempt: a person's now
)

// Resume finishes an invoice left creating — by a DOKU fault, or a process that died between DOKU's
// answer and the store step — by resending its stored Request-Id and bytes (DOKU answers a resend with
// its original response, so the code recovered is the code issued). After the last attempt the
// invoice is flagged for a person: DOKU may or may not have issued its code, and an unknown outcome is
// never marked failed.
func (s *Service) Resume(ctx context.Context, inv *invoice.Invoice) (Resumed, *invoice.Invoice, error) {
	out, err := s.issue(ctx, inv, invoice.SourceResumer)
	switch {
	case err == nil || errors.Is(err, invoice.ErrDokuRejected):
		return ResumeFinished, out, nil
	case inv.IssueAttempts < s.cfg.Issue.MaxAttempts:
		return ResumeFailed, out, err
	}
	if _, ferr := s.update(ctx, inv.Number, func(cur *invoice.Invoice) error {
		flagStuck(cur, invoice.SourceResumer, err)
		return nil
	}); ferr != nil {
		err = errors.Join(err, ferr)
	}
	return ResumeGaveUp, out, err
}

// flagStuck hands a creating invoice whose attempts are spent to a person: DOKU may or may not have
// issued its code, and nobody will ask again by themselves.
func flagStuck(cur *invoice.Invoice, source invoice.Source, last error) {
	if cur.Status == invoice.StatusCreating {
		cur.Flag(invoice.Attention{Key: string(invoice.ReasonStuckCreating) + ":" + cur.Number, Reason: invoice.ReasonStuckCreating,
			Source: source, Evidence: map[string]any{"attempts": cur.IssueAttempts,
				"doku_request_id": cur.DokuRequestID, "last_error": last.Error()}})
	}
}
