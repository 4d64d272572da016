package httpapi_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/doku"
	"github.com/merchant/o2o/internal/dokusim"
)

func create(t *testing.T, s *apitest.Stack, req apitest.CreateBody) apitest.InvoiceView {
	t.Helper()
	resp := s.Create(req)
	if resp.Status != http.StatusCreated {
		t.Fatalf("create: HTTP %d %s", resp.Status, resp.Body)
	}
	return resp.Invoice(t)
}

func get(t *testing.T, s *apitest.Stack, number string) apitest.InvoiceView {
	t.Helper()
	resp := s.GET("/v1/invoices/" + number)
	if resp.Status != http.StatusOK {
		t.Fatalf("get %s: HTTP %d %s", number, resp.Status, resp.Body)
	}
	return resp.Invoice(t)
}

func TestCreateAndPayBothChannels(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	for _, channel := range []string{"alfa", "indomaret"} {
		t.Run(channel, func(t *testing.T) {
			number := "INV-E2E-" + channel
			inv := create(t, s, apitest.NewInvoice(number, channel))
			var code string
			if inv.PaymentCode != nil {
				code = *inv.PaymentCode
			}
			if inv.Status != "pending" || code == "" || inv.HowToPayPage == nil || inv.ExpiresAt == nil {
				t.Fatalf("created invoice is not pending with a code: %v", inv)
			}
			wantPrefix := map[string]string{"alfa": "8888", "indomaret": "7777"}[channel]
			if !strings.HasPrefix(code, wantPrefix) {
				t.Fatalf("%s code %s was issued by the wrong endpoint", channel, code)
			}

			paid := s.Pay(code, 150000)
			if note := paid.Notification; !note.Delivered || note.LastStatus != 200 {
				t.Fatalf("simulator notification not acknowledged: %v", paid)
			}

			got := get(t, s, number)
			if got.Status != "paid" || got.PaidAt == nil || len(got.Payments) != 1 || got.TotalPaid != 150000 {
				t.Fatalf("invoice not paid once: %v", got)
			}
			if p := got.Payments[0]; p.Source != "webhook" || p.Amount != 150000 {
				t.Fatalf("unexpected payment %+v", p)
			}

			// DOKU redelivers the same payment (same store transaction): acknowledged, nothing added.
			trx := paid.TransactionID
			for i := 0; i < 3; i++ {
				resp := s.Notify(apitest.NotificationBody(number, channel, code, 150000, trx), "redelivery-"+channel, nil)
				if resp.Status != http.StatusOK || resp.Ack(t).Outcome != "duplicate" {
					t.Fatalf("replay: HTTP %d %s", resp.Status, resp.Body)
				}
			}
			if n := s.Count(`SELECT count(*) FROM payments p JOIN invoices i ON i.id = p.invoice_id WHERE i.invoice_number = $1`, number); n != 1 {
				t.Fatalf("payments after replays = %d, want 1", n)
			}
			if after := get(t, s, number); after.UpdatedAt != got.UpdatedAt {
				t.Fatalf("a replay changed the invoice: %v -> %v", got.UpdatedAt, after.UpdatedAt)
			}
		})
	}
}

