package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/doku"
	"github.com/merchant/o2o/internal/dokusim"
)

func create(t *testing.T, s *apitest.Stack, req map[string]any) map[string]any {
	t.Helper()
	resp := s.Do(http.MethodPost, "/v1/invoices", req, nil)
	if resp.Status != http.StatusCreated {
		t.Fatalf("create: HTTP %d %s", resp.Status, resp.Body)
	}
	return resp.JSON(t)
}

func get(t *testing.T, s *apitest.Stack, number string) map[string]any {
	t.Helper()
	resp := s.Do(http.MethodGet, "/v1/invoices/"+number, nil, nil)
	if resp.Status != http.StatusOK {
		t.Fatalf("get %s: HTTP %d %s", number, resp.Status, resp.Body)
	}
	return resp.JSON(t)
}

func TestCreateAndPayBothChannels(t *testing.T) {
	s := apitest.New(t, apitest.Options{})
	for _, channel := range []string{"alfa", "indomaret"} {
		t.Run(channel, func(t *testing.T) {
			number := "INV-E2E-" + channel
			inv := create(t, s, apitest.Invoice(number, channel))
			code, _ := inv["payment_code"].(string)
			if inv["status"] != "pending" || code == "" || inv["how_to_pay_page"] == nil || inv["expires_at"] == nil {
				t.Fatalf("created invoice is not pending with a code: %v", inv)
			}
			wantPrefix := map[string]string{"alfa": "8888", "indomaret": "7777"}[channel]
			if !strings.HasPrefix(code, wantPrefix) {
				t.Fatalf("%s code %s was issued by the wrong endpoint", channel, code)
			}

			paid := s.Pay(code, 150000)
			note := paid["notification"].(map[string]any)
			if note["delivered"] != true || note["last_status"] != float64(200) {
				t.Fatalf("simulator notification not acknowledged: %v", paid)
			}

			got := get(t, s, number)
			payments := got["payments"].([]any)
			if got["status"] != "paid" || got["paid_at"] == nil || len(payments) != 1 || got["total_paid"] != float64(150000) {
				t.Fatalf("invoice not paid once: %v", got)
			}
			if p := payments[0].(map[string]any); p["source"] != "webhook" || p["amount"] != float64(150000) {
				t.Fatalf("unexpected payment %v", p)
			}

			// DOKU redelivers the same payment (same store transaction): acknowledged, nothing added.
			trx := paid["transaction_id"].(string)
			for i := 0; i < 3; i++ {
				resp := s.Notify(apitest.NotificationBody(number, channel, code, 150000, trx), "redelivery-"+channel, nil)
				if resp.Status != http.StatusOK || resp.JSON(t)["outcome"] != "duplicate" {
					t.Fatalf("replay: HTTP %d %s", resp.Status, resp.Body)
				}
			}
			if n := s.Count(`SELECT count(*) FROM payments p JOIN invoices i ON i.id = p.invoice_id WHERE i.invoice_number = $1`, number); n != 1 {
				t.Fatalf("payments after replays = %d, want 1", n)
			}
			if after := get(t, s, number); after["updated_at"] != got["updated_at"] {
				t.Fatalf("a replay changed the invoice: %v -> %v", got["updated_at"], after["updated_at"])
			}
		})
	}
}

