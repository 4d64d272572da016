package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/config"
	"github.com/merchant/o2o/internal/dokusim"
	"github.com/merchant/o2o/internal/paypage"
)

// getPage fetches a payment page address (relative to the service) without a key.
func getPage(t *testing.T, s *apitest.Stack, path string, header http.Header) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if err := apitest.CheckResponse(req, resp.StatusCode, resp.Header, body); err != nil {
		t.Errorf("contract: GET %s -> %d: %v", path, resp.StatusCode, err)
	}
	return resp.StatusCode, resp.Header, body
}

// pagePath is the path of an invoice's payment page from its payment_page_url.
func pagePath(t *testing.T, v apitest.InvoiceView) string {
	t.Helper()
	if v.PaymentPageURL == nil || !strings.HasPrefix(*v.PaymentPageURL, "/pay/"+v.InvoiceNumber+"/") {
		t.Fatalf("invoice %s has no payment page address: %v", v.InvoiceNumber, v.PaymentPageURL)
	}
	return *v.PaymentPageURL
}

// A payment page address opens one invoice's page, without a key, and nothing else: another
// invoice's token, a revoked address, an expired one and an invoice that does not exist all get the
// same 404 page, which says nothing about which. The page carries nothing internal.
func TestPaymentPageLinkIsScopedAndRevocable(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{Config: func(c *config.Config) { c.CustomerAccessGrace = 300 * time.Millisecond }})
	body := apitest.NewInvoice("INV-PAGE-A", "alfa")
	body.Metadata = json.RawMessage(`{"fraud_score":0.93}`)
	a := s.Create(body).Invoice(t)
	b := s.Create(apitest.NewInvoice("INV-PAGE-B", "indomaret")).Invoice(t)
	s.Notify(apitest.NotificationBody("INV-PAGE-A", "alfa", a.Code(t), a.Amount+1, "TRX-PAGE-WRONG"), "req-page-1", nil)

	status, header, page := getPage(t, s, pagePath(t, a), nil)
	if status != http.StatusOK || !bytes.Contains(page, []byte(a.Code(t)[:4])) {
		t.Fatalf("the page: HTTP %d\n%s", status, page)
	}
	if csp := header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("the page's headers: %v", header)
	}
	for _, secret := range []string{"fraud_score", "0.93", "Taufik", "taufik@example.com", "TRX-PAGE-WRONG", "amount_mismatch", "req-page-1", "Call Center"} {
		if bytes.Contains(page, []byte(secret)) {
			t.Errorf("the page carries %q", secret)
		}
	}

	tokenB := (*b.PaymentPageURL)[strings.LastIndex(*b.PaymentPageURL, "/")+1:]
	_, _, missing := getPage(t, s, "/pay/INV-PAGE-NONE/"+tokenB, nil)
	for name, path := range map[string]string{
		"another invoice's token": "/pay/INV-PAGE-A/" + tokenB,
		"a made-up token":         "/pay/INV-PAGE-A/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"no such invoice":         "/pay/INV-PAGE-NONE/" + tokenB,
		"a number no invoice has": "/pay/%FF/" + tokenB,
	} {
		status, _, got := getPage(t, s, path, nil)
		if status != http.StatusNotFound || !bytes.Equal(got, missing) {
			t.Errorf("%s: HTTP %d, and a page that differs from an unknown invoice's:\n%s", name, status, got)
		}
	}

	revoked := pagePath(t, a)
	r := s.POST("/v1/invoices/INV-PAGE-A/payment-page/revoke", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("revoke: HTTP %d %s", r.Status, r.Body)
	}
	if status, _, got := getPage(t, s, revoked, nil); status != http.StatusNotFound || !bytes.Equal(got, missing) {
		t.Errorf("a revoked address: HTTP %d", status)
	}
	if status, _, _ := getPage(t, s, pagePath(t, r.Invoice(t)), nil); status != http.StatusOK {
		t.Errorf("the new address: HTTP %d", status)
	}

	// An invoice that ended: its page shows the end for the grace — without the code, which DOKU
	// cannot withdraw and the customer must not pay now — then the address expires, and so does a
	// stream token. The grace runs from the cancellation: the reconciler goes on checking a cancelled
	// code (money may still come) and writes the invoice's row each time, which must not extend it.
	tok := issueToken(t, s, "INV-PAGE-B", "")
	s.POST("/v1/invoices/INV-PAGE-B/cancel", []byte(`{"reason":"out of stock"}`))
	status, _, ended := getPage(t, s, pagePath(t, b), nil)
	if status != http.StatusOK {
		t.Errorf("within the grace: HTTP %d", status)
	}
	if bytes.Contains(ended, []byte(b.Code(t))) || bytes.Contains(ended, []byte(paypage.GroupCode(b.Code(t)))) {
		t.Errorf("the cancelled invoice's page still offers its code %s", b.Code(t))
	}
	time.Sleep(200 * time.Millisecond)
	s.MakeDue()
	if _, err := s.App.Reconciler.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := s.Count(`SELECT count(*) FROM invoices WHERE invoice_number = 'INV-PAGE-B' AND updated_at > cancelled_at + interval '150 milliseconds'`); n != 1 {
		t.Fatal("the reconciler's check did not write the cancelled invoice's row: this test no longer shows what it is for")
	}
	time.Sleep(200 * time.Millisecond)
	if status, _, got := getPage(t, s, pagePath(t, b), nil); status != http.StatusNotFound || !bytes.Equal(got, missing) {
		t.Errorf("an address past the grace after the cancellation: HTTP %d", status)
	}
	if r := s.Send(apitest.Request{Method: http.MethodGet, Path: tok.StreamURL, NoKey: true}); r.Status != http.StatusUnauthorized {
		t.Errorf("a stream token past the grace after the cancellation: HTTP %d %s", r.Status, r.Body)
	}
}

