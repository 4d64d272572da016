package service

import (
	"context"
	"errors"
	"time"

	"github.com/merchant/o2o/internal/invoice"
)

// Create validates d, stores the invoice it describes and obtains its payment code. It is idempotent
// on the invoice number: the same request again returns the stored invoice (created is false), and
// finishes it if it was left creating; the same number with different fields is ErrInvoiceExists and
// never reaches DOKU.
//
// On a DOKU fault the invoice stays creating (ErrDokuUnavailable); on a DOKU refusal it is failed
// (ErrDokuRejected). The invoice is returned in both cases.
func (s *Service) Create(ctx context.Context, d invoice.Draft) (inv *invoice.Invoice, created bool, err error) {
	defer func() { s.withLinks(inv) }()
	req, err := d.Validate(s.cfg.Limits)
	if err != nil {
		return nil, false, err
	}
	if req.DokuRequestBody, err = s.gateway.RequestBody(req); err != nil {
		return nil, false, err
	}
	req.DokuEnv = s.env
	req.DokuRequestID = requestIDFor(s.env, req.Number, req.DokuRequestBody)
	req.PageToken = newPageToken()
	// The insert commits before DOKU is called, so a crash after DOKU answered still leaves a row
	// holding the Request-Id and bytes to recover the code with.
	inv, created, err = s.store.Create(ctx, req, s.cfg.Issue.Lease)
	if err != nil {
		return nil, false, err
	}
	if !created && !inv.SameRequest(req) {
		return inv, false, invoice.Errorf(invoice.ErrInvoiceExists, "invoice %s already exists with different details", req.Number)
	}
	if created {
		inv, err = s.issue(ctx, inv, invoice.SourceAPI) // the insert took the lease
		return inv, true, err
	}
	inv, err = s.finish(ctx, inv, invoice.SourceAPI)
	return inv, false, err
}

// finish brings a stored invoice to where the caller can be answered: a creating one is issued if
// nobody else holds its lease right now (ErrRequestInProgress otherwise), a failed one is DOKU's
// refusal again — never a second call — and any other is returned as it is.
func (s *Service) finish(ctx context.Context, inv *invoice.Invoice, source invoice.Source) (*invoice.Invoice, error) {
	if inv.Status == invoice.StatusCreating {
		if err := s.ownInvoice(inv); err != nil {
			return inv, err
		}
		claimed, ok, err := s.store.ClaimIssue(ctx, inv.Number, s.cfg.Issue.Lease, s.cfg.Issue.ResumeAfter)
		if err != nil {
			return inv, err
		}
		if ok {
			return s.issue(ctx, claimed, source)
		}
		// Held by someone else, or finished in between: look again.
		if inv, err = s.store.Get(ctx, inv.Number); err != nil {
			return nil, err
		}
		if inv.Status == invoice.StatusCreating {
			return inv, invoice.Errorf(invoice.ErrRequestInProgress,
				"this invoice's payment code is being requested from DOKU right now; retry shortly")
		}
	}
	if inv.Status == invoice.StatusFailed {
		return inv, rejection(inv)
	}
	return inv, nil
}

// issue asks DOKU for inv's code with its stored Request-Id and body, and records the answer and the
// call in the invoice's history. The caller holds inv's issue lease. The DOKU call and the store step
// are detached from ctx's cancellation — a client hanging up mid-call must not throw away a code DOKU
// has already issued — but each has a bound of its own: the gateway's timeout, and StoreTimeout. A
// store step that gives up (a row lock held elsewhere, a hung database) leaves the invoice creating;
// its lease runs out and a retry gets the same code from DOKU.
func (s *Service) issue(ctx context.Context, inv *invoice.Invoice, source invoice.Source) (*invoice.Invoice, error) {
	start := s.now()
	issued, gwErr := s.gateway.Issue(context.WithoutCancel(ctx), inv)
	ctx, cancel := s.detached(ctx)
	defer cancel()
	call := invoice.Event{Source: source, Kind: invoice.EventDokuGenerate, Detail: map[string]any{
		"doku_request_id": inv.DokuRequestID, "attempt": inv.IssueAttempts, "duration_ms": s.now().Sub(start).Milliseconds()}}
	var apply func(*invoice.Invoice) error
	switch {
	case gwErr == nil:
		if issued.ExpiresAt.IsZero() {
			issued.ExpiresAt = inv.CreatedAt.Add(time.Duration(inv.ExpiresInMinutes) * time.Minute)
		}
		call.Detail["result"], call.Detail["payment_code"] = "issued", issued.PaymentCode
		apply = func(cur *invoice.Invoice) error { cur.Record(call); cur.MarkIssued(issued, source); return nil }
	case errors.Is(gwErr, invoice.ErrDokuRejected):
		msg := invoice.Message(gwErr)
		call.Detail["result"], call.Detail["message"] = "rejected", msg
		apply = func(cur *invoice.Invoice) error {
			cur.Record(call)
			cur.MarkFailed("doku_rejected", msg, source)
			return nil
		}
	default:
		// Unknown outcome: the invoice stays creating, to be finished with the same Request-Id; the
		// lease is given back so a retry need not wait for it (if this fails, it runs out by itself).
		call.Detail["result"], call.Detail["error"] = "unavailable", gwErr.Error()
		retryIn := s.cfg.Issue.ResumeAfter
		if source == invoice.SourceResumer {
			retryIn = s.cfg.Issue.Backoff(inv.IssueAttempts)
		}
		if asked := invoice.RetryAfter(gwErr); asked > 0 {
			// DOKU said when to ask again: the resumer does then, neither sooner nor needlessly later.
			retryIn = asked
		}
		_, _ = s.update(ctx, inv.Number, func(cur *invoice.Invoice) error {
			cur.Record(call)
			cur.ReleaseIssue(inv.IssueAttempts, s.now().Add(retryIn))
			if source != invoice.SourceResumer && inv.IssueAttempts >= s.cfg.Issue.MaxAttempts {
				// A client's (or a sync's) retries spent the attempts the resumer would have made:
				// it will not claim the invoice again, so it is a person's now, as when the resumer
				// gives up (Resume flags its own last attempt).
				flagStuck(cur, source, gwErr)
			}
			return nil
		})
		return inv, gwErr
	}
	updated, err := s.update(ctx, inv.Number, apply)
	if err != nil {
		return inv, err
	}
	if updated.Status == invoice.StatusFailed {
		return updated, rejection(updated)
	}
	return updated, nil
}

func rejection(inv *invoice.Invoice) error {
	return invoice.Errorf(invoice.ErrDokuRejected, "DOKU refused to issue a payment code: %s", inv.FailureMessage)
}

// ValidateDraft checks d against the configured limits without creating anything.
func (s *Service) ValidateDraft(d invoice.Draft) error {
	_, err := d.Validate(s.cfg.Limits)
	return err
}
