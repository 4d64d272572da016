package httpapi_test

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/dokusim"
)

// eventCounts is how many events of each type an invoice has.
func eventCounts(s *apitest.Stack, number string) map[string]int {
	out := map[string]int{}
	for _, e := range s.AllEvents("invoice_number=" + number) {
		out[e.Type]++
	}
	return out
}

// assertOneEventPerChange holds the log to what changed, over the whole database: one status event
// per status change in the history, one event about each payment (invoice.paid when it paid the
// invoice, payment.recorded when it did not), one attention.raised per attention item — nothing more,
// nothing less.
func assertOneEventPerChange(t *testing.T, s *apitest.Stack) {
	t.Helper()
	for _, c := range []struct{ what, changes, events string }{
		{"status changes",
			`SELECT count(*) FROM events e, json_array_elements(e.history) h
			 WHERE h->>'kind' = 'status_changed' AND h->>'from' IS DISTINCT FROM h->>'to' AND h->>'to' <> 'creating'`,
			`SELECT count(*) FROM events WHERE type LIKE 'invoice.%'`},
		{"payments", `SELECT count(*) FROM payments`, `SELECT count(*) FROM events WHERE data->'payment' IS NOT NULL`},
		{"payments that changed no status", `SELECT count(*) FROM events WHERE data->'payment' IS NOT NULL AND type <> 'invoice.paid'`,
			`SELECT count(*) FROM events WHERE type = 'payment.recorded'`},
		{"attention items", `SELECT count(*) FROM attention_items`, `SELECT count(*) FROM events WHERE type = 'attention.raised'`},
	} {
		if changes, events := s.Count(c.changes), s.Count(c.events); changes != events {
			t.Errorf("%s: %d in the database, %d events", c.what, changes, events)
		}
	}
	// And each status event says the status its change moved to.
	if n := s.Count(`SELECT count(*) FROM events WHERE type LIKE 'invoice.%' AND type <> 'invoice.' || (data->'invoice'->>'status')
		AND NOT (type = 'invoice.cancelled' AND data->'invoice'->>'status' = 'paid')`); n != 0 {
		t.Errorf("%d status events carry an invoice in another status", n)
	}
}

