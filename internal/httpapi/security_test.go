package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/config"
	"github.com/merchant/o2o/internal/doku"
)

// writes is every row count that an input could change.
func writes(s *apitest.Stack) string {
	return fmt.Sprintf("invoices=%d payments=%d notifications=%d updated=%d",
		s.Count(`SELECT count(*) FROM invoices`), s.Count(`SELECT count(*) FROM payments`),
		s.Count(`SELECT count(*) FROM notifications`), s.Count(`SELECT coalesce(sum(extract(epoch FROM updated_at))::bigint, 0) FROM invoices`))
}

// Hostile input across the API and the webhook: each answered with its precise status and problem
// code, and nothing written anywhere.
func TestHostileInputs(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	inv := create(t, s, apitest.NewInvoice("INV-HOSTILE", "alfa"))
	code := inv.Code(t)
	good := apitest.NotificationBody("INV-HOSTILE", "alfa", code, 150000, "T1")

	type hostile struct {
		name       string
		do         func() apitest.Response
		wantStatus int
		wantCode   string
	}
	var cases []hostile
	for _, bc := range badCreates(t) {
		cases = append(cases, hostile{name: "create: " + bc.name, wantStatus: bc.wantStatus, wantCode: bc.wantCode,
			do: func() apitest.Response { return s.Send(bc.request()) }})
	}
	api := func(name string, req apitest.Request, status int, code string) {
		cases = append(cases, hostile{name: name, wantStatus: status, wantCode: code, do: func() apitest.Response { return s.Send(req) }})
	}
	getting := func(path string) apitest.Request { return apitest.Request{Method: http.MethodGet, Path: path} }
	creating := func(body string) apitest.Request {
		return apitest.Request{Method: http.MethodPost, Path: "/v1/invoices", Body: []byte(body)}
	}
	api("create: 10 MB invoice number", creating(`{"invoice_number":"`+strings.Repeat("A", 10<<20)+`"}`), 413, "payload_too_large")
	api("create: 10 MB without Content-Length", apitest.Request{Method: http.MethodPost, Path: "/v1/invoices",
		Stream: strings.NewReader(`{"info":"` + strings.Repeat("x", 10<<20) + `"}`)}, 413, "payload_too_large")
	api("create: duplicate amount key", creating(`{"invoice_number":"INV-DUP","channel":"alfa","amount":150000,"amount":10000,"customer":{"name":"A"}}`), 422, "validation_failed")
	api("create: duplicate nested key", creating(`{"invoice_number":"INV-DUP","channel":"alfa","amount":150000,"customer":{"name":"A","name":"B"}}`), 422, "validation_failed")
	api("create: int64 overflow amount", creating(`{"invoice_number":"INV-O","channel":"alfa","amount":9223372036854775808,"customer":{"name":"A"}}`), 422, "validation_failed")
	api("create: null body", creating(`null`), 422, "validation_failed")
	api("create: bearer key in a query string", apitest.Request{Method: http.MethodPost, Path: "/v1/invoices?api_key=" + apitest.APIKey,
		Body: apitest.JSON(t, apitest.NewInvoice("INV-Q", "alfa")), NoKey: true}, 401, "unauthorized")
	api("get: path traversal", getting("/v1/invoices/..%2F..%2Fetc%2Fpasswd"), 404, "not_found")
	api("get: SQL in path", getting("/v1/invoices/1'%20OR%20'1'='1"), 404, "not_found")
	api("get: unicode number", getting("/v1/invoices/INV-%E2%82%AC"), 404, "not_found")
	api("get: 1 KiB number", getting("/v1/invoices/"+strings.Repeat("A", 1<<10)), 404, "not_found")
	api("get: 64 KiB request line", getting("/v1/invoices/"+strings.Repeat("A", 64<<10)), 431, "")
	api("sync: path traversal", apitest.Request{Method: http.MethodPost, Path: "/v1/invoices/..%2Fx/sync"}, 404, "not_found")
	api("list: SQL in status", getting("/v1/invoices?status=paid'--"), 422, "validation_failed")
	api("list: negative limit", getting("/v1/invoices?limit=-1"), 422, "validation_failed")
	api("list: forged cursor", getting("/v1/invoices?cursor=aWQ6LTE"), 422, "validation_failed")
	api("notifications: unknown outcome", getting("/v1/notifications?outcome=paid"), 422, "validation_failed")
	api("notifications: without key", apitest.Request{Method: http.MethodGet, Path: "/v1/notifications", NoKey: true}, 401, "unauthorized")

	hook := func(name string, body []byte, mutate func(h http.Header), status int, code string) {
		cases = append(cases, hostile{name: "webhook: " + name, wantStatus: status, wantCode: code, do: func() apitest.Response {
			return s.Notify(body, "hostile-"+name, mutate)
		}})
	}
	hook("no signature", good, func(h http.Header) { h.Del(doku.HeaderSignature) }, 401, "invalid_signature")
	hook("forged signature", good, func(h http.Header) { h.Set(doku.HeaderSignature, "HMACSHA256=Zm9yZ2Vk") }, 401, "invalid_signature")
	hook("signature of the empty body", good, func(h http.Header) {
		h.Set(doku.HeaderSignature, doku.Sign([]byte(apitest.SecretKey), doku.Components{ClientID: apitest.ClientID,
			RequestID: h.Get(doku.HeaderRequestID), Timestamp: h.Get(doku.HeaderRequestTimestamp), Target: apitest.NotificationPath, Digest: doku.Digest(nil)}))
	}, 401, "invalid_signature")
	hook("another merchant's Client-Id", good, func(h http.Header) { h.Set(doku.HeaderClientID, "MCH-EVIL") }, 401, "invalid_signature")
	hook("replayed signature, tampered amount", []byte(strings.Replace(string(good), "150000", "1", 1)), func(h http.Header) {
		h.Set(doku.HeaderSignature, doku.Sign([]byte(apitest.SecretKey), doku.Components{ClientID: apitest.ClientID,
			RequestID: h.Get(doku.HeaderRequestID), Timestamp: h.Get(doku.HeaderRequestTimestamp), Target: apitest.NotificationPath, Digest: doku.Digest(good)}))
	}, 401, "invalid_signature")
	hook("signed for another path", good, func(h http.Header) {
		h.Set(doku.HeaderSignature, doku.Sign([]byte(apitest.SecretKey), doku.Components{ClientID: apitest.ClientID,
			RequestID: h.Get(doku.HeaderRequestID), Timestamp: h.Get(doku.HeaderRequestTimestamp), Target: "/other", Digest: doku.Digest(good)}))
	}, 401, "invalid_signature")
	hook("signed with the wrong secret", good, func(h http.Header) {
		h.Set(doku.HeaderSignature, doku.Sign([]byte("guess"), doku.Components{ClientID: apitest.ClientID,
			RequestID: h.Get(doku.HeaderRequestID), Timestamp: h.Get(doku.HeaderRequestTimestamp), Target: apitest.NotificationPath, Digest: doku.Digest(good)}))
	}, 401, "invalid_signature")
	hook("10 MB body", []byte(`{"x":"`+strings.Repeat("x", 10<<20)+`"}`), nil, 413, "payload_too_large")
	hook("huge header value", good, func(h http.Header) { h.Set(doku.HeaderSignature, strings.Repeat("A", 100<<10)) }, 431, "")

	if len(cases) < 40 {
		t.Fatalf("only %d hostile cases", len(cases))
	}
	before := writes(s)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := tc.do()
			if resp.Status != tc.wantStatus {
				t.Fatalf("HTTP %d, want %d: %.300s", resp.Status, tc.wantStatus, resp.Body)
			}
			if tc.wantCode != "" {
				if p := resp.Problem(t); p.Code != tc.wantCode {
					t.Fatalf("problem code %v, want %s", p.Code, tc.wantCode)
				}
			}
			if after := writes(s); after != before {
				t.Fatalf("something was written: %s -> %s", before, after)
			}
		})
	}
	if s.Sim.GenerateCalls() != 1 {
		t.Fatalf("hostile input reached DOKU: %d generate calls", s.Sim.GenerateCalls())
	}
	t.Logf("%d hostile inputs refused without a write", len(cases))
}

