package doku

import (
	"context"
	"errors"

	"github.com/merchant/o2o/internal/invoice"
)

// RequestBody implements service.Gateway: the generate request for inv.
func (c *Client) RequestBody(inv *invoice.Invoice) ([]byte, error) {
	return GenerateBody(inv, c.defaults)
}

// Issue implements service.Gateway: it sends inv's stored Request-Id and body and translates the
// answer into the domain's terms — a definite refusal (doku_rejected, with DOKU's message) or an
// unknown outcome (doku_unavailable) that must be retried with the same id and bytes.
func (c *Client) Issue(ctx context.Context, inv *invoice.Invoice) (invoice.Issued, error) {
	is, err := c.GeneratePaymentCode(ctx, inv.Channel, inv.DokuRequestID, inv.DokuRequestBody)
	if err == nil {
		return is, nil
	}
	var ae *APIError
	if IsRejection(err) && errors.As(err, &ae) {
		return is, &invoice.Error{Kind: invoice.ErrDokuRejected, Message: ae.Message, Cause: err}
	}
	return is, &invoice.Error{Kind: invoice.ErrDokuUnavailable, Message: "DOKU did not confirm the payment code; retry the same request later", Cause: err}
}
