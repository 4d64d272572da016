package dokusim

import (
	"encoding/json"
	"time"

	"github.com/merchant/o2o/internal/doku"
	"github.com/merchant/o2o/internal/invoice"
)

// Payment describes a payment at the counter, as a notification reports it.
type Payment struct {
	InvoiceNumber     string
	Channel           invoice.Channel
	PaymentCode       string
	Amount            int64
	At                time.Time
	TransactionID     string // the store's AGENT_TRX_ID
	OriginalRequestID string // the Request-Id the code was generated with
	// Status is transaction.status; "" is SUCCESS.
	Status string
	// RawAmount, when set, is order.amount exactly as sent (a string, a fraction), instead of Amount.
	RawAmount json.RawMessage
}

// NotificationBody is the body DOKU sends for p, in the shape of DOKU's documented Alfa sample.
func NotificationBody(p Payment) []byte {
	var amount any = p.Amount
	if len(p.RawAmount) > 0 {
		amount = p.RawAmount
	}
	status := p.Status
	if status == "" {
		status = invoice.DokuSuccess
	}
	body, _ := json.Marshal(map[string]any{
		"service":  map[string]string{"id": doku.ServiceO2O},
		"acquirer": map[string]string{"id": doku.AcquirerID(p.Channel)},
		"channel":  map[string]string{"id": doku.ChannelID(p.Channel)},
		"transaction": map[string]string{
			"status":              status,
			"date":                p.At.UTC().Format(doku.TimestampLayout),
			"original_request_id": p.OriginalRequestID,
		},
		"order":                     map[string]any{"invoice_number": p.InvoiceNumber, "amount": amount},
		"online_to_offline_info":    map[string]string{"payment_code": p.PaymentCode},
		"online_to_offline_payment": map[string]any{"identifier": identifiers(p.Channel, p.TransactionID)},
	})
	return body
}
