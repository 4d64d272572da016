package invoice

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/mail"
	"reflect"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits are the configurable bounds a create request is checked against.
type Limits struct {
	AmountMin        int64
	AmountMax        int64
	ExpiryMinMinutes int
	ExpiryMaxMinutes int
	ExpiryDefault    int
}

// DefaultLimits are the bounds used when configuration does not override them. The amount range is
// what providers routing O2O through DOKU publish (api/DOKU.md §3); DOKU's own is unknown.
var DefaultLimits = Limits{
	AmountMin:        10_000,
	AmountMax:        5_000_000,
	ExpiryMinMinutes: 5,
	ExpiryMaxMinutes: 30 * 24 * 60,
	ExpiryDefault:    60,
}

// Field length limits. DOKU publishes 64 for the invoice number; the others are ours, chosen to fit a
// store receipt and to keep rows small, and are enforced rather than silently truncated.
const (
	MaxInvoiceNumber = 64
	MaxCustomerName  = 64
	MaxEmail         = 254
	MaxInfo          = 255
	MaxReceiptFooter = 128
	MaxMetadataBytes = 4096
)

// CreateRequest is the body of POST /v1/invoices as the client sent it. Amount and Metadata stay raw
// so that validation can tell "missing" from "zero" and reject non-integers exactly.
type CreateRequest struct {
	InvoiceNumber    string          `json:"invoice_number"`
	Channel          string          `json:"channel"`
	Amount           json.RawMessage `json:"amount"`
	Customer         *Customer       `json:"customer"`
	ExpiresInMinutes *int            `json:"expires_in_minutes"`
	Reusable         *bool           `json:"reusable"`
	Info             string          `json:"info"`
	ReceiptFooter    string          `json:"receipt_footer"`
	Metadata         json.RawMessage `json:"metadata"`
}

// Validate checks r against lim and returns the invoice it describes (status creating, no DOKU
// fields yet), or an *Error with code validation_failed listing every bad field.
func (r *CreateRequest) Validate(lim Limits) (*Invoice, error) {
	var errs []FieldError
	add := func(field, msg string) { errs = append(errs, FieldError{Field: field, Message: msg}) }

	inv := &Invoice{Status: StatusCreating}

	if msg := CheckInvoiceNumber(r.InvoiceNumber); msg != "" {
		add("invoice_number", msg)
	}
	inv.Number = r.InvoiceNumber

	switch ch := Channel(r.Channel); {
	case r.Channel == "":
		add("channel", "is required")
	case !ch.Valid():
		add("channel", `must be "alfa" or "indomaret"`)
	default:
		inv.Channel = ch
	}

	if amount, msg := parseAmount(r.Amount, lim); msg != "" {
		add("amount", msg)
	} else {
		inv.Amount = amount
	}

	if r.Customer == nil {
		add("customer.name", "is required")
	} else {
		name := strings.TrimSpace(r.Customer.Name)
		switch {
		case name == "":
			add("customer.name", "is required")
		case !cleanText(name):
			add("customer.name", "must be valid UTF-8 without control characters")
		case utf8.RuneCountInString(name) > MaxCustomerName:
			add("customer.name", fmt.Sprintf("must be at most %d characters", MaxCustomerName))
		}
		inv.Customer.Name = name
		if email := r.Customer.Email; email != "" {
			if msg := checkEmail(email); msg != "" {
				add("customer.email", msg)
			}
			inv.Customer.Email = email
		}
	}

	inv.ExpiresInMinutes = lim.ExpiryDefault
	if r.ExpiresInMinutes != nil {
		m := *r.ExpiresInMinutes
		if m < lim.ExpiryMinMinutes || m > lim.ExpiryMaxMinutes {
			add("expires_in_minutes", fmt.Sprintf("must be between %d and %d", lim.ExpiryMinMinutes, lim.ExpiryMaxMinutes))
		}
		inv.ExpiresInMinutes = m
	}
	if r.Reusable != nil {
		inv.Reusable = *r.Reusable
	}

	if msg := checkText(r.Info, MaxInfo); msg != "" {
		add("info", msg)
	}
	inv.Info = r.Info

	if r.ReceiptFooter != "" {
		if inv.Channel == ChannelIndomaret {
			add("receipt_footer", "is only supported for the alfa channel")
		} else if msg := checkText(r.ReceiptFooter, MaxReceiptFooter); msg != "" {
			add("receipt_footer", msg)
		}
	}
	inv.ReceiptFooter = r.ReceiptFooter

	if len(r.Metadata) > 0 && !bytes.Equal(bytes.TrimSpace(r.Metadata), []byte("null")) {
		switch {
		case len(r.Metadata) > MaxMetadataBytes:
			add("metadata", fmt.Sprintf("must be at most %d bytes", MaxMetadataBytes))
		case bytes.TrimSpace(r.Metadata)[0] != '{':
			add("metadata", "must be a JSON object")
		default:
			var compact bytes.Buffer
			if err := json.Compact(&compact, r.Metadata); err != nil {
				add("metadata", "must be a JSON object")
			} else if msg := checkStorableJSON(compact.Bytes()); msg != "" {
				add("metadata", msg)
			} else {
				inv.Metadata = compact.Bytes()
			}
		}
	}

	if len(errs) > 0 {
		return nil, &Error{Code: CodeValidation, Message: "the request has invalid fields", Fields: errs}
	}
	return inv, nil
}

