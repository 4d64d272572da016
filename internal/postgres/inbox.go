package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/merchant/o2o/internal/invoice"
)

// RecordNotification stores a verified notification in the inbox and, in the same transaction, applies
// it to its invoice with apply (nil for a body that could not be parsed). DOKU's Request-Id makes it
// exactly-once: a redelivery of a notification whose outcome is settled only counts the delivery and
// reports redelivered; one that found no invoice or no confirmed code yet is tried again, since the
// invoice may be ready now. The outcome is stored with the notification.
//
// The inbox row is an upsert whose RETURNING says whether this Request-Id is new: a concurrent
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
		sql: `INSERT INTO notifications (doku_request_id, invoice_number, headers, body, outcome)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (doku_request_id) DO UPDATE
				SET deliveries = notifications.deliveries + 1, last_received_at = now()
			RETURNING id, outcome, deliveries`,
		args: []any{n.RequestID, n.InvoiceNumber, n.Headers, n.Body, invoice.OutcomeMalformed},
		scan: func(row pgx.Row) error { return row.Scan(&id, &prior, &deliveries) },
	}
	number := n.InvoiceNumber
	if apply == nil {
		number = "" // nothing to lock: the body could not be read
	}
	err := s.lockedTx(ctx, number, []stmt{upsert}, func(l *locked) ([]stmt, error) {
		if deliveries > 1 && prior != invoice.OutcomeUnknownInvoice && prior != invoice.OutcomeNotIssued {
			redeliver = true
			return nil, nil // only the delivery count changes
		}
		var then []stmt
		var invoiceID *int64
		switch {
		case apply == nil:
		case l == nil:
			outcome = invoice.OutcomeUnknownInvoice
		default:
			outcome = apply(l.Invoice)
			inv, invoiceID = l.Invoice, &l.ID
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
	if inv != nil {
		s.countTransitions(inv)
	}
	return outcome, inv, false, nil
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
