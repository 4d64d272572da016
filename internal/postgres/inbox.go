package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/merchant/o2o/internal/invoice"
)

// RecordNotification stores a verified notification in the inbox and, in the same transaction, applies
// it to its invoice with apply (nil for a body that could not be parsed). DOKU's Request-Id makes it
// exactly-once: a redelivery of a notification whose outcome is settled only counts the delivery and
// reports redelivered; one that found no invoice or no confirmed code yet is tried again, since the
// invoice may be ready now. The outcome is stored with the notification.
func (s *Store) RecordNotification(ctx context.Context, n *invoice.Notification, apply func(*invoice.Invoice) invoice.Outcome) (invoice.Outcome, *invoice.Invoice, bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return "", nil, false, classify(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit this is a no-op

	var id int64
	err = tx.QueryRow(ctx, `
		INSERT INTO notifications (doku_request_id, invoice_number, headers, body, outcome)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (doku_request_id) DO NOTHING
		RETURNING id`, n.RequestID, n.InvoiceNumber, n.Headers, n.Body, invoice.OutcomeMalformed).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		// Seen before. A concurrent first delivery has committed by now: ON CONFLICT waited for it.
		var prior invoice.Outcome
		if err := tx.QueryRow(ctx, `
			UPDATE notifications SET deliveries = deliveries + 1, last_received_at = now()
			WHERE doku_request_id = $1 RETURNING id, outcome`, n.RequestID).Scan(&id, &prior); err != nil {
			return "", nil, false, classify(err)
		}
		if prior != invoice.OutcomeUnknownInvoice && prior != invoice.OutcomeNotIssued {
			return prior, nil, true, classify(tx.Commit(ctx))
		}
	} else if err != nil {
		return "", nil, false, classify(err)
	}

	outcome := invoice.OutcomeMalformed
	var inv *invoice.Invoice
	if apply != nil {
		inv, err = s.lockAndApply(ctx, tx, n.InvoiceNumber, func(inv *invoice.Invoice) error {
			outcome = apply(inv)
			return nil
		})
		switch {
		case invoice.ErrorCode(err) == invoice.CodeNotFound:
			outcome = invoice.OutcomeUnknownInvoice
		case err != nil:
			return "", nil, false, err
		}
	}
	var invoiceID *int64
	if inv != nil {
		invoiceID = &inv.ID
	}
	if _, err := tx.Exec(ctx, `UPDATE notifications SET outcome = $2, invoice_id = $3 WHERE id = $1`, id, outcome, invoiceID); err != nil {
		return "", nil, false, classify(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return "", nil, false, classify(err)
	}
	if inv != nil {
		s.countTransitions(inv)
	}
	n.ID = id
	return outcome, inv, false, nil
}

// ListNotifications returns inbox entries newest first, optionally only those with the given
// outcomes or for one invoice, with the keyset cursor of the next page.
func (s *Store) ListNotifications(ctx context.Context, f invoice.NotificationFilter) ([]*invoice.Notification, string, error) {
	var after *int64
	if f.Cursor != "" {
		id, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", ErrBadCursor
		}
		after = &id
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
	next := ""
	if len(items) > f.Limit {
		items = items[:f.Limit]
		next = encodeCursor(items[len(items)-1].ID)
	}
	return items, next, nil
}
