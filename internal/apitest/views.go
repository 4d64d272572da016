package apitest

import (
	"encoding/json"
	"testing"
)

// The API's answers as tests read them, after the schemas of api/openapi.yaml. Every response has
// already passed ContractTransport, which checks it against the document, so these only decode:
// timestamps stay strings, and a field is a pointer only where a test tells null from empty.

// InvoiceView is an Invoice.
type InvoiceView struct {
	InvoiceNumber    string          `json:"invoice_number"`
	Channel          string          `json:"channel"`
	Amount           int64           `json:"amount"`
	Currency         string          `json:"currency"`
	Status           string          `json:"status"`
	PaymentCode      *string         `json:"payment_code"`
	HowToPayPage     *string         `json:"how_to_pay_page"`
	HowToPayAPI      *string         `json:"how_to_pay_api"`
	PaymentPageURL   *string         `json:"payment_page_url"`
	ExpiresAt        *string         `json:"expires_at"`
	PaidAt           *string         `json:"paid_at"`
	PaidAfterExpiry  bool            `json:"paid_after_expiry"`
	PaidAfterCancel  bool            `json:"paid_after_cancel"`
	Customer         Customer        `json:"customer"`
	ExpiresInMinutes int             `json:"expires_in_minutes"`
	Reusable         bool            `json:"reusable"`
	Info             string          `json:"info"`
	ReceiptFooter    string          `json:"receipt_footer"`
	Metadata         json.RawMessage `json:"metadata"`
	Payments         []PaymentView   `json:"payments"`
	TotalPaid        int64           `json:"total_paid"`
	Failure          *FailureView    `json:"failure"`
	Cancellation     *Cancellation   `json:"cancellation"`
	CreatedAt        string          `json:"created_at"`
	UpdatedAt        string          `json:"updated_at"`
}

// Code is the invoice's payment code; an invoice without one (null) fails the test.
func (v InvoiceView) Code(t testing.TB) string {
	t.Helper()
	if v.PaymentCode == nil {
		t.Fatalf("invoice %s has no payment code: %v", v.InvoiceNumber, v)
	}
	return *v.PaymentCode
}

// String is the view as JSON, for failure messages.
func (v InvoiceView) String() string { return asJSON(v) }

// PaymentView is a Payment.
type PaymentView struct {
	Amount      int64             `json:"amount"`
	PaidAt      string            `json:"paid_at"`
	Source      string            `json:"source"`
	Identifiers map[string]string `json:"identifiers"`
	RecordedAt  string            `json:"recorded_at"`
}

// Cancellation is when and why an invoice was cancelled.
type Cancellation struct {
	At     string `json:"at"`
	Reason string `json:"reason"`
}

// FailureView is an invoice's Failure.
type FailureView struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// InvoiceList is a page of GET /v1/invoices.
type InvoiceList struct {
	Items      []InvoiceView `json:"items"`
	NextCursor string        `json:"next_cursor"` // "" for null: the last page
}

// Numbers are the page's invoice numbers, in order.
func (l InvoiceList) Numbers() []string {
	out := []string{}
	for _, inv := range l.Items {
		out = append(out, inv.InvoiceNumber)
	}
	return out
}

// ProblemView is a Problem (application/problem+json).
type ProblemView struct {
	Type      string           `json:"type"`
	Title     string           `json:"title"`
	Status    int              `json:"status"`
	Detail    string           `json:"detail"`
	Code      string           `json:"code"`
	Errors    []FieldErrorView `json:"errors"`
	RequestID string           `json:"request_id"`
}

// FieldErrorView is one field a problem names.
type FieldErrorView struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// HasField reports whether the problem names field, with a message.
func (p ProblemView) HasField(field string) bool {
	for _, e := range p.Errors {
		if e.Field == field && e.Message != "" {
			return true
		}
	}
	return false
}

// AckView is the webhook's NotificationAck.
type AckView struct {
	Outcome string `json:"outcome"`
}

// NotificationView is a Notification of the inbox.
type NotificationView struct {
	ID             int64             `json:"id"`
	DokuRequestID  string            `json:"doku_request_id"`
	InvoiceNumber  string            `json:"invoice_number"`
	Outcome        string            `json:"outcome"`
	Deliveries     int               `json:"deliveries"`
	ReceivedAt     string            `json:"received_at"`
	LastReceivedAt string            `json:"last_received_at"`
	Headers        map[string]string `json:"headers"`
	Body           string            `json:"body"`
	// BodyJSON is the body parsed (any JSON value), or null when it is not JSON.
	BodyJSON json.RawMessage `json:"body_json"`
}