func TestNotificationsThatMustNotMarkPaid(t *testing.T) {
	s := apitest.New(t, apitest.Options{})
	inv := create(t, s, apitest.Invoice("INV-NEG-1", "alfa"))
	code := inv["payment_code"].(string)
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
			body := resp.JSON(t)
			if tc.wantCode != "" && body["code"] != tc.wantCode {
				t.Fatalf("problem code %v, want %s", body["code"], tc.wantCode)
			}
			if tc.wantOutcome != "" && body["outcome"] != tc.wantOutcome {
				t.Fatalf("outcome %v, want %s", body["outcome"], tc.wantOutcome)
			}
			if got := get(t, s, "INV-NEG-1"); got["status"] != "pending" || len(got["payments"].([]any)) != 0 {
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
	if resp := s.Notify(good, "genuine", nil); resp.Status != 200 || resp.JSON(t)["outcome"] != "applied" {
		t.Fatalf("genuine notification: HTTP %d %s", resp.Status, resp.Body)
	}
	if got := get(t, s, "INV-NEG-1"); got["status"] != "paid" {
		t.Fatalf("invoice not paid by the genuine notification: %v", got)
	}
}

func TestCreateIsIdempotentOnInvoiceNumber(t *testing.T) {
	s := apitest.New(t, apitest.Options{})
	req := apitest.Invoice("INV-IDEM-1", "indomaret")
	req["metadata"] = map[string]any{"order_id": 42, "tags": []string{"a", "b"}}
	first := create(t, s, req)

	again := s.Do(http.MethodPost, "/v1/invoices", req, nil)
	if again.Status != http.StatusOK {
		t.Fatalf("same request again: HTTP %d %s", again.Status, again.Body)
	}
	if again.JSON(t)["payment_code"] != first["payment_code"] {
		t.Fatal("same request returned another code")
	}

	changed := apitest.Invoice("INV-IDEM-1", "indomaret")
	changed["amount"] = 150001
	resp := s.Do(http.MethodPost, "/v1/invoices", changed, nil)
	if resp.Status != http.StatusConflict || resp.JSON(t)["code"] != "invoice_exists" {
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
			var body any
			if call.method == "POST" {
				body = apitest.Invoice("INV-AUTH", "alfa")
			}
			hdr := map[string]string{"Authorization": auth}
			if auth == "" {
				hdr["Authorization"] = ""
			}
			resp := s.Do(call.method, call.path, body, hdr)
			if resp.Status != http.StatusUnauthorized || resp.JSON(t)["code"] != "unauthorized" || resp.Header.Get("WWW-Authenticate") == "" {
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
	s := apitest.New(t, apitest.Options{})
	if r := s.Do("GET", "/healthz", nil, nil); r.Status != 200 {
		t.Fatalf("healthz: %d", r.Status)
	}
	if r := s.Do("GET", "/readyz", nil, nil); r.Status != 200 {
		t.Fatalf("readyz: %d %s", r.Status, r.Body)
	}
	if r := s.Do("GET", "/nope", nil, nil); r.Status != 404 || r.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("unknown route: %d %s", r.Status, r.Body)
	}
	if r := s.Do("DELETE", "/v1/invoices/INV-1", nil, nil); r.Status != 405 {
		t.Fatalf("DELETE: %d %s", r.Status, r.Body)
	}
	if r := s.Do("GET", "/healthz", nil, map[string]string{"X-Request-Id": "abc-123"}); r.Header.Get("X-Request-Id") != "abc-123" {
		t.Fatalf("incoming X-Request-Id not echoed: %q", r.Header.Get("X-Request-Id"))
	}
	if r := s.Do("GET", "/healthz", nil, map[string]string{"X-Request-Id": "bad id\"with quote"}); r.Header.Get("X-Request-Id") == "" || strings.Contains(r.Header.Get("X-Request-Id"), "\"") {
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
	s := apitest.New(t, apitest.Options{})

	// A definite refusal: failed, DOKU's message kept, and retrying never calls DOKU again.
	s.Sim.SetFaults(dokusim.Faults{FailNext: 1, FailStatus: 400, FailMessage: "Customer name is blocked"})
	resp := s.Do("POST", "/v1/invoices", apitest.Invoice("INV-REJ-1", "alfa"), nil)
	if resp.Status != http.StatusBadGateway || resp.JSON(t)["code"] != "doku_rejected" || !strings.Contains(string(resp.Body), "Customer name is blocked") {
		t.Fatalf("rejection: HTTP %d %s", resp.Status, resp.Body)
	}
	calls := s.Sim.GenerateCalls()
	resp = s.Do("POST", "/v1/invoices", apitest.Invoice("INV-REJ-1", "alfa"), nil)
	if resp.Status != http.StatusBadGateway || s.Sim.GenerateCalls() != calls {
		t.Fatalf("retry of a rejected invoice: HTTP %d, DOKU calls %d -> %d", resp.Status, calls, s.Sim.GenerateCalls())
	}
	if got := get(t, s, "INV-REJ-1"); got["status"] != "failed" || got["failure"].(map[string]any)["message"] != "Customer name is blocked" {
		t.Fatalf("rejected invoice: %v", got)
	}

	// DOKU failing temporarily: the invoice waits in creating; the same request later finishes it.
	s.Sim.SetFaults(dokusim.Faults{FailNext: 1, FailStatus: 503})
	resp = s.Do("POST", "/v1/invoices", apitest.Invoice("INV-TMP-1", "indomaret"), nil)
	if resp.Status != http.StatusServiceUnavailable || resp.JSON(t)["code"] != "doku_unavailable" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("DOKU 503: HTTP %d %s", resp.Status, resp.Body)
	}
	if got := get(t, s, "INV-TMP-1"); got["status"] != "creating" || got["payment_code"] != nil {
		t.Fatalf("invoice after DOKU 503: %v", got)
	}
	resp = s.Do("POST", "/v1/invoices", apitest.Invoice("INV-TMP-1", "indomaret"), nil)
	if resp.Status != http.StatusOK || resp.JSON(t)["status"] != "pending" {
		t.Fatalf("retry after DOKU recovered: HTTP %d %s", resp.Status, resp.Body)
	}
}

func TestWebhookAnswers503WhenDatabaseIsDown(t *testing.T) {
	s := apitest.New(t, apitest.Options{})
	inv := create(t, s, apitest.Invoice("INV-DBDOWN", "alfa"))
	body := apitest.NotificationBody("INV-DBDOWN", "alfa", inv["payment_code"].(string), 150000, "T9")

	// Refuse new connections and kill the pool's: the database is gone as far as the service can tell.
	adminExec(t, "ALTER DATABASE "+s.DB.Name+" ALLOW_CONNECTIONS false")
	killAll(t, s.DB.Name)

	resp := s.Notify(body, "while-down", nil)
	if resp.Status != http.StatusServiceUnavailable || resp.JSON(t)["code"] != "unavailable" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("webhook with database down: HTTP %d %s", resp.Status, resp.Body)
	}
	if r := s.Do("GET", "/readyz", nil, nil); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("readyz with database down: HTTP %d", r.Status)
	}

	allowConnections(t, s.DB.Name)
	// DOKU's retry after the outage applies the payment, once.
	resp = s.Notify(body, "after-recovery", nil)
	if resp.Status != http.StatusOK || resp.JSON(t)["outcome"] != "applied" {
		t.Fatalf("webhook after recovery: HTTP %d %s", resp.Status, resp.Body)
	}
	if got := get(t, s, "INV-DBDOWN"); got["status"] != "paid" {
		t.Fatalf("invoice after recovery: %v", got)
	}
}

