package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/merchant/o2o/internal/apitest"
)

// Inputs a review found answered wrongly; each case is what a client (or DOKU) may send.
func TestInputsTheContractDoesNotFear(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	create := func(number, metadata string) apitest.Response {
		return s.POST("/v1/invoices", []byte(`{"invoice_number":"`+number+`","channel":"alfa","amount":150000,"customer":{"name":"T"},"metadata":`+metadata+`}`))
	}

	t.Run("a number in metadata PostgreSQL cannot store is refused, not a 500", func(t *testing.T) {
		for i, n := range []string{"1e-16384", "0e-99999", "0.1e-16383", "1e-9223372036854775808"} {
			number := "INV-TINY-" + string(rune('A'+i))
			r := create(number, `{"x":`+n+`}`)
			if r.Status != http.StatusUnprocessableEntity || !r.Problem(t).HasField("metadata") {
				t.Errorf("metadata {\"x\":%s}: HTTP %d %s, want 422 on metadata", n, r.Status, r.Body)
			}
			if c := s.Count(`SELECT count(*) FROM invoices WHERE invoice_number = $1`, number); c != 0 {
				t.Errorf("metadata {\"x\":%s}: %d invoices written", n, c)
			}
		}
		if r := create("INV-TINY-OK", `{"x":1e-300,"y":0.000001,"z":12345678901234567890}`); r.Status != http.StatusCreated {
			t.Errorf("numbers PostgreSQL stores: HTTP %d %s", r.Status, r.Body)
		}
	})

	t.Run("a replay whose metadata differs only past float64's precision is another request", func(t *testing.T) {
		if r := create("INV-REPLAY-NUM", `{"order":12345678901234567890}`); r.Status != http.StatusCreated {
			t.Fatalf("create: HTTP %d %s", r.Status, r.Body)
		}
		if r := create("INV-REPLAY-NUM", `{"order":12345678901234567891}`); r.Status != http.StatusConflict {
			t.Errorf("the same number with other metadata: HTTP %d %s, want 409", r.Status, r.Body)
		}
		if r := create("INV-REPLAY-NUM", `{"order":1.2345678901234567890e19}`); r.Status != http.StatusOK {
			t.Errorf("the same metadata written another way: HTTP %d %s, want the replay's 200", r.Status, r.Body)
		}
	})

	t.Run("a stream token's ttl_seconds is bounded and at least 1", func(t *testing.T) {
		s.Create(apitest.NewInvoice("INV-TTL", "alfa"))
		for _, ttl := range []string{"0", "18446744074", "9223372036854775807"} {
			r := s.POST("/v1/invoices/INV-TTL/stream-token", []byte(`{"ttl_seconds":`+ttl+`}`))
			switch r.Status {
			case http.StatusUnprocessableEntity:
			case http.StatusCreated:
				var tok streamToken
				if err := json.Unmarshal(r.Body, &tok); err != nil {
					t.Fatal(err)
				}
				if at, err := time.Parse(time.RFC3339, tok.ExpiresAt); err != nil || !at.After(time.Now().Add(time.Minute)) {
					t.Errorf("ttl_seconds %s: a token that expires at %s", ttl, tok.ExpiresAt)
				}
			default:
				t.Errorf("ttl_seconds %s: HTTP %d %s", ttl, r.Status, r.Body)
			}
			if ttl == "0" && r.Status != http.StatusUnprocessableEntity {
				t.Errorf("ttl_seconds 0: HTTP %d, want 422 (the contract's minimum is 1)", r.Status)
			}
		}
	})

	t.Run("a 405 names what the route allows, whatever the path's escapes", func(t *testing.T) {
		for _, path := range []string{"/v1/invoices/a%2Fb/cancel", "/v1/webhook-endpoints/a%2Fb/enable"} {
			r := s.Send(apitest.Request{Method: http.MethodGet, Path: path})
			if r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "POST" {
				t.Errorf("GET %s: HTTP %d, Allow %q, want 405 with Allow: POST", path, r.Status, r.Header.Get("Allow"))
			}
		}
	})

	t.Run("an invoice number with escaped characters is the number", func(t *testing.T) {
		s.Create(apitest.NewInvoice("INV-ESC~1", "alfa"))
		for _, path := range []string{"/v1/invoices/INV%2DESC%7E1", "/v1/invoices/INV-ESC%7e1"} {
			if r := s.GET(path); r.Status != http.StatusOK || r.Invoice(t).InvoiceNumber != "INV-ESC~1" {
				t.Errorf("GET %s: HTTP %d %s", path, r.Status, r.Body)
			}
		}
		if r := s.GET("/v1/invoices/INV%2FESC"); r.Status != http.StatusNotFound {
			t.Errorf("an escaped slash: HTTP %d, want 404", r.Status)
		}
	})

	t.Run("a refused stream writes nothing", func(t *testing.T) {
		s.Create(apitest.NewInvoice("INV-REFUSED-STREAM", "alfa"))
		before := s.Count(`SELECT count(*) FROM stream_watches`)
		r := s.Send(apitest.Request{Method: http.MethodGet, Path: "/v1/invoices/INV-REFUSED-STREAM/stream", Header: http.Header{"Last-Event-Id": {"nope"}}})
		if r.Status != http.StatusUnprocessableEntity {
			t.Errorf("Last-Event-ID nope: HTTP %d %s", r.Status, r.Body)
		}
		if after := s.Count(`SELECT count(*) FROM stream_watches`); after != before {
			t.Errorf("a refused stream recorded a watch (%d rows, then %d)", before, after)
		}
	})

	t.Run("the inbox list is valid JSON whatever bytes a genuine notification had", func(t *testing.T) {
		body := []byte("{\"order\":{\"invoice_number\":\"INV-BYTES\"},\"x\":\"\xff\xfe\"}")
		if r := s.Notify(body, "req-bytes-1", nil); r.Status != http.StatusBadRequest {
			t.Errorf("the notification: HTTP %d %s", r.Status, r.Body)
		}
		l := s.GET("/v1/notifications?invoice_number=INV-BYTES")
		if l.Status != http.StatusOK || !utf8.Valid(l.Body) || !strings.Contains(string(l.Body), "req-bytes-1") {
			t.Errorf("the list: HTTP %d, valid UTF-8 %v: %q", l.Status, utf8.Valid(l.Body), l.Body)
		}
	})
}

