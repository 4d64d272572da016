package invoice

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits are the configurable bounds a new invoice is checked against.
type Limits struct {
	AmountMin        int64
	AmountMax        int64
	ExpiryMinMinutes int
	ExpiryMaxMinutes int
	ExpiryDefault    int
}

// Field length limits. DOKU publishes 64 for the invoice number; the others are ours, chosen to fit a
// store receipt and to keep rows small, and are enforced rather than silently truncated.
const (
	MaxInvoiceNumber = 64
	MaxCustomerName  = 64
	MaxEmail         = 254
	MaxInfo          = 255
	MaxReceiptFooter = 128
)

// Draft is an invoice as a client asks for it, before it is checked. Pointers tell a field that was
// not given from a zero one. Metadata, when set, is a JSON object the caller has already checked.
type Draft struct {
	Number           string
	Channel          string
	Amount           *int64
	Customer         *Customer
	ExpiresInMinutes *int
	Reusable         *bool
	Info             string
	ReceiptFooter    string
	Metadata         []byte
}

// Validate checks d against lim and returns the invoice it describes (status creating, no DOKU
// fields yet), or a *ValidationError listing every bad field.
func (d Draft) Validate(lim Limits) (*Invoice, error) {
	var errs []FieldError
	add := func(field, msg string) {
		if msg != "" {
			errs = append(errs, FieldError{Field: field, Message: msg})
		}
	}
	inv := &Invoice{Status: StatusCreating, Number: d.Number, Info: d.Info, ReceiptFooter: d.ReceiptFooter,
		ExpiresInMinutes: lim.ExpiryDefault}
	add("invoice_number", CheckInvoiceNumber(d.Number))
	inv.Channel, _ = ParseChannel(d.Channel)
	add("channel", checkChannel(d.Channel))
	add("amount", checkAmount(d.Amount, lim))
	if d.Amount != nil {
		inv.Amount = *d.Amount
	}
	if d.Customer == nil {
		add("customer.name", "is required")
	} else {
		inv.Customer = Customer{Name: strings.TrimSpace(d.Customer.Name), Email: d.Customer.Email}
		add("customer.name", checkName(inv.Customer.Name))
		if inv.Customer.Email != "" {
			add("customer.email", checkEmail(inv.Customer.Email))
		}
	}
	if d.ExpiresInMinutes != nil {
		inv.ExpiresInMinutes = *d.ExpiresInMinutes
		if m := *d.ExpiresInMinutes; m < lim.ExpiryMinMinutes || m > lim.ExpiryMaxMinutes {
			add("expires_in_minutes", fmt.Sprintf("must be between %d and %d", lim.ExpiryMinMinutes, lim.ExpiryMaxMinutes))
		}
	}
	inv.Reusable = d.Reusable != nil && *d.Reusable
	add("info", checkText(d.Info, MaxInfo))
	add("receipt_footer", checkFooter(d.ReceiptFooter, inv.Channel))
	if len(d.Metadata) > 0 {
		inv.Metadata = d.Metadata
	}
	if len(errs) > 0 {
		return nil, &ValidationError{Fields: errs}
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
	if n == "." || n == ".." {
		// A path segment every browser and HTTP client resolves away: /v1/invoices/.. and the payment
		// page's /pay/../… would never reach the invoice.
		return `must not be "." or ".."`
	}
	return ""
}

func checkChannel(ch string) string {
	if ch == "" {
		return "is required"
	}
	if _, ok := ParseChannel(ch); !ok {
		return `must be "alfa" or "indomaret"`
	}
	return ""
}

func checkAmount(amount *int64, lim Limits) string {
	switch {
	case amount == nil:
		return "is required"
	case *amount < lim.AmountMin || *amount > lim.AmountMax:
		return fmt.Sprintf("must be between %d and %d", lim.AmountMin, lim.AmountMax)
	}
	return ""
}

func checkName(name string) string {
	switch {
	case name == "":
		return "is required"
	case !cleanText(name):
		return "must be valid UTF-8 without control characters"
	case utf8.RuneCountInString(name) > MaxCustomerName:
		return fmt.Sprintf("must be at most %d characters", MaxCustomerName)
	}
	return ""
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

// checkFooter: the receipt footer is printed by Alfa's stores only (DOKU sends a default for Indomaret).
func checkFooter(footer string, ch Channel) string {
	if footer == "" {
		return ""
	}
	if ch == ChannelIndomaret {
		return "is only supported for the alfa channel"
	}
	return checkText(footer, MaxReceiptFooter)
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
	return utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
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

// sameJSON compares two JSON documents by value: Postgres' jsonb reorders keys and rewrites numbers
// (1e2 as 100), so bytes differ. Numbers compare by their exact value: as float64, an order number
// of 20 digits and the same number plus one were one value, and a replay with other metadata passed
// for the original request.
func sameJSON(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	if bytes.Equal(a, b) {
		return true
	}
	va, errA := decodeExact(a)
	vb, errB := decodeExact(b)
	return errA == nil && errB == nil && equalJSON(va, vb)
}

func decodeExact(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// equalJSON compares two decoded JSON values, numbers as exact rationals.
func equalJSON(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || !equalJSON(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		var rx, ry big.Rat
		_, okx := rx.SetString(string(x))
		_, oky := ry.SetString(string(y))
		return ok && okx && oky && rx.Cmp(&ry) == 0
	}
	return a == b // strings, booleans, null
}
