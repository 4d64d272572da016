package view

import (
	"encoding/json"

	"github.com/merchant/o2o/internal/invoice"
)

// Event is an event as the feed, the webhooks and the status stream show it (Event in the contract).
// A webhook's body is exactly this object.
type Event struct {
	ID            string             `json:"id"`
	Type          invoice.ChangeType `json:"type"`
	CreatedAt     string             `json:"created_at"`
	InvoiceNumber *string            `json:"invoice_number"`
	Data          json.RawMessage    `json:"data"`
}

// EventData is an event's payload: the invoice as the change left it (null for an attention item
// about a notification without an invoice of ours), and the payment or attention item the event is
// about.
type EventData struct {
	Invoice   *Invoice   `json:"invoice"`
	Payment   *Payment   `json:"payment,omitempty"`
	Attention *Attention `json:"attention,omitempty"`
}

// ChangeData is the payload of change c of inv, encoded.
func ChangeData(c invoice.Change, inv *invoice.Invoice) ([]byte, error) {
	v := OfInvoice(inv)
	d := EventData{Invoice: &v}
	if c.Payment >= 0 && c.Payment < len(inv.Payments) {
		p := OfPayment(inv.Payments[c.Payment])
		d.Payment = &p
	}
	return json.Marshal(d)
}

// AttentionData is the payload of an attention.raised event for a, about inv (nil when the item is
// about a notification without an invoice of ours), encoded. The item's id is not known until it is
// stored: the store fills it in.
func AttentionData(a *invoice.Attention, inv *invoice.Invoice) ([]byte, error) {
	var d EventData
	if inv != nil {
		v := OfInvoice(inv)
		d.Invoice = &v
	}
	item := OfAttention(a)
	d.Attention = &item
	return json.Marshal(d)
}
