package doku

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"

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
	unavailable := &invoice.Error{Kind: invoice.ErrDokuUnavailable, Message: "DOKU did not confirm the payment code; retry the same request later", Cause: err}
	if errors.As(err, &ae) {
		unavailable.RetryAfter = ae.RetryAfter
	}
	return is, unavailable
}

// Environment implements service.Gateway: the DOKU this client talks to.
func (c *Client) Environment() string { return EnvironmentID(c.baseURL, c.clientID) }

// EnvironmentID names a DOKU environment as invoices record it: a digest of DOKU's base URL and our
// Client-Id there — the simulator, the sandbox and production, or two merchant accounts, differ in
// one or the other. It is a digest so that neither is repeated in every row (and the Client-Id is
// not spelt out in /readyz).
func EnvironmentID(baseURL, clientID string) string {
	d := sha256.Sum256([]byte(strings.TrimRight(baseURL, "/") + "\n" + clientID))
	return "env_" + hex.EncodeToString(d[:8])
}