func TestNotificationsThatMustNotMarkPaid(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	inv := create(t, s, apitest.NewInvoice("INV-NEG-1", "alfa"))
	code := inv.Code(t)
	good := apitest.NotificationBody("INV-NEG-1", "alfa", code, 150000, "T1")

	tests := []struct {
		name        string
		body        []byte
		mutate      func(h http.Header)
		wantStatus  int
		wantCode    string // problem code, for non-2xx
		wantOutcome string // for 200
	}{
		{name: "wrong signature", body: good, wantStatus: 401, wantCode: "invalid_signature",
			mutate: func(h http.Header) {
				h.Set(doku.HeaderSignature, "HMACSHA256=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
			}},
		{name: "signature over another body", body: good, wantStatus: 401, wantCode: "invalid_signature",
			mutate: func(h http.Header) {
				h.Set(doku.HeaderSignature, doku.Sign([]byte(apitest.SecretKey), doku.Components{
					ClientID: apitest.ClientID, RequestID: h.Get(doku.HeaderRequestID), Timestamp: h.Get(doku.HeaderRequestTimestamp),
					Target: apitest.NotificationPath, Digest: doku.Digest([]byte("{}")),
				}))
			}},
		{name: "another Client-Id", body: good, wantStatus: 401, wantCode: "invalid_signature",
			mutate: func(h http.Header) { h.Set(doku.HeaderClientID, "MCH-9999-00000000000000") }},
		{name: "missing signature", body: good, wantStatus: 401, wantCode: "invalid_signature",
			mutate: func(h http.Header) { h.Del(doku.HeaderSignature) }},
		{name: "wrong amount", body: apitest.NotificationBody("INV-NEG-1", "alfa", code, 15000, "T1"), wantStatus: 200, wantOutcome: "amount_mismatch"},
		{name: "wrong channel", body: apitest.NotificationBody("INV-NEG-1", "indomaret", code, 150000, "T1"), wantStatus: 200, wantOutcome: "channel_mismatch"},
		{name: "wrong payment code", body: apitest.NotificationBody("INV-NEG-1", "alfa", code+"9", 150000, "T1"), wantStatus: 200, wantOutcome: "code_mismatch"},
		{name: "failed transaction", body: []byte(strings.Replace(string(good), "SUCCESS", "FAILED", 1)), wantStatus: 200, wantOutcome: "ignored_status"},
		{name: "unknown invoice", body: apitest.NotificationBody("INV-NOPE", "alfa", code, 150000, "T1"), wantStatus: 404, wantCode: "not_found"},
		{name: "unparseable body", body: []byte(`{"order":`), wantStatus: 400, wantCode: "invalid_notification"},
		{name: "no invoice number", body: []byte(`{"transaction":{"status":"SUCCESS"},"order":{"amount":150000}}`), wantStatus: 400, wantCode: "invalid_notification"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := s.Notify(tc.body, "req-"+strings.ReplaceAll(tc.name, " ", "-"), tc.mutate)
			if resp.Status != tc.wantStatus {
				t.Fatalf("HTTP %d, want %d: %s", resp.Status, tc.wantStatus, resp.Body)
			}
			if code := resp.Problem(t).Code; tc.wantCode != "" && code != tc.wantCode {
				t.Fatalf("problem code %v, want %s", code, tc.wantCode)
			}
			if outcome := resp.Ack(t).Outcome; tc.wantOutcome != "" && outcome != tc.wantOutcome {
				t.Fatalf("outcome %v, want %s", outcome, tc.wantOutcome)
			}
			if got := get(t, s, "INV-NEG-1"); got.Status != "pending" || len(got.Payments) != 0 {
				t.Fatalf("invoice changed: %v", got)
			}
			if n := s.Count(`SELECT count(*) FROM payments`); n != 0 {
				t.Fatalf("%d payments recorded", n)
			}
		})
	}
	if !strings.Contains(s.Logs.String(), `"level":"error"`) || !strings.Contains(s.Logs.String(), `"outcome":"amount_mismatch"`) {
		t.Fatal("a mismatch must be logged at error level for a person to see")
	}

	// After all of that, the genuine notification still applies.
	if resp := s.Notify(good, "genuine", nil); resp.Status != 200 || resp.Ack(t).Outcome != "applied" {
		t.Fatalf("genuine notification: HTTP %d %s", resp.Status, resp.Body)
	}
	if got := get(t, s, "INV-NEG-1"); got.Status != "paid" {
		t.Fatalf("invoice not paid by the genuine notification: %v", got)
	}
}

func TestCreateIsIdempotentOnInvoiceNumber(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	req := apitest.NewInvoice("INV-IDEM-1", "indomaret")
	req.Metadata = json.RawMessage(`{"order_id":42,"tags":["a","b"]}`)
	first := create(t, s, req)

	again := s.Create(req)
	if again.Status != http.StatusOK {
		t.Fatalf("same request again: HTTP %d %s", again.Status, again.Body)
	}
	if !reflect.DeepEqual(again.Invoice(t).PaymentCode, first.PaymentCode) {
		t.Fatal("same request returned another code")
	}

	changed := apitest.NewInvoice("INV-IDEM-1", "indomaret")
	changed.Amount = 150001
	resp := s.Create(changed)
	if resp.Status != http.StatusConflict || resp.Problem(t).Code != "invoice_exists" {
		t.Fatalf("different request, same number: HTTP %d %s", resp.Status, resp.Body)
	}
	if n := s.Sim.GenerateCalls(); n != 1 {
		t.Fatalf("DOKU generate calls = %d, want 1", n)
	}
	if n := s.Count(`SELECT count(*) FROM invoices`); n != 1 {
		t.Fatalf("invoices = %d, want 1", n)
	}
}

