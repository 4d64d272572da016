// Package view is the API's JSON shape of invoices, payments and attention items (api/openapi.yaml):
// one shape for the HTTP responses, the event payloads, the signed webhooks and the status stream, so
// that a merchant's code reads an invoice the same way wherever it comes from. Internal fields — the
// DOKU Request-Id and request bytes, row ids, dedupe keys, schedules — stay inside.
package view

import (
	"encoding/json"
	"time"

	"github.com/merchant/o2o/internal/invoice"
)

// Invoice is the API's invoice (Invoice in the contract).
type Invoice struct {
	InvoiceNumber   string           `json:"invoice_number"`
	Channel         invoice.Channel  `json:"channel"`
	Amount          int64            `json:"amount"`
	Currency        string           `json:"currency"`
	Status          invoice.Status   `json:"status"`
	PaymentCode     *string          `json:"payment_code"`
	HowToPayPage    *string          `json:"how_to_pay_page"`
	HowToPayAPI     *string          `json:"how_to_pay_api"`
	PaymentPageURL  *string          `json:"payment_page_url"`
	ExpiresAt       *string          `json:"expires_at"`
	PaidAt          *string          `json:"paid_at"`
	PaidAfterExpiry bool             `json:"paid_after_expiry"`
	PaidAfterCancel bool             `json:"paid_after_cancel"`
	Customer        invoice.Customer `json:"customer"`
	ExpiresIn       int              `json:"expires_in_minutes"`
	Reusable        bool             `json:"reusable"`
	Info            string           `json:"info"`
	ReceiptFooter   string           `json:"receipt_footer"`
	Metadata        json.RawMessage  `json:"metadata"`
	Payments        []Payment        `json:"payments"`
	TotalPaid       int64            `json:"total_paid"`
	Failure         *Failure         `json:"failure"`
	Cancellation    *Cancellation    `json:"cancellation"`
	CreatedAt       string           `json:"created_at"`
	UpdatedAt       string           `json:"updated_at"`
}

// Payment is one recorded payment.
type Payment struct {
	Amount      int64             `json:"amount"`
	PaidAt      string            `json:"paid_at"`
	Source      invoice.Source    `json:"source"`
	Identifiers map[string]string `json:"identifiers"`
	RecordedAt  string            `json:"recorded_at"`
}

// Failure is DOKU's refusal of a failed invoice.
type Failure struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Cancellation is when and why the merchant cancelled the invoice.
type Cancellation struct {
	At     string `json:"at"`
	Reason string `json:"reason"`
}

// Attention is an attention item.
type Attention struct {
	ID            int64          `json:"id"`
	Reason        invoice.Reason `json:"reason"`
	State         string         `json:"state"`
	InvoiceNumber *string        `json:"invoice_number"`
	Source        string         `json:"source"`
	Evidence      map[string]any `json:"evidence"`
	CreatedAt     string         `json:"created_at"`
	ResolvedAt    *string        `json:"resolved_at"`
	ResolvedBy    *string        `json:"resolved_by"`
	Note          *string        `json:"note"`
}

