package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/merchant/o2o/internal/invoice"
)

// createRequest is the body of POST /v1/invoices as the client sent it. Amount and Metadata stay raw:
// "missing" is not "zero", and only an integer literal is money (1.0, 1e5 and "100" are refused, not
// coerced).
type createRequest struct {
	InvoiceNumber    string            `json:"invoice_number"`
	Channel          string            `json:"channel"`
	Amount           json.RawMessage   `json:"amount"`
	Customer         *invoice.Customer `json:"customer"`
	ExpiresInMinutes *int              `json:"expires_in_minutes"`
	Reusable         *bool             `json:"reusable"`
	Info             string            `json:"info"`
	ReceiptFooter    string            `json:"receipt_footer"`
	Metadata         json.RawMessage   `json:"metadata"`
}

// maxMetadataBytes bounds the client's own data attached to an invoice.
const maxMetadataBytes = 4096

// draft is the invoice the body asks for, and what is wrong with the body as JSON; the domain checks
// the rest (invoice.Draft.Validate).
func (r *createRequest) draft() (invoice.Draft, []invoice.FieldError) {
	d := invoice.Draft{Number: r.InvoiceNumber, Channel: r.Channel, Customer: r.Customer, ExpiresInMinutes: r.ExpiresInMinutes,
		Reusable: r.Reusable, Info: r.Info, ReceiptFooter: r.ReceiptFooter}
	var errs []invoice.FieldError
	amount, msg := integerLiteral(r.Amount)
	if msg != "" {
		errs = append(errs, invoice.FieldError{Field: "amount", Message: msg})
	} else {
		d.Amount = amount
	}
	metadata, msg := storableObject(r.Metadata)
	if msg != "" {
		errs = append(errs, invoice.FieldError{Field: "metadata", Message: msg})
	}
	d.Metadata = metadata
	return d, errs
}

// integerLiteral reads a JSON integer literal: nil for a missing or null amount (which the domain
// calls required), a message for anything that is not a plain integer.
func integerLiteral(raw json.RawMessage) (*int64, string) {
	s := string(bytes.TrimSpace(raw))
	if s == "" || s == "null" {
		return nil, ""
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || i == 0 && s[i] == '-') {
			return nil, "must be an integer number of rupiah"
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return nil, "is too large"
	}
	return &v, ""
}

// storableObject checks the client's metadata: a JSON object of bounded size that PostgreSQL's jsonb
// stores exactly as sent — no NUL anywhere, numbers within range — since a refusal there would be a
// 500 for the client's input. It returns the object compacted, or nil for none.
func storableObject(raw json.RawMessage) ([]byte, string) {
	trimmed := bytes.TrimSpace(raw)
	switch {
	case len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")):
		return nil, ""
	case len(raw) > maxMetadataBytes:
		return nil, fmt.Sprintf("must be at most %d bytes", maxMetadataBytes)
	case trimmed[0] != '{':
		return nil, "must be a JSON object"
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, trimmed); err != nil {
		return nil, "must be a JSON object"
	}
	dec := json.NewDecoder(bytes.NewReader(compact.Bytes()))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return compact.Bytes(), ""
		}
		if err != nil {
			return nil, "must be a JSON object"
		}
		switch v := tok.(type) {
		case string:
			if strings.IndexByte(v, 0) >= 0 {
				return nil, `must not contain the NUL character (\u0000)`
			}
		case json.Number:
			if f, err := strconv.ParseFloat(string(v), 64); err != nil || math.IsInf(f, 0) {
				return nil, "must hold numbers within ±1.7e308"
			}
			if decimals(string(v)) > maxNumericDecimals {
				return nil, fmt.Sprintf("must hold numbers with at most %d digits after the decimal point", maxNumericDecimals)
			}
		}
	}
}

// maxNumericDecimals is how many digits after the decimal point PostgreSQL's numeric — what jsonb
// stores a number as — holds. A number past it (1e-16384, even 0e-99999) is refused by the INSERT;
// float64 reads it as 0 without complaint.
const maxNumericDecimals = 16383

// decimals is how many digits after the decimal point the JSON number n is written with, its exponent
// applied: 1.25 → 2, 1e-5 → 5, 12e3 → 0; a huge exponent counts as huge.
func decimals(n string) int {
	mantissa, exp, _ := strings.Cut(strings.ToLower(n), "e")
	_, frac, _ := strings.Cut(mantissa, ".")
	e, err := strconv.Atoi(exp)
	if exp == "" {
		e, err = 0, nil
	}
	if err != nil {
		if strings.HasPrefix(exp, "-") {
			return math.MaxInt
		}
		return 0 // a huge positive exponent: ParseFloat has refused it already
	}
	if e < -(1 << 30) {
		return math.MaxInt // and len(frac)-e would overflow
	}
	return max(len(frac)-e, 0)
}
