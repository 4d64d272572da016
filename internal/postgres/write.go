package postgres

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/merchant/o2o/internal/invoice"
)

// writeChanges is what stores everything a decision did to an invoice since it was read — new and
// identified payments, attention items flagged or settled, the invoice's own state, and its entry in
// the log: the events that tell the merchant's systems, with the change's history — as one statement
// per kind of change, all sent in the transaction's last round trip. Nothing is sent for what did not
// change.
func (s *Store) writeChanges(l *locked) []stmt {
	inv := l.Invoice
	now := s.now().UTC()
	var sts []stmt
	newPayments := inv.Payments[l.readPayments:]
	if len(newPayments) > 0 {
		sts = append(sts, insertPayments(inv.ID, newPayments, now))
	}
	for i, p := range inv.Payments[:l.readPayments] {
		if p.DedupeKey != l.readKeys[i] {
			sts = append(sts, updatePayment(p))
		}
	}
	for _, r := range inv.ResolvedAttention {
		sts = append(sts, resolveBySystem(r))
	}
	if mutableState(inv) != l.readState || len(newPayments) > 0 {
		sts = append(sts, s.updateInvoice(inv, now))
	}
	// Last, so that the events carry the invoice as everything above left it.
	if len(inv.NewChanges) > 0 || len(inv.NewEvents) > 0 {
		sts = append(sts, appendLog(inv, now))
	}
	if len(inv.NewAttention) > 0 {
		sts = append(sts, insertAttention(inv, inv.NewAttention, now))
	}
	return sts
}

// jsonText encodes v for a jsonb parameter.
func jsonText(v any) (string, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("postgres: encode json: %w", err)
	}
	return string(raw), nil
}

var insertPaymentsStmt = compile(`
		INSERT INTO payments (invoice_id, dedupe_key, amount, paid_at, source, doku_request_id, identifiers, created_at)
		SELECT @invoice_id, key, amount, paid_at, source, request_id, ids::jsonb, @now
		FROM unnest(@key::text[], @amount::bigint[], @paid_at::timestamptz[], @source::text[], @request_id::text[], @ids::text[])
			AS p(key, amount, paid_at, source, request_id, ids)`)

func insertPayments(invoiceID int64, ps []invoice.Payment, now time.Time) stmt {
	n := len(ps)
	key, amount, paidAt, source, requestID, ids := make([]string, n), make([]int64, n), make([]time.Time, n), make([]string, n), make([]string, n), make([]string, n)
	for i := range ps {
		p := &ps[i]
		p.CreatedAt = now
		key[i], amount[i], paidAt[i], source[i], requestID[i] = p.DedupeKey, p.Amount, p.PaidAt, string(p.Source), p.RequestID
		var err error
		if ids[i], err = jsonText(identifiers(p.Identifiers)); err != nil {
			return stmt{err: err}
		}
	}
	return insertPaymentsStmt.with(pgx.NamedArgs{"invoice_id": invoiceID, "now": now, "key": key, "amount": amount, "paid_at": paidAt,
		"source": source, "request_id": requestID, "ids": ids})
}

var updatePaymentStmt = compile(`UPDATE payments SET dedupe_key = @key, identifiers = @ids::jsonb, paid_at = @paid_at,
			doku_request_id = @request_id WHERE id = @id`)

// updatePayment writes back a payment a notification has identified.
func updatePayment(p invoice.Payment) stmt {
	ids, err := jsonText(identifiers(p.Identifiers))
	if err != nil {
		return stmt{err: err}
	}
	return updatePaymentStmt.with(pgx.NamedArgs{"id": p.ID, "key": p.DedupeKey, "ids": ids, "paid_at": p.PaidAt, "request_id": p.RequestID})
}

func identifiers(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

var resolveBySystemStmt = compile(`UPDATE attention_items SET state = 'resolved', resolved_at = now(), resolved_by = 'system', note = @note
		WHERE key = @key AND state = 'open'`)

// resolveBySystem settles an open item whose case has explained itself.
func resolveBySystem(r invoice.Resolution) stmt {
	return resolveBySystemStmt.with(pgx.NamedArgs{"key": r.Key, "note": r.Note})
}

var updateInvoiceStmt = compile(`
		UPDATE invoices SET status = @status, payment_code = @payment_code, how_to_pay_page = @page,
			how_to_pay_api = @api, expires_at = @expires_at, paid_at = @paid_at, paid_after_expiry = @after_expiry,
			cancelled_at = @cancelled_at, cancel_reason = @cancel_reason, paid_after_cancel = @after_cancel,
			failure_code = @failure_code, failure_message = @failure_message, updated_at = @now,
			expired_by_grace = @by_grace, next_check_at = @next_check_at, next_issue_at = @next_issue_at,
			issue_lease_until = CASE WHEN @lease_held THEN issue_lease_until END
		WHERE id = @id`)

// updateInvoice writes the invoice's state as the decision left it — its next status check and next
// issue attempt included, which the caller planned. An issue lease is only ever given up here (its
// time is the database's, set by the claims).
func (s *Store) updateInvoice(inv *invoice.Invoice, now time.Time) stmt {
	var paymentCode *string
	if inv.PaymentCode != "" {
		paymentCode = &inv.PaymentCode
	}
	inv.UpdatedAt = now
	return updateInvoiceStmt.with(pgx.NamedArgs{"id": inv.ID, "status": inv.Status, "payment_code": paymentCode, "page": inv.HowToPayPage,
		"api": inv.HowToPayAPI, "expires_at": inv.ExpiresAt, "paid_at": inv.PaidAt, "after_expiry": inv.PaidAfterExpiry,
		"cancelled_at": inv.CancelledAt, "cancel_reason": inv.CancelReason, "after_cancel": inv.PaidAfterCancel,
		"failure_code": inv.FailureCode, "failure_message": inv.FailureMessage, "now": now, "by_grace": inv.ExpiredByGrace,
		"next_check_at": inv.NextCheckAt, "next_issue_at": inv.NextIssueAt, "lease_held": inv.IssueLeaseHeld})
}

// state is the part of an invoice a decision may change; comparing it tells whether to write.
type state struct {
	status                           invoice.Status
	code, page, api, failCode, failM string
	expiresAt, paidAt, nextCheckAt   time.Time
	nextIssueAt                      time.Time
	afterExpiry, byGrace, leaseHeld  bool
	cancelledAt                      time.Time
	cancelReason                     string
	afterCancel                      bool
}

func mutableState(inv *invoice.Invoice) state {
	st := state{status: inv.Status, code: inv.PaymentCode, page: inv.HowToPayPage, api: inv.HowToPayAPI,
		failCode: inv.FailureCode, failM: inv.FailureMessage, afterExpiry: inv.PaidAfterExpiry,
		byGrace: inv.ExpiredByGrace, nextIssueAt: inv.NextIssueAt, leaseHeld: inv.IssueLeaseHeld,
		cancelReason: inv.CancelReason, afterCancel: inv.PaidAfterCancel}
	for _, t := range []struct {
		from *time.Time
		to   *time.Time
	}{{inv.ExpiresAt, &st.expiresAt}, {inv.PaidAt, &st.paidAt}, {inv.NextCheckAt, &st.nextCheckAt}, {inv.CancelledAt, &st.cancelledAt}} {
		if t.from != nil {
			*t.to = *t.from
		}
	}
	return st
}