// Time is the API's form of a time: RFC 3339 in UTC, to the second.
func Time(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// OptString is s, or null when it is empty.
func OptString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// OptTime is t in the API's form, or null.
func OptTime(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := Time(*t)
	return &s
}

// OfInvoice is inv as the API shows it.
func OfInvoice(inv *invoice.Invoice) Invoice {
	out := Invoice{
		InvoiceNumber:   inv.Number,
		Channel:         inv.Channel,
		Amount:          inv.Amount,
		Currency:        invoice.Currency,
		Status:          inv.Status,
		PaymentCode:     OptString(inv.PaymentCode),
		HowToPayPage:    OptString(inv.HowToPayPage),
		HowToPayAPI:     OptString(inv.HowToPayAPI),
		PaymentPageURL:  OptString(inv.PaymentPageURL),
		ExpiresAt:       OptTime(inv.ExpiresAt),
		PaidAt:          OptTime(inv.PaidAt),
		PaidAfterExpiry: inv.PaidAfterExpiry,
		PaidAfterCancel: inv.PaidAfterCancel,
		Customer:        inv.Customer,
		ExpiresIn:       inv.ExpiresInMinutes,
		Reusable:        inv.Reusable,
		Info:            inv.Info,
		ReceiptFooter:   inv.ReceiptFooter,
		Metadata:        inv.Metadata,
		Payments:        make([]Payment, 0, len(inv.Payments)),
		TotalPaid:       inv.TotalPaid(),
		CreatedAt:       Time(inv.CreatedAt),
		UpdatedAt:       Time(inv.UpdatedAt),
	}
	if out.Metadata == nil {
		out.Metadata = json.RawMessage("null")
	}
	if inv.Status == invoice.StatusFailed {
		out.Failure = &Failure{Code: inv.FailureCode, Message: inv.FailureMessage}
	}
	if inv.CancelledAt != nil {
		out.Cancellation = &Cancellation{At: Time(*inv.CancelledAt), Reason: inv.CancelReason}
	}
	for _, p := range inv.Payments {
		out.Payments = append(out.Payments, OfPayment(p))
	}
	return out
}

// OfPayment is p as the API shows it.
func OfPayment(p invoice.Payment) Payment {
	ids := p.Identifiers
	if ids == nil {
		ids = map[string]string{}
	}
	return Payment{Amount: p.Amount, PaidAt: Time(p.PaidAt), Source: p.Source, Identifiers: ids, RecordedAt: Time(p.CreatedAt)}
}

// OfAttention is a as the API shows it.
func OfAttention(a *invoice.Attention) Attention {
	ev := a.Evidence
	if ev == nil {
		ev = map[string]any{}
	}
	return Attention{ID: a.ID, Reason: a.Reason, State: string(a.State), InvoiceNumber: OptString(a.InvoiceNumber),
		Source: string(a.Source), Evidence: ev, CreatedAt: Time(a.CreatedAt), ResolvedAt: OptTime(a.ResolvedAt),
		ResolvedBy: OptString(a.ResolvedBy), Note: OptString(a.Note)}
}

// CustomerInvoice is what a customer's browser may see of an invoice (a status stream opened with a
// token, the payment page): what to pay, where, until when, and whether it is done — never the
// merchant's metadata, the customer's details, payment identifiers, failure or cancellation reasons.
type CustomerInvoice struct {
	InvoiceNumber string          `json:"invoice_number"`
	Channel       invoice.Channel `json:"channel"`
	Amount        int64           `json:"amount"`
	Currency      string          `json:"currency"`
	Status        invoice.Status  `json:"status"`
	PaymentCode   *string         `json:"payment_code"`
	ExpiresAt     *string         `json:"expires_at"`
	PaidAt        *string         `json:"paid_at"`
	TotalPaid     int64           `json:"total_paid"`
	Reusable      bool            `json:"reusable"`
}

// ForCustomer is the customer's view of an invoice as the API shows it. The payment code is in it
// only while it is there to be paid — pending, or a reusable code's paid invoice: DOKU cannot
// withdraw a code, so a cancelled, expired or failed order's page must not offer one to pay.
func ForCustomer(v Invoice) CustomerInvoice {
	code := v.PaymentCode
	if v.Status != invoice.StatusPending && (v.Status != invoice.StatusPaid || !v.Reusable) {
		code = nil
	}
	return CustomerInvoice{InvoiceNumber: v.InvoiceNumber, Channel: v.Channel, Amount: v.Amount, Currency: v.Currency,
		Status: v.Status, PaymentCode: code, ExpiresAt: v.ExpiresAt, PaidAt: v.PaidAt, TotalPaid: v.TotalPaid,
		Reusable: v.Reusable}
}
