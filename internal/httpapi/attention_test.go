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
	if r := s.Do(http.MethodPost, "/v1/invoices", apitest.Invoice("INV-ATT-FAILED", "alfa"), nil); r.Status != 502 {
		t.Fatalf("setup: %d %s", r.Status, r.Body)
	}
	deliver(apitest.NotificationBody("INV-ATT-FAILED", "alfa", "8888999", 150000, "T-F1"), "att-failed")
	if got := get(t, s, "INV-ATT-FAILED"); got["status"] != "failed" || got["total_paid"] != float64(150000) {
		t.Fatalf("a payment for a failed invoice: %v", got)
	}

	// A single-use code paid twice at the counter (two store transactions).
	second := create(t, s, apitest.Invoice("INV-ATT-TWICE", "alfa"))
	s.Pay(second["payment_code"].(string), 150000)
	deliver(apitest.NotificationBody("INV-ATT-TWICE", "alfa", second["payment_code"].(string), 150000, "T-OTHER"), "att-twice")
	if got := get(t, s, "INV-ATT-TWICE"); got["total_paid"] != float64(300000) || len(got["payments"].([]any)) != 2 {
		t.Fatalf("the second payment's money is not recorded: %v", got)
	}

	// DOKU reports a payment our record disagrees with, seen by the reconciler and by manual sync.
	mm := create(t, s, apitest.Invoice("INV-ATT-MISMATCH", "alfa"))
	s.Sim.SetFaults(dokusim.Faults{DropNotifications: true})
	s.Pay(mm["payment_code"].(string), 150000)
	s.Sim.SetFaults(dokusim.Faults{})
	if _, err := s.DB.Pool.Exec(context.Background(), `UPDATE invoices SET amount = 140000 WHERE invoice_number = 'INV-ATT-MISMATCH'`); err != nil {
		t.Fatal(err)
	}
	s.Reconcile(10)
	for i := 0; i < 3; i++ {
		if r := s.Do(http.MethodPost, "/v1/invoices/INV-ATT-MISMATCH/sync", nil, nil); r.Status != 200 {
			t.Fatalf("sync: %d %s", r.Status, r.Body)
		}
	}
	if got := get(t, s, "INV-ATT-MISMATCH"); got["status"] != "pending" {
		t.Fatalf("a mismatch paid the invoice: %v", got)
	}

	open := s.Attention("state=open")
	want := map[string]string{"INV-ATT-FAILED": "paid_while_failed", "INV-ATT-TWICE": "second_payment", "INV-ATT-MISMATCH": "amount_mismatch"}
	if len(open) != len(want) {
		t.Fatalf("%d open items, want %d: %v", len(open), len(want), open)
	}
	byReason := map[string]map[string]any{}
	for _, item := range open {
		number, _ := item["invoice_number"].(string)
		if want[number] != item["reason"] {
			t.Fatalf("item %v, want reason %s for %s", item, want[number], number)
		}
		ev := item["evidence"].(map[string]any)
		if ev["reported_amount"] == nil || ev["invoice_amount"] == nil {
			t.Fatalf("item without its evidence: %v", item)
		}
		byReason[item["reason"].(string)] = item
	}
	if ev := byReason["second_payment"]["evidence"].(map[string]any); ev["total_paid"] != float64(300000) {
		t.Fatalf("second payment's evidence: %v", ev)
	}
	m, _ := scrape(t, s)
	for reason := range byReason {
		if got := m[`o2o_attention_open{reason=`+reason+`}`]; got != 1 {
			t.Fatalf("gauge for %s = %v, want 1", reason, got)
		}
	}

	// A person resolves the mismatch with the second key.
	id := int64(byReason["amount_mismatch"]["id"].(float64))
	path := fmt.Sprintf("/v1/attention/%d/resolve", id)
	auth2 := map[string]string{"Authorization": "Bearer " + apitest.APIKey2}
	r := s.Do(http.MethodPost, path, map[string]any{"note": "DOKU settled 150,000; order amended"}, auth2)
	if body := r.JSON(t); r.Status != 200 || body["state"] != "resolved" || body["resolved_by"] != apitest.APIKey2Name ||
		body["note"] != "DOKU settled 150,000; order amended" || body["resolved_at"] == nil {
		t.Fatalf("resolve: %d %v", r.Status, body)
	}
	if r := s.Do(http.MethodPost, path, map[string]any{"note": "again"}, nil); r.Status != 409 || r.JSON(t)["code"] != "already_resolved" {
		t.Fatalf("resolve twice: %d %s", r.Status, r.Body)
	}
	if open := s.Attention("state=open"); len(open) != 2 {
		t.Fatalf("%d open after resolving one", len(open))
	}
	if done := s.Attention("state=resolved&reason=amount_mismatch"); len(done) != 1 || done[0]["resolved_by"] != apitest.APIKey2Name {
		t.Fatalf("resolved view: %v", done)
	}
	if m, _ := scrape(t, s); m[`o2o_attention_open{reason=amount_mismatch}`] != 0 || m[`o2o_attention_open{reason=second_payment}`] != 1 {
		t.Fatalf("gauge after resolving: %v", m)
	}

	// Refused: no note, an unknown item, a bad filter, no key.
	for name, tc := range map[string]struct {
		method, path string
		body         any
		headers      map[string]string
		status       int
	}{
		"empty note":     {http.MethodPost, path, map[string]any{"note": " "}, nil, 422},
		"unknown field":  {http.MethodPost, path, map[string]any{"note": "x", "by": "me"}, nil, 422},
		"unknown item":   {http.MethodPost, "/v1/attention/999999/resolve", map[string]any{"note": "x"}, nil, 404},
		"not an id":      {http.MethodPost, "/v1/attention/abc/resolve", map[string]any{"note": "x"}, nil, 404},
		"bad reason":     {http.MethodGet, "/v1/attention?reason=nope", nil, nil, 422},
		"bad state":      {http.MethodGet, "/v1/attention?state=closed", nil, nil, 422},
		"unknown filter": {http.MethodGet, "/v1/attention?status=open", nil, nil, 422},
		"no key":         {http.MethodGet, "/v1/attention", nil, map[string]string{"Authorization": ""}, 401},
	} {
		if r := s.Do(tc.method, tc.path, tc.body, tc.headers); r.Status != tc.status {
			t.Errorf("%s: %d %s, want %d", name, r.Status, r.Body, tc.status)
		}
	}
}