// Every change produces exactly one event, whichever path made it: create, payment, redelivery,
// mismatch, DOKU's refusal, expiry, cancellation, money after cancellation, a notification for an
// invoice we do not have.
func TestEveryChangeProducesExactlyOneEvent(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})

	// Paid, and the notification delivered twice.
	paid := s.Create(apitest.NewInvoice("INV-EV-PAID", "alfa")).Invoice(t)
	pay := s.Pay(paid.Code(t), paid.Amount)
	if !pay.Notification.Delivered {
		t.Fatalf("payment notification: %v", pay)
	}
	body := apitest.NotificationBody("INV-EV-PAID", "alfa", paid.Code(t), paid.Amount, pay.TransactionID)
	s.Notify(body, "req-ev-1", nil)
	s.Notify(body, "req-ev-1", nil) // DOKU's redelivery: counted, nothing new
	// A payment that pays the invoice is one change: one event, invoice.paid, carrying the payment.
	want := map[string]int{"invoice.pending": 1, "invoice.paid": 1}
	if got := eventCounts(s, "INV-EV-PAID"); !maps.Equal(got, want) {
		t.Errorf("paid invoice: events %v, want %v", got, want)
	}
	// A second payment of the paid single-use code changes no status: payment.recorded, and a person
	// is asked about it.
	s.Notify(apitest.NotificationBody("INV-EV-PAID", "alfa", paid.Code(t), paid.Amount, "TRX-EV-SECOND"), "req-ev-2", nil)
	want = map[string]int{"invoice.pending": 1, "invoice.paid": 1, "payment.recorded": 1, "attention.raised": 1}
	if got := eventCounts(s, "INV-EV-PAID"); !maps.Equal(got, want) {
		t.Errorf("paid twice: events %v, want %v", got, want)
	}

	// A mismatch: flagged once however often it is delivered; the invoice does not change.
	mis := s.Create(apitest.NewInvoice("INV-EV-MIS", "indomaret")).Invoice(t)
	wrong := apitest.NotificationBody("INV-EV-MIS", "indomaret", mis.Code(t), mis.Amount-1, "TRX-EV-MIS")
	s.Notify(wrong, "req-ev-mis", nil)
	s.Notify(wrong, "req-ev-mis", nil)
	want = map[string]int{"invoice.pending": 1, "attention.raised": 1}
	if got := eventCounts(s, "INV-EV-MIS"); !maps.Equal(got, want) {
		t.Errorf("mismatch: events %v, want %v", got, want)
	}

	// DOKU refuses the code.
	s.Sim.SetFaults(dokusim.Faults{FailNext: 1, FailStatus: 400, FailMessage: "Customer name is blocked"})
	if r := s.Create(apitest.NewInvoice("INV-EV-FAIL", "alfa")); r.Status != http.StatusBadGateway {
		t.Fatalf("create with DOKU refusing: HTTP %d %s", r.Status, r.Body)
	}
	if got := eventCounts(s, "INV-EV-FAIL"); !maps.Equal(got, map[string]int{"invoice.failed": 1}) {
		t.Errorf("failed: events %v", got)
	}

	// Expired: DOKU says so on the reconciler's check.
	exp := s.Create(apitest.NewInvoice("INV-EV-EXP", "alfa")).Invoice(t)
	s.Sim.Advance(2 * time.Hour)
	s.Reconcile(1)
	if got := s.Get(exp.InvoiceNumber).Status; got != "expired" {
		t.Fatalf("after DOKU expired the code: %s", got)
	}
	if got := eventCounts(s, "INV-EV-EXP"); !maps.Equal(got, map[string]int{"invoice.pending": 1, "invoice.expired": 1}) {
		t.Errorf("expired: events %v", got)
	}
	s.Sim.Advance(-2 * time.Hour)

	// Cancelled twice, then paid all the same.
	can := s.Create(apitest.NewInvoice("INV-EV-CAN", "alfa")).Invoice(t)
	for i := 0; i < 2; i++ {
		if r := s.POST("/v1/invoices/INV-EV-CAN/cancel", []byte(`{"reason":"out of stock"}`)); r.Status != http.StatusOK {
			t.Fatalf("cancel %d: HTTP %d %s", i+1, r.Status, r.Body)
		}
	}
	s.Pay(can.Code(t), can.Amount)
	want = map[string]int{"invoice.pending": 1, "invoice.cancelled": 1, "invoice.paid": 1, "attention.raised": 1}
	if got := eventCounts(s, "INV-EV-CAN"); !maps.Equal(got, want) {
		t.Errorf("paid after cancel: events %v, want %v", got, want)
	}

	// A genuine notification for an invoice we do not have: an attention item without invoice.
	s.Notify(apitest.NotificationBody("INV-EV-NONE", "alfa", "8888000000000001", 150000, "TRX-EV-NONE"), "req-ev-none", nil)
	if got := eventCounts(s, "INV-EV-NONE"); !maps.Equal(got, map[string]int{"attention.raised": 1}) {
		t.Errorf("unknown invoice: events %v", got)
	}
	for _, e := range s.AllEvents("invoice_number=INV-EV-NONE") {
		if e.Data.Invoice != nil || e.Data.Attention == nil || e.Data.Attention.Reason != "unknown_invoice" || e.Data.Attention.ID == 0 {
			t.Errorf("unknown-invoice event: %v", e)
		}
	}

	assertOneEventPerChange(t, s)

	// The payload is the invoice as the API showed it at that moment: the paid event carries the
	// payment that paid it, the pending one no payment yet, the second payment's event the second.
	evs := s.AllEvents("invoice_number=INV-EV-PAID")
	for _, e := range evs {
		inv := e.Data.Invoice
		switch e.Type {
		case "invoice.pending":
			if inv.Status != "pending" || len(inv.Payments) != 0 || inv.PaymentCode == nil {
				t.Errorf("pending event: %v", e)
			}
		case "invoice.paid":
			if inv.Status != "paid" || inv.TotalPaid != paid.Amount || e.Data.Payment == nil || e.Data.Payment.Amount != paid.Amount ||
				e.Data.Payment.Identifiers["AGENT_TRX_ID"] != pay.TransactionID {
				t.Errorf("paid event: %v", e)
			}
		case "payment.recorded":
			if inv.TotalPaid != 2*paid.Amount || e.Data.Payment == nil || e.Data.Payment.Identifiers["AGENT_TRX_ID"] != "TRX-EV-SECOND" {
				t.Errorf("second payment's event: %v", e)
			}
		}
	}
	if !slices.IsSortedFunc(evs, func(a, b apitest.PublishedView) int { return strings.Compare(a.CreatedAt, b.CreatedAt) }) {
		t.Errorf("feed not oldest first: %v", evs)
	}
}

