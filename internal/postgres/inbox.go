package postgres

import (
	"context"
	"time"

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
	rec := &inboxEntry{n: n, apply: apply, outcome: invoice.OutcomeMalformed}
	number := n.InvoiceNumber
	if apply == nil {
		number = "" // nothing to lock: the body could not be read
	}
	err := s.lockedTx(ctx, number, []stmt{rec.upsert()}, func(l *locked) ([]stmt, error) { return s.process(rec, l), nil })
	if err != nil {
		return "", nil, false, err
	}
	n.ID = rec.id
	if rec.redelivery {
		return rec.prior, nil, true, nil
	}
	return rec.outcome, rec.inv, false, nil
}

// inboxEntry is one notification on its way through RecordNotification.
type inboxEntry struct {
	n     *invoice.Notification
	apply func(*invoice.Invoice) invoice.Outcome

	// From the inbox row: its id, the outcome stored before this delivery and the delivery count.
	id         int64
	prior      invoice.Outcome
	deliveries int

	outcome    invoice.Outcome
	inv        *invoice.Invoice
	redelivery bool // a settled notification delivered again: only its count changed
}

// upsert stores the notification, or counts one more delivery of it.
func (e *inboxEntry) upsert() stmt {
	n := e.n
	return stmt{
		sql: `INSERT INTO notifications (doku_request_id, invoice_number, headers, body, body_sha256, outcome)
			VALUES (@request_id, @invoice_number, @headers, @body, @digest, @outcome)
			ON CONFLICT (doku_request_id, body_sha256) DO UPDATE
				SET deliveries = notifications.deliveries + 1, last_received_at = now()
			RETURNING id, outcome, deliveries`,
		args: []any{pgx.NamedArgs{"request_id": n.RequestID, "invoice_number": n.InvoiceNumber, "headers": n.Headers,
			"body": n.Body, "digest": n.BodyDigest(), "outcome": invoice.OutcomeMalformed}},
		scan: func(row pgx.Row) error { return row.Scan(&e.id, &e.prior, &e.deliveries) },
	}
}

// process decides what the notification does, given its invoice locked (l is nil when there is no
// such invoice), and returns the statements that do it, ending with the inbox row's outcome.
func (s *Store) process(e *inboxEntry, l *locked) []stmt {
	if e.deliveries > 1 && !retried(e.prior) {
		e.redelivery = true
		return nil
	}
	n := e.n
	var then []stmt
	var invoiceID *int64
	switch {
	case e.apply == nil:
		then = append(then, e.flag("unreadable:", invoice.ReasonUnreadableNotification, map[string]any{"error": n.InvalidReason}, s.now().UTC()))
	case l == nil:
		e.outcome = invoice.OutcomeUnknownInvoice
		then = append(then, e.flag("unknown:", invoice.ReasonUnknownInvoice, map[string]any{}, s.now().UTC()))
	default:
		e.outcome = e.apply(l.Invoice)
		e.inv, invoiceID = l.Invoice, &l.ID
		if e.deliveries > 1 {
			// Read now where it could not be before: the item it raised has explained itself.
			l.ResolvedAttention = append(l.ResolvedAttention,
				invoice.Resolution{Key: "unreadable:" + n.EvidenceKey(), Note: "read on a later delivery"},
				invoice.Resolution{Key: "unknown:" + n.EvidenceKey(), Note: "the invoice was found on a later delivery"})
		}
		then = s.writeChanges(l)
	}
	return append(then, stmt{sql: `UPDATE notifications SET outcome = $2, invoice_id = $3 WHERE id = $1`,
		args: []any{e.id, e.outcome, invoiceID}})
}

// flag raises an attention item about a notification that has no invoice to go with; its key makes a
// redelivery of the same notification raise nothing new.
func (e *inboxEntry) flag(keyPrefix string, reason invoice.Reason, evidence map[string]any, now time.Time) stmt {
	evidence["notification_id"], evidence["doku_request_id"] = e.id, e.n.RequestID
	return insertAttention(nil, []invoice.Attention{{Key: keyPrefix + e.n.EvidenceKey(), Reason: reason,
		InvoiceNumber: e.n.InvoiceNumber, Source: invoice.SourceWebhook, Evidence: evidence}}, now)
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
