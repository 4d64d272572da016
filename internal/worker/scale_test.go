package worker_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/merchant/o2o/internal/apitest"
)

// backlog writes n events with one delivery each to endpoint orders, in the given state, created
// createdAgo before now, as a long outage or a year of traffic leaves them.
func backlog(t *testing.T, s *apitest.Stack, n int, state, createdAt string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.DB.Pool.Exec(ctx, `
		INSERT INTO events (id, type, invoice_number, created_at, data)
		SELECT 'evt_' || lpad(to_hex(g), 32, '0'), 'invoice.paid', 'INV-BL-' || g, `+createdAt+`, '{"invoice": null}'
		FROM generate_series(1, $1) g`, n); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB.Pool.Exec(ctx, `
		INSERT INTO webhook_deliveries (event_seq, endpoint, invoice_number, state, attempts, next_attempt_at, created_at, finished_at)
		SELECT seq, 'orders', invoice_number, $1, 3, now(), created_at, CASE WHEN $1 = 'pending' THEN NULL ELSE created_at + interval '72 hours' END
		FROM events`, state); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB.Pool.Exec(ctx, `ANALYZE events; ANALYZE webhook_deliveries`); err != nil {
		t.Fatal(err)
	}
}

// An endpoint that was down for long has a large backlog. Enabling it touches the endpoint alone —
// it answered within the statement timeout's tenth here with 400,000 waiting, where it used to run out
// of it — and what waited keeps its whole retry period: a first failure after enabling is retried,
// not dead, although the deliveries are older than the retry period.
func TestEnablingIsConstantWhateverTheBacklog(t *testing.T) {
	t.Parallel()
	rc := apitest.NewReceiver(t)
	rc.Answer(func(*http.Request) int { return http.StatusInternalServerError })
	s := apitest.New(t, apitest.Options{Config: configs(apitest.Endpoint("orders", rc), fastDelivery(time.Second, 72*time.Hour))})
	backlog(t, s, 400_000, "pending", "now() - interval '100 hours'")
	sqlExec(t, s, `UPDATE webhook_endpoints SET disabled_at = now(), disabled_reason = 'answered 410 Gone' WHERE name = 'orders'`)

	var before int64
	if err := s.DB.Pool.QueryRow(context.Background(), `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := s.POST("/v1/webhook-endpoints/orders/enable", nil)
	took := time.Since(start)
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"state":"active"`) {
		t.Fatalf("enable: HTTP %d %s", r.Status, r.Body)
	}
	if list := s.GET("/v1/webhook-endpoints"); !strings.Contains(string(list.Body), `"pending":400000`) {
		t.Errorf("the listing does not show the backlog: %s", list.Body)
	}
	t.Logf("enabling an endpoint with 400000 deliveries waiting answered in %s", took)
	if n := s.Count(`SELECT count(*) FROM webhook_deliveries WHERE xmin::text::bigint >= $1`, before); n != 0 {
		t.Errorf("enabling rewrote %d deliveries; it must change the endpoint alone", n)
	}

	// The first attempts after enabling fail: each delivery, created 100 hours ago with a retry period
	// of 72, is retried rather than dead.
	if _, err := s.App.Deliverer.RunOnce(context.Background(), s.App.Deliverer.Endpoints[0]); err != nil {
		t.Fatal(err)
	}
	if n := s.Count(`SELECT count(*) FROM webhook_attempts`); n == 0 {
		t.Fatal("no attempt after enabling")
	}
	if n := s.Count(`SELECT count(*) FROM webhook_deliveries WHERE state = 'dead'`); n != 0 {
		t.Errorf("%d deliveries dead on their first failure after enabling: the time disabled counted against their retry period", n)
	}
}

// Dead deliveries are found without scanning the feed (?delivery_state=dead&endpoint=) and offered
// again in bulk, by endpoint and time range, 100,000 at a time.
func TestDeadDeliveriesAreListedAndRedeliveredInBulk(t *testing.T) {
	t.Parallel()
	rc := apitest.NewReceiver(t)
	s := apitest.New(t, apitest.Options{Config: configs(apitest.Endpoint("orders", rc), fastDelivery(time.Second, time.Hour))})
	// 100,000 dead deliveries of events from two days: 2026-02-01 and 2026-02-02.
	backlog(t, s, 100_000, "dead", "timestamptz '2026-02-01T00:00:00Z' + (g % 2) * interval '1 day'")

	start := time.Now()
	page := s.GET("/v1/events?delivery_state=dead&endpoint=orders&limit=100").EventPage(t)
	t.Logf("the first page of dead deliveries among 100000 took %s", time.Since(start))
	if len(page.Items) != 100 || !page.HasMore {
		t.Fatalf("dead deliveries: %d items, has_more %v", len(page.Items), page.HasMore)
	}
	for _, e := range page.Items {
		if len(e.Deliveries) != 1 || e.Deliveries[0].State != "dead" {
			t.Fatalf("an event listed as dead: %v", e)
		}
	}
	if more := s.GET("/v1/events?delivery_state=dead&endpoint=orders&limit=100&after=" + *page.NextCursor).EventPage(t); len(more.Items) != 100 ||
		more.Items[0].ID == page.Items[99].ID {
		t.Errorf("the second page: %d items", len(more.Items))
	}
	if none := s.GET("/v1/events?delivery_state=dead&endpoint=audit").EventPage(t); len(none.Items) != 0 {
		t.Errorf("dead deliveries of an endpoint that has none: %d", len(none.Items))
	}

	start = time.Now()
	r := s.POST("/v1/webhook-endpoints/orders/redeliver", []byte(`{"from":"2026-02-02T00:00:00Z","to":"2026-02-03T00:00:00Z"}`))
	t.Logf("redelivering 50000 of 100000 dead deliveries took %s", time.Since(start))
	if r.Status != http.StatusAccepted || !strings.Contains(string(r.Body), `"redelivered":50000`) {
		t.Fatalf("bulk redeliver of one day: HTTP %d %s", r.Status, r.Body)
	}
	if n := s.Count(`SELECT count(*) FROM webhook_deliveries WHERE state = 'pending' AND created_at > now() - interval '1 minute'`); n != 50000 {
		t.Errorf("%d deliveries pending again with a fresh retry period, want 50000", n)
	}
	r = s.POST("/v1/webhook-endpoints/orders/redeliver", nil)
	if r.Status != http.StatusAccepted || !strings.Contains(string(r.Body), `"redelivered":50000`) {
		t.Fatalf("bulk redeliver of the rest: HTTP %d %s", r.Status, r.Body)
	}
	if n := s.Count(`SELECT count(*) FROM webhook_deliveries WHERE state = 'dead'`); n != 0 {
		t.Errorf("%d still dead", n)
	}
	if r := s.POST("/v1/webhook-endpoints/nope/redeliver", nil); r.Status != http.StatusNotFound {
		t.Errorf("bulk redeliver to an unknown endpoint: HTTP %d", r.Status)
	}
}

func sqlExec(t *testing.T, s *apitest.Stack, sql string, args ...any) {
	t.Helper()
	if _, err := s.DB.Pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
