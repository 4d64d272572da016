package worker_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/config"
	"github.com/merchant/o2o/internal/dokusim"
	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/pgtest"
)

func createPending(t *testing.T, s *apitest.Stack, number string, changes map[string]any) *invoice.Invoice {
	t.Helper()
	req := apitest.Invoice(number, "alfa")
	for k, v := range changes {
		req[k] = v
	}
	if r := s.Do(http.MethodPost, "/v1/invoices", req, nil); r.Status != http.StatusCreated {
		t.Fatalf("create %s: HTTP %d %s", number, r.Status, r.Body)
	}
	return s.Get(number)
}

func mustGet(t *testing.T, s *apitest.Stack, number string) *invoice.Invoice {
	t.Helper()
	return s.Get(number)
}

func TestFirstCheckWaitsAMinute(t *testing.T) {
	s := apitest.New(t, apitest.Options{})
	createPending(t, s, "INV-SCHED", nil)
	var wait float64
	if err := s.DB.Pool.QueryRow(context.Background(),
		`SELECT extract(epoch FROM next_check_at - now()) FROM invoices WHERE invoice_number = 'INV-SCHED'`).Scan(&wait); err != nil {
		t.Fatal(err)
	}
	if wait < 55 || wait > 61 {
		t.Fatalf("first check in %.0f s, want about 60 s after issue", wait)
	}
	if n, _ := s.Reconciler().RunOnce(context.Background()); n != 0 || s.Sim.StatusCalls() != 0 {
		t.Fatal("the reconciler checked an invoice before its first check was due")
	}

	// Each check schedules the next one further out (1m is the first wait; then 2m, 5m, …).
	s.MakeDue()
	for i, want := range []float64{120, 300, 900} {
		if _, err := s.Reconciler().RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		_ = s.DB.Pool.QueryRow(context.Background(),
			`SELECT extract(epoch FROM next_check_at - now()) FROM invoices WHERE invoice_number = 'INV-SCHED'`).Scan(&wait)
		if wait < want-5 || wait > want+1 {
			t.Fatalf("after check %d the next is in %.0f s, want about %.0f s", i+1, wait, want)
		}
		s.MakeDue()
	}
}

func TestDroppedNotificationIsFoundByTheReconciler(t *testing.T) {
	s := apitest.New(t, apitest.Options{})
	inv := createPending(t, s, "INV-DROP", nil)
	s.Sim.SetFaults(dokusim.Faults{DropNotifications: true})
	s.Pay(inv.PaymentCode, inv.Amount)
	if got := mustGet(t, s, "INV-DROP"); got.Status != invoice.StatusPending {
		t.Fatalf("status %s before reconciling; the notification was supposed to be lost", got.Status)
	}

	s.MakeDue()
	if n, err := s.Reconciler().RunOnce(context.Background()); err != nil || n != 1 {
		t.Fatalf("reconciler changed %d, err %v", n, err)
	}
	got := mustGet(t, s, "INV-DROP")
	if got.Status != invoice.StatusPaid || len(got.Payments) != 1 || got.Payments[0].Source != invoice.SourceReconciler {
		t.Fatalf("after reconciling: %s with %+v", got.Status, got.Payments)
	}
	// Paid is final for a single-use code: no more checks.
	s.MakeDue()
	calls := s.Sim.StatusCalls()
	if _, err := s.Reconciler().RunOnce(context.Background()); err != nil || s.Sim.StatusCalls() != calls {
		t.Fatalf("a paid invoice was checked again (%d -> %d calls)", calls, s.Sim.StatusCalls())
	}
}

func TestUnpaidInvoicesExpire(t *testing.T) {
	s := apitest.New(t, apitest.Options{})
	createPending(t, s, "INV-EXP-1", map[string]any{"expires_in_minutes": 5})
	createPending(t, s, "INV-EXP-2", map[string]any{"expires_in_minutes": 5, "channel": "indomaret", "receipt_footer": nil})

	// DOKU's clock passes the codes' expiry: DOKU says EXPIRED.
	s.Sim.Advance(6 * time.Minute)
	s.MakeDue()
	if n, err := s.Reconciler().RunOnce(context.Background()); err != nil || n != 2 {
		t.Fatalf("reconciler changed %d, err %v", n, err)
	}
	for _, n := range []string{"INV-EXP-1", "INV-EXP-2"} {
		if got := mustGet(t, s, n); got.Status != invoice.StatusExpired || got.ExpiredByGrace || len(got.Payments) != 0 {
			t.Fatalf("%s: %s (by grace %v), want expired by DOKU", n, got.Status, got.ExpiredByGrace)
		}
	}
	if c := s.Count(`SELECT count(*) FROM invoices WHERE next_check_at IS NOT NULL`); c != 0 {
		t.Fatalf("%d expired invoices are still scheduled for checks", c)
	}
}

