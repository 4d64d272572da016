package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/merchant/o2o/internal/invoice"
)

// RecordNotification stores a verified notification in the inbox and, in the same transaction, applies
// it to its invoice with apply (nil for a body that could not be read). A notification is its
// Request-Id and body: a redelivery of one whose outcome is settled only counts the delivery and
// reports redelivered; one that could not be read, found no invoice or no confirmed code yet is
// processed again, since a fix or the invoice may be there now; a new body under a Request-Id already
// seen is a notification of its own. What needs a person — a body we cannot read, a payment for an
// invoice we do not have — is flagged in the same transaction. The outcome is stored with it.
//
// The inbox row is an upsert whose RETURNING says whether the notification is new: a concurrent
// delivery of the same one waits on the row until the first commits, then sees its outcome.
func (s *Store) RecordNotification(ctx context.Context, n *invoice.Notification, apply func(*invoice.Invoice) invoice.Outcome) (invoice.Outcome, *invoice.Invoice, bool, error) {
	var (
		id         int64
		prior      invoice.Outcome
		deliveries int
		outcome    = invoice.OutcomeMalformed
		inv        *invoice.Invoice
		redeliver  bool
	)
	upsert := stmt{
		sql: `INSERT INTO notifications (doku_request_id, invoice_number, headers, body, body_sha256, outcome)
			VALUES (@request_id, @invoice_number, @headers, @body, @digest, @outcome)
			ON CONFLICT (doku_request_id, body_sha256) DO UPDATE
				SET deliveries = notifications.deliveries + 1, last_received_at = now()
			RETURNING id, outcome, deliveries`,
		args: []any{pgx.NamedArgs{"request_id": n.RequestID, "invoice_number": n.InvoiceNumber, "headers": n.Headers,
			"body": n.Body, "digest": n.BodyDigest(), "outcome": invoice.OutcomeMalformed}},
		scan: func(row pgx.Row) error { return row.Scan(&id, &prior, &deliveries) },
	}
	number := n.InvoiceNumber
	if apply == nil {
		number = "" // nothing to lock: the body could not be read
	}
	err := s.lockedTx(ctx, number, []stmt{upsert}, func(l *locked) ([]stmt, error) {
		if deliveries > 1 && !retried(prior) {
			redeliver = true
			return nil, nil // only the delivery count changes
		}
		var then []stmt
		var invoiceID *int64
		switch {
		case apply == nil:
			then = append(then, insertAttention(nil, []invoice.Attention{{Key: "unreadable:" + n.EvidenceKey(),
				Reason: invoice.ReasonUnreadableNotification, InvoiceNumber: n.InvoiceNumber, Source: invoice.SourceWebhook,
				Evidence: map[string]any{"notification_id": id, "doku_request_id": n.RequestID, "error": n.InvalidReason}}}))
		case l == nil:
			outcome = invoice.OutcomeUnknownInvoice
			then = append(then, insertAttention(nil, []invoice.Attention{{Key: "unknown:" + n.EvidenceKey(),
				Reason: invoice.ReasonUnknownInvoice, InvoiceNumber: n.InvoiceNumber, Source: invoice.SourceWebhook,
				Evidence: map[string]any{"notification_id": id, "doku_request_id": n.RequestID}}}))
		default:
			outcome = apply(l.Invoice)
			inv, invoiceID = l.Invoice, &l.ID
			if deliveries > 1 {
				// Read now where it could not be before: the item it raised has explained itself.
				l.ResolvedAttention = append(l.ResolvedAttention,
					invoice.Resolution{Key: "unreadable:" + n.EvidenceKey(), Note: "read on a later delivery"},
					invoice.Resolution{Key: "unknown:" + n.EvidenceKey(), Note: "the invoice was found on a later delivery"})
			}
			then = s.writeChanges(l)
		}
		return append(then, stmt{sql: `UPDATE notifications SET outcome = $2, invoice_id = $3 WHERE id = $1`,
			args: []any{id, outcome, invoiceID}}), nil
	})
	if err != nil {
		return "", nil, false, err
	}
	n.ID = id
	if redeliver {
		return prior, nil, true, nil
	}
	return outcome, inv, false, nil
}

// retried reports whether a redelivery of a notification that had outcome o is processed again: it
// could not be read, or had nothing to apply to yet — a deploy or the invoice may have changed that.
func retried(o invoice.Outcome) bool {
	return o == invoice.OutcomeMalformed || o == invoice.OutcomeUnknownInvoice || o == invoice.OutcomeNotIssued
}

// ListNotifications returns inbox entries newest first, optionally only those with the given
// outcomes or for one invoice, with the keyset cursor of the next page.
func (s *Store) ListNotifications(ctx context.Context, f invoice.NotificationFilter) ([]*invoice.Notification, string, error) {
	after, err := afterCursor(f.Cursor)
	if err != nil {
		return nil, "", err
	}
	outcomes := make([]string, len(f.Outcomes))
	for i, o := range f.Outcomes {
		outcomes[i] = string(o)
	}
	var number *string
	if f.InvoiceNumber != "" {
		number = &f.InvoiceNumber
	}
	rows, err := s.pool.Query(ctx, `
		SELECT id, doku_request_id, invoice_number, headers, body, outcome, deliveries, received_at, last_received_at
		FROM notifications
		WHERE (cardinality($1::text[]) = 0 OR outcome = ANY($1)) AND ($2::text IS NULL OR invoice_number = $2)
		  AND ($3::bigint IS NULL OR id < $3)
		ORDER BY id DESC LIMIT $4`, outcomes, number, after, f.Limit+1)
	if err != nil {
		return nil, "", classify(err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*invoice.Notification, error) {
		var n invoice.Notification
		err := r.Scan(&n.ID, &n.RequestID, &n.InvoiceNumber, &n.Headers, &n.Body, &n.Outcome, &n.Deliveries, &n.ReceivedAt, &n.LastReceivedAt)
		return &n, err
	})
	if err != nil {
		return nil, "", classify(err)
	}
	items, next := page(items, f.Limit, func(n *invoice.Notification) int64 { return n.ID })
	return items, next, nil
}
