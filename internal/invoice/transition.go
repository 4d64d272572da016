package invoice

import (
	"fmt"
	"time"
)

// DOKU transaction statuses (notifications and check status).
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
	PaymentCode   string  // "" when the report did not say (status answers omit it)
	// Amount is the reported amount when it is a positive whole number of rupiah, else 0 (which no
	// invoice has, so it is a mismatch); AmountText is the amount as reported.
	Amount     int64
	AmountText string
	DokuStatus string
	// PaidAt is when the payment was made, zero when the report did not say or said it in a form we
	// cannot read (DateText keeps what it said): the time we learn of it is used instead.
	PaidAt    time.Time
	DateText  string
	RequestID string // the Request-Id of the notification itself
	// OriginalRequestID is the Request-Id we generated the code with, as DOKU echoes it.
	OriginalRequestID string
	Identifiers       map[string]string
	Source            Source
	// Anonymous marks a report that says that the code was paid but not which payment it was: DOKU's
	// check status carries no store transaction id, and its date is the code's creation time.
	Anonymous bool
	// EvidenceKey identifies the report itself (a notification's Request-Id and body digest), so that
	// a case it shows is flagged once however often it is delivered. Empty for status checks, whose
	// cases are identified by what they report.
	EvidenceKey string
}

// placeholderKey is the dedupe key of a payment that only a status check has reported: at most one
// such payment exists (a check adds nothing once any payment is recorded), and the first notification
// that names a payment takes it over.
const placeholderKey = "poll"

// identity is how a report names the payment it reports, "" for an anonymous report. The store's
// transaction id (AGENT_TRX_ID) names a payment across every report of it; without one, a
// notification's payment time and amount do, and failing both its Request-Id (the same in every
// redelivery).
func (r PaymentReport) identity() string {
	switch trx := r.Identifiers["AGENT_TRX_ID"]; {
	case r.Anonymous:
		return ""
	case trx != "":
		return "trx:" + KeyText(trx)
	case !r.PaidAt.IsZero():
		return fmt.Sprintf("at:%s|%d", r.PaidAt.UTC().Format(time.RFC3339Nano), r.Amount)
	}
	return "req:" + r.RequestID
}

// ApplyPayment is the one state change for "DOKU says money arrived". Every path that learns of a
// payment calls it inside a row-locked transaction, so the rules and the dedupe are the same whoever
// sees the payment first. Money is never dropped: a payment that needs a decision (after expiry, on a
// failed invoice, a second payment of a single-use code) is recorded and flagged; a report that
// disagrees with the invoice is flagged and changes nothing. It returns what it did.
//
// Which payment a report names: a report with a store transaction id is a payment of its own unless
// a payment with that id is recorded; so is a notification without one, by its time and amount (or
// Request-Id). An anonymous report (a status check) adds a payment only when none is recorded — it
// cannot tell a second payment from the first — and the next named report takes that payment over
// instead of adding another, so neither order of webhook and poll counts one payment twice. A
// single-use code's second payment is recognised only by a second, different transaction id.
func (inv *Invoice) ApplyPayment(r PaymentReport, now time.Time) Outcome {
	if r.DokuStatus != DokuSuccess {
		return OutcomeIgnoredStatus
	}
	if o := inv.disagreement(r); o != "" {
		inv.flagReport(o, r)
		return o
	}
	if inv.Status == StatusCreating {
		// No code to compare against yet: the resumer finishes the invoice, after which DOKU's
		// redelivery (or the reconciler) applies normally.
		return OutcomeNotIssued
	}
	id := r.identity()
	if id == "" && len(inv.Payments) > 0 {
		return OutcomeDuplicate
	}
	if id != "" {
		for _, p := range inv.Payments {
			if p.DedupeKey == id {
				return OutcomeDuplicate
			}
		}
		if i := inv.placeholder(); i >= 0 {
			inv.identify(i, r, id)
			return OutcomeIdentified
		}
		if !inv.Reusable && len(inv.Payments) > 0 && !inv.provablySecond(r) {
			return OutcomeDuplicate
		}
	}
	inv.record(r, id, now)
	return OutcomeApplied
}

