package main

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/merchant/o2o/internal/invoice"
)

// testYear is a year of n invoices ending at a fixed instant.
func testYear(n int) *yearPlan {
	end := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	return newYearPlan(n, end, "env_test", "http://127.0.0.1:9", benchClientID, benchSecret, 3, 1_000_003)
}

// column is the value of column name in row of table t.
func column(t *copyTable, row []any, name string) any {
	for i, c := range t.columns {
		if c == name {
			return row[i]
		}
	}
	panic("no column " + name + " in " + t.name)
}

func liveAll(t *testing.T, y *yearPlan, keep func(int) bool) *yearBatch {
	t.Helper()
	b := &yearBatch{}
	for g := 1; g <= y.n; g++ {
		if keep(g) {
			if err := y.live(g, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	return b
}

func TestYearHasRealisticProportions(t *testing.T) {
	const n = 4000 // enough for the shares below, and quick under the race detector
	y := testYear(n)
	b := liveAll(t, y, func(int) bool { return true })
	inv := b.rows[tInvoices.i]
	if len(inv) != n {
		t.Fatalf("%d invoice rows for %d invoices", len(inv), n)
	}
	status, reusable, open := map[string]int{}, 0, 0
	for _, row := range inv {
		status[column(tInvoices, row, "status").(string)]++
		if column(tInvoices, row, "reusable").(bool) {
			reusable++
		}
		next := column(tInvoices, row, "next_check_at")
		if next != nil {
			open++
			if !next.(time.Time).After(y.end.Add(checkShift)) {
				t.Errorf("an open invoice's next check %v falls due during the bench", next)
			}
		}
		if column(tInvoices, row, "doku_env") != "env_test" {
			t.Fatal("an invoice of another DOKU environment")
		}
	}
	share := func(k int) float64 { return float64(k) / n }
	within := func(what string, got, want, tol float64) {
		t.Helper()
		if math.Abs(got-want) > tol {
			t.Errorf("%s: %.3f, want %.3f ± %.3f", what, got, want, tol)
		}
	}
	within("paid", share(status["paid"]), 0.80, 0.02)
	within("expired", share(status["expired"]), 0.18, 0.02)
	within("reusable", share(reusable), shareReusable, 0.007)
	within("failed", share(status["failed"]), shareFailed, 0.003)
	if status["cancelled"] == 0 || status["pending"] == 0 {
		t.Errorf("no cancelled or no pending invoice: %v", status)
	}
	// Only the last days' invoices and the reusable codes' are still checked.
	if open == 0 || share(open) > 0.05 {
		t.Errorf("%d of %d invoices still on the check schedule", open, n)
	}
	perInvoice := func(tb *copyTable) float64 { return float64(len(b.rows[tb.i])) / n }
	public, history, items := 0, 0, 0
	for _, row := range b.rows[tEvents.i] {
		if column(tEvents, row, "id") != nil {
			public++
		}
		if h := column(tEvents, row, "history"); h != nil {
			history++
			var list []map[string]any
			if err := json.Unmarshal([]byte(h.(string)), &list); err != nil || len(list) == 0 {
				t.Fatalf("history %v: %v", h, err)
			}
			items += len(list)
		}
	}
	within("public events per invoice", share(public), 2.02, 0.2)
	within("notifications per invoice", perInvoice(tNotifications), 0.82, 0.05)
	if len(b.rows[tDeliveries.i]) != public {
		t.Error("every public event has one delivery to the merchant's endpoint, and no history entry has one")
	}
	if h := share(history); h < 6 || h > 20 {
		t.Errorf("%.1f log entries with history per invoice", h)
	}
	if it := float64(items) / float64(history); it < 1 || it > 3 {
		t.Errorf("%.1f history items per entry", it)
	}
	if a := perInvoice(tAttempts) / perInvoice(tDeliveries); a < 1 || a > 1.6 {
		t.Errorf("%.2f attempts per delivery", a)
	}
	if len(b.rows[tAttention.i]) == 0 || len(b.rows[tInstructions.i]) == 0 {
		t.Error("no attention items or no payment instructions")
	}
	states := map[string]int{}
	for _, row := range b.rows[tDeliveries.i] {
		states[column(tDeliveries, row, "state").(string)]++
	}
	if states["dead"] == 0 || states["pending"] != 0 {
		t.Errorf("deliveries by state: %v (the outage leaves dead ones; none is left pending)", states)
	}
}

func TestYearIdsFollowTimeAndStayInTheirStride(t *testing.T) {
	y := testYear(1500)
	b := liveAll(t, y, func(int) bool { return true })
	var lastSeq int64
	var lastXid uint64
	var lastCreated time.Time
	for _, row := range b.rows[tEvents.i] {
		seq, inv := column(tEvents, row, "seq").(int64), column(tEvents, row, "invoice_id").(int64)
		if seq <= (inv-1)*strideEvents || seq > inv*strideEvents {
			t.Fatalf("event %d of invoice %d outside its stride", seq, inv)
		}
		if seq <= lastSeq {
			t.Fatalf("event sequence numbers go back: %d after %d", seq, lastSeq)
		}
		lastSeq = seq
		switch xid := column(tEvents, row, "xid").(type) {
		case uint64:
			if xid < y.xidLo || xid >= y.xidHi {
				t.Fatalf("xid %d outside [%d, %d)", xid, y.xidLo, y.xidHi)
			}
		case nil:
			if column(tEvents, row, "type") != invoice.LogHistory || column(tEvents, row, "id") != nil || column(tEvents, row, "data") != nil {
				t.Fatalf("an entry without a feed position that is not a history entry: %v", row)
			}
		}
		if created := column(tEvents, row, "created_at").(time.Time); !created.Before(y.end) {
			t.Fatalf("an event at %v, after the year's end", created)
		}
	}
	// An invoice's events carry the xid of their moment: later invoices' first events, later xids.
	for _, row := range b.rows[tInvoices.i] {
		created := column(tInvoices, row, "created_at").(time.Time)
		if created.Before(lastCreated) {
			t.Fatal("invoices are not created in id order")
		}
		lastCreated = created
	}
	for _, row := range b.rows[tEvents.i] {
		if column(tEvents, row, "type") == "invoice.pending" {
			xid := column(tEvents, row, "xid").(uint64)
			if xid < lastXid {
				t.Fatal("the invoices' first events' xids go back in time")
			}
			lastXid = xid
		}
	}
	for _, tb := range []struct {
		t      *copyTable
		stride int64
	}{{tPayments, stridePayments}, {tAttention, strideAttention}} {
		for _, row := range b.rows[tb.t.i] {
			id, inv := row[0].(int64), column(tb.t, row, "invoice_id").(int64)
			if id <= (inv-1)*tb.stride || id > inv*tb.stride {
				t.Fatalf("%s id %d of invoice %d outside its stride", tb.t.name, id, inv)
			}
		}
	}
	// The inbox names its invoice by number only.
	for _, row := range b.rows[tNotifications.i] {
		id, number := row[0].(int64), column(tNotifications, row, "invoice_number").(string)
		if g := (id-1)/strideNotifications + 1; !strings.HasSuffix(number, fmt.Sprintf("-%07d", g)) {
			t.Fatalf("notification %d of invoice %s outside its stride", id, number)
		}
	}
}

func TestYearPayloadsAreTheServicesOwn(t *testing.T) {
	y := testYear(500)
	b := liveAll(t, y, func(int) bool { return true })
	for _, row := range b.rows[tEvents.i] {
		if column(tEvents, row, "id") == nil {
			continue // a history entry: no payload
		}
		var d struct {
			Invoice *struct {
				InvoiceNumber  string `json:"invoice_number"`
				Status         string `json:"status"`
				PaymentPageURL string `json:"payment_page_url"`
			} `json:"invoice"`
		}
		raw := column(tEvents, row, "data").(string)
		if err := json.Unmarshal([]byte(raw), &d); err != nil || d.Invoice == nil {
			t.Fatalf("event data %s: %v", raw, err)
		}
		if d.Invoice.InvoiceNumber != column(tEvents, row, "invoice_number") || d.Invoice.PaymentPageURL == "" {
			t.Fatalf("event data names another invoice or no page: %s", raw)
		}
		if _, ok := invoice.ParseChangeType(column(tEvents, row, "type").(string)); !ok {
			t.Fatalf("event type %v", column(tEvents, row, "type"))
		}
		if len(raw) < 600 {
			t.Fatalf("a %d-byte payload: the service's are about a kilobyte", len(raw))
		}
	}
	for _, row := range b.rows[tNotifications.i] {
		if body := column(tNotifications, row, "body").([]byte); len(body) < 400 {
			t.Fatalf("a %d-byte notification body", len(body))
		}
		if column(tNotifications, row, "outcome") == "" {
			t.Fatal("a notification without outcome")
		}
	}
}

func TestYearIsTheSameWhateverTheOrder(t *testing.T) {
	y := testYear(200)
	all := liveAll(t, y, func(int) bool { return true })
	split := liveAll(t, y, everyTenth)
	rest := liveAll(t, y, notTenth)
	for _, tb := range yearTables {
		if got, want := len(split.rows[tb.i])+len(rest.rows[tb.i]), len(all.rows[tb.i]); got != want {
			t.Errorf("%s: %d rows in two phases, %d in one", tb.name, got, want)
		}
	}
}

func BenchmarkYearLive(b *testing.B) {
	y := testYear(100000)
	batch := &yearBatch{}
	for i := 0; b.Loop(); i++ {
		if err := y.live(i%y.n+1, batch); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 0 {
			batch = &yearBatch{}
		}
	}
}
