package invoice

import "time"

// EventKind says what an invoice event records.
type EventKind string

const (
	EventCreated EventKind = "created"          // the invoice was stored
	EventStatus  EventKind = "status_changed"   // from one status to another
	EventPayment EventKind = "payment_recorded" // a payment was recorded
	// EventPaymentIdentified: a notification named a payment only a status check had reported.
	EventPaymentIdentified EventKind = "payment_identified"
	EventDokuGenerate      EventKind = "doku_generate" // a generate-payment-code call and its result
	EventDokuCheck         EventKind = "doku_check"    // a check-status call and its result
	EventNotification      EventKind = "notification"  // a notification for this invoice and its outcome
)

// EventKinds lists every kind of history entry.
var EventKinds = []EventKind{EventCreated, EventStatus, EventPayment, EventPaymentIdentified, EventDokuGenerate,
	EventDokuCheck, EventNotification}

// LogHistory is the type of an entry of the log (the events table) that tells the merchant's systems
// nothing: the history of a change that changed nothing they are told of — a status check that found
// no news, a notification repeated, a DOKU call that failed and will be retried. Every other type is
// public (ChangeTypes); the history of a change that is public rides on its event.
const LogHistory = "history"

// Event is one entry of an invoice's history.
type Event struct {
	ID     int64
	At     time.Time
	Source Source
	Kind   EventKind
	From   Status
	To     Status
	Detail map[string]any
}

// Record adds an event to the invoice's unsaved history; the store writes it in the same
// transaction as the invoice.
func (inv *Invoice) Record(e Event) {
	inv.NewEvents = append(inv.NewEvents, e)
}

// moveTo changes the status, records the change in the history and publishes it.
func (inv *Invoice) moveTo(to Status, source Source, detail map[string]any) {
	inv.Record(Event{Source: source, Kind: EventStatus, From: inv.Status, To: to, Detail: detail})
	inv.Status = to
	if t, ok := statusChanges[to]; ok {
		inv.announce(Change{Type: t, Payment: -1})
	}
}