func TestAPIKeyRequired(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	for name, auth := range map[string]string{
		"no header":     "",
		"wrong key":     "Bearer not-the-key-at-all-0000000",
		"key prefix":    "Bearer " + apitest.APIKey[:10],
		"basic scheme":  "Basic " + apitest.APIKey,
		"empty bearer":  "Bearer ",
		"key with junk": "Bearer " + apitest.APIKey + "x",
	} {
		for _, call := range []struct{ method, path string }{{"POST", "/v1/invoices"}, {"GET", "/v1/invoices"}, {"GET", "/v1/invoices/INV-1"}} {
			req := apitest.Request{Method: call.method, Path: call.path, Header: http.Header{"Authorization": {auth}}}
			if auth == "" {
				req = apitest.Request{Method: call.method, Path: call.path, NoKey: true}
			}
			if call.method == "POST" {
				req.Body = apitest.JSON(t, apitest.NewInvoice("INV-AUTH", "alfa"))
			}
			resp := s.Send(req)
			if resp.Status != http.StatusUnauthorized || resp.Problem(t).Code != "unauthorized" || resp.Header.Get("WWW-Authenticate") == "" {
				t.Fatalf("%s: %s %s: HTTP %d %s", name, call.method, call.path, resp.Status, resp.Body)
			}
		}
	}
	if n := s.Count(`SELECT count(*) FROM invoices`); n != 0 {
		t.Fatalf("unauthenticated create wrote %d invoices", n)
	}
	if s.Sim.GenerateCalls() != 0 {
		t.Fatal("unauthenticated create reached DOKU")
	}
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	if r := s.GET("/healthz"); r.Status != 200 {
		t.Fatalf("healthz: %d", r.Status)
	}
	if r := s.GET("/readyz"); r.Status != 200 {
		t.Fatalf("readyz: %d %s", r.Status, r.Body)
	}
	if r := s.GET("/nope"); r.Status != 404 || r.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("unknown route: %d %s", r.Status, r.Body)
	}
	if r := s.Send(apitest.Request{Method: http.MethodDelete, Path: "/v1/invoices/INV-1"}); r.Status != 405 {
		t.Fatalf("DELETE: %d %s", r.Status, r.Body)
	}
	requestID := func(id string) apitest.Request {
		return apitest.Request{Method: http.MethodGet, Path: "/healthz", Header: http.Header{"X-Request-Id": {id}}}
	}
	if r := s.Send(requestID("abc-123")); r.Header.Get("X-Request-Id") != "abc-123" {
		t.Fatalf("incoming X-Request-Id not echoed: %q", r.Header.Get("X-Request-Id"))
	}
	if r := s.Send(requestID("bad id\"with quote")); r.Header.Get("X-Request-Id") == "" || strings.Contains(r.Header.Get("X-Request-Id"), "\"") {
		t.Fatalf("unsafe X-Request-Id echoed: %q", r.Header.Get("X-Request-Id"))
	}
	line := lastLine(s.Logs.String(), `"route":"/healthz"`)
	for _, field := range []string{`"method":"GET"`, `"status":200`, `"duration_ms":`, `"request_id":`} {
		if !strings.Contains(line, field) {
			t.Fatalf("request log line lacks %s: %s", field, line)
		}
	}
}

func lastLine(logs, containing string) string {
	lines := strings.Split(logs, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], containing) {
			return lines[i]
		}
	}
	return ""
}