// aboutAnother is the mismatch outcome of a report that names another invoice, or another code than
// this invoice's, or "" when it names this one (or neither).
func (inv *Invoice) aboutAnother(r PaymentReport) Outcome {
	switch {
	case r.InvoiceNumber != "" && r.InvoiceNumber != inv.Number:
		return OutcomeInvoiceMismatch
	case r.PaymentCode != "" && inv.PaymentCode != "" && r.PaymentCode != inv.PaymentCode:
		return OutcomeCodeMismatch
	}
	return ""
}

// disagreement is the mismatch outcome of a report that does not describe this invoice's payment,
// or "" when it does.
func (inv *Invoice) disagreement(r PaymentReport) Outcome {
	switch {
	case r.InvoiceNumber != "" && r.InvoiceNumber != inv.Number:
		return OutcomeInvoiceMismatch
	case r.Channel != "" && r.Channel != inv.Channel:
		return OutcomeChannelMismatch
	case r.PaymentCode != "" && inv.PaymentCode != "" && r.PaymentCode != inv.PaymentCode:
		return OutcomeCodeMismatch
	case r.Amount != inv.Amount:
		return OutcomeAmountMismatch
	}
	return ""
}

// flagReport flags a report that disagrees with the invoice, once per report (a notification) or
// per distinct answer (a status check, asked again and again on schedule).
func (inv *Invoice) flagReport(o Outcome, r PaymentReport) {
	seen := r.EvidenceKey
	if seen == "" {
		seen = fmt.Sprintf("check:%s|%s|%s|%s|%s", r.InvoiceNumber, r.Channel, r.PaymentCode, r.AmountText, r.DokuStatus)
	}
	seen = KeyText(seen)
	inv.Flag(Attention{Key: string(o.reason()) + ":" + inv.Number + ":" + seen, Reason: o.reason(), Source: r.Source,
		Evidence: reportEvidence(inv, r)})
}

// reportEvidence is what a person needs to judge a report against the invoice.
func reportEvidence(inv *Invoice, r PaymentReport) map[string]any {
	ev := map[string]any{
		"invoice_amount": inv.Amount, "invoice_channel": inv.Channel, "invoice_payment_code": inv.PaymentCode,
		"invoice_status":  inv.Status,
		"reported_amount": r.AmountText, "reported_invoice_number": r.InvoiceNumber, "reported_channel": r.Channel,
		"reported_payment_code": r.PaymentCode, "doku_status": r.DokuStatus,
	}
	if r.RequestID != "" {
		ev["doku_request_id"] = r.RequestID
	}
	if len(r.Identifiers) > 0 {
		ev["identifiers"] = r.Identifiers
	}
	if r.DateText != "" {
		ev["reported_date"] = r.DateText
	}
	return ev
}

// placeholder is the index of the payment only a status check has reported, or -1.
func (inv *Invoice) placeholder() int {
	for i, p := range inv.Payments {
		if p.DedupeKey == placeholderKey {
			return i
		}
	}
	return -1
}

// provablySecond reports whether r is certainly another payment than those recorded for a single-use
// code: it and every recorded payment carry store transaction ids, and they differ.
func (inv *Invoice) provablySecond(r PaymentReport) bool {
	if r.Identifiers["AGENT_TRX_ID"] == "" {
		return false
	}
	for _, p := range inv.Payments {
		if p.Identifiers["AGENT_TRX_ID"] == "" {
			return false
		}
	}
	return true
}

// identify gives the payment only a status check had reported the identity r names. It was recorded
// when the check saw it; now a person need not confirm it.
func (inv *Invoice) identify(i int, r PaymentReport, id string) {
	p := &inv.Payments[i]
	p.DedupeKey, p.Identifiers, p.RequestID = id, r.Identifiers, r.RequestID
	if !r.PaidAt.IsZero() {
		// The notification knows when the money came; the check only knew when we learnt of it.
		// (paid_after_expiry, once raised, stays: a person has been asked to look.)
		p.PaidAt = r.PaidAt.UTC()
		first := p.PaidAt
		for _, q := range inv.Payments {
			if q.PaidAt.Before(first) {
				first = q.PaidAt
			}
		}
		inv.PaidAt = &first
	}
	inv.Record(Event{Source: r.Source, Kind: EventPaymentIdentified, Detail: map[string]any{
		"payment_id": p.ID, "identifiers": r.Identifiers, "doku_request_id": r.RequestID}})
	inv.ResolvedAttention = append(inv.ResolvedAttention, Resolution{
		Key:  paymentAttentionKey(inv.Number, placeholderKey, ReasonUnidentifiedPayment),
		Note: "identified by DOKU notification " + r.RequestID})
}

