package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/merchant/o2o/internal/apitest"
)

// validWith is the tests' valid create request (apitest.NewInvoice) as JSON, with changes made to
// its fields: a nil value removes the field, any other replaces it (wrongly typed, if need be).
func validWith(t testing.TB, changes map[string]any) []byte {
	t.Helper()
	var req map[string]any
	if err := json.Unmarshal(apitest.JSON(t, apitest.NewInvoice("INV-VAL-1", "alfa")), &req); err != nil {
		t.Fatal(err)
	}
	for k, v := range changes {
		if v == nil {
			delete(req, k)
		} else {
			req[k] = v
		}
	}
	return apitest.JSON(t, req)
}

// Every refused create answers a precise problem, writes nothing and never reaches DOKU.
func TestCreateRejectsBadInput(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	for _, tc := range badCreates(t) {
		t.Run(tc.name, func(t *testing.T) {
			resp := s.Send(tc.request())
			if resp.Status != tc.wantStatus {
				t.Fatalf("HTTP %d, want %d: %s", resp.Status, tc.wantStatus, resp.Body)
			}
			p := resp.Problem(t)
			if p.Code != tc.wantCode || p.Status != tc.wantStatus || p.Detail == "" {
				t.Fatalf("problem = %+v, want code %s", p, tc.wantCode)
			}
			if tc.wantField != "" && !p.HasField(tc.wantField) {
				t.Fatalf("problem does not name field %s: %+v", tc.wantField, p)
			}
		})
	}
	if n := s.Count(`SELECT count(*) FROM invoices`); n != 0 {
		t.Fatalf("refused requests wrote %d invoices", n)
	}
	if n := s.Sim.GenerateCalls(); n != 0 {
		t.Fatalf("refused requests made %d DOKU calls", n)
	}
}

type badCreate struct {
	name        string
	body        []byte
	contentType string
	wantStatus  int
	wantCode    string
	wantField   string
}

// request is the create request: the body, with its Content-Type when the case names one.
func (bc badCreate) request() apitest.Request {
	req := apitest.Request{Method: http.MethodPost, Path: "/v1/invoices", Body: bc.body}
	if bc.contentType != "" {
		req.Header = http.Header{"Content-Type": {bc.contentType}}
	}
	return req
}

