package worker_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/config"
	"github.com/merchant/o2o/internal/doku"
	"github.com/merchant/o2o/internal/dokusim"
	"github.com/merchant/o2o/internal/invoice"
	"github.com/merchant/o2o/internal/service"
)

func status(t *testing.T, s *apitest.Stack, number string) (invoice.Status, string) {
	t.Helper()
	inv := s.Get(number)
	return inv.Status, inv.PaymentCode
}

// DOKU issued the code but its answer was lost to a timeout: the client is told to retry, and the
// retry — same Request-Id, same bytes — gets DOKU's replay of the same code.
//
// Not parallel: the retry must get DOKU's answer within the 300 ms DOKU timeout.
func TestTimeoutThenRetryGivesOneCode(t *testing.T) {
	s := apitest.New(t, apitest.Options{DokuTimeout: 300 * time.Millisecond})
	s.Sim.SetFaults(dokusim.Faults{LoseResponseNext: 1})
	req := apitest.NewInvoice("INV-TIMEOUT", "alfa")

	resp := s.Create(req)
	if resp.Status != http.StatusServiceUnavailable || resp.Problem(t).Code != "doku_unavailable" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("lost DOKU answer: HTTP %d %s", resp.Status, resp.Body)
	}
	if st, _ := status(t, s, "INV-TIMEOUT"); st != invoice.StatusCreating {
		t.Fatalf("status after timeout = %s, want creating", st)
	}

	resp = s.Create(req)
	if resp.Status != http.StatusOK {
		t.Fatalf("retry: HTTP %d %s", resp.Status, resp.Body)
	}
	if got, want := resp.Invoice(t).PaymentCode, s.Sim.PaymentCode("INV-TIMEOUT"); got == nil || *got != want || want == "" {
		t.Fatalf("retry got code %v, DOKU issued %q", got, want)
	}
	if s.Sim.Issued() != 1 || s.Sim.GenerateCalls() != 2 {
		t.Fatalf("DOKU issued %d codes in %d calls, want 1 code in 2 calls", s.Sim.Issued(), s.Sim.GenerateCalls())
	}
}

// The process died after DOKU answered 200 and before the code was stored. Its lease runs out; the
// resumer (or a client retry) then recovers the very code DOKU issued.
//
// Not parallel: the retry during the lease must arrive within the 200 ms lease.
func TestCrashAfterDokuAnsweredIsRecovered(t *testing.T) {
	s := apitest.New(t, apitest.Options{})
	ctx := context.Background()
	client := doku.New(doku.Config{BaseURL: s.SimURL, ClientID: apitest.ClientID, SecretKey: apitest.SecretKey})

	crash := func(number string) string {
		// Exactly what the service does on create up to the DOKU call — with a short lease — and
		// then nothing: the "process" is gone before the store step.
		amount := int64(150000)
		inv, err := invoice.Draft{Number: number, Channel: "alfa", Amount: &amount,
			Customer: &invoice.Customer{Name: "Taufik Ismail"}}.Validate(s.App.Config.Limits())
		if err != nil {
			t.Fatal(err)
		}
		inv.DokuRequestID = number + "-request-id"
		inv.DokuRequestBody, _ = doku.GenerateBody(inv, apitest.BodyDefaults)
		inv.DokuEnv = s.Service.Environment()
		stored, _, err := s.App.Store.Create(ctx, inv, 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		issued, err := client.Issue(ctx, stored)
		if err != nil {
			t.Fatal(err)
		}
		return issued.PaymentCode
	}

	code := crash("INV-CRASH-1")
	// While the dead holder's lease runs, a client retry is told to wait, not sent to DOKU.
	retryReq := apitest.CreateBody{InvoiceNumber: "INV-CRASH-1", Channel: "alfa", Amount: 150000, Customer: apitest.Customer{Name: "Taufik Ismail"}}
	calls := s.Sim.GenerateCalls()
	resp := s.Create(retryReq)
	if resp.Status != http.StatusConflict || resp.Problem(t).Code != "request_in_progress" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("retry during the lease: HTTP %d %s", resp.Status, resp.Body)
	}
	if s.Sim.GenerateCalls() != calls {
		t.Fatal("a retry during the lease called DOKU")
	}

	time.Sleep(250 * time.Millisecond)
	n, err := s.Resumer().RunOnce(ctx)
	if err != nil || n != 1 {
		t.Fatalf("resumer finished %d, err %v", n, err)
	}
	if st, got := status(t, s, "INV-CRASH-1"); st != invoice.StatusPending || got != code {
		t.Fatalf("after resume: %s %q, want pending %q", st, got, code)
	}

	// The same crash, recovered by the client's own retry after the lease.
	code2 := crash("INV-CRASH-2")
	time.Sleep(250 * time.Millisecond)
	retryReq.InvoiceNumber = "INV-CRASH-2"
	resp = s.Create(retryReq)
	if resp.Status != http.StatusOK || resp.Invoice(t).Code(t) != code2 {
		t.Fatalf("client retry after crash: HTTP %d %s, want code %s", resp.Status, resp.Body, code2)
	}
	if s.Sim.Issued() != 2 {
		t.Fatalf("DOKU issued %d codes for 2 invoices", s.Sim.Issued())
	}
}