// record adds the payment r reports, moves the invoice to paid and flags what needs a decision.
func (inv *Invoice) record(r PaymentReport, id string, now time.Time) {
	paidAt := r.PaidAt
	if paidAt.IsZero() {
		paidAt = now
	}
	paidAt = paidAt.UTC()
	if id == "" {
		id = placeholderKey
	}
	second := !inv.Reusable && len(inv.Payments) > 0
	// After expiry: paid after the code's expiry time, or reported once the invoice had expired (DOKU
	// said so already; a check cannot say when the money came).
	afterExpiry := inv.Status == StatusExpired || inv.ExpiresAt != nil && paidAt.After(*inv.ExpiresAt)
	inv.Record(Event{Source: r.Source, Kind: EventPayment, Detail: map[string]any{
		"amount": r.Amount, "paid_at": paidAt, "identifiers": r.Identifiers, "doku_request_id": r.RequestID,
		"reported_date": r.DateText, "after_expiry": afterExpiry}})
	inv.Payments = append(inv.Payments, Payment{DedupeKey: id, Amount: r.Amount, PaidAt: paidAt, Source: r.Source,
		RequestID: r.RequestID, Identifiers: r.Identifiers})
	paid := len(inv.Payments) - 1

	inv.flagPayment(r, id, paidAt, second, afterExpiry)
	if inv.PaidAt == nil {
		inv.PaidAt = &paidAt
	}
	// A failed invoice keeps its status: DOKU refused its code, yet money came — the payment is on
	// record and a person decides what the order is now. A cancelled one is paid: the money is the
	// customer's, and the attention item asks whether to refund it or fulfil the order after all.
	// A payment that pays the invoice is one change, told once: invoice.paid, carrying the payment.
	if inv.Status == StatusPending || inv.Status == StatusExpired || inv.Status == StatusCancelled {
		inv.moveTo(StatusPaid, r.Source, map[string]any{"paid_after_expiry": inv.PaidAfterExpiry,
			"paid_after_cancel": inv.PaidAfterCancel})
		inv.NewChanges[len(inv.NewChanges)-1].Payment = paid
		return
	}
	inv.announce(Change{Type: ChangePaymentRecorded, Payment: paid})
}

// flagPayment raises what a payment just recorded needs a person for: money for a failed or a
// cancelled invoice, after expiry, a single-use code's second payment, a payment only a check saw.
func (inv *Invoice) flagPayment(r PaymentReport, id string, paidAt time.Time, second, afterExpiry bool) {
	flag := func(reason Reason) {
		ev := reportEvidence(inv, r)
		ev["paid_at"], ev["total_paid"], ev["payments"] = paidAt, inv.TotalPaid(), len(inv.Payments)
		if inv.ExpiresAt != nil {
			ev["expires_at"] = inv.ExpiresAt.UTC()
		}
		inv.Flag(Attention{Key: paymentAttentionKey(inv.Number, id, reason), Reason: reason, Source: r.Source, Evidence: ev})
	}
	if inv.Status == StatusFailed {
		flag(ReasonPaidWhileFailed)
	}
	if afterExpiry {
		inv.PaidAfterExpiry = true
		flag(ReasonPaidAfterExpiry)
	}
	if inv.Status == StatusCancelled {
		inv.PaidAfterCancel = true
		flag(ReasonPaidAfterCancel)
	}
	if second {
		flag(ReasonSecondPayment)
	}
	if id == placeholderKey && inv.Reusable {
		flag(ReasonUnidentifiedPayment)
	}
}

// paymentAttentionKey identifies the case a recorded payment raised.
func paymentAttentionKey(number, paymentKey string, reason Reason) string {
	return string(reason) + ":" + number + ":payment:" + paymentKey
}

// Issued is what DOKU returned for a generated payment code.
type Issued struct {
	PaymentCode  string
	HowToPayPage string
	HowToPayAPI  string
	ExpiresAt    time.Time
}

