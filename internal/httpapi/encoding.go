package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
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
			return invoice.Errorf(invoice.CodeUnsupportedType, "the body must be application/json")
		}
	}
	body, err := io.ReadAll(r.Body) // bounded by the body limit
	if err != nil {
		return decodeError(err)
	}
	return decodeJSONBytes(body, dst)
}

// decodeJSONBytes is decodeJSON's strict decoding of an already-read body.
func decodeJSONBytes(body []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return invoice.Errorf(invoice.CodeInvalidJSON, "the body must hold a single JSON object and nothing after it")
	}
	// A key given twice would be read as its last value here and perhaps as its first elsewhere.
	var dup *strictjson.DuplicateKeyError
	if err := strictjson.CheckDuplicateKeys(body); errors.As(err, &dup) {
		return &invoice.Error{Code: invoice.CodeValidation, Message: "the request has invalid fields",
			Fields: []invoice.FieldError{{Field: dup.Path, Message: "is given more than once"}}}
	}
	return nil
}

func decodeError(err error) error {
	var (
		maxErr    *http.MaxBytesError
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &maxErr):
		return invoice.Errorf(invoice.CodeTooLarge, "the request body must be at most %d bytes", maxErr.Limit)
	case errors.Is(err, io.EOF):
		return invoice.Errorf(invoice.CodeInvalidJSON, "the body is empty; a JSON object is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invoice.Errorf(invoice.CodeInvalidJSON, "the JSON body is truncated")
	case errors.As(err, &syntaxErr):
		return invoice.Errorf(invoice.CodeInvalidJSON, "malformed JSON at byte %d: %s", syntaxErr.Offset, syntaxErr.Error())
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return invoice.Errorf(invoice.CodeInvalidJSON, "the body must be a JSON object")
		}
		return &invoice.Error{Code: invoice.CodeValidation, Message: "the request has invalid fields",
			Fields: []invoice.FieldError{{Field: typeErr.Field, Message: "must be a JSON " + jsonKind(typeErr.Type.Kind().String())}}}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &invoice.Error{Code: invoice.CodeValidation, Message: "the request has invalid fields",
			Fields: []invoice.FieldError{{Field: field, Message: "is not a known field"}}}
	}
	return invoice.Errorf(invoice.CodeInvalidJSON, "the body is not valid JSON: %v", err)
}

func jsonKind(goKind string) string {
	switch {
	case strings.HasPrefix(goKind, "int"), strings.HasPrefix(goKind, "uint"), strings.HasPrefix(goKind, "float"):
		return "number"
	case goKind == "bool":
		return "boolean"
	case goKind == "struct", goKind == "map":
		return "object"
	case goKind == "slice":
		return "array"
	}
	return goKind
}

// invoiceJSON is the API's view of an invoice (DESIGN.md §4). Internal fields — the DOKU Request-Id
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
