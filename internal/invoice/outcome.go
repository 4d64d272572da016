package invoice

// Outcome is what applying a payment report did. The webhook answers and logs by it, and the
// notification inbox stores it.
type Outcome string

const (
	OutcomeApplied   Outcome = "applied"
	OutcomeDuplicate Outcome = "duplicate"
	// OutcomeIdentified: the report names a payment that was already recorded without knowing which
	// one it was (a status check saw it first); the payment now carries the report's identifiers.
	OutcomeIdentified      Outcome = "identified"
	OutcomeAmountMismatch  Outcome = "amount_mismatch"
	OutcomeChannelMismatch Outcome = "channel_mismatch"
	OutcomeCodeMismatch    Outcome = "code_mismatch"
	OutcomeIgnoredStatus   Outcome = "ignored_status"
	OutcomeNotIssued       Outcome = "not_issued"
	// OutcomeInvoiceMismatch: a status answer about another invoice than the one asked for.
	OutcomeInvoiceMismatch Outcome = "invoice_mismatch"
	// OutcomeUnidentified was given to a reusable code's payment reported with neither a time nor a
	// store transaction id. Reports are no longer refused for that (see PaymentReport.identity); the
	// value stays readable in inboxes written before.
	OutcomeUnidentified Outcome = "unidentified_payment"
	// Only a notification can be unreadable or for an invoice we do not have.
	OutcomeUnknownInvoice Outcome = "unknown_invoice"
	OutcomeMalformed      Outcome = "malformed"
	// What a status check that reported no payment did.
	OutcomeExpired   Outcome = "expired"
	OutcomeUnchanged Outcome = "unchanged"
)

// ParseOutcome reads a notification outcome, reporting whether it is one.
func ParseOutcome(s string) (Outcome, bool) { return parse(NotificationOutcomes, s) }

// NotificationOutcomes are the outcomes a notification can have in the inbox — the one list that the
// inbox's SQL CHECK, the API's ?outcome= filter and the contract's enums are tested against.
var NotificationOutcomes = []Outcome{
	OutcomeApplied, OutcomeDuplicate, OutcomeIdentified, OutcomeAmountMismatch, OutcomeChannelMismatch,
	OutcomeCodeMismatch, OutcomeInvoiceMismatch, OutcomeUnidentified, OutcomeIgnoredStatus, OutcomeNotIssued,
	OutcomeUnknownInvoice, OutcomeMalformed,
}

// Mismatch reports whether o is a disagreement between DOKU and our record that a person must look
// at: retrying cannot fix it, and it must never mark the invoice paid.
func (o Outcome) Mismatch() bool {
	switch o {
	case OutcomeAmountMismatch, OutcomeChannelMismatch, OutcomeCodeMismatch, OutcomeInvoiceMismatch, OutcomeUnidentified:
		return true
	}
	return false
}

// reason is the attention reason of a mismatch outcome.
func (o Outcome) reason() Reason {
	switch o {
	case OutcomeAmountMismatch:
		return ReasonAmountMismatch
	case OutcomeChannelMismatch:
		return ReasonChannelMismatch
	case OutcomeCodeMismatch:
		return ReasonCodeMismatch
	}
	return ReasonInvoiceMismatch
}
