// Command contractcheck uses the Go client that oapi-codegen generates from api/openapi.yaml the way
// an order system would: it creates an invoice, reads it back and decodes a webhook's Event.
//
// The client is not committed: .dev/contract-generators.sh copies this module to a temporary
// directory, generates the client into its o2oclient package (with api/generators/oapi-codegen.yaml)
// and builds, vets and runs this program there. The HTTP answers come from memory (no network);
// they are shaped as api/openapi.yaml says, so the program also shows that the generated types decode
// them.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"

	openapi_types "github.com/oapi-codegen/runtime/types"

	o2o "contractcheck/o2oclient"
)

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "contractcheck:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	client, err := o2o.NewClientWithResponses("https://o2o.example", o2o.WithHTTPClient(service{}))
	if err != nil {
		return err
	}

	email := openapi_types.Email("taufik@example.com")
	expires, info := 60, "Online Shop"
	metadata := map[string]interface{}{"cart_id": "C-77"}
	req := o2o.CreateInvoiceRequest{
		InvoiceNumber:    "INV-1001",
		Channel:          o2o.Channel("alfa"),
		Amount:           150000,
		Customer:         o2o.Customer{Name: "Taufik Ismail", Email: &email},
		ExpiresInMinutes: &expires,
		Info:             &info,
		Metadata:         &metadata,
	}
	created, err := client.CreateInvoiceWithResponse(ctx, req)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	if created.StatusCode() != http.StatusCreated || created.JSON201 == nil {
		return fmt.Errorf("create: %d, body %s", created.StatusCode(), created.Body)
	}
	inv := created.JSON201
	if inv.PaymentCode == nil || inv.Status != o2o.Status("pending") || inv.Amount != req.Amount {
		return fmt.Errorf("create: unexpected invoice %+v", *inv)
	}

	got, err := client.GetInvoiceWithResponse(ctx, string(inv.InvoiceNumber))
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	if got.StatusCode() != http.StatusOK || got.JSON200 == nil {
		return fmt.Errorf("get: %d, body %s", got.StatusCode(), got.Body)
	}
	if got.JSON200.InvoiceNumber != inv.InvoiceNumber || *got.JSON200.PaymentCode != *inv.PaymentCode {
		return fmt.Errorf("get: unexpected invoice %+v", *got.JSON200)
	}

	// A webhook's body, as the order system's receiver decodes it (after verifying its signature).
	var ev o2o.Event
	dec := json.NewDecoder(bytes.NewReader([]byte(webhookBody)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		return fmt.Errorf("event: %w", err)
	}
	if ev.Type != o2o.EventType("invoice.paid") || ev.InvoiceNumber == nil || *ev.InvoiceNumber != "INV-1001" ||
		ev.Data.Invoice == nil || ev.Data.Invoice.Status != o2o.Status("paid") || ev.Data.Payment == nil ||
		ev.Data.Payment.Amount != 150000 {
		return fmt.Errorf("event: unexpected %+v", ev)
	}
	fmt.Printf("contractcheck: created and read %s (payment code %s), decoded event %s (%s)\n",
		inv.InvoiceNumber, *inv.PaymentCode, ev.Id, ev.Type)
	return nil
}

// service answers the client's requests from memory, as the service would.
type service struct{}

func (service) Do(r *http.Request) (*http.Response, error) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/invoices":
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			return nil, fmt.Errorf("create request body: %w", err)
		}
		for _, k := range []string{"invoice_number", "channel", "amount", "customer", "metadata"} {
			if _, ok := body[k]; !ok {
				return nil, fmt.Errorf("create request body has no %q: %v", k, body)
			}
		}
		return answer(http.StatusCreated, pendingInvoice, "Location", "/v1/invoices/INV-1001"), nil
	case r.Method == http.MethodGet && r.URL.Path == "/v1/invoices/INV-1001":
		return answer(http.StatusOK, pendingInvoice), nil
	}
	return answer(http.StatusNotFound, `{"type":"about:blank","title":"Not Found","status":404,"detail":"no such route","code":"not_found"}`), nil
}

func answer(status int, body string, header ...string) *http.Response {
	h := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"req-1"}}
	if status >= 400 {
		h.Set("Content-Type", "application/problem+json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(bytes.NewReader([]byte(body)))}
}

const pendingInvoice = `{
  "invoice_number": "INV-1001", "channel": "alfa", "amount": 150000, "currency": "IDR",
  "status": "pending", "payment_code": "8888812345678901",
  "how_to_pay_page": "https://doku.example/howtopay", "how_to_pay_api": null,
  "expires_at": "2026-01-02T04:05:06Z", "paid_at": null,
  "paid_after_expiry": false, "paid_after_cancel": false,
  "customer": {"name": "Taufik Ismail", "email": "taufik@example.com"},
  "expires_in_minutes": 60, "reusable": false, "info": "Online Shop", "receipt_footer": "",
  "metadata": {"cart_id": "C-77"}, "payments": [], "total_paid": 0,
  "failure": null, "cancellation": null,
  "created_at": "2026-01-02T03:05:06Z", "updated_at": "2026-01-02T03:05:07Z"
}`

const webhookBody = `{
  "id": "evt_0123456789abcdef0123456789abcdef", "type": "invoice.paid",
  "created_at": "2026-01-02T03:15:00Z", "invoice_number": "INV-1001",
  "data": {
    "invoice": {
      "invoice_number": "INV-1001", "channel": "alfa", "amount": 150000, "currency": "IDR",
      "status": "paid", "payment_code": "8888812345678901",
      "how_to_pay_page": "https://doku.example/howtopay", "how_to_pay_api": null,
      "expires_at": "2026-01-02T04:05:06Z", "paid_at": "2026-01-02T03:14:59Z",
      "paid_after_expiry": false, "paid_after_cancel": false,
      "customer": {"name": "Taufik Ismail", "email": "taufik@example.com"},
      "expires_in_minutes": 60, "reusable": false, "info": "Online Shop", "receipt_footer": "",
      "metadata": {"cart_id": "C-77"},
      "payments": [{"amount": 150000, "paid_at": "2026-01-02T03:14:59Z", "source": "webhook",
        "identifiers": {"AGENT_TRX_ID": "T-9"}, "recorded_at": "2026-01-02T03:15:00Z"}],
      "total_paid": 150000, "failure": null, "cancellation": null,
      "created_at": "2026-01-02T03:05:06Z", "updated_at": "2026-01-02T03:15:00Z"
    },
    "payment": {"amount": 150000, "paid_at": "2026-01-02T03:14:59Z", "source": "webhook",
      "identifiers": {"AGENT_TRX_ID": "T-9"}, "recorded_at": "2026-01-02T03:15:00Z"}
  }
}`