// 1,000 concurrent deliveries of one notification, then 1,000 different notifications of payments
// for the same invoice: one payment, one transition, every delivery in the inbox.
//
// Not parallel: a load test of its own (2,000 requests, bounded by the server's timeouts) that would
// slow every test beside it and be slowed by them.
func TestNotificationStorms(t *testing.T) {
	s := apitest.New(t, apitest.Options{})
	s.Client.Transport.(*apitest.ContractTransport).Base = &http.Transport{MaxIdleConnsPerHost: 200, MaxConnsPerHost: 200}

	storm := func(n int, body func(i int) []byte, requestID func(i int) string) map[int]int {
		var mu sync.Mutex
		statuses := map[int]int{}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				r := s.Notify(body(i), requestID(i), nil)
				mu.Lock()
				statuses[r.Status]++
				mu.Unlock()
			}(i)
		}
		close(start)
		wg.Wait()
		return statuses
	}

	inv := create(t, s, apitest.NewInvoice("INV-STORM-1", "alfa"))
	same := apitest.NotificationBody("INV-STORM-1", "alfa", inv.Code(t), 150000, "T1")
	got := storm(1000, func(int) []byte { return same }, func(int) string { return "storm-same" })
	if got[200] != 1000 {
		t.Fatalf("same notification x1000: statuses %v", got)
	}
	if p := s.Count(`SELECT count(*) FROM payments`); p != 1 {
		t.Fatalf("payments = %d", p)
	}
	if d := s.Count(`SELECT deliveries FROM notifications WHERE doku_request_id = 'storm-same'`); d != 1000 {
		t.Fatalf("inbox counted %d deliveries", d)
	}
	if a := s.Count(`SELECT count(*) FROM notifications WHERE outcome = 'applied'`); a != 1 {
		t.Fatalf("%d applied", a)
	}

	inv2 := create(t, s, apitest.NewInvoice("INV-STORM-2", "indomaret"))
	code2 := inv2.Code(t)
	// The same payment reported under 1,000 different Request-Ids (its store transaction id is what
	// names it) is still one payment.
	got = storm(1000, func(i int) []byte {
		return apitest.NotificationBody("INV-STORM-2", "indomaret", code2, 150000, "T-STORM-2")
	}, func(i int) string { return fmt.Sprintf("storm-diff-%d", i) })
	if got[200] != 1000 {
		t.Fatalf("different notifications x1000: statuses %v", got)
	}
	row := s.Count(`SELECT count(*) FROM payments p JOIN invoices i ON i.id = p.invoice_id WHERE i.invoice_number = 'INV-STORM-2'`)
	applied := s.Count(`SELECT count(*) FROM notifications WHERE invoice_number = 'INV-STORM-2' AND outcome = 'applied'`)
	dups := s.Count(`SELECT count(*) FROM notifications WHERE invoice_number = 'INV-STORM-2' AND outcome = 'duplicate'`)
	if row != 1 || applied != 1 || dups != 999 {
		t.Fatalf("payments %d, applied %d, duplicates %d", row, applied, dups)
	}
}

