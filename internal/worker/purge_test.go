package worker_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/service"
	"github.com/merchant/o2o/internal/worker"
)

// retention is the windows of the purge tests: delivered 7 days, dead 20, notification bodies 7.
func retention(batch int, lease time.Duration) func(*service.Config) {
	return func(c *service.Config) {
		c.Retention = invoice.RetentionPolicy{Delivered: 7 * 24 * time.Hour, Dead: 20 * 24 * time.Hour, NotificationBodies: 7 * 24 * time.Hour}
		c.PurgeBatch, c.PurgeLease = batch, lease
	}
}

// lifecycleRows writes one event for each case of the data lifecycle, named by what should happen
// to it, with its delivery and attempts, and notifications of both ages.
func lifecycleRows(t *testing.T, s *apitest.Stack) {
	t.Helper()
	sqlExec(t, s, `INSERT INTO webhook_endpoints (name, url, active, removed_at) VALUES ('gone', 'https://gone.example', false, now() - interval '1 day')
		ON CONFLICT (name) DO NOTHING`)
	// In the order they happened: events are numbered as they are written.
	for _, c := range []struct {
		name, created, state, finished, endpoint string
	}{
		{"purge-dead-old", "30 days", "dead", "25 days", "orders"},
		{"purge-delivered-old", "10 days", "delivered", "10 days", "orders"},
		{"keep-delivered-recently", "10 days", "delivered", "1 hour", "orders"},
		{"keep-dead-young", "10 days", "dead", "10 days", "orders"},
		{"keep-pending", "10 days", "pending", "", "orders"},
		{"purge-no-delivery-old", "10 days", "", "", ""},
		{"purge-removed-endpoint", "9 days", "pending", "", "gone"},
		{"keep-removed-endpoint-new", "1 hour", "pending", "", "gone"},
		{"keep-new", "1 hour", "delivered", "1 hour", "orders"},
		{"keep-no-delivery-new", "1 hour", "", "", ""},
	} {
		sqlExec(t, s, `INSERT INTO events (id, type, invoice_number, created_at, data)
			VALUES ('evt_' || md5($1), 'invoice.paid', $1, now() - $2::interval, '{"invoice": null}')`, c.name, c.created)
		if c.state == "" {
			continue
		}
		var finished any
		if c.finished != "" {
			finished = c.finished
		}
		sqlExec(t, s, `INSERT INTO webhook_deliveries (event_seq, endpoint, invoice_number, state, created_at, finished_at)
			SELECT seq, $2, invoice_number, $3, created_at, now() - $4::interval FROM events WHERE invoice_number = $1`,
			c.name, c.endpoint, c.state, finished)
		sqlExec(t, s, `INSERT INTO webhook_attempts (event_seq, endpoint, at, status, latency_ms)
			SELECT d.event_seq, d.endpoint, d.created_at, 500, 10 FROM webhook_deliveries d JOIN events e ON e.seq = d.event_seq
			WHERE e.invoice_number = $1`, c.name)
	}
	for _, n := range []struct{ id, age string }{{"n-old-1", "10 days"}, {"n-old-2", "9 days"}, {"n-new", "1 hour"}} {
		sqlExec(t, s, `INSERT INTO notifications (doku_request_id, headers, body, body_sha256, outcome, received_at)
			VALUES ($1::text, '{}', '{"raw":"body"}', sha256(convert_to($1::text, 'UTF8')), 'unknown_invoice', now() - $2::interval)`, n.id, n.age)
	}
}