// A paid invoice with a reusable code is not over while its code may be paid again, so its page
// stays open — but only until the code's deadline: from then on its page and its stream tokens end a
// grace later, like any final invoice's. (They used to stay open for good.)
func TestAReusableCodesPageEndsAfterItsDeadline(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{Config: func(c *config.Config) { c.CustomerAccessGrace = 300 * time.Millisecond }})
	req := apitest.NewInvoice("INV-PAGE-REUSE", "alfa")
	req.Reusable = true
	inv := s.Create(req).Invoice(t)
	if r := s.Notify(apitest.NotificationBody("INV-PAGE-REUSE", "alfa", inv.Code(t), inv.Amount, "TRX-REUSE-1"), "req-reuse-1", nil); r.Status != http.StatusOK {
		t.Fatalf("the payment: HTTP %d %s", r.Status, r.Body)
	}
	tok := issueToken(t, s, "INV-PAGE-REUSE", "")
	// Paid, its code good for an hour more: the page stays, long after the payment's grace.
	sqlExec(t, s, `UPDATE invoices SET paid_at = now() - interval '1 day' WHERE invoice_number = 'INV-PAGE-REUSE'`)
	if status, _, _ := getPage(t, s, pagePath(t, inv), nil); status != http.StatusOK {
		t.Errorf("a paid reusable code before its deadline: HTTP %d, want its page", status)
	}
	// The deadline passed more than the grace ago (and the reconciler's window with it).
	sqlExec(t, s, `UPDATE invoices SET expires_at = now() - interval '400 days', paid_at = now() - interval '401 days',
		next_check_at = NULL WHERE invoice_number = 'INV-PAGE-REUSE'`)
	if status, _, _ := getPage(t, s, pagePath(t, inv), nil); status != http.StatusNotFound {
		t.Errorf("a paid reusable code 400 days past its deadline: HTTP %d, want 404", status)
	}
	if r := s.Send(apitest.Request{Method: http.MethodGet, Path: tok.StreamURL, NoKey: true}); r.Status != http.StatusUnauthorized {
		t.Errorf("its stream token: HTTP %d, want 401", r.Status)
	}
}

// DOKU's instructions are fetched once per invoice, whatever the page views; when DOKU's cannot be
// had, the page shows our own steps, and DOKU is asked again only after a retry interval.
func TestInstructionsAreFetchedOncePerInvoice(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	inv := s.Create(apitest.NewInvoice("INV-HTP-1", "alfa")).Invoice(t)
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if status, _, _ := getPage(t, s, pagePath(t, inv), nil); status != http.StatusOK {
				t.Errorf("view %d: HTTP %d", i, status)
			}
		}()
	}
	wg.Wait()
	if n := s.Sim.HowToPayCalls(); n != 1 {
		t.Errorf("100 page views asked DOKU's how_to_pay_api %d times, want once", n)
	}

	s.Sim.SetFaults(dokusim.Faults{HowToPayUnavailable: true})
	down := s.Create(apitest.NewInvoice("INV-HTP-2", "indomaret")).Invoice(t)
	for i := 0; i < 3; i++ {
		if status, _, page := getPage(t, s, pagePath(t, down), nil); status != http.StatusOK || !bytes.Contains(page, []byte(down.Code(t)[:4])) {
			t.Fatalf("the page without DOKU's instructions: HTTP %d", status)
		}
	}
	if n := s.Sim.HowToPayCalls(); n != 2 {
		t.Errorf("DOKU's how_to_pay_api was asked %d times in all, want twice (once per invoice, even when it failed)", n)
	}
	if n := s.Count(`SELECT count(*) FROM payment_instructions WHERE source = 'fallback'`); n != 1 {
		t.Errorf("%d invoices keep our own steps, want the one DOKU's could not be had for", n)
	}

	// DOKU is back. A failure is not kept for good: once the retry interval has passed, the next view
	// asks DOKU again, once, and from then on the page shows DOKU's steps without asking again.
	s.Sim.SetFaults(dokusim.Faults{})
	dokuSteps := []byte("Petunjuk dari DOKU:") // the note above DOKU's steps, on the Indonesian page
	if _, _, page := getPage(t, s, pagePath(t, down), nil); s.Sim.HowToPayCalls() != 2 || bytes.Contains(page, dokuSteps) {
		t.Errorf("within the retry interval a view asked DOKU again (%d calls in all) or showed DOKU's steps", s.Sim.HowToPayCalls())
	}
	sqlExec(t, s, `UPDATE payment_instructions SET fetched_at = now() - interval '1 hour'`)
	for i := 0; i < 3; i++ {
		if status, _, page := getPage(t, s, pagePath(t, down), nil); status != http.StatusOK || !bytes.Contains(page, dokuSteps) {
			t.Fatalf("view %d after DOKU came back: HTTP %d, DOKU's steps shown: %v", i, status, bytes.Contains(page, dokuSteps))
		}
	}
	if n := s.Sim.HowToPayCalls(); n != 3 {
		t.Errorf("DOKU's how_to_pay_api was asked %d times in all, want 3 (once more for the invoice it had failed)", n)
	}
	// DOKU's steps, once kept, are never asked for again, however old.
	sqlExec(t, s, `UPDATE payment_instructions SET fetched_at = now() - interval '1 day'`)
	getPage(t, s, pagePath(t, inv), nil)
	getPage(t, s, pagePath(t, down), nil)
	if n := s.Sim.HowToPayCalls(); n != 3 || s.Count(`SELECT count(*) FROM payment_instructions WHERE source = 'fallback'`) != 0 {
		t.Errorf("kept DOKU steps were asked for again (%d calls) or a fallback is still kept", n)
	}
}
