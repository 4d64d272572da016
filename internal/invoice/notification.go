package invoice

import "time"

// Outcomes only a notification can have.
const (
	OutcomeUnknownInvoice Outcome = "unknown_invoice"
	OutcomeMalformed      Outcome = "malformed"
)

// Notification is one verified notification from DOKU as kept in the inbox: the raw body and headers
// as received, what it did, and how often DOKU delivered it.
type Notification struct {
	ID             int64
	RequestID      string
	InvoiceNumber  string
	Headers        map[string]string
	Body           []byte
	Outcome        Outcome
	Deliveries     int
	ReceivedAt     time.Time
	LastReceivedAt time.Time
}

// NotificationFilter selects inbox entries. Empty fields do not filter.
type NotificationFilter struct {
	Outcomes      []Outcome
	InvoiceNumber string
	Limit         int
	Cursor        string
}