func TestGraceExpiryWhenDokuStaysPending(t *testing.T) {
	s := apitest.New(t, apitest.Options{Config: func(c *config.Config) { c.ExpiryGrace = 30 * time.Minute }})
	createPending(t, s, "INV-GRACE", nil) // DOKU: 60 minutes, still PENDING on its clock
	if _, err := s.DB.Pool.Exec(context.Background(),
		`UPDATE invoices SET expires_at = now() - interval '10 minutes' WHERE invoice_number = 'INV-GRACE'`); err != nil {
		t.Fatal(err)
	}
	s.MakeDue()
	_, _ = s.Reconciler().RunOnce(context.Background())
	if got := mustGet(t, s, "INV-GRACE"); got.Status != invoice.StatusPending {
		t.Fatalf("expired within the grace period while DOKU says PENDING: %s", got.Status)
	}
	if _, err := s.DB.Pool.Exec(context.Background(),
		`UPDATE invoices SET expires_at = now() - interval '31 minutes' WHERE invoice_number = 'INV-GRACE'`); err != nil {
		t.Fatal(err)
	}
	s.MakeDue()
	_, _ = s.Reconciler().RunOnce(context.Background())
	got := mustGet(t, s, "INV-GRACE")
	if got.Status != invoice.StatusExpired || !got.ExpiredByGrace {
		t.Fatalf("past the grace period: %s (by grace %v)", got.Status, got.ExpiredByGrace)
	}
	// DOKU never said EXPIRED, so the invoice stays on the (slow) schedule: money that still arrives
	// and whose notification is lost is found by polling alone.
	if c := s.Count(`SELECT count(*) FROM invoices WHERE invoice_number = 'INV-GRACE' AND next_check_at IS NOT NULL`); c != 1 {
		t.Fatal("an invoice expired by our grace period left the reconciler's schedule")
	}
	s.Sim.SetFaults(dokusim.Faults{DropNotifications: true})
	s.Pay(got.PaymentCode, got.Amount)
	s.MakeDue()
	_, _ = s.Reconciler().RunOnce(context.Background())
	if got := mustGet(t, s, "INV-GRACE"); got.Status != invoice.StatusPaid || !got.PaidAfterExpiry || len(got.Payments) != 1 {
		t.Fatalf("late payment after a grace expiry: %s, paid after expiry %v, %d payments", got.Status, got.PaidAfterExpiry, len(got.Payments))
	}
}

func TestPaymentAfterExpiryIsKeptAndFlagged(t *testing.T) {
	s := apitest.New(t, apitest.Options{})
	a := createPending(t, s, "INV-LATE-HOOK", map[string]any{"expires_in_minutes": 5})
	b := createPending(t, s, "INV-LATE-SYNC", map[string]any{"expires_in_minutes": 5})
	s.Sim.Advance(6 * time.Minute)
	s.MakeDue()
	if _, err := s.Reconciler().RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"INV-LATE-HOOK", "INV-LATE-SYNC"} {
		if got := mustGet(t, s, n); got.Status != invoice.StatusExpired {
			t.Fatalf("%s: %s, want expired", n, got.Status)
		}
	}

	// Money arrives after expiry, reported by the webhook …
	s.PayWith(a.PaymentCode, a.Amount, map[string]any{"late": true})
	resp := s.Do("GET", "/v1/invoices/INV-LATE-HOOK", nil, nil).JSON(t)
	if resp["status"] != "paid" || resp["paid_after_expiry"] != true || len(resp["payments"].([]any)) != 1 {
		t.Fatalf("late payment by webhook: %v", resp)
	}
	// … or found by a manual sync when its notification is lost.
	s.Sim.SetFaults(dokusim.Faults{DropNotifications: true})
	s.PayWith(b.PaymentCode, b.Amount, map[string]any{"late": true})
	sync := s.Do("POST", "/v1/invoices/INV-LATE-SYNC/sync", nil, nil)
	if body := sync.JSON(t); sync.Status != 200 || body["status"] != "paid" || body["paid_after_expiry"] != true {
		t.Fatalf("late payment by sync: HTTP %d %v", sync.Status, body)
	}
}

