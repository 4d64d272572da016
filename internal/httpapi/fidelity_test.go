package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/merchant/o2o/internal/apitest"
)

// notification is a DOKU success notification with the given raw order.amount, transaction.date and
// AGENT_TRX_ID, written out by hand so that each can be anything DOKU might send.
func notification(number, code, amount, date, trx string) []byte {
	return []byte(fmt.Sprintf(`{"service":{"id":"ONLINE_TO_OFFLINE"},"acquirer":{"id":"ALFA"},"channel":{"id":"ONLINE_TO_OFFLINE_ALFA"},`+
		`"transaction":{"status":"SUCCESS","date":%q,"original_request_id":"x"},"order":{"invoice_number":%q,"amount":%s},`+
		`"online_to_offline_info":{"payment_code":%q},"online_to_offline_payment":{"identifier":[{"name":"AGENT_ID","value":"ALFAMART"},`+
		`{"name":"AGENT_TRX_ID","value":%s}]}}`, date, number, amount, code, trx))
}

// A genuine notification that can be read is never lost over its formatting: a date we cannot parse
// falls back to the time of receipt, and an amount with a fraction is a mismatch kept for a person.
func TestNotificationsAreReadForgivingly(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})

	inv := create(t, s, apitest.NewInvoice("INV-DATE", "alfa"))
	before := time.Now().Add(-time.Second)
	r := s.Notify(notification("INV-DATE", inv.Code(t), "150000", "12/08/2021 14:06", `"T1"`), "date-1", nil)
	if r.Status != 200 || r.Ack(t).Outcome != "applied" {
		t.Fatalf("unreadable date: %d %s", r.Status, r.Body)
	}
	got := get(t, s, "INV-DATE")
	if len(got.Payments) == 0 {
		t.Fatalf("no payment: %v", got)
	}
	paidAt, _ := time.Parse(time.RFC3339, got.Payments[0].PaidAt)
	if got.Status != "paid" || paidAt.Before(before.Truncate(time.Second)) || paidAt.After(time.Now().Add(time.Second)) {
		t.Fatalf("paid at %v, want the time of receipt: %v", paidAt, got)
	}
	if !strings.Contains(string(s.GET("/v1/invoices/INV-DATE/events").Body), "12/08/2021 14:06") {
		t.Fatal("the date as DOKU wrote it is not kept in the history")
	}

	inv = create(t, s, apitest.NewInvoice("INV-FRACTION", "alfa"))
	for i := 0; i < 2; i++ {
		r = s.Notify(notification("INV-FRACTION", inv.Code(t), `"150000.50"`, "2026-01-01T10:00:00Z", `"T2"`), "fraction-1", nil)
		if r.Status != 200 {
			t.Fatalf("fraction: %d %s", r.Status, r.Body)
		}
	}
	if got := get(t, s, "INV-FRACTION"); got.Status != "pending" {
		t.Fatalf("a fractional amount paid the invoice: %v", got)
	}
	items := s.Attention("invoice_number=INV-FRACTION")
	if len(items) != 1 || items[0].Reason != "amount_mismatch" || items[0].Evidence["reported_amount"] != "150000.50" {
		t.Fatalf("attention: %v", items)
	}
}

// A notification kept as malformed (or for an invoice unknown then) is read again when DOKU
// redelivers it: a fix deployed in between, or the invoice arriving, must let the money through.
func TestRedeliveredMalformedNotificationIsReadAgain(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	inv := create(t, s, apitest.NewInvoice("INV-REREAD", "alfa"))
	body := apitest.NotificationBody("INV-REREAD", "alfa", inv.Code(t), 150000, "T1")
	// What an earlier version of the service kept: the same notification, judged unreadable.
	if _, err := s.DB.Pool.Exec(context.Background(), `INSERT INTO notifications (doku_request_id, invoice_number, headers, body, body_sha256, outcome)
		VALUES ('reread-1', 'INV-REREAD', '{}', $1, sha256($1), 'malformed')`, body); err != nil {
		t.Fatal(err)
	}
	if r := s.Notify(body, "reread-1", nil); r.Status != 200 || r.Ack(t).Outcome != "applied" {
		t.Fatalf("redelivery of a malformed notification: %d %s", r.Status, r.Body)
	}
	if got := get(t, s, "INV-REREAD"); got.Status != "paid" {
		t.Fatalf("status %v", got.Status)
	}
	if d := s.Count(`SELECT deliveries FROM notifications WHERE doku_request_id = 'reread-1'`); d != 2 {
		t.Fatalf("deliveries %d", d)
	}
}

