package doku

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/strictjson"
)

// RequiredGenerateFields are the generate-request fields DOKU's Indomaret "Generate Payment Code" page
// marks required — alfa_info included — and the Alfa page prints the same body. GenerateBody sends
// every one on both channels; the simulator refuses a request that lacks any.
var RequiredGenerateFields = []string{
	"order", "order.invoice_number", "order.amount",
	"online_to_offline_info", "online_to_offline_info.expired_time", "online_to_offline_info.reusable_status",
	"online_to_offline_info.info",
	"customer", "customer.name", "customer.email",
	"alfa_info", "alfa_info.receipt",
}

// generateBody is the generate-payment-code request. Field order is the order DOKU documents; it is
// what the V1 test vector's bytes are. DOKU's Indomaret page marks every field here required — info,
// customer.email and alfa_info.receipt included, on the Indomaret channel too — so none is ever
// omitted: a field the client did not give is filled from BodyDefaults.
type generateBody struct {
	Order struct {
		InvoiceNumber string `json:"invoice_number"`
		Amount        int64  `json:"amount"`
	} `json:"order"`
	O2OInfo struct {
		ExpiredTime    int    `json:"expired_time"`
		ReusableStatus bool   `json:"reusable_status"`
		Info           string `json:"info"`
	} `json:"online_to_offline_info"`
	Customer struct {
		Name  string `json:"name"`
		Email string `json:"email"`
	} `json:"customer"`
	AlfaInfo struct {
		Receipt struct {
			FooterMessage string `json:"footer_message"`
		} `json:"receipt"`
	} `json:"alfa_info"`
}

// BodyDefaults fill the fields DOKU requires that a create request may leave out.
type BodyDefaults struct {
	// Info is shown at the store counter when the cashier looks the code up.
	Info string
	// CustomerEmail stands in for the customer's address (the merchant's own, typically).
	CustomerEmail string
	// ReceiptFooter is printed on the store receipt (the API takes a footer for Alfa only).
	ReceiptFooter string
}

// GenerateBody builds the exact bytes of the generate request for inv. They are stored with the
// invoice and sent unchanged on every retry: DOKU's idempotency compares bodies.
func GenerateBody(inv *invoice.Invoice, d BodyDefaults) ([]byte, error) {
	var b generateBody
	b.Order.InvoiceNumber = inv.Number
	b.Order.Amount = inv.Amount
	b.O2OInfo.ExpiredTime = inv.ExpiresInMinutes
	b.O2OInfo.ReusableStatus = inv.Reusable
	b.O2OInfo.Info = or(inv.Info, d.Info)
	b.Customer.Name = inv.Customer.Name
	b.Customer.Email = or(inv.Customer.Email, d.CustomerEmail)
	b.AlfaInfo.Receipt.FooterMessage = or(inv.ReceiptFooter, d.ReceiptFooter)
	return json.Marshal(&b)
}

func or(s, fallback string) string {
	if s != "" {
		return s
	}
	return fallback
}

// wib is Western Indonesian Time, the zone of DOKU's yyyyMMddHHmmss dates. Indonesia has no daylight
// saving, so a fixed offset is exact and needs no tzdata in the image.
var wib = time.FixedZone("WIB", 7*60*60)

const wibLayout = "20060102150405"

// ParseWIB parses DOKU's yyyyMMddHHmmss WIB dates into an instant.
func ParseWIB(s string) (time.Time, error) {
	return time.ParseInLocation(wibLayout, s, wib)
}

// FormatWIB formats t as DOKU's yyyyMMddHHmmss WIB date.
func FormatWIB(t time.Time) string { return t.In(wib).Format(wibLayout) }

// GenerateResponse is DOKU's answer to a generate request (api/DOKU.md §3). Unknown fields are
// ignored: DOKU adds fields without notice.
type GenerateResponse struct {
	Order struct {
		InvoiceNumber string     `json:"invoice_number"`
		Amount        FlexString `json:"amount"`
	} `json:"order"`
	O2OInfo struct {
		PaymentCode  FlexString `json:"payment_code"`
		Info         string     `json:"info,omitempty"`
		HowToPayPage string     `json:"how_to_pay_page,omitempty"`
		HowToPayAPI  string     `json:"how_to_pay_api,omitempty"`
		CreatedDate  string     `json:"created_date,omitempty"`
		ExpiredDate  string     `json:"expired_date,omitempty"`
	} `json:"online_to_offline_info"`
}

// errNotOurCode is a generate answer that reads, but whose code cannot be the asked invoice's: one
// for another order or amount, or a "code" no customer can read out. Shown to a customer, the money
// would arrive for the wrong invoice, or not at all; the outcome of the request stays unknown.
var errNotOurCode = errors.New("not a code for this invoice")

// maxPaymentCode bounds a code we show a customer; DOKU's are 16 digits or so.
const maxPaymentCode = 64