// The webhook and the reconciler see the same payment at the same moment: one payment, every time.
func TestWebhookAndReconcilerRaceRecordOnce(t *testing.T) {
	s := apitest.New(t, apitest.Options{})
	s.Sim.SetFaults(dokusim.Faults{DropNotifications: true})
	const n = 15
	for i := 0; i < n; i++ {
		number := fmt.Sprintf("INV-RACE-%02d", i)
		inv := createPending(t, s, number, nil)
		paid := s.Pay(inv.PaymentCode, inv.Amount)
		body := apitest.NotificationBody(number, "alfa", inv.PaymentCode, inv.Amount, paid["transaction_id"].(string))

		s.MakeDue()
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			if r := s.Notify(body, "race-"+number, nil); r.Status != 200 {
				t.Errorf("webhook: %d %s", r.Status, r.Body)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := s.Reconciler().RunOnce(context.Background()); err != nil {
				t.Error(err)
			}
		}()
		wg.Wait()
		if got := mustGet(t, s, number); got.Status != invoice.StatusPaid || len(got.Payments) != 1 {
			t.Fatalf("%s: %s with %d payments", number, got.Status, len(got.Payments))
		}
	}
	if c := s.Count(`SELECT count(*) FROM payments`); c != n {
		t.Fatalf("%d payments for %d invoices", c, n)
	}
}

func TestReusableCodePaidThreeTimes(t *testing.T) {
	s := apitest.New(t, apitest.Options{})
	inv := createPending(t, s, "INV-REUSE", map[string]any{"reusable": true})
	var trx []string
	for i := 0; i < 3; i++ {
		paid := s.Pay(inv.PaymentCode, inv.Amount)
		trx = append(trx, paid["transaction_id"].(string))
	}
	// Redeliveries of each notification and polling of the status add nothing.
	for i, id := range trx {
		body := apitest.NotificationBody("INV-REUSE", "alfa", inv.PaymentCode, inv.Amount, id)
		if r := s.Notify(body, fmt.Sprintf("again-%d", i), nil); r.JSON(t)["outcome"] != "duplicate" {
			t.Fatalf("redelivery of payment %d: %s", i, r.Body)
		}
	}
	s.MakeDue()
	if _, err := s.Reconciler().RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := s.Do("GET", "/v1/invoices/INV-REUSE", nil, nil).JSON(t)
	if got["status"] != "paid" || len(got["payments"].([]any)) != 3 || got["total_paid"] != float64(3*150000) {
		t.Fatalf("reusable invoice: %v", got)
	}
	// A reusable code may still be paid until it expires, so it stays on the reconciler's schedule.
	if c := s.Count(`SELECT count(*) FROM invoices WHERE next_check_at IS NOT NULL`); c != 1 {
		t.Fatal("a reusable paid invoice left the reconciler's schedule before its expiry")
	}
}

// Two reconcilers (two replicas) over one database: one status call per invoice per round.
func TestTwoReconcilersNeverDoubleCall(t *testing.T) {
	s := apitest.New(t, apitest.Options{})
	const n = 30
	for i := 0; i < n; i++ {
		createPending(t, s, fmt.Sprintf("INV-TWO-%02d", i), nil)
	}
	s.Sim.SetFaults(dokusim.Faults{LatencyMS: 10})
	s.MakeDue()
	a, b := *s.Reconciler(), *s.Reconciler() // two replicas' reconcilers over one database
	a.Batch, b.Batch = 4, 4
	replicas(t, 12, &a, &b)
	if calls := s.Sim.StatusCalls(); calls != n {
		t.Fatalf("two reconcilers made %d status calls for %d due invoices", calls, n)
	}
}

