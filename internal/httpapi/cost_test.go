package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/merchant/o2o/internal/apitest"
)

// statements records the text of every statement the service sends, batched ones included.
type statements struct {
	mu   sync.Mutex
	sent []string
}

func (r *statements) add(sql string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, strings.Join(strings.Fields(sql), " "))
}

func (r *statements) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.sent
	r.sent = nil
	return out
}

func (r *statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	r.add(d.SQL)
	return ctx
}
func (r *statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (r *statements) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (r *statements) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	r.add(d.SQL)
}
func (r *statements) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// A payment costs what it records and no more: DOKU's notification that pays an invoice is one
// transaction of two round trips — the invoice locked and read, then its payments and the inbox read
// under the lock; then the four rows written: the payment, the invoice, one event (invoice.paid,
// carrying the payment and the change's history) and the notification in the inbox — six statements
// besides BEGIN and COMMIT. Before the one log it was eleven statements and eight rows: two history
// rows and two events, each event with its own copy of the invoice.
func TestAPaymentWritesOneRowPerRecord(t *testing.T) {
	t.Parallel()
	rec := &statements{}
	s := apitest.New(t, apitest.Options{Tracer: rec})
	inv := s.Create(apitest.NewInvoice("INV-COST", "alfa")).Invoice(t)
	rec.take()

	body := apitest.NotificationBody("INV-COST", "alfa", inv.Code(t), inv.Amount, "TRX-COST")
	if r := s.Notify(body, "req-cost", nil); r.Status != http.StatusOK {
		t.Fatalf("notification: HTTP %d %s", r.Status, r.Body)
	}
	sent := rec.take()
	want := []string{"BEGIN", "SELECT i.id", "SELECT (SELECT coalesce((SELECT json_agg", "INSERT INTO payments",
		"UPDATE invoices", "WITH ev AS ( INSERT INTO events", "INSERT INTO notifications", "COMMIT"}
	if len(sent) != len(want) {
		t.Fatalf("a paying notification sent %d statements, want %d:\n%s", len(sent), len(want), strings.Join(sent, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(sent[i], w) {
			t.Errorf("statement %d is %.80q, want one that starts %q", i+1, sent[i], w)
		}
	}
	if !strings.HasSuffix(sent[1], "FOR UPDATE") {
		t.Errorf("the invoice is read without its row lock: %q", sent[1])
	}

	// The rows the transaction wrote are those whose xmin is its id: the paid event says which.
	var xid int64
	if err := s.DB.Pool.QueryRow(context.Background(),
		`SELECT xid::text::bigint % 4294967296 FROM events WHERE invoice_number = 'INV-COST' AND type = 'invoice.paid'`).Scan(&xid); err != nil {
		t.Fatal(err)
	}
	written := map[string]int{}
	for _, table := range []string{"invoices", "payments", "events", "notifications", "invoice_events", "attention_items",
		"webhook_deliveries", "stream_watches", "purge_marks"} {
		if n := s.Count(`SELECT count(*) FROM `+table+` WHERE xmin::text = $1::bigint::text`, xid); n > 0 {
			written[table] = n
		}
	}
	wantRows := map[string]int{"invoices": 1, "payments": 1, "events": 1, "notifications": 1}
	if len(written) != len(wantRows) {
		t.Errorf("the paying transaction wrote %v, want %v", written, wantRows)
	}
	for table, n := range wantRows {
		if written[table] != n {
			t.Errorf("the paying transaction wrote %d rows of %s, want %d (all: %v)", written[table], table, n, written)
		}
	}
}
