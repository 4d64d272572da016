package service

import (
	"context"

	"github.com/merchant/o2o/internal/invoice"
)

// ReceiveNotification keeps a verified notification in the inbox and applies its payment report r
// (nil when the body could not be read) through the one transition function, all in one transaction.
// redelivered is true when DOKU sent this notification (its Request-Id with the same body) before and
// its outcome was already settled: nothing was applied again.
func (s *Service) ReceiveNotification(ctx context.Context, n *invoice.Notification, r *invoice.PaymentReport) (outcome invoice.Outcome, inv *invoice.Invoice, redelivered bool, err error) {
	var apply func(*invoice.Invoice) invoice.Outcome
	if r != nil {
		r.EvidenceKey = n.EvidenceKey()
		apply = func(cur *invoice.Invoice) invoice.Outcome {
			s.withLinks(cur)
			now := s.now()
			outcome := cur.ApplyPayment(*r, now)
			cur.Record(invoice.Event{Source: invoice.SourceWebhook, Kind: invoice.EventNotification, Detail: map[string]any{
				"doku_request_id": n.RequestID, "outcome": outcome, "doku_status": r.DokuStatus, "amount": r.AmountText}})
			cur.KeepSchedule(now, s.cfg.Check)
			return outcome
		}
	}
	return s.store.RecordNotification(ctx, n, apply)
}