// A change whose transaction fails at COMMIT — after every statement, the event's included, ran —
// leaves no event, as it leaves no change; DOKU's retry then applies it with its events, once.
func TestARolledBackChangeProducesNoEvent(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	inv := s.Create(apitest.NewInvoice("INV-EV-RB", "alfa")).Invoice(t)
	before := s.Count(`SELECT count(*) FROM events`)

	// The fault: a deferred constraint trigger on the outbox fires at COMMIT and fails it.
	sqlExec(t, s, `CREATE FUNCTION fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS
		$$ BEGIN RAISE EXCEPTION 'injected fault at commit'; END $$`)
	sqlExec(t, s, `CREATE CONSTRAINT TRIGGER fail_at_commit AFTER INSERT ON events
		DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_at_commit()`)
	body := apitest.NotificationBody(inv.InvoiceNumber, "alfa", inv.Code(t), inv.Amount, "TRX-RB-1")
	if r := s.Notify(body, "req-rb-1", nil); r.Status < 500 {
		t.Fatalf("notification with the commit failing: HTTP %d %s (want a 5xx, so that DOKU retries)", r.Status, r.Body)
	}
	if n := s.Count(`SELECT count(*) FROM events`); n != before {
		t.Errorf("%d events after a rolled-back change, want %d", n, before)
	}
	if got := s.Get(inv.InvoiceNumber); got.Status != "pending" || len(got.Payments) != 0 {
		t.Errorf("the change survived its rollback: %s, %d payments", got.Status, len(got.Payments))
	}
	if n := s.Count(`SELECT count(*) FROM notifications`); n != 0 {
		t.Errorf("the inbox kept %d rows of a rolled-back transaction", n)
	}

	sqlExec(t, s, `DROP TRIGGER fail_at_commit ON events`)
	if r := s.Notify(body, "req-rb-1", nil); r.Status != http.StatusOK {
		t.Fatalf("DOKU's retry: HTTP %d %s", r.Status, r.Body)
	}
	want := map[string]int{"invoice.pending": 1, "invoice.paid": 1}
	if got := eventCounts(s, inv.InvoiceNumber); !maps.Equal(got, want) {
		t.Errorf("after the retry: events %v, want %v", got, want)
	}
	assertOneEventPerChange(t, s)
}

