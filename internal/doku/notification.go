package doku

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/strictjson"
)

// DOKU identifiers of the O2O service and its channels (REFERENCE.md §1).
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

// ParseNotification decodes a notification body leniently (unknown fields are ignored, numbers may be
// strings) and translates it into a payment report. It needs the invoice number, a status and, for a
// success, a whole positive amount; everything else is checked against the invoice by the domain.
func ParseNotification(body []byte) (invoice.PaymentReport, error) {
	var n Notification
	if err := json.Unmarshal(body, &n); err != nil {
		return invoice.PaymentReport{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	// Signed by DOKU or not, a body whose meaning depends on which duplicate a parser keeps is not
	// one to move money on.
	if err := strictjson.CheckDuplicateKeys(body); err != nil {
		return invoice.PaymentReport{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return n.Report()
}

// Report translates a decoded notification or status answer into a payment report.
func (n *Notification) Report() (invoice.PaymentReport, error) {
	r := invoice.PaymentReport{
		InvoiceNumber:     n.Order.InvoiceNumber,
		DokuStatus:        n.Transaction.Status,
		PaymentCode:       string(n.O2OInfo.PaymentCode),
		OriginalRequestID: n.Transaction.OriginalRequestID,
		Channel:           n.channel(),
	}
	if r.InvoiceNumber == "" {
		return r, fmt.Errorf("%w: order.invoice_number is missing", ErrMalformed)
	}
	if r.DokuStatus == "" {
		return r, fmt.Errorf("%w: transaction.status is missing", ErrMalformed)
	}
	if amount, err := parseAmount(string(n.Order.Amount)); err == nil {
		r.Amount = amount
	} else if r.DokuStatus == invoice.DokuSuccess {
		return r, fmt.Errorf("%w: order.%v", ErrMalformed, err)
	}
	if n.Transaction.Date != "" {
		t, err := time.Parse(time.RFC3339, n.Transaction.Date)
		if err != nil {
			return r, fmt.Errorf("%w: transaction.date %q is not an RFC 3339 time", ErrMalformed, n.Transaction.Date)
		}
		r.PaidAt = t.UTC()
	}
	if len(n.O2OPayment.Identifier) > 0 {
		r.Identifiers = make(map[string]string, len(n.O2OPayment.Identifier))
		for _, id := range n.O2OPayment.Identifier {
			if id.Name != "" {
				r.Identifiers[id.Name] = id.Value
			}
		}
	}
	return r, nil
}

// channel maps DOKU's channel (or, failing that, acquirer) id to ours. An id we do not know maps to
// a value no invoice has, so it is flagged as a channel mismatch rather than silently accepted.
func (n *Notification) channel() invoice.Channel {
	switch id := n.Channel.ID; id {
	case ChannelIDAlfa:
		return invoice.ChannelAlfa
	case ChannelIDIndomaret:
		return invoice.ChannelIndomaret
	case "":
	default:
		return invoice.Channel(unknownChannelPrefix + id)
	}
	switch id := n.Acquirer.ID; id {
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

// ReadNotification verifies a notification's signature over its raw body and then parses it. Errors
// carry the domain's codes: invalid_signature (answer 401, write nothing) before anything of the body
// is trusted, invalid_notification (answer 400) for a genuine but unreadable body.
func (v Verifier) ReadNotification(h http.Header, body []byte) (invoice.PaymentReport, error) {
	if err := v.Verify(h, body); err != nil {
		return invoice.PaymentReport{}, &invoice.Error{Code: invoice.CodeBadSignature, Message: "the notification signature is not valid", Cause: err}
	}
	r, err := ParseNotification(body)
	if err != nil {
		return r, &invoice.Error{Code: invoice.CodeInvalidNotification, Message: err.Error(), Cause: err}
	}
	r.Source = invoice.SourceWebhook
	r.RequestID = h.Get(HeaderRequestID)
	return r, nil
}