// badCreates are create requests that must be refused with a precise problem and no write.
func badCreates(t testing.TB) []badCreate {
	with := func(changes map[string]any) []byte { t.Helper(); return validWith(t, changes) }
	raw := func(body string) []byte { return []byte(body) }
	return []badCreate{
		{name: "missing invoice number", body: with(map[string]any{"invoice_number": nil}), wantStatus: 422, wantCode: "validation_failed", wantField: "invoice_number"},
		{name: "invoice number too long", body: with(map[string]any{"invoice_number": strings.Repeat("A", 65)}), wantStatus: 422, wantCode: "validation_failed", wantField: "invoice_number"},
		{name: "invoice number with slash", body: with(map[string]any{"invoice_number": "INV/1"}), wantStatus: 422, wantCode: "validation_failed", wantField: "invoice_number"},
		{name: "invoice number dot", body: with(map[string]any{"invoice_number": "."}), wantStatus: 422, wantCode: "validation_failed", wantField: "invoice_number"},
		{name: "invoice number dot dot", body: with(map[string]any{"invoice_number": ".."}), wantStatus: 422, wantCode: "validation_failed", wantField: "invoice_number"},
		{name: "invoice number with space", body: with(map[string]any{"invoice_number": "INV 1"}), wantStatus: 422, wantCode: "validation_failed", wantField: "invoice_number"},
		{name: "invoice number unicode", body: with(map[string]any{"invoice_number": "INV-Ä"}), wantStatus: 422, wantCode: "validation_failed", wantField: "invoice_number"},
		{name: "invoice number SQL", body: with(map[string]any{"invoice_number": "1';DROP TABLE invoices;--"}), wantStatus: 422, wantCode: "validation_failed", wantField: "invoice_number"},
		{name: "invoice number not a string", body: with(map[string]any{"invoice_number": 1001}), wantStatus: 422, wantCode: "validation_failed", wantField: "invoice_number"},
		{name: "unknown channel", body: with(map[string]any{"channel": "ovo"}), wantStatus: 422, wantCode: "validation_failed", wantField: "channel"},
		{name: "missing channel", body: with(map[string]any{"channel": nil, "receipt_footer": nil}), wantStatus: 422, wantCode: "validation_failed", wantField: "channel"},
		{name: "missing amount", body: with(map[string]any{"amount": nil}), wantStatus: 422, wantCode: "validation_failed", wantField: "amount"},
		{name: "zero amount", body: with(map[string]any{"amount": 0}), wantStatus: 422, wantCode: "validation_failed", wantField: "amount"},
		{name: "negative amount", body: with(map[string]any{"amount": -150000}), wantStatus: 422, wantCode: "validation_failed", wantField: "amount"},
		{name: "fractional amount", body: raw(`{"invoice_number":"INV-VAL-1","channel":"alfa","amount":150000.5,"customer":{"name":"A"}}`), wantStatus: 422, wantCode: "validation_failed", wantField: "amount"},
		{name: "amount 1.0", body: raw(`{"invoice_number":"INV-VAL-1","channel":"alfa","amount":150000.0,"customer":{"name":"A"}}`), wantStatus: 422, wantCode: "validation_failed", wantField: "amount"},
		{name: "amount exponent", body: raw(`{"invoice_number":"INV-VAL-1","channel":"alfa","amount":1.5e5,"customer":{"name":"A"}}`), wantStatus: 422, wantCode: "validation_failed", wantField: "amount"},
		{name: "amount as string", body: with(map[string]any{"amount": "150000"}), wantStatus: 422, wantCode: "validation_failed", wantField: "amount"},
		{name: "amount overflowing int64", body: raw(`{"invoice_number":"INV-VAL-1","channel":"alfa","amount":99999999999999999999999,"customer":{"name":"A"}}`), wantStatus: 422, wantCode: "validation_failed", wantField: "amount"},
		{name: "amount below minimum", body: with(map[string]any{"amount": 9999}), wantStatus: 422, wantCode: "validation_failed", wantField: "amount"},
		{name: "amount above maximum", body: with(map[string]any{"amount": 5000001}), wantStatus: 422, wantCode: "validation_failed", wantField: "amount"},
		{name: "missing customer", body: with(map[string]any{"customer": nil}), wantStatus: 422, wantCode: "validation_failed", wantField: "customer.name"},
		{name: "blank customer name", body: with(map[string]any{"customer": map[string]any{"name": "   "}}), wantStatus: 422, wantCode: "validation_failed", wantField: "customer.name"},
		{name: "customer name too long", body: with(map[string]any{"customer": map[string]any{"name": strings.Repeat("n", 65)}}), wantStatus: 422, wantCode: "validation_failed", wantField: "customer.name"},
		{name: "customer name control char", body: with(map[string]any{"customer": map[string]any{"name": "A\u0000B"}}), wantStatus: 422, wantCode: "validation_failed", wantField: "customer.name"},
		{name: "bad email", body: with(map[string]any{"customer": map[string]any{"name": "A", "email": "not-an-email"}}), wantStatus: 422, wantCode: "validation_failed", wantField: "customer.email"},
		{name: "email with display name", body: with(map[string]any{"customer": map[string]any{"name": "A", "email": "A <a@b.co>"}}), wantStatus: 422, wantCode: "validation_failed", wantField: "customer.email"},
		{name: "unknown customer field", body: with(map[string]any{"customer": map[string]any{"name": "A", "phone": "1"}}), wantStatus: 422, wantCode: "validation_failed", wantField: "customer.phone"},
		{name: "expiry too short", body: with(map[string]any{"expires_in_minutes": 1}), wantStatus: 422, wantCode: "validation_failed", wantField: "expires_in_minutes"},
		{name: "expiry too long", body: with(map[string]any{"expires_in_minutes": 43201}), wantStatus: 422, wantCode: "validation_failed", wantField: "expires_in_minutes"},
		{name: "expiry not a number", body: with(map[string]any{"expires_in_minutes": "60"}), wantStatus: 422, wantCode: "validation_failed", wantField: "expires_in_minutes"},
		{name: "reusable not a boolean", body: with(map[string]any{"reusable": "yes"}), wantStatus: 422, wantCode: "validation_failed", wantField: "reusable"},
		{name: "receipt footer on indomaret", body: with(map[string]any{"channel": "indomaret"}), wantStatus: 422, wantCode: "validation_failed", wantField: "receipt_footer"},
		{name: "receipt footer too long", body: with(map[string]any{"receipt_footer": strings.Repeat("f", 129)}), wantStatus: 422, wantCode: "validation_failed", wantField: "receipt_footer"},
		{name: "info too long", body: with(map[string]any{"info": strings.Repeat("i", 256)}), wantStatus: 422, wantCode: "validation_failed", wantField: "info"},
		{name: "metadata not an object", body: with(map[string]any{"metadata": []int{1}}), wantStatus: 422, wantCode: "validation_failed", wantField: "metadata"},
		{name: "metadata too large", body: with(map[string]any{"metadata": map[string]string{"x": strings.Repeat("m", 5000)}}), wantStatus: 422, wantCode: "validation_failed", wantField: "metadata"},
		{name: "unknown field", body: with(map[string]any{"currency": "USD"}), wantStatus: 422, wantCode: "validation_failed", wantField: "currency"},
		{name: "empty body", body: raw(""), wantStatus: 400, wantCode: "invalid_json"},
		{name: "not JSON", body: raw("invoice_number=1"), wantStatus: 400, wantCode: "invalid_json"},
		{name: "truncated JSON", body: raw(`{"invoice_number":"INV-VAL-1",`), wantStatus: 400, wantCode: "invalid_json"},
		{name: "JSON array", body: raw(`[1,2]`), wantStatus: 400, wantCode: "invalid_json"},
		{name: "trailing data", body: raw(`{"invoice_number":"INV-VAL-1","channel":"alfa","amount":150000,"customer":{"name":"A"}} {"x":1}`), wantStatus: 400, wantCode: "invalid_json"},
		{name: "wrong content type", body: raw(`{}`), contentType: "text/plain", wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "body over the limit", body: raw(`{"info":"` + strings.Repeat("x", 70<<10) + `"}`), wantStatus: 413, wantCode: "payload_too_large"},
	}
}