// Cancellation is idempotent and keeps the first reason; a settled invoice cannot be cancelled; money
// for a cancelled invoice is recorded, flagged for a refund decision, and announced.
func TestCancel(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	inv := s.Create(apitest.NewInvoice("INV-CANCEL", "indomaret")).Invoice(t)

	first := s.POST("/v1/invoices/INV-CANCEL/cancel", []byte(`{"reason":"customer changed their mind"}`))
	again := s.POST("/v1/invoices/INV-CANCEL/cancel", []byte(`{"reason":"another reason"}`))
	for _, r := range []apitest.Response{first, again} {
		if r.Status != http.StatusOK {
			t.Fatalf("cancel: HTTP %d %s", r.Status, r.Body)
		}
		v := r.Invoice(t)
		if v.Status != "cancelled" || v.Cancellation == nil || v.Cancellation.Reason != "customer changed their mind" {
			t.Errorf("cancel answered %v", v)
		}
	}
	if first.Invoice(t).Cancellation.At != again.Invoice(t).Cancellation.At {
		t.Errorf("cancelling again moved the cancellation: %v then %v", first.Invoice(t).Cancellation, again.Invoice(t).Cancellation)
	}
	for _, bad := range []string{`{}`, `{"reason":"  "}`, `{"reason":1}`} {
		if r := s.POST("/v1/invoices/INV-CANCEL/cancel", []byte(bad)); r.Status != http.StatusUnprocessableEntity {
			t.Errorf("cancel %s: HTTP %d, want 422", bad, r.Status)
		}
	}
	if r := s.POST("/v1/invoices/INV-NOPE/cancel", []byte(`{"reason":"x"}`)); r.Status != http.StatusNotFound {
		t.Errorf("cancel of an unknown invoice: HTTP %d", r.Status)
	}

	// The code was issued and DOKU cannot withdraw it: the customer pays.
	s.Pay(inv.Code(t), inv.Amount)
	got := s.GET("/v1/invoices/INV-CANCEL").Invoice(t)
	if got.Status != "paid" || !got.PaidAfterCancel || got.TotalPaid != inv.Amount || got.Cancellation == nil {
		t.Errorf("paid after cancel: %v", got)
	}
	items := s.Attention("state=open&invoice_number=INV-CANCEL")
	if len(items) != 1 || items[0].Reason != "paid_after_cancel" {
		t.Errorf("attention after a payment of a cancelled invoice: %v", items)
	}
	if r := s.POST("/v1/invoices/INV-CANCEL/cancel", []byte(`{"reason":"too late"}`)); r.Status != http.StatusConflict || r.Problem(t).Code != "not_cancellable" {
		t.Errorf("cancel of a paid invoice: HTTP %d %s", r.Status, r.Body)
	}
	want := map[string]int{"invoice.pending": 1, "invoice.cancelled": 1, "invoice.paid": 1, "attention.raised": 1}
	if got := eventCounts(s, "INV-CANCEL"); !maps.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}

	// While its code could still be paid, the reconciler keeps asking about a cancelled invoice.
	s.Create(apitest.NewInvoice("INV-CANCEL-2", "alfa"))
	s.POST("/v1/invoices/INV-CANCEL-2/cancel", []byte(`{"reason":"out of stock"}`))
	if n := s.Count(`SELECT count(*) FROM invoices WHERE invoice_number = 'INV-CANCEL-2' AND next_check_at IS NOT NULL`); n != 1 {
		t.Errorf("a cancelled invoice with a live code is off the reconciler's schedule")
	}
}