// assertLifecycle checks that exactly what was past its window is gone.
func assertLifecycle(t *testing.T, s *apitest.Stack) {
	t.Helper()
	rows, err := s.DB.Pool.Query(context.Background(), `SELECT invoice_number FROM events
		WHERE invoice_number NOT LIKE 'INV-%' AND data IS NOT NULL ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"keep-dead-young", "keep-delivered-recently", "keep-new", "keep-no-delivery-new", "keep-pending", "keep-removed-endpoint-new"}
	sort.Strings(want)
	if strings.Join(left, ",") != strings.Join(want, ",") {
		t.Errorf("events left: %v, want %v", left, want)
	}
	if n := s.Count(`SELECT count(*) FROM webhook_deliveries d JOIN events e ON e.seq = d.event_seq WHERE e.invoice_number LIKE 'purge-%'`); n != 0 {
		t.Errorf("%d deliveries past their window left", n)
	}
	if n := s.Count(`SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries d USING (event_seq, endpoint)`); n != 5 {
		t.Errorf("%d attempts left, want those of the 5 deliveries kept", n)
	}
	if n := s.Count(`SELECT count(*) FROM webhook_attempts`); n != 5 {
		t.Errorf("%d attempts in all, want 5 (none left without its delivery)", n)
	}
	if n := s.Count(`SELECT count(*) FROM notifications WHERE body = ''::bytea AND body_thinned_at IS NOT NULL AND body_sha256 IS NOT NULL`); n != 2 {
		t.Errorf("%d notification bodies thinned, want the 2 older than 7 days", n)
	}
	if n := s.Count(`SELECT count(*) FROM notifications WHERE doku_request_id = 'n-new' AND body <> ''::bytea`); n != 1 {
		t.Error("a recent notification's body was thinned")
	}
}

// historyRows adds to the log, for invoice number, an old event that carries its change's history
// (thinned by the purge: the history stays with the invoice, the copy of the invoice goes) and an old
// history entry (never purged).
func historyRows(t *testing.T, s *apitest.Stack, number string) {
	t.Helper()
	sqlExec(t, s, `INSERT INTO events (id, type, invoice_id, invoice_number, created_at, data, history)
		SELECT 'evt_' || md5('thin-history-old'), 'invoice.expired', id, 'thin-history-old', now() - interval '10 days',
			'{"invoice": null}', '[{"at": "2026-01-01T00:00:00Z", "source": "reconciler", "kind": "doku_check", "from": null, "to": null, "detail": {"note": "thinned, kept"}}]'
		FROM invoices WHERE invoice_number = $1`, number)
	sqlExec(t, s, `INSERT INTO events (type, invoice_id, invoice_number, xid, created_at, history)
		SELECT 'history', id, NULL, NULL, now() - interval '30 days',
			'[{"at": "2026-01-01T00:00:01Z", "source": "reconciler", "kind": "doku_check", "from": null, "to": null, "detail": {"note": "history entry, kept"}}]'
		FROM invoices WHERE invoice_number = $1`, number)
}

// The purge removes exactly what is past its window — delivered webhooks and their attempts after
// EVENTS_RETENTION, dead ones after EVENTS_DEAD_RETENTION, every delivery to a removed endpoint, events
// nothing keeps — thins old notification bodies to their digest, thins old events that carry history
// to that history, and touches nothing else; a feed cursor from before what it removed expires (410)
// instead of skipping it.
func TestPurgeRemovesExactlyWhatIsPastItsWindow(t *testing.T) {
	t.Parallel()
	rc := apitest.NewReceiver(t)
	s := apitest.New(t, apitest.Options{Config: apitest.Endpoint("orders", rc), Adjust: retention(2, time.Minute)})
	// An invoice whose log holds an old event with history, and an old history entry. (Written first:
	// the purge walks the feed's order, which is also, give or take a transaction, the order of time.)
	s.Create(apitest.NewInvoice("INV-PURGE-HISTORY", "alfa"))
	historyRows(t, s, "INV-PURGE-HISTORY")
	history := s.Send(apitest.Request{Method: http.MethodGet, Path: "/v1/invoices/INV-PURGE-HISTORY/events"})
	lifecycleRows(t, s)
	payInvoices(t, s, "INV-PURGE-LIVE", 2) // today's money and events: untouched
	first := s.GET("/v1/events?limit=1").EventPage(t)
	if first.NextCursor == nil {
		t.Fatal("no event in the feed")
	}
	before := s.Count(`SELECT count(*) FROM events WHERE invoice_number LIKE 'INV-%'`)

	p := purger(s, "replica-a")
	n, ran, err := p.RunOnce(context.Background())
	if err != nil || !ran {
		t.Fatalf("purge: ran %v, %v", ran, err)
	}
	t.Logf("purged or thinned %d rows in batches of 2", n)
	assertLifecycle(t, s)
	if after := s.Count(`SELECT count(*) FROM events WHERE invoice_number LIKE 'INV-%'`); after != before {
		t.Errorf("today's events: %d before, %d after", before, after)
	}
	// The old event with history is thinned, not deleted: its history is the invoice's, kept for good;
	// its copy of the invoice and its place in the feed are gone. The history entry is untouched.
	if n := s.Count(`SELECT count(*) FROM events WHERE invoice_number = 'thin-history-old' AND data IS NULL AND xid IS NULL
		AND history::text LIKE '%thinned, kept%'`); n != 1 {
		t.Errorf("the old event with history: %d thinned rows, want 1", n)
	}
	if n := s.Count(`SELECT count(*) FROM events WHERE type = 'history' AND history::text LIKE '%history entry, kept%'`); n != 1 {
		t.Errorf("the old history entry: %d rows, want 1 (a history entry is never purged)", n)
	}
	if again := s.Send(apitest.Request{Method: http.MethodGet, Path: "/v1/invoices/INV-PURGE-HISTORY/events"}); again.Status != http.StatusOK ||
		string(again.Body) != string(history.Body) || !strings.Contains(string(again.Body), "thinned, kept") {
		t.Errorf("the invoice's history changed with the purge:\nbefore %s\nafter  %s", history.Body, again.Body)
	}
	if r := s.GET("/v1/events/evt_" + md5hex("thin-history-old")); r.Status != http.StatusNotFound {
		t.Errorf("a thinned event is still served: HTTP %d", r.Status)
	}
	if n := s.Count(`SELECT count(*) FROM invoices`); n != 3 {
		t.Errorf("%d invoices left, want all 3 (money records are kept)", n)
	}
	m := string(s.Send(apitest.Request{Method: http.MethodGet, Path: "/metrics"}).Body)
	for _, line := range []string{`o2o_purged_rows_total{table="events"} 5`, `o2o_purged_rows_total{table="webhook_deliveries"} 3`,
		`o2o_purged_rows_total{table="webhook_attempts"} 3`, `o2o_purged_rows_total{table="notifications"} 2`, `o2o_table_size_bytes{table="events"}`} {
		if !strings.Contains(m, line) {
			t.Errorf("metrics lack %s:\n%s", line, grepLines(m, "purged"))
		}
	}
	// A follower whose cursor is from before what was purged is told so.
	if r := s.GET("/v1/events?after=" + *first.NextCursor); r.Status != http.StatusGone || r.Problem(t).Code != "cursor_expired" {
		t.Errorf("a cursor from before the purge: HTTP %d %s", r.Status, r.Body)
	}
	// Again: nothing more to do.
	if n, _, err := p.RunOnce(context.Background()); n != 0 || err != nil {
		t.Errorf("a second purge removed %d rows (%v)", n, err)
	}
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func purger(s *apitest.Stack, holder string) *worker.Purger {
	return &worker.Purger{Service: s.Service, Log: zerolog.New(s.Logs), Metrics: s.Metrics, Interval: time.Hour, Holder: holder}
}

// Two replicas purge at the same moment: one holds the lease and does the work once, the other does
// nothing; a replica that dies holding the lease blocks the purge only until its lease runs out; a
// purge stopped half way (shutdown, crash) is finished by the next.
func TestPurgeRunsOnOneReplicaAndResumes(t *testing.T) {
	t.Parallel()
	rc := apitest.NewReceiver(t)
	s := apitest.New(t, apitest.Options{Config: apitest.Endpoint("orders", rc), Adjust: retention(1, 500*time.Millisecond)})
	lifecycleRows(t, s)

	// A replica took the lease and died.
	if ok, err := s.App.Store.TakeLease(context.Background(), "purge", "dead-replica", 500*time.Millisecond); !ok || err != nil {
		t.Fatalf("lease: %v %v", ok, err)
	}
	if _, ran, _ := purger(s, "replica-a").RunOnce(context.Background()); ran {
		t.Fatal("a replica purged while another's lease was running")
	}
	time.Sleep(600 * time.Millisecond)

	// Replica A starts and is stopped after its first batch.
	ctx, stop := context.WithCancel(context.Background())
	a := purger(s, "replica-a")
	var batches int
	ran, err := a.Service.Purge(ctx, "replica-a", func(string, invoice.PurgeStep) {
		if batches++; batches == 1 {
			stop()
		}
	})
	if !ran || err == nil {
		t.Fatalf("the interrupted purge: ran %v, err %v", ran, err)
	}
	if n := s.Count(`SELECT count(*) FROM events`); n == 6 {
		t.Fatal("the interrupted purge removed everything: batches of 1 should leave work for the next run")
	}

	// Two replicas at once finish it: exactly one of them runs.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ranBy []string
	total := 0
	for _, holder := range []string{"replica-a", "replica-b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, ran, err := purger(s, holder).RunOnce(context.Background())
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if ran {
				ranBy = append(ranBy, holder)
			}
			total += n
		}()
	}
	wg.Wait()
	// The one that lost may still run after the winner released the lease: then it finds nothing.
	if len(ranBy) == 0 {
		t.Fatal("neither replica purged")
	}
	assertLifecycle(t, s)
}
