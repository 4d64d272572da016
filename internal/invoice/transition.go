package invoice

import (
	"fmt"
	"time"
)

// Outcome is what applying a payment report did. The webhook answers and logs by it, and later the
// notification inbox stores it.
type Outcome string

const (
	OutcomeApplied         Outcome = "applied"
	OutcomeDuplicate       Outcome = "duplicate"
	OutcomeAmountMismatch  Outcome = "amount_mismatch"
	OutcomeChannelMismatch Outcome = "channel_mismatch"
	OutcomeCodeMismatch    Outcome = "code_mismatch"
	OutcomeIgnoredStatus   Outcome = "ignored_status"
	OutcomeNotIssued       Outcome = "not_issued"
	// OutcomeInvoiceMismatch: a status answer about another invoice than the one asked for.
	OutcomeInvoiceMismatch Outcome = "invoice_mismatch"
	// OutcomeUnidentified: a payment of a reusable code reported with neither a time nor a store
	// transaction id, so it cannot be told apart from the others.
	OutcomeUnidentified Outcome = "unidentified_payment"
)

// Mismatch reports whether o is a disagreement between DOKU and our record that a person must look
// at: retrying cannot fix it, and it must never mark the invoice paid.
func (o Outcome) Mismatch() bool {
	switch o {
	case OutcomeAmountMismatch, OutcomeChannelMismatch, OutcomeCodeMismatch, OutcomeInvoiceMismatch, OutcomeUnidentified:
		return true
	}
	return false
}

// DOKU transaction statuses (REFERENCE.md §4, §5).
const (
	DokuSuccess = "SUCCESS"
	DokuFailed  = "FAILED"
	DokuPending = "PENDING"
	DokuExpired = "EXPIRED"
)

// PaymentReport is what DOKU said about a payment, from a notification or a status check, already
// translated out of DOKU's wire format.
type PaymentReport struct {
	InvoiceNumber string
	Channel       Channel // "" when the report did not say
	PaymentCode   string  // "" when the report did not say (status responses omit it)
	Amount        int64
	DokuStatus    string
	PaidAt        time.Time
	RequestID     string // the Request-Id of the notification itself
	// OriginalRequestID is the Request-Id we generated the code with, as DOKU echoes it.
	OriginalRequestID string
	Identifiers       map[string]string
	Source            Source
}

// ApplyPayment is the one state change for "DOKU says money arrived". Every path that learns of a
// payment calls it inside a row-locked transaction, so the rules and the dedupe are the same whoever
// sees the payment first. It returns what it did; only OutcomeApplied changed inv.
func (inv *Invoice) ApplyPayment(r PaymentReport, now time.Time) Outcome {
	if r.DokuStatus != DokuSuccess {
		return OutcomeIgnoredStatus
	}
	if r.InvoiceNumber != "" && r.InvoiceNumber != inv.Number {
		return OutcomeInvoiceMismatch
	}
	if r.Channel != "" && r.Channel != inv.Channel {
		return OutcomeChannelMismatch
	}
	if inv.Status == StatusCreating || inv.Status == StatusFailed {
		// We hold no code to compare against. A resumer finishes creating invoices, after which a
		// redelivery applies normally; a payment against a failed invoice needs a person.
		return OutcomeNotIssued
	}
	if r.PaymentCode != "" && r.PaymentCode != inv.PaymentCode {
		return OutcomeCodeMismatch
	}
	if r.Amount != inv.Amount {
		return OutcomeAmountMismatch
	}

	if !inv.Reusable && inv.Status == StatusPaid {
		return OutcomeDuplicate
	}
	key := r.dedupeKey(inv.Reusable)
	if key == "" {
		return OutcomeUnidentified
	}
	for _, p := range inv.Payments {
		if p.DedupeKey == key || inv.Reusable && r.samePayment(p) {
			return OutcomeDuplicate
		}
	}

	paidAt := r.PaidAt
	if paidAt.IsZero() {
		paidAt = now
	}
	inv.Record(Event{Source: r.Source, Kind: EventPayment, Detail: map[string]any{
		"amount": r.Amount, "paid_at": paidAt.UTC(), "identifiers": r.Identifiers, "doku_request_id": r.RequestID}})
	inv.Payments = append(inv.Payments, Payment{
		DedupeKey:   key,
		Amount:      r.Amount,
		PaidAt:      paidAt.UTC(),
		Source:      r.Source,
		RequestID:   r.RequestID,
		Identifiers: r.Identifiers,
	})
	if inv.Status == StatusExpired {
		inv.PaidAfterExpiry = true
	}
	if inv.PaidAt == nil {
		t := paidAt.UTC()
		inv.PaidAt = &t
	}
	if inv.Status != StatusPaid {
		inv.moveTo(StatusPaid, r.Source, map[string]any{"paid_after_expiry": inv.PaidAfterExpiry})
	}
	return OutcomeApplied
}