// The feed pages oldest first from a cursor, filters by type and invoice, and refuses what it does
// not know.
func TestEventFeed(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	for _, n := range []string{"INV-FEED-1", "INV-FEED-2", "INV-FEED-3"} {
		s.Create(apitest.NewInvoice(n, "alfa"))
	}
	// The whole feed shows an event once every older transaction in the cluster has ended: other tests
	// run beside this one, some holding a transaction open for seconds on purpose.
	var r apitest.Response
	var page apitest.EventPage
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		r = s.GET("/v1/events?limit=2")
		if page = r.EventPage(t); page.HasMore || time.Now().After(deadline) {
			break
		}
	}
	if r.Status != http.StatusOK || len(page.Items) != 2 || !page.HasMore || page.NextCursor == nil {
		t.Fatalf("first page: HTTP %d %s", r.Status, r.Body)
	}
	rest := s.GET("/v1/events?after=" + *page.NextCursor).EventPage(t)
	if len(rest.Items) != 1 || rest.HasMore || *rest.Items[0].InvoiceNumber != "INV-FEED-3" {
		t.Errorf("second page: %v", rest)
	}
	// Nothing new: the same cursor comes back, to poll with.
	empty := s.GET("/v1/events?after=" + *rest.NextCursor).EventPage(t)
	if len(empty.Items) != 0 || empty.NextCursor == nil || *empty.NextCursor != *rest.NextCursor {
		t.Errorf("an empty page must hand back its cursor: %v", empty)
	}
	if got := s.AllEvents("type=invoice.pending&invoice_number=INV-FEED-2"); len(got) != 1 {
		t.Errorf("filtered feed: %v", got)
	}
	one := s.GET("/v1/events/" + page.Items[0].ID)
	if one.Status != http.StatusOK || one.Published(t).ID != page.Items[0].ID {
		t.Errorf("GET one event: HTTP %d %s", one.Status, one.Body)
	}
	for _, path := range []string{"/v1/events?type=invoice.nope", "/v1/events?after=nope", "/v1/events?cursor=x", "/v1/events?limit=0"} {
		if r := s.GET(path); r.Status != http.StatusUnprocessableEntity {
			t.Errorf("%s: HTTP %d, want 422", path, r.Status)
		}
	}
	for _, path := range []string{"/v1/events/evt_00000000000000000000000000000000", "/v1/events/nope"} {
		if r := s.GET(path); r.Status != http.StatusNotFound {
			t.Errorf("%s: HTTP %d, want 404", path, r.Status)
		}
	}
	if r := s.Send(apitest.Request{Method: http.MethodGet, Path: "/v1/events", NoKey: true}); r.Status != http.StatusUnauthorized {
		t.Errorf("feed without a key: HTTP %d", r.Status)
	}
}

// A page never skips an event that commits after a later one is visible: the feed waits for every
// older transaction to end.
func TestEventFeedNeverSkipsALateCommit(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	s.Create(apitest.NewInvoice("INV-LATE-0", "alfa"))
	ctx := context.Background()
	// A transaction takes an event sequence number and stays open...
	tx, err := s.DB.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO events (id, type, invoice_number, data)
		VALUES ('evt_0000000000000000000000000000beef', 'attention.raised', '', '{"invoice": null}')`); err != nil {
		t.Fatal(err)
	}
	// ...while a later change commits.
	s.Create(apitest.NewInvoice("INV-LATE-1", "alfa"))
	// The feed shows INV-LATE-0's event (once other tests' older transactions end), never INV-LATE-1's.
	var page apitest.EventPage
	for deadline := time.Now().Add(30 * time.Second); page.NextCursor == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		page = s.GET("/v1/events").EventPage(t)
	}
	if page.NextCursor == nil {
		t.Fatal("the first event never appeared in the feed")
	}
	for i := 0; i < 20; i++ {
		for _, e := range s.GET("/v1/events").EventPage(t).Items {
			if e.InvoiceNumber != nil && *e.InvoiceNumber == "INV-LATE-1" {
				t.Fatalf("the feed showed an event past a transaction still open: a reader following its cursor would skip the open one")
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for deadline := time.Now().Add(30 * time.Second); len(ids) < 2 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		ids = nil
		for _, e := range s.GET("/v1/events?after=" + *page.NextCursor).EventPage(t).Items {
			ids = append(ids, e.ID)
		}
	}
	if !slices.Contains(ids, "evt_0000000000000000000000000000beef") || len(ids) != 2 {
		t.Errorf("after the commit the cursor continues with both events: %v", ids)
	}
}

func sqlExec(t *testing.T, s *apitest.Stack, sql string) {
	t.Helper()
	if _, err := s.DB.Pool.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
