package doku

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/google/uuid"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/strictjson"
)

// StatusPath is the check-status path of an invoice number (or generate Request-Id).
func StatusPath(id string) string { return PathStatusPrefix + url.PathEscape(id) }

// CheckStatus asks DOKU for an order's status (api/DOKU.md §5): a GET signed without a Digest line,
// under a fresh Request-Id (a read needs no idempotency). The answer is translated into a payment
// report with DokuStatus PENDING, SUCCESS or EXPIRED; an unknown invoice is a *APIError.
func (c *Client) CheckStatus(ctx context.Context, invoiceNumber string) (r invoice.PaymentReport, err error) {
	k := call{endpoint: "check_status", requestID: uuid.NewString(), invoiceNumber: invoiceNumber, start: time.Now()}
	status := 0
	defer func() { c.done(ctx, k, status, outcomeOf(status, err), err) }()
	status, body, _, err := c.do(ctx, http.MethodGet, StatusPath(invoiceNumber), k.requestID, nil)
	if err != nil {
		return invoice.PaymentReport{}, err
	}
	if status != http.StatusOK {
		return invoice.PaymentReport{}, apiError(status, body)
	}
	return parseStatusResponse(body)
}

// parseStatusResponse reads a check-status answer. DOKU documents it as the notification's shape with
// less in it, and what is there means less: transaction.date is when the code was created, not when it
// was paid, and the identifiers carry only AGENT_ID. So the report is Anonymous — it says that the
// code was paid, never which payment — and takes neither a payment time nor identifiers from it.
func parseStatusResponse(body []byte) (invoice.PaymentReport, error) {
	var n Notification
	if err := strictjson.DecodeForeign(body, &n); err != nil {
		return invoice.PaymentReport{}, fmt.Errorf("%w: unreadable status response: %v", ErrUnavailable, err)
	}
	// Some error answers come with HTTP 200 and an error body.
	if n.Order.InvoiceNumber == "" && n.Transaction.Status == "" {
		var eb errorBody
		if strictjson.DecodeForeign(body, &eb) == nil && eb.Error.Message != "" {
			return invoice.PaymentReport{}, &APIError{StatusCode: http.StatusNotFound, Code: eb.Error.Code, Message: eb.Error.Message}
		}
	}
	r, err := n.Report()
	if err != nil {
		return r, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	r.Anonymous, r.PaidAt, r.DateText, r.Identifiers = true, time.Time{}, "", nil
	switch r.DokuStatus {
	case invoice.DokuPending, invoice.DokuSuccess, invoice.DokuExpired, invoice.DokuFailed:
	default:
		return r, fmt.Errorf("%w: unknown transaction.status %q", ErrUnavailable, r.DokuStatus)
	}
	return r, nil
}

// Check implements service.Gateway: CheckStatus with errors in the domain's terms.
func (c *Client) Check(ctx context.Context, invoiceNumber string) (invoice.PaymentReport, error) {
	r, err := c.CheckStatus(ctx, invoiceNumber)
	if err == nil {
		return r, nil
	}
	var ae *APIError
	if IsRejection(err) && errors.As(err, &ae) {
		return r, &invoice.Error{Kind: invoice.ErrDokuRejected, Message: "DOKU check status: " + ae.Message, Cause: err}
	}
	return r, &invoice.Error{Kind: invoice.ErrDokuUnavailable, Message: "DOKU check status did not answer; try again later", Cause: err}
}
