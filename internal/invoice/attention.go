package invoice

import "time"

// Reason is why a case needs a person's decision. Reasons is the one list of them: the SQL CHECK on
// attention items, the API's ?reason= filter and the contract's enum are all tested against it.
type Reason string

const (
	// DOKU reports a payment that disagrees with the invoice (from a notification or a status check).
	ReasonAmountMismatch  Reason = "amount_mismatch"
	ReasonChannelMismatch Reason = "channel_mismatch"
	ReasonCodeMismatch    Reason = "code_mismatch"
	ReasonInvoiceMismatch Reason = "invoice_mismatch"
	// ReasonPaidWhileFailed: money for an invoice DOKU refused to issue a code for.
	ReasonPaidWhileFailed Reason = "paid_while_failed"
	// ReasonPaidAfterExpiry: money paid after the code's expiry; the order may have been given up.
	ReasonPaidAfterExpiry Reason = "paid_after_expiry"
	// ReasonSecondPayment: a single-use code paid a second time (another store transaction): the money
	// is recorded, and someone decides about a refund.
	ReasonSecondPayment Reason = "second_payment"
	// ReasonUnidentifiedPayment: a payment of a reusable code that only a status check reports. The
	// check says that the code was paid, not which payment it was, so it is recorded once and a
	// person confirms it against DOKU's report.
	ReasonUnidentifiedPayment Reason = "unidentified_payment"
	// ReasonUnreadableNotification: a genuine (signed) notification whose body we could not read.
	ReasonUnreadableNotification Reason = "unreadable_notification"
	// ReasonUnknownInvoice: a genuine notification of a payment for an invoice we do not have.
	ReasonUnknownInvoice Reason = "unknown_invoice"
	// ReasonStuckCreating: DOKU never confirmed the code through every resume attempt; it may or may
	// not have issued one, so a person checks with DOKU.
	ReasonStuckCreating Reason = "stuck_creating"
	// ReasonPaidAfterCancel: money for an invoice the merchant had cancelled (DOKU cannot withdraw an
	// O2O code): recorded, and a person decides whether to refund or to fulfil the order after all.
	ReasonPaidAfterCancel Reason = "paid_after_cancel"
)

// Reasons lists every reason, in the order the runbook explains them.
var Reasons = []Reason{
	ReasonAmountMismatch, ReasonChannelMismatch, ReasonCodeMismatch, ReasonInvoiceMismatch,
	ReasonPaidWhileFailed, ReasonPaidAfterExpiry, ReasonSecondPayment, ReasonUnidentifiedPayment,
	ReasonUnreadableNotification, ReasonUnknownInvoice, ReasonStuckCreating, ReasonPaidAfterCancel,
}

// ParseReason reads a reason, reporting whether it is one.
func ParseReason(s string) (Reason, bool) { return parse(Reasons, s) }

// AttentionState is whether a person has dealt with an item.
type AttentionState string

const (
	AttentionOpen     AttentionState = "open"
	AttentionResolved AttentionState = "resolved"
)

// AttentionStates lists both states.
var AttentionStates = []AttentionState{AttentionOpen, AttentionResolved}

// ParseAttentionState reads a state, reporting whether it is one.
func ParseAttentionState(s string) (AttentionState, bool) { return parse(AttentionStates, s) }

// Attention is one case where money or an order needs a person's decision. Key identifies the case
// itself — the notification, the payment, or the answer that showed it — so that seeing it again (a
// redelivery, the next poll) never creates a second item.
type Attention struct {
	ID            int64
	Key           string
	Reason        Reason
	InvoiceNumber string
	Source        Source
	// Evidence is what showed the case: amounts, identifiers, DOKU's answer or the notification's id.
	Evidence   map[string]any
	State      AttentionState
	CreatedAt  time.Time
	ResolvedAt *time.Time
	// ResolvedBy is the name of the API key that resolved the item; Note is what the person wrote.
	ResolvedBy string
	Note       string
}

// AttentionFilter selects attention items. Empty fields do not filter.
type AttentionFilter struct {
	State         AttentionState
	Reason        Reason
	InvoiceNumber string
	Limit         int
	Cursor        string
}

// Flag records a case for a person alongside the invoice's change; the store writes it in the same
// transaction, once per key.
func (inv *Invoice) Flag(a Attention) {
	a.InvoiceNumber, a.State = inv.Number, AttentionOpen
	inv.NewAttention = append(inv.NewAttention, a)
}

// Resolution settles an open attention item, found by its key, without a person: the case it raised
// has been explained (a payment only a status check had seen was then named by its notification).
type Resolution struct {
	Key  string
	Note string
}