func TestInboxKeepsAndFlagsForAPerson(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	inv := create(t, s, apitest.NewInvoice("INV-INBOX", "alfa"))
	code := inv.Code(t)

	wrong := apitest.NotificationBody("INV-INBOX", "alfa", code, 15000, "T1")
	for i := 0; i < 2; i++ { // DOKU redelivers
		if r := s.Notify(wrong, "mismatch-1", nil); r.Status != 200 {
			t.Fatalf("mismatch: %d %s", r.Status, r.Body)
		}
	}
	if r := s.Notify([]byte(`{"order":{"invoice_number":"INV-INBOX","amount":1,"amount":150000},"transaction":{"status":"SUCCESS"}}`), "dupkey", nil); r.Status != 400 || r.Problem(t).Code != "invalid_notification" {
		t.Fatalf("signed body with a duplicate key: %d %s", r.Status, r.Body)
	}
	if r := s.Notify(apitest.NotificationBody("INV-GHOST", "alfa", code, 150000, "T1"), "ghost", nil); r.Status != 404 {
		t.Fatalf("unknown invoice: %d", r.Status)
	}

	list := s.GET("/v1/notifications?outcome=flagged").Notifications(t)
	if len(list.Items) != 1 {
		t.Fatalf("flagged: %+v", list)
	}
	n := list.Items[0]
	var parsed struct {
		Order json.RawMessage `json:"order"`
	}
	if err := json.Unmarshal(n.BodyJSON, &parsed); err != nil || n.Outcome != "amount_mismatch" || n.Deliveries != 2 || n.Body != string(wrong) ||
		n.Headers["Request-Id"] != "mismatch-1" || len(parsed.Order) == 0 || string(parsed.Order) == "null" {
		t.Fatalf("flagged entry: %v (body_json: %v)", n, err)
	}
	for outcome, want := range map[string]int{"malformed": 1, "unknown_invoice": 1, "applied": 0} {
		items := s.GET("/v1/notifications?outcome=" + outcome).Notifications(t).Items
		if len(items) != want {
			t.Errorf("outcome=%s: %d entries, want %d", outcome, len(items), want)
		}
	}
	if got := get(t, s, "INV-INBOX"); got.Status != "pending" {
		t.Fatalf("a flagged notification changed the invoice: %v", got.Status)
	}
	for _, secret := range []string{apitest.SecretKey} {
		if strings.Contains(s.GET("/v1/notifications").Dump(), secret) {
			t.Fatal("the inbox exposes the DOKU secret")
		}
	}
}