func TestDokuFaultsDuringCreate(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})

	// A definite refusal: failed, DOKU's message kept, and retrying never calls DOKU again.
	s.Sim.SetFaults(dokusim.Faults{FailNext: 1, FailStatus: 400, FailMessage: "Customer name is blocked"})
	resp := s.Create(apitest.NewInvoice("INV-REJ-1", "alfa"))
	if resp.Status != http.StatusBadGateway || resp.Problem(t).Code != "doku_rejected" || !strings.Contains(string(resp.Body), "Customer name is blocked") {
		t.Fatalf("rejection: HTTP %d %s", resp.Status, resp.Body)
	}
	calls := s.Sim.GenerateCalls()
	resp = s.Create(apitest.NewInvoice("INV-REJ-1", "alfa"))
	if resp.Status != http.StatusBadGateway || s.Sim.GenerateCalls() != calls {
		t.Fatalf("retry of a rejected invoice: HTTP %d, DOKU calls %d -> %d", resp.Status, calls, s.Sim.GenerateCalls())
	}
	if got := get(t, s, "INV-REJ-1"); got.Status != "failed" || got.Failure == nil || got.Failure.Message != "Customer name is blocked" {
		t.Fatalf("rejected invoice: %v", got)
	}

	// DOKU failing temporarily: the invoice waits in creating; the same request later finishes it.
	s.Sim.SetFaults(dokusim.Faults{FailNext: 1, FailStatus: 503})
	resp = s.Create(apitest.NewInvoice("INV-TMP-1", "indomaret"))
	if resp.Status != http.StatusServiceUnavailable || resp.Problem(t).Code != "doku_unavailable" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("DOKU 503: HTTP %d %s", resp.Status, resp.Body)
	}
	if got := get(t, s, "INV-TMP-1"); got.Status != "creating" || got.PaymentCode != nil {
		t.Fatalf("invoice after DOKU 503: %v", got)
	}
	resp = s.Create(apitest.NewInvoice("INV-TMP-1", "indomaret"))
	if resp.Status != http.StatusOK || resp.Invoice(t).Status != "pending" {
		t.Fatalf("retry after DOKU recovered: HTTP %d %s", resp.Status, resp.Body)
	}
}

func TestWebhookAnswers503WhenDatabaseIsDown(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	inv := create(t, s, apitest.NewInvoice("INV-DBDOWN", "alfa"))
	body := apitest.NotificationBody("INV-DBDOWN", "alfa", inv.Code(t), 150000, "T9")

	// Refuse new connections and kill the pool's: the database is gone as far as the service can tell.
	restore := s.DB.Outage(t)

	resp := s.Notify(body, "while-down", nil)
	if resp.Status != http.StatusServiceUnavailable || resp.Problem(t).Code != "unavailable" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("webhook with database down: HTTP %d %s", resp.Status, resp.Body)
	}
	if r := s.GET("/readyz"); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("readyz with database down: HTTP %d", r.Status)
	}

	restore()
	// DOKU's retry after the outage applies the payment, once.
	resp = s.Notify(body, "after-recovery", nil)
	if resp.Status != http.StatusOK || resp.Ack(t).Outcome != "applied" {
		t.Fatalf("webhook after recovery: HTTP %d %s", resp.Status, resp.Body)
	}
	if got := get(t, s, "INV-DBDOWN"); got.Status != "paid" {
		t.Fatalf("invoice after recovery: %v", got)
	}
}

func TestCreateWhileDatabaseIsDownChangesNothingAndRecovers(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	restore := s.DB.Outage(t)

	req := apitest.NewInvoice("INV-DB-1", "alfa")
	for _, call := range []apitest.Request{
		{Method: "POST", Path: "/v1/invoices", Body: apitest.JSON(t, req)}, {Method: "GET", Path: "/v1/invoices/INV-DB-1"}, {Method: "GET", Path: "/v1/invoices"},
		{Method: "GET", Path: "/v1/invoices/INV-DB-1/stream"},
	} {
		resp := s.Send(call)
		if resp.Status != http.StatusServiceUnavailable || resp.Problem(t).Code != "unavailable" || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%s %s with database down: HTTP %d %s", call.Method, call.Path, resp.Status, resp.Body)
		}
	}
	if s.Sim.GenerateCalls() != 0 {
		t.Fatal("DOKU was called although the invoice could not be stored first")
	}

	// The same process recovers once the database is back: no restart.
	restore()
	if r := s.GET("/readyz"); r.Status != 200 {
		t.Fatalf("readyz after recovery: %d", r.Status)
	}
	resp := s.Create(req)
	if resp.Status != http.StatusCreated || resp.Invoice(t).Status != "pending" {
		t.Fatalf("create after recovery: HTTP %d %s", resp.Status, resp.Body)
	}
}
