package doku

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/strictjson"
)

// DOKU identifiers of the O2O service and its channels (api/DOKU.md §1).
const (
	ServiceO2O           = "ONLINE_TO_OFFLINE"
	ChannelIDAlfa        = "ONLINE_TO_OFFLINE_ALFA"
	ChannelIDIndomaret   = "ONLINE_TO_OFFLINE_INDOMARET"
	AcquirerIDAlfa       = "ALFA"
	AcquirerIDIndomaret  = "INDOMARET"
	unknownChannelPrefix = "doku:"
)

// ChannelID is DOKU's channel.id for ch.
func ChannelID(ch invoice.Channel) string {
	if ch == invoice.ChannelIndomaret {
		return ChannelIDIndomaret
	}
	return ChannelIDAlfa
}

// AcquirerID is DOKU's acquirer.id for ch.
func AcquirerID(ch invoice.Channel) string {
	if ch == invoice.ChannelIndomaret {
		return AcquirerIDIndomaret
	}
	return AcquirerIDAlfa
}

// Notification is DOKU's payment notification (and, nearly, its check-status answer). Every field is
// optional on the wire; ParseNotification decides what is required.
type Notification struct {
	Service  idField `json:"service"`
	Acquirer idField `json:"acquirer"`
	Channel  idField `json:"channel"`
	Order    struct {
		InvoiceNumber string     `json:"invoice_number"`
		Amount        FlexString `json:"amount"`
	} `json:"order"`
	Transaction struct {
		Status            string `json:"status"`
		Date              string `json:"date"`
		OriginalRequestID string `json:"original_request_id"`
	} `json:"transaction"`
	O2OInfo struct {
		PaymentCode    FlexString `json:"payment_code"`
		CreatedDate    string     `json:"created_date,omitempty"`
		ExpiredDate    string     `json:"expired_date,omitempty"`
		ReusableStatus FlexBool   `json:"reusable_status"`
	} `json:"online_to_offline_info"`
	O2OPayment struct {
		Identifier []Identifier `json:"identifier"`
	} `json:"online_to_offline_payment"`
}

type idField struct {
	ID string `json:"id"`
}

// Identifier is one name/value pair DOKU reports about the store and transaction.
type Identifier struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// ErrMalformed is returned for a notification body that cannot be understood.
var ErrMalformed = errors.New("doku: malformed notification")

// ParseNotification reads a notification body and translates it into a payment report. Keys must be
// exact and unrepeated (even up to case: {"amount":1000,"AMOUNT":150000} has no right reading), but
// everything that can be read without guessing is: unknown fields are ignored, numbers may be strings,
// a date in a format we do not know falls back to the receipt time (DateText keeps it), and an amount
// that is not a whole number of rupiah is reported as such for the domain to flag, not refused — a
// genuine notification is never lost over its formatting. It needs the invoice number and a status;
// everything else is checked against the invoice by the domain.
func ParseNotification(body []byte) (invoice.PaymentReport, error) {
	var n Notification
	if err := strictjson.DecodeForeign(body, &n); err != nil {
		return invoice.PaymentReport{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return n.Report()
}

// Report translates a decoded notification into a payment report.
func (n *Notification) Report() (invoice.PaymentReport, error) {
	r := invoice.PaymentReport{
		InvoiceNumber:     CleanText(n.Order.InvoiceNumber),
		DokuStatus:        CleanText(n.Transaction.Status),
		PaymentCode:       CleanText(string(n.O2OInfo.PaymentCode)),
		OriginalRequestID: CleanText(n.Transaction.OriginalRequestID),
		Channel:           n.channel(),
		AmountText:        CleanText(string(n.Order.Amount)),
		DateText:          CleanText(n.Transaction.Date),
	}
	if r.InvoiceNumber == "" {
		return r, fmt.Errorf("%w: order.invoice_number is missing", ErrMalformed)
	}
	if len(r.InvoiceNumber) > invoice.MaxInvoiceNumber {
		return r, fmt.Errorf("%w: order.invoice_number is %d bytes long; no invoice of this service has more than %d",
			ErrMalformed, len(r.InvoiceNumber), invoice.MaxInvoiceNumber)
	}
	if r.DokuStatus == "" {
		return r, fmt.Errorf("%w: transaction.status is missing", ErrMalformed)
	}
	whole, err := parseAmount(r.AmountText)
	switch {
	case err == nil:
		r.Amount = whole
	case errors.Is(err, errNotWhole):
		// Readable, but not an amount we could have asked for: Amount stays 0, which no invoice has,
		// so the domain flags it as a mismatch for a person instead of it being lost as unreadable.
	case r.DokuStatus == invoice.DokuSuccess:
		return r, fmt.Errorf("%w: order.%v", ErrMalformed, err)
	}
	if t, ok := parseDate(r.DateText); ok {
		r.PaidAt = t
	}
	if len(n.O2OPayment.Identifier) > 0 {
		r.Identifiers = make(map[string]string, len(n.O2OPayment.Identifier))
		for _, id := range n.O2OPayment.Identifier {
			if name := CleanText(id.Name); name != "" {
				r.Identifiers[name] = CleanText(id.Value)
			}
		}
	}
	return r, nil
}

// mentionedInvoice is the invoice number an unreadable body seems to name, for a person to find it by;
// nothing is decided on it. "" when there is no plausible one.
func mentionedInvoice(body []byte) string {
	var v struct {
		Order struct {
			InvoiceNumber string `json:"invoice_number"`
		} `json:"order"`
	}
	_ = json.Unmarshal(body, &v) // encoding/json: as far as it gets
	if invoice.CheckInvoiceNumber(v.Order.InvoiceNumber) != "" {
		return ""
	}
	return v.Order.InvoiceNumber
}

// parseDate reads transaction.date: RFC 3339 in every sample, but DOKU writes yyyyMMddHHmmss in WIB
// elsewhere in the same API and documents no guarantee. A zoneless ISO time is not guessed at.
func parseDate(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), true
	}
	if t, err := ParseWIB(s); err == nil {
		return t.UTC(), true
	}
	return time.Time{}, false
}