// The inbox knows a notification by its Request-Id and its body: a different body under a Request-Id
// already seen is another notification and is processed, never dropped as a duplicate.
func TestNewBodyUnderASeenRequestIDIsProcessed(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	req := apitest.NewInvoice("INV-SAMEID", "alfa")
	req.Reusable = true
	inv := create(t, s, req)
	code := inv.Code(t)
	for _, trx := range []string{"T1", "T2"} {
		if r := s.Notify(apitest.NotificationBody("INV-SAMEID", "alfa", code, 150000, trx), "same-request-id", nil); r.Status != 200 || r.Ack(t).Outcome != "applied" {
			t.Fatalf("%s: %d %s", trx, r.Status, r.Body)
		}
	}
	if got := get(t, s, "INV-SAMEID"); got.TotalPaid != 300000 {
		t.Fatalf("two payments under one Request-Id: %v", got)
	}
	if n := s.Count(`SELECT count(*) FROM notifications WHERE doku_request_id = 'same-request-id'`); n != 2 {
		t.Fatalf("%d inbox rows", n)
	}
}

// Keys are exact: "AMOUNT" beside "amount" has no right reading, and "Amount" is not "amount". In a
// create that is a validation error; in a signed notification it is unreadable, kept for a person,
// and never pays the invoice.
func TestCaseVariantKeys(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	for name, body := range map[string]string{
		"AMOUNT beside amount": `{"invoice_number":"INV-CASE","channel":"alfa","amount":150000,"AMOUNT":20000,"customer":{"name":"A"}}`,
		"Amount alone":         `{"invoice_number":"INV-CASE","channel":"alfa","Amount":150000,"customer":{"name":"A"}}`,
		"Customer.Name":        `{"invoice_number":"INV-CASE","channel":"alfa","amount":150000,"customer":{"name":"A","Name":"B"}}`,
	} {
		r := s.POST("/v1/invoices", []byte(body))
		if r.Status != 422 || r.Problem(t).Code != "validation_failed" {
			t.Fatalf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	if n := s.Count(`SELECT count(*) FROM invoices`); n != 0 || s.Sim.GenerateCalls() != 0 {
		t.Fatalf("refused creates wrote %d invoices and made %d DOKU calls", n, s.Sim.GenerateCalls())
	}

	inv := create(t, s, apitest.NewInvoice("INV-CASE-N", "alfa"))
	code := inv.Code(t)
	body := strings.Replace(string(notification("INV-CASE-N", code, "1000", "2026-01-01T10:00:00Z", `"T1"`)),
		`"amount":1000`, `"amount":1000,"AMOUNT":150000`, 1)
	if r := s.Notify([]byte(body), "case-variant", nil); r.Status != 400 || r.Problem(t).Code != "invalid_notification" {
		t.Fatalf("signed notification with AMOUNT: %d %s", r.Status, r.Body)
	}
	if got := get(t, s, "INV-CASE-N"); got.Status != "pending" {
		t.Fatalf("a case-variant key paid the invoice: %v", got)
	}
	if items := s.Attention("reason=unreadable_notification&invoice_number=INV-CASE-N"); len(items) != 1 {
		t.Fatalf("the unreadable notification is not shown to a person: %v", items)
	}
}

// What the API stores is valid UTF-8 without NUL, refused otherwise with 422 and nothing written —
// never replaced, and never a 500 from PostgreSQL refusing it.
func TestTextPostgresRefusesIsRefusedUpFront(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	base := `{"invoice_number":"INV-TXT","channel":"alfa","amount":150000,"customer":{"name":"A"},`
	for name, tc := range map[string]struct{ body, field string }{
		"NUL in metadata":           {base + `"metadata":{"k":"a\u0000b"}}`, "metadata"},
		"NUL in a metadata key":     {base + `"metadata":{"a\u0000":1}}`, "metadata"},
		"lone surrogate":            {base + `"metadata":{"k":"\ud800"}}`, "metadata.k"},
		"huge number":               {base + `"metadata":{"k":1e1000000}}`, "metadata"},
		"invalid UTF-8 in name":     {`{"invoice_number":"INV-TXT","channel":"alfa","amount":150000,"customer":{"name":"A` + "\xff" + `"}}`, "customer.name"},
		"invalid UTF-8 in info":     {base + `"info":"shop` + "\xc3\x28" + `"}`, "info"},
		"invalid UTF-8 in metadata": {base + `"metadata":{"k":"` + "\xed\xa0\x80" + `"}}`, "metadata.k"},
		"NUL in info":               {base + `"info":"a\u0000"}`, "info"},
		"NUL in email":              {`{"invoice_number":"INV-TXT","channel":"alfa","amount":150000,"customer":{"name":"A","email":"a\u0000@b.co"}}`, "customer.email"},
	} {
		t.Run(name, func(t *testing.T) {
			r := s.POST("/v1/invoices", []byte(tc.body))
			if r.Status != 422 || !r.Problem(t).HasField(tc.field) {
				t.Fatalf("HTTP %d %s, want 422 naming %s", r.Status, r.Body, tc.field)
			}
		})
	}
	if n := s.Count(`SELECT count(*) FROM invoices`); n != 0 || s.Sim.GenerateCalls() != 0 {
		t.Fatalf("refused creates wrote %d invoices and made %d DOKU calls", n, s.Sim.GenerateCalls())
	}
}

// DOKU's bytes are kept whatever they are: a genuine, matching payment whose store identifiers hold a
// NUL or bytes that are not UTF-8 is recorded (200), not a 500 on every delivery.
func TestPaymentWithUnstorableIdentifiersIsRecorded(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	inv := create(t, s, apitest.NewInvoice("INV-BYTES", "alfa"))
	body := notification("INV-BYTES", inv.Code(t), "150000", "2026-01-01T10:00:00Z", "\"T\\u0000X\xff\"")
	for i := 0; i < 2; i++ {
		r := s.Notify(body, "bytes-1", nil)
		if r.Status != 200 {
			t.Fatalf("delivery %d: %d %s", i+1, r.Status, r.Body)
		}
	}
	got := get(t, s, "INV-BYTES")
	if len(got.Payments) == 0 {
		t.Fatalf("no payment: %v", got)
	}
	if ids := got.Payments[0].Identifiers; got.Status != "paid" || ids["AGENT_TRX_ID"] != "T\uFFFDX\uFFFD" {
		t.Fatalf("payment: %v", got)
	}
	if n := s.Count(`SELECT count(*) FROM notifications WHERE doku_request_id = 'bytes-1' AND body = $1`, body); n != 1 {
		t.Fatal("the raw body is not kept exactly as received")
	}
}

// overlong is n characters of letters and digits that do not compress (PostgreSQL compresses a long
// index entry before it measures it), the same for the same seed.
func overlong(seed uint32, n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		seed = seed*1664525 + 1013904223
		b[i] = alphabet[(seed>>24)%uint32(len(alphabet))]
	}
	return string(b)
}

// Whatever a signed notification carries, it is kept and answered — never a 500 because an
// identifier is longer than an index entry PostgreSQL takes (about 2.7 kB) — and its payment is
// recorded once however often it comes. An invoice number longer than any of ours is no invoice of
// ours: kept for a person. A Request-Id or a store transaction id of any length still keys the
// notification and the payment.
func TestOverlongIdentifiersFromDOKUAreKept(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})

	r := s.Notify(apitest.NotificationBody(overlong(1, 6000), "alfa", "8888000000000999", 150000, "T-LONG-1"), "req-long-number", nil)
	if r.Status != http.StatusBadRequest || r.Problem(t).Code != "invalid_notification" {
		t.Errorf("an invoice number of 6,000 characters: HTTP %d %s", r.Status, r.Body)
	}
	if n := s.Count(`SELECT count(*) FROM notifications WHERE doku_request_id = 'req-long-number' AND outcome = 'malformed'`); n != 1 {
		t.Errorf("the notification with an overlong invoice number is kept %d times, want once, as unreadable", n)
	}
	if n := s.Count(`SELECT count(*) FROM attention_items WHERE reason = 'unreadable_notification'`); n != 1 {
		t.Errorf("%d attention items for it, want one", n)
	}

	inv := create(t, s, apitest.NewInvoice("INV-LONG-IDS", "alfa"))
	body := apitest.NotificationBody("INV-LONG-IDS", "alfa", inv.Code(t), 150000, overlong(2, 5000))
	requestID := overlong(3, 5000)
	for i, want := range []string{"applied", "duplicate"} {
		if r := s.Notify(body, requestID, nil); r.Status != http.StatusOK || r.Ack(t).Outcome != want {
			t.Errorf("delivery %d of a payment with a 5,000-character Request-Id and store transaction id: HTTP %d %s, want %s", i+1, r.Status, r.Body, want)
		}
	}
	// Redelivered under another Request-Id (the same payment): still one payment.
	if r := s.Notify(body, "req-long-ids-again", nil); r.Status != http.StatusOK || r.Ack(t).Outcome != "duplicate" {
		t.Errorf("the same payment under another Request-Id: HTTP %d %s", r.Status, r.Body)
	}
	if got := get(t, s, "INV-LONG-IDS"); got.Status != "paid" || s.Count(`SELECT count(*) FROM payments`) != 1 {
		t.Errorf("status %s, %d payments: want paid, one", got.Status, s.Count(`SELECT count(*) FROM payments`))
	}

	// A report that disagrees, with overlong fields of its own: acknowledged, kept for a person.
	other := create(t, s, apitest.NewInvoice("INV-LONG-MISMATCH", "alfa"))
	if r := s.Notify(apitest.NotificationBody("INV-LONG-MISMATCH", "alfa", other.Code(t), 140000, overlong(4, 5000)), overlong(5, 5000), nil); r.Status != http.StatusOK || r.Ack(t).Outcome != "amount_mismatch" {
		t.Errorf("a mismatch with overlong identifiers: HTTP %d %s", r.Status, r.Body)
	}
	if n := s.Count(`SELECT count(*) FROM attention_items WHERE reason = 'amount_mismatch'`); n != 1 {
		t.Errorf("%d amount_mismatch items, want one", n)
	}
}
