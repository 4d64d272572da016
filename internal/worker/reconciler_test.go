package worker_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/config"
	"github.com/merchant/o2o/internal/dokusim"
	"github.com/merchant/o2o/internal/invoice"
)

// createPending creates number on alfa (the tests' request, with change applied when not nil) and
// returns it as the service holds it.
func createPending(t *testing.T, s *apitest.Stack, number string, change func(*apitest.CreateBody)) *invoice.Invoice {
	t.Helper()
	req := apitest.NewInvoice(number, "alfa")
	if change != nil {
		change(&req)
	}
	if r := s.Create(req); r.Status != http.StatusCreated {
		t.Fatalf("create %s: HTTP %d %s", number, r.Status, r.Body)
	}
	return s.Get(number)
}

func mustGet(t *testing.T, s *apitest.Stack, number string) *invoice.Invoice {
	t.Helper()
	return s.Get(number)
}

func TestFirstCheckWaitsAMinute(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	createPending(t, s, "INV-EXP-1", expiresIn5)
	createPending(t, s, "INV-EXP-2", func(c *apitest.CreateBody) {
		expiresIn5(c)
		c.Channel, c.ReceiptFooter = "indomaret", ""
	})

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
	t.Parallel()
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
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	a := createPending(t, s, "INV-LATE-HOOK", expiresIn5)
	b := createPending(t, s, "INV-LATE-SYNC", expiresIn5)
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
	s.PayWith(a.PaymentCode, a.Amount, apitest.PayOptions{Late: true})
	resp := s.GET("/v1/invoices/INV-LATE-HOOK").Invoice(t)
	if resp.Status != "paid" || !resp.PaidAfterExpiry || len(resp.Payments) != 1 {
		t.Fatalf("late payment by webhook: %v", resp)
	}
	// … or found by a manual sync when its notification is lost.
	s.Sim.SetFaults(dokusim.Faults{DropNotifications: true})
	s.PayWith(b.PaymentCode, b.Amount, apitest.PayOptions{Late: true})
	sync := s.Sync("INV-LATE-SYNC")
	if body := sync.Invoice(t); sync.Status != 200 || body.Status != "paid" || !body.PaidAfterExpiry {
		t.Fatalf("late payment by sync: HTTP %d %v", sync.Status, body)
	}
}