// Fifty checkouts double-submitting the same order at once: one DOKU call, one invoice.
func TestConcurrentIdenticalCreatesCallDokuOnce(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	s.Sim.SetFaults(dokusim.Faults{LatencyMS: 150})
	req := apitest.NewInvoice("INV-RACE", "indomaret")

	const n = 50
	var wg sync.WaitGroup
	results := make([]apitest.Response, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			results[i] = s.Create(req)
		}(i)
	}
	close(start)
	wg.Wait()

	created, finished, inProgress := 0, 0, 0
	for _, r := range results {
		switch r.Status {
		case http.StatusCreated:
			created++
		case http.StatusOK:
			finished++
		case http.StatusConflict:
			if r.Problem(t).Code != "request_in_progress" || r.Header.Get("Retry-After") == "" {
				t.Fatalf("409 without request_in_progress/Retry-After: %s", r.Body)
			}
			inProgress++
		default:
			t.Fatalf("unexpected HTTP %d %s", r.Status, r.Body)
		}
	}
	if created != 1 || created+finished+inProgress != n {
		t.Fatalf("created %d, finished %d, in progress %d", created, finished, inProgress)
	}
	if calls := s.Sim.GenerateCalls(); calls != 1 {
		t.Fatalf("DOKU generate calls = %d, want 1", calls)
	}
	if c := s.Count(`SELECT count(*) FROM invoices`); c != 1 {
		t.Fatalf("invoices = %d", c)
	}
	if st, code := status(t, s, "INV-RACE"); st != invoice.StatusPending || code != s.Sim.PaymentCode("INV-RACE") {
		t.Fatalf("status %s code %s", st, code)
	}
	t.Logf("50 concurrent creates: 1 created, %d got the finished invoice, %d were told to retry", finished, inProgress)
}

// DOKU keeps failing: the resumer retries with backoff, stops at the cap, and never calls again.
//
// Not parallel: every attempt up to the cap must fit in its one second of rounds.
func TestResumerBacksOffAndStopsAtTheCap(t *testing.T) {
	s := apitest.New(t, apitest.Options{Config: func(c *config.Config) {
		c.ResumerMaxAttempts, c.ResumerBaseBackoff, c.ResumerMaxBackoff = 4, 30*time.Millisecond, 30*time.Millisecond
	}})
	s.Sim.SetFaults(dokusim.Faults{FailNext: 1000, FailStatus: 503})
	if r := s.Create(apitest.NewInvoice("INV-DOWN", "alfa")); r.Status != 503 {
		t.Fatalf("create with DOKU down: %d", r.Status)
	}
	r := s.Resumer()
	ctx := context.Background()
	// The request's attempt scheduled the next one a lease later; bring it forward.
	if _, err := s.DB.Pool.Exec(ctx, `UPDATE invoices SET next_issue_at = now()`); err != nil {
		t.Fatal(err)
	}
	// Far more rounds than attempts, spread over many backoff periods.
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		if _, err := r.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if calls := s.Sim.GenerateCalls(); calls != 4 {
		t.Fatalf("DOKU calls = %d, want 4 (1 by the request, 3 by the resumer up to the cap)", calls)
	}
	if st, _ := status(t, s, "INV-DOWN"); st != invoice.StatusCreating {
		t.Fatalf("status %s, want creating (an unknown outcome is never marked failed)", st)
	}
}

