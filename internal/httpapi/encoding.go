package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/strictjson"
)

// decodeJSON decodes exactly one JSON value from the body into dst, refusing unknown fields, trailing
// data, other media types and oversized bodies, each with a precise problem code.
func decodeJSON(r *http.Request, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return refuse(http.StatusUnsupportedMediaType, codeUnsupportedType, "the body must be application/json")
		}
	}
	body, err := io.ReadAll(r.Body) // bounded by the body limit
	if err != nil {
		return decodeError(err)
	}
	return decodeJSONBytes(body, dst)
}

// decodeJSONBytes is decodeJSON's strict decoding of an already-read body: keys match exactly, an
// unknown, repeated or case-variant key is refused, and so is text that is not UTF-8 — it would be
// replaced silently otherwise, and stored and sent to DOKU as something the client never wrote.
func decodeJSONBytes(body []byte, dst any) error {
	return decodeError(strictjson.Decode(body, dst))
}

func decodeError(err error) error {
	if err == nil {
		return nil
	}
	var (
		maxErr *http.MaxBytesError
		se     *strictjson.Error
	)
	switch {
	case errors.As(err, &maxErr):
		return refuse(http.StatusRequestEntityTooLarge, codeTooLarge, "the request body must be at most %d bytes", maxErr.Limit)
	case errors.As(err, &se) && se.Kind != strictjson.Syntax && se.Path != "":
		return invalid(invoice.FieldError{Field: se.Path, Message: se.Detail})
	case errors.As(err, &se):
		return refuse(http.StatusBadRequest, codeInvalidJSON, "%s", se.Detail)
	}
	return refuse(http.StatusBadRequest, codeInvalidJSON, "the body could not be read")
}

// invoiceJSON is the API's view of an invoice (api/openapi.yaml, Invoice). Internal fields — the DOKU Request-Id
// and request bytes, row ids, dedupe keys — stay inside.
type invoiceJSON struct {
	InvoiceNumber   string           `json:"invoice_number"`
	Channel         invoice.Channel  `json:"channel"`
	Amount          int64            `json:"amount"`
	Currency        string           `json:"currency"`
	Status          invoice.Status   `json:"status"`
	PaymentCode     *string          `json:"payment_code"`
	HowToPayPage    *string          `json:"how_to_pay_page"`
	HowToPayAPI     *string          `json:"how_to_pay_api"`
	ExpiresAt       *string          `json:"expires_at"`
	PaidAt          *string          `json:"paid_at"`
	PaidAfterExpiry bool             `json:"paid_after_expiry"`
	Customer        invoice.Customer `json:"customer"`
	ExpiresIn       int              `json:"expires_in_minutes"`
	Reusable        bool             `json:"reusable"`
	Info            string           `json:"info"`
	ReceiptFooter   string           `json:"receipt_footer"`
	Metadata        json.RawMessage  `json:"metadata"`
	Payments        []paymentJSON    `json:"payments"`
	TotalPaid       int64            `json:"total_paid"`
	Failure         *failureJSON     `json:"failure"`
	CreatedAt       string           `json:"created_at"`
	UpdatedAt       string           `json:"updated_at"`
}

type paymentJSON struct {
	Amount      int64             `json:"amount"`
	PaidAt      string            `json:"paid_at"`
	Source      invoice.Source    `json:"source"`
	Identifiers map[string]string `json:"identifiers"`
	RecordedAt  string            `json:"recorded_at"`
}

type failureJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func optTime(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := rfc3339(*t)
	return &s
}

func toJSON(inv *invoice.Invoice) invoiceJSON {
	out := invoiceJSON{
		InvoiceNumber:   inv.Number,
		Channel:         inv.Channel,
		Amount:          inv.Amount,
		Currency:        invoice.Currency,
		Status:          inv.Status,
		PaymentCode:     optString(inv.PaymentCode),
		HowToPayPage:    optString(inv.HowToPayPage),
		HowToPayAPI:     optString(inv.HowToPayAPI),
		ExpiresAt:       optTime(inv.ExpiresAt),
		PaidAt:          optTime(inv.PaidAt),
		PaidAfterExpiry: inv.PaidAfterExpiry,
		Customer:        inv.Customer,
		ExpiresIn:       inv.ExpiresInMinutes,
		Reusable:        inv.Reusable,
		Info:            inv.Info,
		ReceiptFooter:   inv.ReceiptFooter,
		Metadata:        inv.Metadata,
		Payments:        make([]paymentJSON, 0, len(inv.Payments)),
		TotalPaid:       inv.TotalPaid(),
		CreatedAt:       rfc3339(inv.CreatedAt),
		UpdatedAt:       rfc3339(inv.UpdatedAt),
	}
	if out.Metadata == nil {
		out.Metadata = json.RawMessage("null")
	}
	if inv.Status == invoice.StatusFailed {
		out.Failure = &failureJSON{Code: inv.FailureCode, Message: inv.FailureMessage}
	}
	for _, p := range inv.Payments {
		ids := p.Identifiers
		if ids == nil {
			ids = map[string]string{}
		}
		out.Payments = append(out.Payments, paymentJSON{
			Amount: p.Amount, PaidAt: rfc3339(p.PaidAt), Source: p.Source, Identifiers: ids, RecordedAt: rfc3339(p.CreatedAt),
		})
	}
	return out
}