// dedupeKey identifies the payment itself in storage, where a unique constraint backs it. A
// single-use code can be paid once, so the invoice is the key. A reusable code's payments are keyed by
// the store's transaction id when DOKU gives one, else by time and amount, else (a notification) by
// its Request-Id; "" when none is known.
func (r PaymentReport) dedupeKey(reusable bool) string {
	switch trx := r.Identifiers["AGENT_TRX_ID"]; {
	case !reusable:
		return "single"
	case trx != "":
		return "trx:" + trx
	case !r.PaidAt.IsZero():
		return fmt.Sprintf("at:%s|%d", r.PaidAt.UTC().Format(time.RFC3339Nano), r.Amount)
	case r.RequestID != "":
		return "req:" + r.RequestID
	}
	return ""
}

// samePayment recognises one payment of a reusable code reported by two paths. Notifications carry
// the store's transaction id, DOKU's check status shows only AGENT_ID: so the transaction ids decide
// when both reports have one, and time and amount (the same in every report of a payment) otherwise.
func (r PaymentReport) samePayment(p Payment) bool {
	rTrx, pTrx := r.Identifiers["AGENT_TRX_ID"], p.Identifiers["AGENT_TRX_ID"]
	if rTrx != "" && pTrx != "" {
		return rTrx == pTrx
	}
	return !r.PaidAt.IsZero() && r.PaidAt.Equal(p.PaidAt) && r.Amount == p.Amount
}

// Issued is what DOKU returned for a generated payment code.
type Issued struct {
	PaymentCode  string
	HowToPayPage string
	HowToPayAPI  string
	ExpiresAt    time.Time
}

// MarkIssued moves a creating invoice to pending with its code. It reports false, changing nothing,
// when the invoice has already left creating (another request or the resumer finished it first).
func (inv *Invoice) MarkIssued(is Issued, source Source) bool {
	if inv.Status != StatusCreating {
		return false
	}
	inv.moveTo(StatusPending, source, nil)
	inv.PaymentCode = is.PaymentCode
	inv.HowToPayPage = is.HowToPayPage
	inv.HowToPayAPI = is.HowToPayAPI
	t := is.ExpiresAt.UTC()
	inv.ExpiresAt = &t
	return true
}

// MarkFailed records DOKU's definite refusal to issue a code. Like MarkIssued it only moves a
// creating invoice.
func (inv *Invoice) MarkFailed(code, message string, source Source) bool {
	if inv.Status != StatusCreating {
		return false
	}
	inv.moveTo(StatusFailed, source, map[string]any{"message": message})
	inv.FailureCode = code
	inv.FailureMessage = message
	return true
}

// Outcomes of a status check that did not report a payment.
const (
	OutcomeExpired   Outcome = "expired"
	OutcomeUnchanged Outcome = "unchanged"
)

// ApplyCheck applies what DOKU's check status said, through the same rules as a notification: a
// SUCCESS is a payment (ApplyPayment); EXPIRED expires a pending invoice; PENDING leaves it, unless
// our own clock is past its expiry by more than grace — DOKU may never say EXPIRED, and an invoice
// must not wait forever. A payment reported later still applies (paid after expiry).
func (inv *Invoice) ApplyCheck(r PaymentReport, now time.Time, grace time.Duration) Outcome {
	switch r.DokuStatus {
	case DokuSuccess:
		return inv.ApplyPayment(r, now)
	case DokuExpired:
		switch {
		case inv.Status == StatusPending:
			inv.moveTo(StatusExpired, r.Source, map[string]any{"reason": "DOKU reports the code expired"})
			return OutcomeExpired
		case inv.Status == StatusExpired && inv.ExpiredByGrace:
			// DOKU now confirms what our grace period assumed: the invoice is final.
			inv.ExpiredByGrace = false
			inv.Record(Event{Source: r.Source, Kind: EventStatus, From: StatusExpired, To: StatusExpired,
				Detail: map[string]any{"reason": "DOKU confirms the code expired"}})
		}
	case DokuPending:
		if inv.Status == StatusPending && inv.ExpiresAt != nil && now.After(inv.ExpiresAt.Add(grace)) {
			inv.moveTo(StatusExpired, r.Source, map[string]any{"reason": "past expiry and grace period while DOKU still reports PENDING"})
			inv.ExpiredByGrace = true
			return OutcomeExpired
		}
	default:
		return OutcomeIgnoredStatus
	}
	return OutcomeUnchanged
}
