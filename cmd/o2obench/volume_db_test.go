package main

import (
	"context"
	"testing"
	"time"

	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/pgtest"
	"github.com/merchant/o2o/internal/postgres"
)

// TestYearLoadsIntoTheSchema loads a small year into a migrated database, in the bench's two steps:
// the copy's column lists match the schema (its CHECK constraints hold: COPY checks them), every
// reference holds (the load skips the foreign-key triggers), the indexes set aside are all back, and
// the service's store reads the rows as its own. A schema change that breaks the loader fails here, in
// make test, not in an hour-long bench.
func TestYearLoadsIntoTheSchema(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	st := &stack{dbURL: db.URL, pool: db.Pool}
	var indexes int
	countIndexes := func() int {
		var n int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	indexes = countIndexes()

	const n = 400
	xid, err := reserveYear(ctx, db.Pool, n)
	if err != nil {
		t.Fatal(err)
	}
	store := postgres.NewStore(db.Pool)
	if err := store.RegisterEndpoints(ctx, []invoice.Endpoint{{Name: loadedEndpoint, URL: loadedEndpointURL, Active: true}}); err != nil {
		t.Fatal(err)
	}
	y := newYearPlan(n, time.Now().Add(-time.Minute), "env_test", "http://127.0.0.1:9", benchClientID, benchSecret, 3, xid)
	first, err := loadYear(ctx, st, y, everyTenth, n/10)
	if err != nil {
		t.Fatal(err)
	}
	rest, err := loadYear(ctx, st, y, notTenth, n)
	if err != nil {
		t.Fatal(err)
	}
	if first.Invoices+rest.Invoices != n || rest.Rows["events"] == 0 || rest.Rows["webhook_deliveries"] == 0 {
		t.Fatalf("loaded %+v then %+v", first, rest)
	}
	if got := countIndexes(); got != indexes {
		t.Errorf("%d indexes after the load, %d before", got, indexes)
	}

	for what, sql := range map[string]string{
		"payment without invoice":      `SELECT count(*) FROM payments p WHERE NOT EXISTS (SELECT 1 FROM invoices i WHERE i.id = p.invoice_id)`,
		"log entry without invoice":    `SELECT count(*) FROM events e WHERE NOT EXISTS (SELECT 1 FROM invoices i WHERE i.id = e.invoice_id)`,
		"delivery without event":       `SELECT count(*) FROM webhook_deliveries d WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.seq = d.event_seq)`,
		"delivery of a history entry":  `SELECT count(*) FROM webhook_deliveries d JOIN events e ON e.seq = d.event_seq WHERE e.id IS NULL`,
		"attempt without delivery":     `SELECT count(*) FROM webhook_attempts a WHERE NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_seq = a.event_seq AND d.endpoint = a.endpoint)`,
		"attention without invoice":    `SELECT count(*) FROM attention_items a WHERE NOT EXISTS (SELECT 1 FROM invoices i WHERE i.id = a.invoice_id)`,
		"instructions without invoice": `SELECT count(*) FROM payment_instructions p WHERE NOT EXISTS (SELECT 1 FROM invoices i WHERE i.id = p.invoice_id)`,
		"notification without invoice": `SELECT count(*) FROM notifications n WHERE NOT EXISTS (SELECT 1 FROM invoices i WHERE i.invoice_number = n.invoice_number)`,
		"event after the rows' xids":   `SELECT count(*) FROM events WHERE xid >= pg_snapshot_xmin(pg_current_snapshot())`,
	} {
		var bad int
		if err := db.Pool.QueryRow(ctx, sql).Scan(&bad); err != nil || bad != 0 {
			t.Errorf("%s: %d (%v)", what, bad, err)
		}
	}

	// The rows the bench writes after the year sort after it.
	var next int64
	if err := db.Pool.QueryRow(ctx, `SELECT nextval(pg_get_serial_sequence('events', 'seq'))`).Scan(&next); err != nil || next <= n*strideEvents {
		t.Errorf("next event sequence number %d (%v): inside the year's", next, err)
	}

	// The service reads them as its own: an invoice with its payments, its history, the feed.
	var number string
	if err := db.Pool.QueryRow(ctx, `SELECT invoice_number FROM invoices WHERE status = 'paid' AND NOT reusable ORDER BY id LIMIT 1`).Scan(&number); err != nil {
		t.Fatal(err)
	}
	inv, err := store.Get(ctx, number)
	if err != nil || len(inv.Payments) != 1 || inv.DokuEnv != "env_test" {
		t.Fatalf("%s: %+v, %v", number, inv, err)
	}
	history, err := store.Events(ctx, number)
	if err != nil || len(history) < 4 || history[0].Kind != invoice.EventCreated {
		t.Fatalf("%s's history: %+v, %v", number, history, err)
	}
	evs, _, _, err := store.ListEvents(ctx, invoice.EventFilter{Limit: 50})
	if err != nil || len(evs) != 50 {
		t.Fatalf("the feed: %d events, %v", len(evs), err)
	}
}