// A bulk redelivery to an endpoint the merchant removed is refused: its deliveries would wait for
// good, since no replica delivers to a removed endpoint (the single-event redelivery refuses it too).
func TestBulkRedeliveryToARemovedEndpointIsRefused(t *testing.T) {
	t.Parallel()
	rc := apitest.NewReceiver(t)
	s := apitest.New(t, apitest.Options{Config: apitest.Endpoint("orders", rc)})
	s.Create(apitest.NewInvoice("INV-REMOVED-EP", "alfa"))
	s.Deliver()
	for deadline := time.Now().Add(10 * time.Second); s.Count(`SELECT count(*) FROM webhook_deliveries WHERE state = 'delivered'`) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("nothing delivered")
		}
	}
	if r := s.Send(apitest.Request{Method: http.MethodDelete, Path: "/v1/webhook-endpoints/orders"}); r.Status != http.StatusOK {
		t.Fatalf("remove: HTTP %d %s", r.Status, r.Body)
	}
	if r := s.POST("/v1/webhook-endpoints/orders/redeliver", []byte(`{"state":"delivered"}`)); r.Status != http.StatusNotFound {
		t.Errorf("bulk redelivery to a removed endpoint: HTTP %d %s, want 404", r.Status, r.Body)
	}
	if n := s.Count(`SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'`); n != 0 {
		t.Errorf("%d deliveries pending for a removed endpoint", n)
	}
}