// String is the view as JSON, for failure messages.
func (v NotificationView) String() string { return asJSON(v) }

// NotificationList is a page of GET /v1/notifications.
type NotificationList struct {
	Items      []NotificationView `json:"items"`
	NextCursor string             `json:"next_cursor"`
}

// AttentionView is an Attention item.
type AttentionView struct {
	ID            int64  `json:"id"`
	Reason        string `json:"reason"`
	State         string `json:"state"`
	InvoiceNumber string `json:"invoice_number"` // "" for null: a case with no invoice of ours
	Source        string `json:"source"`
	// Evidence is free-form: whatever showed the case.
	Evidence   map[string]any `json:"evidence"`
	CreatedAt  string         `json:"created_at"`
	ResolvedAt *string        `json:"resolved_at"`
	ResolvedBy string         `json:"resolved_by"` // "" for null
	Note       string         `json:"note"`        // "" for null
}

// String is the view as JSON, for failure messages.
func (v AttentionView) String() string { return asJSON(v) }

// AttentionList is a page of GET /v1/attention.
type AttentionList struct {
	Items      []AttentionView `json:"items"`
	NextCursor string          `json:"next_cursor"`
}

// HistoryEntryView is one entry of an invoice's history (GET /v1/invoices/{invoice_number}/events).
type HistoryEntryView struct {
	At         string  `json:"at"`
	Source     string  `json:"source"`
	Kind       string  `json:"kind"`
	FromStatus *string `json:"from_status"`
	ToStatus   *string `json:"to_status"`
	// Detail is free-form: what happened.
	Detail map[string]any `json:"detail"`
}

// String is the view as JSON, for failure messages.
func (v HistoryEntryView) String() string { return asJSON(v) }

// History is an invoice's history: GET /v1/invoices/{invoice_number}/events.
type History struct {
	InvoiceNumber string             `json:"invoice_number"`
	Items         []HistoryEntryView `json:"items"`
}

// CounterPayment is the simulator's answer to a payment at the counter (POST /simulator/payments).
type CounterPayment struct {
	InvoiceNumber string      `json:"invoice_number"`
	PaymentCode   string      `json:"payment_code"`
	TransactionID string      `json:"transaction_id"`
	Notification  SimDelivery `json:"notification"`
}

// String is the answer as JSON, for failure messages.
func (v CounterPayment) String() string { return asJSON(v) }

// SimDelivery is what became of the notification the simulator sent for a payment.
type SimDelivery struct {
	RequestID  string          `json:"request_id"`
	Attempts   int             `json:"attempts"`
	LastStatus int             `json:"last_status"`
	Answer     json.RawMessage `json:"answer"` // the service's last answer, as it sent it
	Delivered  bool            `json:"delivered"`
	Dropped    bool            `json:"dropped"`
	Delayed    bool            `json:"delayed"`
}

func asJSON(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(raw)
}

// decode reads the response body as a T, or fails the test.
func decode[T any](t testing.TB, r Response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("response (HTTP %d) is not a %T: %v\n%s", r.Status, v, err, r.Body)
	}
	return v
}

// Invoice is the body as an Invoice.
func (r Response) Invoice(t testing.TB) InvoiceView { t.Helper(); return decode[InvoiceView](t, r) }

// InvoiceList is the body as a page of invoices.
func (r Response) InvoiceList(t testing.TB) InvoiceList { t.Helper(); return decode[InvoiceList](t, r) }

// Problem is the body as a Problem.
func (r Response) Problem(t testing.TB) ProblemView { t.Helper(); return decode[ProblemView](t, r) }

// Ack is the body as the webhook's NotificationAck.
func (r Response) Ack(t testing.TB) AckView { t.Helper(); return decode[AckView](t, r) }

// Notifications is the body as a page of the notification inbox.
func (r Response) Notifications(t testing.TB) NotificationList {
	t.Helper()
	return decode[NotificationList](t, r)
}

// Attention is the body as one Attention item (the answer to a resolve).
func (r Response) Attention(t testing.TB) AttentionView {
	t.Helper()
	return decode[AttentionView](t, r)
}

// AttentionList is the body as a page of the attention queue.
func (r Response) AttentionList(t testing.TB) AttentionList {
	t.Helper()
	return decode[AttentionList](t, r)
}

// History is the body as an invoice's history.
func (r Response) History(t testing.TB) History { t.Helper(); return decode[History](t, r) }
