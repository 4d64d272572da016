package doku

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/strictjson"
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

// maxInstructionsBytes bounds DOKU's how-to-pay answer.
const maxInstructionsBytes = 64 << 10

// HowToPay implements service.Gateway: the instructions at apiURL — the how_to_pay_api of a generate
// answer — fetched as DOKU's own WooCommerce plugin fetches them, with a plain unsigned GET, and read
// as it reads them: payment_instruction[], each a channel and its step[] (api/DOKU.md §7). Only
// https (or plain http where DOKU_BASE_URL itself is, the simulator) is followed, never a redirect.
func (c *Client) HowToPay(ctx context.Context, apiURL string) ([]invoice.Instruction, error) {
	u, err := url.Parse(apiURL)
	if err != nil || u.Host == "" || !(u.Scheme == "https" || u.Scheme == "http" && strings.HasPrefix(c.baseURL, "http://")) {
		return nil, fmt.Errorf("doku: how_to_pay_api %q is not an address to fetch", apiURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, apiURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	client := *c.http
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxInstructionsBytes))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("doku: how_to_pay_api answered HTTP %d", resp.StatusCode)
	}
	var answer struct {
		Instructions []invoice.Instruction `json:"payment_instruction"`
	}
	if err := strictjson.DecodeForeign(body, &answer); err != nil {
		return nil, fmt.Errorf("doku: how_to_pay_api answered what its plugin could not read: %w", err)
	}
	var out []invoice.Instruction
	for _, in := range answer.Instructions {
		var steps []string
		for _, s := range in.Steps {
			if s = strings.TrimSpace(s); s != "" && utf8.ValidString(s) {
				steps = append(steps, s)
			}
		}
		if len(steps) > 0 {
			out = append(out, invoice.Instruction{Channel: strings.TrimSpace(in.Channel), Steps: steps})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("doku: how_to_pay_api had no steps")
	}
	return out, nil
}
