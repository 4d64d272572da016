package worker_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/config"
	"github.com/merchant/o2o/internal/doku"
	"github.com/merchant/o2o/internal/dokusim"
	"github.com/merchant/o2o/internal/invoice"
)

// answeringDoku is a DOKU that answers generate and check status with whatever a test sets: what the
// simulator, which never lies, cannot send.
type answeringDoku struct {
	mu                      sync.Mutex
	genStatus, statusStatus int
	genBody, statusBody     string
}

func (f *answeringDoku) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	status, body := f.genStatus, f.genBody
	if strings.HasPrefix(r.URL.Path, doku.PathStatusPrefix) {
		status, body = f.statusStatus, f.statusBody
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (f *answeringDoku) generate(status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.genStatus, f.genBody = status, body
}

func (f *answeringDoku) status(status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statusStatus, f.statusBody = status, body
}

func answeringStack(t *testing.T) (*apitest.Stack, *answeringDoku) {
	t.Helper()
	f := &answeringDoku{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return apitest.New(t, apitest.Options{Config: func(c *config.Config) { c.DokuBaseURL = srv.URL }}), f
}

// generated is DOKU's generate answer for number and amount with code.
func generated(number string, amount int, code string) string {
	return `{"order":{"invoice_number":"` + number + `","amount":` + strconv.Itoa(amount) + `},"online_to_offline_info":{"payment_code":"` +
		code + `","expired_date":"` + doku.FormatWIB(time.Now().Add(time.Hour)) + `"}}`
}

// resumeUntilDone runs the resumer with every creating invoice due, as many rounds as it may try.
func resumeUntilDone(t *testing.T, s *apitest.Stack, rounds int) {
	t.Helper()
	for i := 0; i < rounds; i++ {
		if _, err := s.DB.Pool.Exec(context.Background(), `UPDATE invoices SET next_issue_at = now() - interval '1 hour',
			issue_lease_until = NULL WHERE status = 'creating'`); err != nil {
			t.Fatal(err)
		}
		_, _ = s.Resumer().RunOnce(context.Background())
	}
}

// DOKU's answers are text from outside: a NUL or invalid UTF-8 in a code or a refusal's message must
// not turn into a 500 and an invoice stuck on a write PostgreSQL refuses. A code that is no code (a
// control character in it) is not shown to a customer: the invoice stays creating, and once the
// resumer gives up it is a person's, with DOKU's text in the evidence. A refusal is a refusal.
func TestDokuAnswersWithBytesPostgreSQLRefuses(t *testing.T) {
	t.Parallel()
	s, f := answeringStack(t)

	f.generate(http.StatusOK, generated("INV-NUL-CODE", 150000, `8888\u00001234`))
	if r := s.Create(apitest.NewInvoice("INV-NUL-CODE", "alfa")); r.Status != http.StatusServiceUnavailable {
		t.Errorf("a generate answer whose code holds a NUL: HTTP %d %s, want 503 (the outcome is unknown)", r.Status, r.Body)
	}
	resumeUntilDone(t, s, 8)
	if inv := s.Get("INV-NUL-CODE"); inv.Status != invoice.StatusCreating || inv.PaymentCode != "" {
		t.Errorf("status %s, code %q: want creating, no code", inv.Status, inv.PaymentCode)
	}
	if n := s.Count(`SELECT count(*) FROM attention_items WHERE invoice_number = 'INV-NUL-CODE' AND reason = 'stuck_creating'`); n != 1 {
		t.Errorf("%d stuck_creating items once the resumer gave up, want one", n)
	}

	f.generate(http.StatusBadRequest, `{"error":{"code":"x","message":"bad\u0000thing \xff"}}`)
	if r := s.Create(apitest.NewInvoice("INV-NUL-REFUSED", "alfa")); r.Status != http.StatusUnprocessableEntity && r.Status != http.StatusBadGateway {
		t.Errorf("a refusal whose message holds a NUL: HTTP %d %s", r.Status, r.Body)
	}
	if inv := s.Get("INV-NUL-REFUSED"); inv.Status != invoice.StatusFailed || !strings.Contains(inv.FailureMessage, "bad") {
		t.Errorf("status %s, message %q: want failed with DOKU's message", inv.Status, inv.FailureMessage)
	}

	f.generate(http.StatusServiceUnavailable, `{"error":{"code":"x","message":"busy\u0000"}}`)
	if r := s.Create(apitest.NewInvoice("INV-NUL-BUSY", "alfa")); r.Status != http.StatusServiceUnavailable {
		t.Errorf("a 503 whose message holds a NUL: HTTP %d %s", r.Status, r.Body)
	}
	resumeUntilDone(t, s, 8)
	if n := s.Count(`SELECT count(*) FROM attention_items WHERE invoice_number = 'INV-NUL-BUSY' AND reason = 'stuck_creating'`); n != 1 {
		t.Errorf("%d stuck_creating items once the resumer gave up on DOKU's 503s, want one", n)
	}
}

// A generate answer for another order or another amount is not our code: shown to the customer, the
// money would arrive for the wrong invoice. It is an answer we cannot use — the invoice stays creating
// for a person, never pending with that code.
func TestAGenerateAnswerForAnotherOrderIsNotOurCode(t *testing.T) {
	t.Parallel()
	s, f := answeringStack(t)
	for number, body := range map[string]string{
		"INV-ASKED-1": generated("INV-OTHER", 150000, "888800009999"),
		"INV-ASKED-2": generated("INV-ASKED-2", 10000, "888800009998"),
	} {
		f.generate(http.StatusOK, body)
		if r := s.Create(apitest.NewInvoice(number, "alfa")); r.Status == http.StatusCreated {
			t.Errorf("%s: HTTP 201 with another order's answer %s", number, body)
		}
		if inv := s.Get(number); inv.Status != invoice.StatusCreating || inv.PaymentCode != "" {
			t.Errorf("%s: status %s with code %q, want creating without a code", number, inv.Status, inv.PaymentCode)
		}
	}
	f.generate(http.StatusOK, generated("INV-ASKED-3", 150000, "888800009997"))
	if r := s.Create(apitest.NewInvoice("INV-ASKED-3", "alfa")); r.Status != http.StatusCreated {
		t.Errorf("DOKU's answer for the order asked: HTTP %d %s", r.Status, r.Body)
	}
}

// A check-status answer about another invoice is not about ours, whatever it says: EXPIRED for
// someone else's order does not expire a code the customer may still pay. It is flagged, as a
// SUCCESS for another invoice is.
func TestAStatusAnswerAboutAnotherInvoiceExpiresNothing(t *testing.T) {
	t.Parallel()
	s, f := answeringStack(t)
	f.generate(http.StatusOK, generated("INV-MINE", 150000, "888800001234"))
	if r := s.Create(apitest.NewInvoice("INV-MINE", "alfa")); r.Status != http.StatusCreated {
		t.Fatalf("create: HTTP %d %s", r.Status, r.Body)
	}
	f.status(http.StatusOK, `{"order":{"invoice_number":"INV-SOMEONE-ELSE","amount":999},"transaction":{"status":"EXPIRED"}}`)
	s.MakeDue()
	if _, err := s.Reconciler().RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if inv := s.Get("INV-MINE"); inv.Status != invoice.StatusPending || inv.NextCheckAt == nil {
		t.Errorf("status %s, next check %v: want pending and still checked", inv.Status, inv.NextCheckAt)
	}
	if n := s.Count(`SELECT count(*) FROM attention_items WHERE invoice_number = 'INV-MINE' AND reason = 'invoice_mismatch'`); n != 1 {
		t.Errorf("%d invoice_mismatch items, want one", n)
	}
}

// Client retries through a DOKU outage spend the attempts the resumer would have had: when they run
// out, the invoice is a person's — flagged, not left creating where nobody looks.
func TestClientRetriesThatUseUpTheAttemptsLeaveTheInvoiceFlagged(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	max := s.App.Config.ResumerMaxAttempts
	s.Sim.SetFaults(dokusim.Faults{FailNext: max, FailStatus: http.StatusServiceUnavailable})
	req := apitest.NewInvoice("INV-RETRIES", "alfa")
	for i := 0; i < max; i++ {
		if r := s.Create(req); r.Status != http.StatusServiceUnavailable {
			t.Fatalf("attempt %d: HTTP %d %s", i+1, r.Status, r.Body)
		}
	}
	resumeUntilDone(t, s, 3)
	inv := s.Get("INV-RETRIES")
	items := s.Count(`SELECT count(*) FROM attention_items WHERE invoice_number = 'INV-RETRIES' AND reason = 'stuck_creating'`)
	if inv.Status == invoice.StatusCreating && items != 1 {
		t.Errorf("the invoice is creating after %d attempts with %d stuck_creating items: nobody will look at it", inv.IssueAttempts, items)
	}
}