// Two resumers (two replicas) over one database: every invoice is sent to DOKU exactly once.
func TestTwoResumersNeverDoubleCall(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	const n = 30
	s.Sim.SetFaults(dokusim.Faults{FailNext: n, FailStatus: 503})
	for i := 0; i < n; i++ {
		if r := s.Create(apitest.NewInvoice(fmt.Sprintf("INV-PAR-%02d", i), "alfa")); r.Status != 503 {
			t.Fatalf("setup: %d %s", r.Status, r.Body)
		}
	}
	s.Sim.SetFaults(dokusim.Faults{LatencyMS: 20})
	before := s.Sim.GenerateCalls()
	if _, err := s.DB.Pool.Exec(context.Background(), `UPDATE invoices SET next_issue_at = now()`); err != nil {
		t.Fatal(err)
	}
	a, b := *s.Resumer(), *s.Resumer() // two replicas' resumers over one database
	a.Batch, b.Batch = 7, 7
	replicas(t, 10, &a, &b)
	if calls := s.Sim.GenerateCalls() - before; calls != n {
		t.Fatalf("two resumers made %d DOKU calls for %d invoices", calls, n)
	}
	if c := s.Count(`SELECT count(*) FROM invoices WHERE status = 'pending'`); c != n {
		t.Fatalf("%d of %d invoices pending", c, n)
	}
}

// replicas runs rounds rounds of each worker at the same time, as replicas of the service would.
func replicas(t *testing.T, rounds int, workers ...interface {
	RunOnce(context.Context) (int, error)
}) {
	t.Helper()
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				if _, err := w.RunOnce(context.Background()); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
}

// The resumer claims invoices only as it calls DOKU for them: an invoice further down its batch is not
// held on a lease that runs out while it waits, so a client retry in the meantime cannot lead to two
// DOKU calls for it.
//
// Not parallel: each 250 ms DOKU call must end within its invoice's 300 ms lease.
func TestResumerClaimsOnlyWhatItCallsNow(t *testing.T) {
	s := apitest.New(t, apitest.Options{Adjust: func(c *service.Config) { c.Issue.Lease = 300 * time.Millisecond }})
	const n = 6
	s.Sim.SetFaults(dokusim.Faults{FailNext: n, FailStatus: 503})
	for i := 0; i < n; i++ {
		if r := s.Create(apitest.NewInvoice(fmt.Sprintf("INV-W-%02d", i), "alfa")); r.Status != 503 {
			t.Fatalf("setup: %d", r.Status)
		}
	}
	s.Sim.SetFaults(dokusim.Faults{LatencyMS: 250})
	if _, err := s.DB.Pool.Exec(context.Background(), `UPDATE invoices SET next_issue_at = now(), issue_lease_until = NULL`); err != nil {
		t.Fatal(err)
	}
	before := s.Sim.GenerateCalls()
	r := *s.Resumer()
	r.Concurrency, r.Batch = 1, n
	done := make(chan struct{})
	go func() {
		if _, err := r.RunOnce(context.Background()); err != nil {
			t.Error(err)
		}
		close(done)
	}()
	time.Sleep(500 * time.Millisecond)
	// The checkout retries the last invoice while the resumer is still working through the others.
	if resp := s.Create(apitest.NewInvoice(fmt.Sprintf("INV-W-%02d", n-1), "alfa")); resp.Status != 200 && resp.Status != 409 {
		t.Fatalf("client retry: %d %s", resp.Status, resp.Body)
	}
	<-done
	if calls := s.Sim.GenerateCalls() - before; calls != n {
		t.Fatalf("%d DOKU generate calls for %d invoices", calls, n)
	}
	if c := s.Count(`SELECT count(*) FROM invoices WHERE status = 'pending'`); c != n {
		t.Fatalf("%d of %d pending", c, n)
	}
}
