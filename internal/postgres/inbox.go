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
// The inbox row is read after the invoice's row lock is taken — a concurrent delivery of the same
// notification has committed by then, and is seen — and written once, with its outcome, in the
// transaction's last round trip. Two deliveries for an invoice we do not have take no lock and may
// both find no row: the upsert counts the second, and the attention item's key raises it once.
func (s *Store) RecordNotification(ctx context.Context, n *invoice.Notification, apply func(*invoice.Invoice) invoice.Outcome) (invoice.Outcome, *invoice.Invoice, bool, error) {
	rec := &inboxEntry{n: n, apply: apply, outcome: invoice.OutcomeMalformed}
	// An unreadable body's number is the one it seems to name (nothing is decided on it), but the
	// attention item it raises is published as an event of that invoice, so it is written under the
	// invoice's row lock like every other change of it: a stream follows an invoice's events by
	// sequence number, and one numbered before an event it has sent but committed after it was lost.
	err := s.lockedTx(ctx, n.InvoiceNumber, rec.read(), func(l *locked) ([]stmt, error) { return s.process(rec, l), nil })
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

	// From the inbox: whether the notification was seen before, its row's id (a new one's, drawn from
	// the sequence, when not) and the outcome stored then.
	seen  bool
	id    int64
	prior invoice.Outcome
	// payments are those of the invoice, read with the inbox under its lock (stmt.payments).
	payments []paymentRow

	outcome    invoice.Outcome
	inv        *invoice.Invoice
	redelivery bool // a settled notification delivered again: only its count changed
}

// read looks the notification up in the inbox and, if it is new, draws the id it will get (an
// attention item it raises names it, in the same round trip as the row), and reads the payments of
// its invoice, locked by then: one statement, and the sequence is touched only for a new one.
func (e *inboxEntry) read() []stmt {
	return []stmt{{
		sql: `SELECT (SELECT ` + paymentsOfI + ` FROM invoices i WHERE i.invoice_number = $3),
				coalesce(n.id, nextval(pg_get_serial_sequence('notifications', 'id'))), n.id IS NOT NULL, coalesce(n.outcome, '')
			FROM (SELECT) AS one LEFT JOIN notifications n ON n.doku_request_id = $1 AND n.body_sha256 = $2`,
		args:     []any{e.n.RequestID, e.n.BodyDigest(), e.n.InvoiceNumber},
		scan:     func(row pgx.Row) error { return row.Scan(&e.payments, &e.id, &e.seen, &e.prior) },
		payments: &e.payments}}
}

// upsertInbox stores a notification. Its invoice is its invoice_number: invoice_id, which the release
// before this one also wrote, is left empty (a foreign-key check per notification that no query
// needed; a later release drops the column).
var upsertInbox = compile(`
	INSERT INTO notifications (id, doku_request_id, invoice_number, headers, body, body_sha256, outcome)
	OVERRIDING SYSTEM VALUE
	VALUES (@id, @request_id, @invoice_number, @headers, @body, @digest, @outcome)
	ON CONFLICT (doku_request_id, body_sha256) DO UPDATE
		SET deliveries = notifications.deliveries + 1, last_received_at = now(), outcome = excluded.outcome`)

// write stores the notification with its outcome, or counts one more delivery of it.
func (e *inboxEntry) write() stmt {
	n := e.n
	return upsertInbox.with(pgx.NamedArgs{"id": e.id, "request_id": n.RequestID, "invoice_number": n.InvoiceNumber,
		"headers": n.Headers, "body": n.Body, "digest": n.BodyDigest(), "outcome": e.outcome})
}

// process decides what the notification does, given its invoice locked (l is nil when there is no
// such invoice), and returns the statements that do it, the inbox row among them.
func (s *Store) process(e *inboxEntry, l *locked) []stmt {
	if e.seen && !retried(e.prior) {
		e.redelivery = true
		return []stmt{{sql: `UPDATE notifications SET deliveries = deliveries + 1, last_received_at = now() WHERE id = $1`,
			args: []any{e.id}}}
	}
	n := e.n
	var then []stmt
	switch {
	case e.apply == nil:
		var inv *invoice.Invoice
		if l != nil {
			inv = l.Invoice
		}
		then = append(then, e.flag(inv, "unreadable:", invoice.ReasonUnreadableNotification, map[string]any{"error": n.InvalidReason}, s.now().UTC()))
	case l == nil:
		e.outcome = invoice.OutcomeUnknownInvoice
		then = append(then, e.flag(nil, "unknown:", invoice.ReasonUnknownInvoice, map[string]any{}, s.now().UTC()))
	default:
		e.outcome = e.apply(l.Invoice)
		e.inv = l.Invoice
		if e.seen {
			// Read now where it could not be before: the item it raised has explained itself.
			l.ResolvedAttention = append(l.ResolvedAttention,
				invoice.Resolution{Key: "unreadable:" + n.EvidenceKey(), Note: "read on a later delivery"},
				invoice.Resolution{Key: "unknown:" + n.EvidenceKey(), Note: "the invoice was found on a later delivery"})
		}
		then = s.writeChanges(l)
	}
	return append(then, e.write())
}

// flag raises an attention item about a notification that no invoice's change goes with — about inv
// when its body names one of ours (locked by the caller), else about none; its key makes a
// redelivery of the same notification raise nothing new.
func (e *inboxEntry) flag(inv *invoice.Invoice, keyPrefix string, reason invoice.Reason, evidence map[string]any, now time.Time) stmt {
	evidence["notification_id"], evidence["doku_request_id"] = e.id, e.n.RequestID
	return insertAttention(inv, []invoice.Attention{{Key: keyPrefix + e.n.EvidenceKey(), Reason: reason,
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
	w := newFilter(pgx.NamedArgs{"limit": f.Limit + 1})
	if flagged(f.Outcomes) {
		// Written out, so that the planner can use the partial index of the flagged ones.
		w.conds = append(w.conds, flaggedOutcomes)
	} else {
		w.when(len(outcomes) > 0, "outcome = ANY(@outcomes)", "outcomes", outcomes)
	}
	w.when(f.InvoiceNumber != "", "invoice_number = @invoice_number", "invoice_number", f.InvoiceNumber).
		when(after != nil, "id < @after", "after", after)
	rows, err := s.pool.Query(ctx, `
		SELECT id, doku_request_id, invoice_number, headers, body, outcome, deliveries, received_at, last_received_at
		FROM notifications `+w.where()+` ORDER BY id DESC LIMIT @limit`, w.args)
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

// flaggedOutcomes is the condition of notifications_flagged_idx (migration 00017), word for word: the
// outcomes a person must look at (invoice.Outcome.Mismatch). TestFlaggedIndexFollowsTheOutcomes holds
// the two to each other.
const flaggedOutcomes = `outcome IN ('amount_mismatch', 'channel_mismatch', 'code_mismatch', 'invoice_mismatch', 'unidentified_payment')`

// flagged reports whether os is exactly the set of mismatch outcomes (?outcome=flagged), in any order.
func flagged(os []invoice.Outcome) bool {
	seen := map[invoice.Outcome]bool{}
	for _, o := range os {
		if !o.Mismatch() {
			return false
		}
		seen[o] = true
	}
	n := 0
	for _, o := range invoice.NotificationOutcomes {
		if o.Mismatch() {
			n++
		}
	}
	return n > 0 && len(seen) == n
}