// CheckInvoiceNumber returns "" if n is a valid invoice number, or why it is not. The charset is
// RFC 3986's unreserved set, so a number is safe in a URL path and in DOKU's status endpoint as is.
func CheckInvoiceNumber(n string) string {
	if n == "" {
		return "is required"
	}
	if len(n) > MaxInvoiceNumber {
		return fmt.Sprintf("must be at most %d characters", MaxInvoiceNumber)
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '~' || c == '-') {
			return "may contain only A-Z a-z 0-9 . _ ~ -"
		}
	}
	return ""
}

func parseAmount(raw json.RawMessage, lim Limits) (int64, string) {
	s := string(bytes.TrimSpace(raw))
	if s == "" || s == "null" {
		return 0, "is required"
	}
	// Only a plain JSON integer is money here: 1.0, 1e5 and "100" are all refused rather than coerced.
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || i == 0 && s[i] == '-') {
			return 0, "must be an integer number of rupiah"
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Sprintf("must be between %d and %d", lim.AmountMin, lim.AmountMax)
	}
	if v < lim.AmountMin || v > lim.AmountMax {
		return 0, fmt.Sprintf("must be between %d and %d", lim.AmountMin, lim.AmountMax)
	}
	return v, ""
}

func checkEmail(email string) string {
	if len(email) > MaxEmail {
		return fmt.Sprintf("must be at most %d characters", MaxEmail)
	}
	if !cleanText(email) {
		return "must be valid UTF-8 without control characters"
	}
	addr, err := mail.ParseAddress(email)
	// ParseAddress also accepts "Name <a@b>"; only a bare address is an email field.
	if err != nil || addr.Address != email || !strings.Contains(email[strings.LastIndexByte(email, '@')+1:], ".") {
		return "must be a valid email address"
	}
	return ""
}

func checkText(s string, max int) string {
	if !cleanText(s) {
		return "must be valid UTF-8 without control characters"
	}
	if utf8.RuneCountInString(s) > max {
		return fmt.Sprintf("must be at most %d characters", max)
	}
	return ""
}

func cleanText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// SameRequest reports whether other (a freshly validated request) asks for exactly this invoice. It is
// how invoice_number works as an idempotency key: the same request again is the same invoice, a
// different one under the same number is a conflict.
func (inv *Invoice) SameRequest(other *Invoice) bool {
	return inv.Number == other.Number &&
		inv.Channel == other.Channel &&
		inv.Amount == other.Amount &&
		inv.Customer == other.Customer &&
		inv.ExpiresInMinutes == other.ExpiresInMinutes &&
		inv.Reusable == other.Reusable &&
		inv.Info == other.Info &&
		inv.ReceiptFooter == other.ReceiptFooter &&
		sameJSON(inv.Metadata, other.Metadata)
}

// sameJSON compares two JSON documents by value: Postgres' jsonb reorders keys, so bytes differ.
func sameJSON(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// checkStorableJSON returns "" if the (well-formed, UTF-8) document can be stored as PostgreSQL jsonb
// exactly as sent, or why not: jsonb refuses the NUL character anywhere and numbers beyond its range,
// and a refusal there would be a 500 for the client's input.
func checkStorableJSON(doc []byte) string {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return ""
		}
		if err != nil {
			return "must be a JSON object"
		}
		switch v := tok.(type) {
		case string:
			if strings.IndexByte(v, 0) >= 0 {
				return `must not contain the NUL character (\u0000)`
			}
		case json.Number:
			if f, err := strconv.ParseFloat(string(v), 64); err != nil || math.IsInf(f, 0) {
				return "must hold numbers within ±1.7e308"
			}
		}
	}
}