// parseGenerateResponse reads DOKU's generate answer to the request for invoice number and amount.
func parseGenerateResponse(body []byte, number string, amount int64) (invoice.Issued, error) {
	var r GenerateResponse
	if err := strictjson.DecodeForeign(body, &r); err != nil {
		return invoice.Issued{}, fmt.Errorf("decode generate response: %w", err)
	}
	code := string(r.O2OInfo.PaymentCode)
	if code == "" {
		return invoice.Issued{}, errors.New("generate response has no payment_code")
	}
	if len(code) > maxPaymentCode || CleanText(code) != code || strings.ContainsFunc(code, unicode.IsControl) {
		return invoice.Issued{}, fmt.Errorf("%w: generate response's payment_code %q is not one a customer can read out", errNotOurCode, code)
	}
	if n := r.Order.InvoiceNumber; n != "" && n != number {
		return invoice.Issued{}, fmt.Errorf("%w: generate response is for invoice %q, not %q", errNotOurCode, n, number)
	}
	if a, err := parseAmount(string(r.Order.Amount)); err == nil && a != amount {
		return invoice.Issued{}, fmt.Errorf("%w: generate response is for amount %d, not %d", errNotOurCode, a, amount)
	}
	is := invoice.Issued{
		PaymentCode:  code,
		HowToPayPage: CleanText(r.O2OInfo.HowToPayPage),
		HowToPayAPI:  CleanText(r.O2OInfo.HowToPayAPI),
	}
	// A missing or odd expired_date is not worth losing an issued code over: the caller falls back
	// to the expiry it asked for.
	if t, err := ParseWIB(r.O2OInfo.ExpiredDate); err == nil {
		is.ExpiresAt = t.UTC()
	}
	return is, nil
}

// FlexString decodes a JSON string or number into its text, so a payment code sent as a number keeps
// every digit (but, being a number, any leading zeros were already lost by the sender).
type FlexString string

func (f *FlexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*f = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = FlexString(s)
	case len(b) > 0 && (b[0] == '-' || b[0] >= '0' && b[0] <= '9'):
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return err
		}
		*f = FlexString(n.String())
	default:
		return fmt.Errorf("expected a string or a number, got %.20s", b)
	}
	return nil
}

// FlexBool decodes true/false or "true"/"false": check status sends reusable_status as a string.
type FlexBool bool

func (f *FlexBool) UnmarshalJSON(b []byte) error {
	switch strings.ToLower(strings.Trim(string(bytes.TrimSpace(b)), `"`)) {
	case "true":
		*f = true
	case "false", "", "null":
		*f = false
	default:
		return fmt.Errorf("expected a boolean, got %.20s", b)
	}
	return nil
}

// errNotWhole is a readable amount that is not a positive whole number of rupiah.
var errNotWhole = errors.New("is not a positive whole number of rupiah")

// parseAmount reads an integer rupiah amount sent as a number or a string. A zero fraction
// ("150000.00") is the same amount; a number that is not a positive whole rupiah amount that fits
// int64 is errNotWhole (it is never rounded); text that is not a decimal number is another error.
func parseAmount(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("amount is missing")
	}
	var r big.Rat
	// big.Rat also reads "1/2" and "0x10": allow only the characters of a decimal number, and keep
	// the exponent short — "1e999999999" would make big.Rat build a billion-digit number.
	_, exp, hasExp := strings.Cut(strings.ToLower(s), "e")
	if len(s) > 64 || strings.Trim(s, "0123456789.-+eE") != "" || hasExp && len(strings.TrimLeft(exp, "+-")) > 2 {
		return 0, fmt.Errorf("amount %q is not a number", s)
	}
	if _, ok := r.SetString(s); !ok {
		return 0, fmt.Errorf("amount %q is not a number", s)
	}
	if !r.IsInt() || r.Sign() <= 0 || !r.Num().IsInt64() {
		return 0, errNotWhole
	}
	return r.Num().Int64(), nil
}

// errorBody is DOKU's error shape; more keys appear at times, and the message is what we keep.
type errorBody struct {
	Error struct {
		Message string `json:"message"`
		Code    string `json:"code"`
		Type    string `json:"type"`
	} `json:"error"`
	Message string `json:"message"`
}

func apiError(status int, body []byte) *APIError {
	e := &APIError{StatusCode: status}
	var eb errorBody
	if strictjson.DecodeForeign(body, &eb) == nil {
		// DOKU's words are stored (the invoice's failure, its history): as text PostgreSQL takes.
		e.Code = CleanText(eb.Error.Code)
		e.Message = CleanText(eb.Error.Message)
		if e.Message == "" {
			e.Message = CleanText(eb.Message)
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
		if snippet := strings.TrimSpace(string(body)); snippet != "" && utf8.ValidString(snippet) {
			if len(snippet) > 200 {
				snippet = strings.ToValidUTF8(snippet[:200], "")
			}
			e.Message += ": " + CleanText(snippet)
		}
	}
	return e
}