func TestManualSync(t *testing.T) {
	s := apitest.New(t, apitest.Options{Config: func(c *config.Config) { c.SyncMinInterval = time.Minute }})
	inv := createPending(t, s, "INV-SYNC", nil)
	s.Sim.SetFaults(dokusim.Faults{DropNotifications: true})
	s.Pay(inv.PaymentCode, inv.Amount)

	r := s.Do("POST", "/v1/invoices/INV-SYNC/sync", nil, nil)
	if body := r.JSON(t); r.Status != 200 || body["status"] != "paid" || body["payments"].([]any)[0].(map[string]any)["source"] != "sync" {
		t.Fatalf("sync: HTTP %d %v", r.Status, body)
	}
	calls := s.Sim.StatusCalls()
	r = s.Do("POST", "/v1/invoices/INV-SYNC/sync", nil, nil)
	if r.Status != http.StatusTooManyRequests || r.JSON(t)["code"] != "rate_limited" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("second sync within the interval: HTTP %d %s", r.Status, r.Body)
	}
	if s.Sim.StatusCalls() != calls {
		t.Fatal("a rate-limited sync called DOKU")
	}
	if r := s.Do("POST", "/v1/invoices/INV-NOPE/sync", nil, nil); r.Status != 404 {
		t.Fatalf("sync of an unknown invoice: %d", r.Status)
	}
	if r := s.Do("POST", "/v1/invoices/INV-SYNC/sync", nil, map[string]string{"Authorization": ""}); r.Status != 401 {
		t.Fatalf("sync without a key: %d", r.Status)
	}

	// A sync of an invoice left creating by a DOKU fault finishes it.
	s.Sim.SetFaults(dokusim.Faults{FailNext: 1, FailStatus: 503})
	if r := s.Do("POST", "/v1/invoices", apitest.Invoice("INV-SYNC-2", "indomaret"), nil); r.Status != 503 {
		t.Fatalf("setup: %d", r.Status)
	}
	r = s.Do("POST", "/v1/invoices/INV-SYNC-2/sync", nil, nil)
	if body := r.JSON(t); r.Status != 200 || body["status"] != "pending" || body["payment_code"] != s.Sim.PaymentCode("INV-SYNC-2") {
		t.Fatalf("sync of a creating invoice: HTTP %d %v", r.Status, body)
	}
}

// The workers ride out a database outage: a round fails cleanly (nothing claimed, nothing lost) and
// the next round after the database is back does the work, in the same process.
func TestWorkersRecoverFromADatabaseOutage(t *testing.T) {
	s := apitest.New(t, apitest.Options{})
	inv := createPending(t, s, "INV-OUTAGE", nil)
	s.Sim.SetFaults(dokusim.Faults{DropNotifications: true})
	s.Pay(inv.PaymentCode, inv.Amount)
	s.MakeDue()

	admin := func(sql string) {
		t.Helper()
		conn, err := pgx.Connect(context.Background(), pgtest.AdminURL())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), sql); err != nil {
			t.Fatal(err)
		}
	}
	admin("ALTER DATABASE " + s.DB.Name + " ALLOW_CONNECTIONS false")
	admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + s.DB.Name + "'")
	for _, w := range []interface {
		RunOnce(context.Context) (int, error)
	}{s.Reconciler(), s.Resumer()} {
		if _, err := w.RunOnce(context.Background()); !errors.Is(err, invoice.ErrUnavailable) {
			t.Fatalf("round with the database down: %v, want unavailable", err)
		}
	}
	if s.Sim.StatusCalls() != 0 {
		t.Fatal("DOKU was called although nothing could be claimed")
	}
	admin("ALTER DATABASE " + s.DB.Name + " ALLOW_CONNECTIONS true")
	if n, err := s.Reconciler().RunOnce(context.Background()); err != nil || n != 1 {
		t.Fatalf("round after recovery: changed %d, err %v", n, err)
	}
	if got := mustGet(t, s, "INV-OUTAGE"); got.Status != invoice.StatusPaid {
		t.Fatalf("status %s after recovery", got.Status)
	}
}

// setExpiry moves an invoice's expiry to now+d, as if time had passed.
func setExpiry(t *testing.T, s *apitest.Stack, number string, d time.Duration) {
	t.Helper()
	if _, err := s.DB.Pool.Exec(context.Background(), `UPDATE invoices SET expires_at = now() + $2 * interval '1 microsecond'
		WHERE invoice_number = $1`, number, d.Microseconds()); err != nil {
		t.Fatal(err)
	}
}
