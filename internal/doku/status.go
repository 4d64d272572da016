package doku

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/google/uuid"

	"github.com/merchant/o2o/internal/invoice"
)

// StatusPath is the check-status path of an invoice number (or generate Request-Id).
func StatusPath(id string) string { return PathStatusPrefix + url.PathEscape(id) }

// CheckStatus asks DOKU for an order's status (REFERENCE.md §5): a GET signed without a Digest line,
// under a fresh Request-Id (a read needs no idempotency). The answer is translated into a payment
// report with DokuStatus PENDING, SUCCESS or EXPIRED; an unknown invoice is a *APIError.
func (c *Client) CheckStatus(ctx context.Context, invoiceNumber string) (r invoice.PaymentReport, err error) {
	k := call{endpoint: "check_status", requestID: uuid.NewString(), invoiceNumber: invoiceNumber, start: time.Now()}
	status := 0
	defer func() { c.done(ctx, k, status, outcomeOf(status, err), err) }()
	status, body, err := c.do(ctx, http.MethodGet, StatusPath(invoiceNumber), k.requestID, nil)
	if err != nil {
		return invoice.PaymentReport{}, err
	}
	if status != http.StatusOK {
		return invoice.PaymentReport{}, apiError(status, body)
	}
	return parseStatusResponse(body)
}

func parseStatusResponse(body []byte) (invoice.PaymentReport, error) {
	var n Notification
	if err := json.Unmarshal(body, &n); err != nil {
		return invoice.PaymentReport{}, fmt.Errorf("%w: unreadable status response: %v", ErrUnavailable, err)
	}
	// Some error answers come with HTTP 200 and an error body.
	if n.Order.InvoiceNumber == "" && n.Transaction.Status == "" {
		var eb errorBody
		if json.Unmarshal(body, &eb) == nil && eb.Error.Message != "" {
			return invoice.PaymentReport{}, &APIError{StatusCode: http.StatusNotFound, Code: eb.Error.Code, Message: eb.Error.Message}
		}
	}
	r, err := n.Report()
	if err != nil {
		return r, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	switch r.DokuStatus {
	case invoice.DokuPending, invoice.DokuSuccess, invoice.DokuExpired, invoice.DokuFailed:
	default:
		return r, fmt.Errorf("%w: unknown transaction.status %q", ErrUnavailable, r.DokuStatus)
	}
	return r, nil
}

// Check implements invoice.Gateway: CheckStatus with errors in the domain's terms.
func (c *Client) Check(ctx context.Context, invoiceNumber string) (invoice.PaymentReport, error) {
	r, err := c.CheckStatus(ctx, invoiceNumber)
	if err == nil {
		return r, nil
	}
	var ae *APIError
	if IsRejection(err) && errors.As(err, &ae) {
		return r, &invoice.Error{Code: invoice.CodeDokuRejected, Message: "DOKU check status: " + ae.Message, Cause: err}
	}
	return r, &invoice.Error{Code: invoice.CodeDokuUnavailable, Message: "DOKU check status did not answer; try again later", Cause: err}
}