func TestCreateReportsEveryBadField(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	resp := s.POST("/v1/invoices", apitest.JSON(t, map[string]any{"invoice_number": "bad number", "channel": "x", "amount": 1}))
	p := resp.Problem(t)
	for _, f := range []string{"invoice_number", "channel", "amount", "customer.name"} {
		if !p.HasField(f) {
			t.Errorf("field %s not reported: %+v", f, p)
		}
	}
}

func TestListInvoices(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	for i := 1; i <= 5; i++ {
		ch := "alfa"
		if i%2 == 0 {
			ch = "indomaret"
		}
		create(t, s, apitest.NewInvoice(fmt.Sprintf("INV-LIST-%d", i), ch))
	}
	s.Pay(get(t, s, "INV-LIST-3").Code(t), 150000)

	var seen []string
	cursor := ""
	for page := 0; page < 5; page++ {
		path := "/v1/invoices?limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		resp := s.GET(path)
		if resp.Status != 200 {
			t.Fatalf("list: HTTP %d %s", resp.Status, resp.Body)
		}
		body := resp.InvoiceList(t)
		seen = append(seen, body.Numbers()...)
		if body.NextCursor == "" {
			break
		}
		cursor = body.NextCursor
	}
	if strings.Join(seen, ",") != "INV-LIST-5,INV-LIST-4,INV-LIST-3,INV-LIST-2,INV-LIST-1" {
		t.Fatalf("pages gave %v", seen)
	}

	filters := map[string][]string{
		"?status=paid":                      {"INV-LIST-3"},
		"?channel=indomaret":                {"INV-LIST-4", "INV-LIST-2"},
		"?channel=alfa&status=pending":      {"INV-LIST-5", "INV-LIST-1"},
		"?status=failed":                    {},
		"?channel=alfa&status=paid&limit=1": {"INV-LIST-3"},
	}
	for q, want := range filters {
		got := s.GET("/v1/invoices" + q).InvoiceList(t).Numbers()
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: got %v, want %v", q, got, want)
		}
	}

	for q, field := range map[string]string{
		"?status=done":                "status",
		"?channel=ovo":                "channel",
		"?limit=0":                    "limit",
		"?limit=101":                  "limit",
		"?limit=ten":                  "limit",
		"?cursor=bm9wZQ":              "cursor",
		"?cursor=%%%":                 "query",
		"?statuss=paid":               "statuss",
		"?status=paid&status=pending": "status",
	} {
		resp := s.GET("/v1/invoices" + q)
		if resp.Status != 422 || !resp.Problem(t).HasField(field) {
			t.Errorf("%s: HTTP %d %s, want 422 naming %s", q, resp.Status, resp.Body, field)
		}
	}
}

func TestGetUnknownInvoice(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	for _, number := range []string{"INV-NOPE", "..", "%2e%2e%2fetc", "INV%20X", strings.Repeat("A", 65)} {
		resp := s.GET("/v1/invoices/" + number)
		if resp.Status != 404 || resp.Problem(t).Code != "not_found" {
			t.Errorf("GET %s: HTTP %d %s", number, resp.Status, resp.Body)
		}
	}
}