func TestCreateWhileDatabaseIsDownChangesNothingAndRecovers(t *testing.T) {
	s := apitest.New(t, apitest.Options{})
	adminExec(t, "ALTER DATABASE "+s.DB.Name+" ALLOW_CONNECTIONS false")
	killAll(t, s.DB.Name)

	req := apitest.Invoice("INV-DB-1", "alfa")
	for _, call := range []struct {
		method, path string
		body         any
	}{{"POST", "/v1/invoices", req}, {"GET", "/v1/invoices/INV-DB-1", nil}, {"GET", "/v1/invoices", nil}} {
		resp := s.Do(call.method, call.path, call.body, nil)
		if resp.Status != http.StatusServiceUnavailable || resp.JSON(t)["code"] != "unavailable" || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%s %s with database down: HTTP %d %s", call.method, call.path, resp.Status, resp.Body)
		}
	}
	if s.Sim.GenerateCalls() != 0 {
		t.Fatal("DOKU was called although the invoice could not be stored first")
	}

	// The same process recovers once the database is back: no restart.
	allowConnections(t, s.DB.Name)
	if r := s.Do("GET", "/readyz", nil, nil); r.Status != 200 {
		t.Fatalf("readyz after recovery: %d", r.Status)
	}
	resp := s.Do("POST", "/v1/invoices", req, nil)
	if resp.Status != http.StatusCreated || resp.JSON(t)["status"] != "pending" {
		t.Fatalf("create after recovery: HTTP %d %s", resp.Status, resp.Body)
	}
}