// CleanText makes text from DOKU storable as PostgreSQL text and jsonb, which refuse NUL and invalid
// UTF-8: either becomes U+FFFD. The raw bytes of every notification are kept as received elsewhere.
func CleanText(s string) string {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// channel maps DOKU's channel (or, failing that, acquirer) id to ours. An id we do not know maps to
// a value no invoice has, so it is flagged as a channel mismatch rather than silently accepted.
func (n *Notification) channel() invoice.Channel {
	switch id := CleanText(n.Channel.ID); id {
	case ChannelIDAlfa:
		return invoice.ChannelAlfa
	case ChannelIDIndomaret:
		return invoice.ChannelIndomaret
	case "":
	default:
		return invoice.Channel(unknownChannelPrefix + id)
	}
	switch id := CleanText(n.Acquirer.ID); id {
	case AcquirerIDAlfa:
		return invoice.ChannelAlfa
	case AcquirerIDIndomaret:
		return invoice.ChannelIndomaret
	case "":
		return ""
	default:
		return invoice.Channel(unknownChannelPrefix + id)
	}
}

// headersKept are the notification headers stored with it in the inbox (none is our secret).
var headersKept = []string{HeaderClientID, HeaderRequestID, HeaderRequestTimestamp, HeaderSignature, "Content-Type", "User-Agent"}

// ReadNotification verifies a notification's signature over its raw body and then reads it. It
// returns the notification as the inbox keeps it — the raw body and the headers that matter, as text
// PostgreSQL accepts whatever bytes arrived — and its payment report. When the signature is not
// valid, it returns neither (nothing of the body is trusted, nothing is kept); when the body is
// genuine but cannot be read, the notification without a report (to keep for a person), with
// ErrMalformed.
func (v Verifier) ReadNotification(h http.Header, body []byte) (*invoice.Notification, *invoice.PaymentReport, error) {
	if err := v.Verify(h, body); err != nil {
		return nil, nil, err
	}
	// The Request-Id keys the inbox; one longer than any DOKU documents is keyed by its digest (the
	// header itself is kept in full with the others).
	n := &invoice.Notification{RequestID: invoice.KeyText(CleanText(h.Get(HeaderRequestID))), Body: body,
		Headers: make(map[string]string, len(headersKept))}
	for _, k := range headersKept {
		if val := h.Get(k); val != "" {
			n.Headers[k] = CleanText(val)
		}
	}
	r, err := ParseNotification(body)
	n.InvoiceNumber = r.InvoiceNumber
	if err != nil {
		n.InvoiceNumber = mentionedInvoice(body)
		n.InvalidReason = err.Error()
		return n, nil, err
	}
	r.Source = invoice.SourceWebhook
	r.RequestID = n.RequestID
	return n, &r, nil
}