// With debug logging on, no log line carries the DOKU secret or an API key, whatever happened.
func TestLogsNeverCarrySecrets(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	inv := create(t, s, apitest.NewInvoice("INV-LOGS", "alfa"))
	s.Pay(inv.Code(t), 150000)
	s.Send(apitest.Request{Method: http.MethodGet, Path: "/v1/invoices", Key: apitest.APIKey + "-wrong"})
	s.Send(apitest.Request{Method: http.MethodGet, Path: "/v1/invoices", Key: apitest.APIKey2})
	s.Notify(apitest.NotificationBody("INV-LOGS", "alfa", "x", 1, "T"), "logs", func(h http.Header) { h.Set(doku.HeaderSignature, "HMACSHA256=x") })
	s.Sync("INV-LOGS")
	logs := s.Logs.String()
	if !strings.Contains(logs, `"level":"debug"`) && !strings.Contains(logs, `"level":"info"`) {
		t.Fatal("no logs were captured; the test would prove nothing")
	}
	for _, secret := range []string{apitest.SecretKey, apitest.APIKey, apitest.APIKey2} {
		if strings.Contains(logs, secret) {
			t.Fatalf("a log line contains %q", secret)
		}
	}
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	for _, key := range []string{apitest.APIKey, apitest.APIKey2} {
		if r := s.Send(apitest.Request{Method: http.MethodGet, Path: "/v1/invoices", Key: key}); r.Status != 200 {
			t.Fatalf("key %s…: %d", key[:8], r.Status)
		}
	}
}

func TestWebhookNetworkAllowList(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{Config: func(c *config.Config) { c.WebhookAllowedCIDRs = []string{"203.0.113.0/24"} }})
	inv := create(t, s, apitest.NewInvoice("INV-NET", "alfa"))
	r := s.Notify(apitest.NotificationBody("INV-NET", "alfa", inv.Code(t), 150000, "T"), "net", nil)
	if r.Status != http.StatusForbidden || r.Problem(t).Code != "forbidden" || s.Count(`SELECT count(*) FROM notifications`) != 0 {
		t.Fatalf("notification from outside the allowed networks: %d %s", r.Status, r.Body)
	}

	open := apitest.New(t, apitest.Options{Config: func(c *config.Config) { c.WebhookAllowedCIDRs = []string{"127.0.0.0/8"} }})
	inv = create(t, open, apitest.NewInvoice("INV-NET", "alfa"))
	if r := open.Notify(apitest.NotificationBody("INV-NET", "alfa", inv.Code(t), 150000, "T"), "net", nil); r.Status != 200 {
		t.Fatalf("notification from an allowed network: %d %s", r.Status, r.Body)
	}
}

func TestWebhookMaxAge(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{Config: func(c *config.Config) { c.WebhookMaxAge = time.Hour }})
	inv := create(t, s, apitest.NewInvoice("INV-AGE", "alfa"))
	body := apitest.NotificationBody("INV-AGE", "alfa", inv.Code(t), 150000, "T")
	old := time.Now().Add(-2 * time.Hour).UTC().Format(doku.TimestampLayout)
	r := s.Notify(body, "old", func(h http.Header) {
		h.Set(doku.HeaderRequestTimestamp, old)
		h.Set(doku.HeaderSignature, doku.Sign([]byte(apitest.SecretKey), doku.Components{ClientID: apitest.ClientID,
			RequestID: "old", Timestamp: old, Target: apitest.NotificationPath, Digest: doku.Digest(body)}))
	})
	if r.Status != 401 || r.Problem(t).Code != "stale_notification" {
		t.Fatalf("two-hour-old notification: %d %s", r.Status, r.Body)
	}
	if r := s.Notify(body, "fresh", nil); r.Status != 200 {
		t.Fatalf("fresh notification: %d %s", r.Status, r.Body)
	}
}