// MarkIssued moves a creating invoice to pending with its code. It reports false, changing nothing,
// when the invoice has already left creating (another request or the resumer finished it first) —
// except that an invoice cancelled while its code was being requested keeps the code DOKU issued, as
// cancelled: that code can be paid, and a payment must find its invoice.
func (inv *Invoice) MarkIssued(is Issued, source Source) bool {
	switch {
	case inv.Status == StatusCancelled && inv.PaymentCode == "":
		inv.Record(Event{Source: source, Kind: EventStatus, From: StatusCancelled, To: StatusCancelled,
			Detail: map[string]any{"reason": "DOKU issued the code after the invoice was cancelled", "payment_code": is.PaymentCode}})
		inv.setCode(is)
		return false
	case inv.Status != StatusCreating:
		return false
	}
	inv.moveTo(StatusPending, source, nil)
	inv.setCode(is)
	return true
}

func (inv *Invoice) setCode(is Issued) {
	inv.IssueLeaseHeld = false
	inv.PaymentCode = is.PaymentCode
	inv.HowToPayPage = is.HowToPayPage
	inv.HowToPayAPI = is.HowToPayAPI
	t := is.ExpiresAt.UTC()
	inv.ExpiresAt = &t
}

// Cancel calls the order off: a creating or pending invoice becomes cancelled, keeping reason. It
// reports whether it changed anything — cancelling a cancelled invoice again changes nothing, and the
// first reason stands. An invoice that is paid, expired or failed cannot be cancelled
// (ErrNotCancellable): its outcome is already settled.
func (inv *Invoice) Cancel(reason string, now time.Time, source Source) (bool, error) {
	switch inv.Status {
	case StatusCancelled:
		return false, nil
	case StatusCreating, StatusPending:
	default:
		return false, Errorf(ErrNotCancellable, "the invoice is %s and can no longer be cancelled", inv.Status)
	}
	at := now.UTC()
	inv.CancelledAt, inv.CancelReason = &at, reason
	inv.moveTo(StatusCancelled, source, map[string]any{"reason": reason})
	return true, nil
}

// MarkFailed records DOKU's definite refusal to issue a code. Like MarkIssued it only moves a
// creating invoice.
func (inv *Invoice) MarkFailed(code, message string, source Source) bool {
	if inv.Status != StatusCreating {
		return false
	}
	inv.moveTo(StatusFailed, source, map[string]any{"message": message})
	inv.IssueLeaseHeld = false
	inv.FailureCode = code
	inv.FailureMessage = message
	return true
}

// ApplyCheck applies what DOKU's check status said, through the same rules as a notification: a
// SUCCESS is a payment (ApplyPayment); EXPIRED expires a pending invoice; anything else — PENDING,
// FAILED, a status we do not know — leaves it to our own clock (ExpireOverdue). A payment reported
// later still applies (paid after expiry).
func (inv *Invoice) ApplyCheck(r PaymentReport, now time.Time, grace time.Duration) Outcome {
	switch r.DokuStatus {
	case DokuSuccess:
		return inv.ApplyPayment(r, now)
	case DokuExpired:
		if o := inv.aboutAnother(r); o != "" {
			// An answer about another invoice or code says nothing of this one's: flagged, as a
			// SUCCESS for another would be; this code may still be paid.
			inv.flagReport(o, r)
			return o
		}
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
		return OutcomeUnchanged
	}
	if inv.ExpireOverdue(now, grace, r.Source, "past expiry and grace period while DOKU reports "+r.DokuStatus) {
		return OutcomeExpired
	}
	if r.DokuStatus == DokuPending {
		return OutcomeUnchanged
	}
	return OutcomeIgnoredStatus
}

// overdue reports whether ExpireOverdue would expire inv now.
func (inv *Invoice) overdue(now time.Time, grace time.Duration) bool {
	return inv.Status == StatusPending && inv.ExpiresAt != nil && now.After(inv.ExpiresAt.Add(grace))
}

// ExpireOverdue expires a pending invoice whose code is past its expiry by more than grace, and
// reports whether it did. It runs on our clock alone: DOKU may never say EXPIRED, and while its check
// status fails or answers nonsense an invoice must not stay pending forever. Money that still arrives
// is recorded (paid after expiry), and the reconciler keeps checking such an invoice for a while.
func (inv *Invoice) ExpireOverdue(now time.Time, grace time.Duration, source Source, why string) bool {
	if !inv.overdue(now, grace) {
		return false
	}
	inv.moveTo(StatusExpired, source, map[string]any{"reason": why})
	inv.ExpiredByGrace = true
	return true
}
