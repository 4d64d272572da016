package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/config"
	"github.com/merchant/o2o/internal/dokusim"
)

// Every case that needs a person's decision is one item in one queue, however often it is seen: a
// payment for a failed invoice, a second payment of a single-use code, a mismatch found by the
// reconciler and by manual sync — after ten polls and two redeliveries each, one item each, with its
// evidence. Resolving one records who (the API key's name) and when, takes it out of the open view,
// and the gauge follows.
func TestAttentionQueueHoldsEachCaseOnce(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{Config: func(c *config.Config) { c.SyncMinInterval = 0 }})
	deliver := func(body []byte, requestID string) {
		t.Helper()
		for i := 0; i < 3; i++ { // DOKU's delivery and two redeliveries
			if r := s.Notify(body, requestID, nil); r.Status != 200 {
				t.Fatalf("%s delivery %d: %d %s", requestID, i+1, r.Status, r.Body)
			}
		}
	}

	// Money for an invoice DOKU refused to issue a code for.
	s.Sim.SetFaults(dokusim.Faults{FailNext: 1, FailStatus: 400, FailMessage: "Invalid merchant"})
	if r := s.Create(apitest.NewInvoice("INV-ATT-FAILED", "alfa")); r.Status != 502 {
		t.Fatalf("setup: %d %s", r.Status, r.Body)
	}
	deliver(apitest.NotificationBody("INV-ATT-FAILED", "alfa", "8888999", 150000, "T-F1"), "att-failed")
	if got := get(t, s, "INV-ATT-FAILED"); got.Status != "failed" || got.TotalPaid != 150000 {
		t.Fatalf("a payment for a failed invoice: %v", got)
	}

	// A single-use code paid twice at the counter (two store transactions).
	second := create(t, s, apitest.NewInvoice("INV-ATT-TWICE", "alfa"))
	s.Pay(second.Code(t), 150000)
	deliver(apitest.NotificationBody("INV-ATT-TWICE", "alfa", second.Code(t), 150000, "T-OTHER"), "att-twice")
	if got := get(t, s, "INV-ATT-TWICE"); got.TotalPaid != 300000 || len(got.Payments) != 2 {
		t.Fatalf("the second payment's money is not recorded: %v", got)
	}

	// DOKU reports a payment our record disagrees with, seen by the reconciler and by manual sync.
	mm := create(t, s, apitest.NewInvoice("INV-ATT-MISMATCH", "alfa"))
	s.Sim.SetFaults(dokusim.Faults{DropNotifications: true})
	s.Pay(mm.Code(t), 150000)
	s.Sim.SetFaults(dokusim.Faults{})
	if _, err := s.DB.Pool.Exec(context.Background(), `UPDATE invoices SET amount = 140000 WHERE invoice_number = 'INV-ATT-MISMATCH'`); err != nil {
		t.Fatal(err)
	}
	s.Reconcile(10)
	for i := 0; i < 3; i++ {
		if r := s.Sync("INV-ATT-MISMATCH"); r.Status != 200 {
			t.Fatalf("sync: %d %s", r.Status, r.Body)
		}
	}
	if got := get(t, s, "INV-ATT-MISMATCH"); got.Status != "pending" {
		t.Fatalf("a mismatch paid the invoice: %v", got)
	}

	open := s.Attention("state=open")
	want := map[string]string{"INV-ATT-FAILED": "paid_while_failed", "INV-ATT-TWICE": "second_payment", "INV-ATT-MISMATCH": "amount_mismatch"}
	if len(open) != len(want) {
		t.Fatalf("%d open items, want %d: %v", len(open), len(want), open)
	}
	byReason := map[string]apitest.AttentionView{}
	for _, item := range open {
		if want[item.InvoiceNumber] != item.Reason {
			t.Fatalf("item %v, want reason %s for %s", item, want[item.InvoiceNumber], item.InvoiceNumber)
		}
		if ev := item.Evidence; ev["reported_amount"] == nil || ev["invoice_amount"] == nil {
			t.Fatalf("item without its evidence: %v", item)
		}
		byReason[item.Reason] = item
	}
	if ev := byReason["second_payment"].Evidence; ev["total_paid"] != float64(300000) {
		t.Fatalf("second payment's evidence: %v", ev)
	}
	m, _ := scrape(t, s)
	for reason := range byReason {
		if got := m[`o2o_attention_open{reason=`+reason+`}`]; got != 1 {
			t.Fatalf("gauge for %s = %v, want 1", reason, got)
		}
	}

	// A person resolves the mismatch with the second key.
	path := fmt.Sprintf("/v1/attention/%d/resolve", byReason["amount_mismatch"].ID)
	r := s.Send(apitest.Request{Method: http.MethodPost, Path: path, Key: apitest.APIKey2, Body: []byte(`{"note":"DOKU settled 150,000; order amended"}`)})
	if body := r.Attention(t); r.Status != 200 || body.State != "resolved" || body.ResolvedBy != apitest.APIKey2Name ||
		body.Note != "DOKU settled 150,000; order amended" || body.ResolvedAt == nil {
		t.Fatalf("resolve: %d %v", r.Status, body)
	}
	if r := s.POST(path, []byte(`{"note":"again"}`)); r.Status != 409 || r.Problem(t).Code != "already_resolved" {
		t.Fatalf("resolve twice: %d %s", r.Status, r.Body)
	}
	if open := s.Attention("state=open"); len(open) != 2 {
		t.Fatalf("%d open after resolving one", len(open))
	}
	if done := s.Attention("state=resolved&reason=amount_mismatch"); len(done) != 1 || done[0].ResolvedBy != apitest.APIKey2Name {
		t.Fatalf("resolved view: %v", done)
	}
	if m, _ := scrape(t, s); m[`o2o_attention_open{reason=amount_mismatch}`] != 0 || m[`o2o_attention_open{reason=second_payment}`] != 1 {
		t.Fatalf("gauge after resolving: %v", m)
	}

	// Refused: no note, an unknown item, a bad filter, no key.
	for name, tc := range map[string]struct {
		req    apitest.Request
		status int
	}{
		"empty note":     {apitest.Request{Method: http.MethodPost, Path: path, Body: []byte(`{"note":" "}`)}, 422},
		"unknown field":  {apitest.Request{Method: http.MethodPost, Path: path, Body: []byte(`{"by":"me","note":"x"}`)}, 422},
		"unknown item":   {apitest.Request{Method: http.MethodPost, Path: "/v1/attention/999999/resolve", Body: []byte(`{"note":"x"}`)}, 404},
		"not an id":      {apitest.Request{Method: http.MethodPost, Path: "/v1/attention/abc/resolve", Body: []byte(`{"note":"x"}`)}, 404},
		"bad reason":     {apitest.Request{Method: http.MethodGet, Path: "/v1/attention?reason=nope"}, 422},
		"bad state":      {apitest.Request{Method: http.MethodGet, Path: "/v1/attention?state=closed"}, 422},
		"unknown filter": {apitest.Request{Method: http.MethodGet, Path: "/v1/attention?status=open"}, 422},
		"no key":         {apitest.Request{Method: http.MethodGet, Path: "/v1/attention", NoKey: true}, 401},
	} {
		if r := s.Send(tc.req); r.Status != tc.status {
			t.Errorf("%s: %d %s, want %d", name, r.Status, r.Body, tc.status)
		}
	}
}
