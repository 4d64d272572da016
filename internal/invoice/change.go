package invoice

// ChangeType is the type of an event the merchant's systems are told of. ChangeTypes is the one list
// of them: the SQL CHECK on events, the API's ?type= filter and the contract's enum are all tested
// against it.
type ChangeType string

const (
	// A status change: the invoice now has a payment code, is paid, expired, failed or cancelled.
	ChangePending   ChangeType = "invoice.pending"
	ChangePaid      ChangeType = "invoice.paid"
	ChangeExpired   ChangeType = "invoice.expired"
	ChangeFailed    ChangeType = "invoice.failed"
	ChangeCancelled ChangeType = "invoice.cancelled"
	// ChangePaymentRecorded: a payment was recorded that did not change the invoice's status (a second
	// payment, one for a failed invoice) — a payment that pays the invoice is told by invoice.paid,
	// which carries it: one change, one event.
	ChangePaymentRecorded ChangeType = "payment.recorded"
	// ChangeAttentionRaised: a case needs a person's decision. Every attention item is one when it
	// is first stored (a case flagged again raises nothing), so it is published with the item rather
	// than announced by a transition.
	ChangeAttentionRaised ChangeType = "attention.raised"
)

// ChangeTypes lists every type, in the order api/README.md explains them.
var ChangeTypes = []ChangeType{ChangePending, ChangePaid, ChangeExpired, ChangeFailed, ChangeCancelled,
	ChangePaymentRecorded, ChangeAttentionRaised}

// ParseChangeType reads a type, reporting whether it is one.
func ParseChangeType(s string) (ChangeType, bool) { return parse(ChangeTypes, s) }

// Change is one thing a change of an invoice tells the merchant's systems: a new status or a payment
// recorded. It is published with the invoice as the change left it.
type Change struct {
	Type ChangeType
	// Payment is the index in the invoice's Payments of the payment the change is about
	// (payment.recorded, and invoice.paid when a payment paid it), or -1.
	Payment int
}

// statusChanges are the types of the statuses the merchant is told of; creating is not one (it is the
// invoice's first moment, and pending follows at once).
var statusChanges = map[Status]ChangeType{StatusPending: ChangePending, StatusPaid: ChangePaid,
	StatusExpired: ChangeExpired, StatusFailed: ChangeFailed, StatusCancelled: ChangeCancelled}

// announce adds a change to those this change of the invoice publishes.
func (inv *Invoice) announce(c Change) { inv.NewChanges = append(inv.NewChanges, c) }