// The webhook and the reconciler see the same payment at the same moment: one payment, every time.
func TestWebhookAndReconcilerRaceRecordOnce(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	s.Sim.SetFaults(dokusim.Faults{DropNotifications: true})
	const n = 15
	for i := 0; i < n; i++ {
		number := fmt.Sprintf("INV-RACE-%02d", i)
		inv := createPending(t, s, number, nil)
		paid := s.Pay(inv.PaymentCode, inv.Amount)
		body := apitest.NotificationBody(number, "alfa", inv.PaymentCode, inv.Amount, paid.TransactionID)

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
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	inv := createPending(t, s, "INV-REUSE", reusable)
	var trx []string
	for i := 0; i < 3; i++ {
		paid := s.Pay(inv.PaymentCode, inv.Amount)
		trx = append(trx, paid.TransactionID)
	}
	// Redeliveries of each notification and polling of the status add nothing.
	for i, id := range trx {
		body := apitest.NotificationBody("INV-REUSE", "alfa", inv.PaymentCode, inv.Amount, id)
		if r := s.Notify(body, fmt.Sprintf("again-%d", i), nil); r.Ack(t).Outcome != "duplicate" {
			t.Fatalf("redelivery of payment %d: %s", i, r.Body)
		}
	}
	s.MakeDue()
	if _, err := s.Reconciler().RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := s.GET("/v1/invoices/INV-REUSE").Invoice(t)
	if got.Status != "paid" || len(got.Payments) != 3 || got.TotalPaid != 3*150000 {
		t.Fatalf("reusable invoice: %v", got)
	}
	// A reusable code may still be paid until it expires, so it stays on the reconciler's schedule.
	if c := s.Count(`SELECT count(*) FROM invoices WHERE next_check_at IS NOT NULL`); c != 1 {
		t.Fatal("a reusable paid invoice left the reconciler's schedule before its expiry")
	}
}

// Two reconcilers (two replicas) over one database: one status call per invoice per round.
func TestTwoReconcilersNeverDoubleCall(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
	s := apitest.New(t, apitest.Options{Config: func(c *config.Config) { c.SyncMinInterval = time.Minute }})
	inv := createPending(t, s, "INV-SYNC", nil)
	s.Sim.SetFaults(dokusim.Faults{DropNotifications: true})
	s.Pay(inv.PaymentCode, inv.Amount)

	r := s.Sync("INV-SYNC")
	if body := r.Invoice(t); r.Status != 200 || body.Status != "paid" || len(body.Payments) == 0 || body.Payments[0].Source != "sync" {
		t.Fatalf("sync: HTTP %d %v", r.Status, body)
	}
	calls := s.Sim.StatusCalls()
	r = s.Sync("INV-SYNC")
	if r.Status != http.StatusTooManyRequests || r.Problem(t).Code != "rate_limited" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("second sync within the interval: HTTP %d %s", r.Status, r.Body)
	}
	if s.Sim.StatusCalls() != calls {
		t.Fatal("a rate-limited sync called DOKU")
	}
	if r := s.Sync("INV-NOPE"); r.Status != 404 {
		t.Fatalf("sync of an unknown invoice: %d", r.Status)
	}
	if r := s.Send(apitest.Request{Method: http.MethodPost, Path: "/v1/invoices/INV-SYNC/sync", NoKey: true}); r.Status != 401 {
		t.Fatalf("sync without a key: %d", r.Status)
	}

	// A sync of an invoice left creating by a DOKU fault finishes it.
	s.Sim.SetFaults(dokusim.Faults{FailNext: 1, FailStatus: 503})
	if r := s.Create(apitest.NewInvoice("INV-SYNC-2", "indomaret")); r.Status != 503 {
		t.Fatalf("setup: %d", r.Status)
	}
	r = s.Sync("INV-SYNC-2")
	if body := r.Invoice(t); r.Status != 200 || body.Status != "pending" || body.PaymentCode == nil || *body.PaymentCode != s.Sim.PaymentCode("INV-SYNC-2") {
		t.Fatalf("sync of a creating invoice: HTTP %d %v", r.Status, body)
	}
}

// The workers ride out a database outage: a round fails cleanly (nothing claimed, nothing lost) and
// the next round after the database is back does the work, in the same process.
func TestWorkersRecoverFromADatabaseOutage(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	inv := createPending(t, s, "INV-OUTAGE", nil)
	s.Sim.SetFaults(dokusim.Faults{DropNotifications: true})
	s.Pay(inv.PaymentCode, inv.Amount)
	s.MakeDue()

	restore := s.DB.Outage(t)
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
	restore()
	if n, err := s.Reconciler().RunOnce(context.Background()); err != nil || n != 1 {
		t.Fatalf("round after recovery: changed %d, err %v", n, err)
	}
	if got := mustGet(t, s, "INV-OUTAGE"); got.Status != invoice.StatusPaid {
		t.Fatalf("status %s after recovery", got.Status)
	}
}

// expiresIn5 asks for a code that expires in five minutes.
func expiresIn5(c *apitest.CreateBody) { c.ExpiresInMinutes = 5 }

// reusable asks for a code that can be paid more than once.
func reusable(c *apitest.CreateBody) { c.Reusable = true }

// setExpiry moves an invoice's expiry to now+d, as if time had passed.
func setExpiry(t *testing.T, s *apitest.Stack, number string, d time.Duration) {
	t.Helper()
	if _, err := s.DB.Pool.Exec(context.Background(), `UPDATE invoices SET expires_at = now() + $2 * interval '1 microsecond'
		WHERE invoice_number = $1`, number, d.Microseconds()); err != nil {
		t.Fatal(err)
	}
}
