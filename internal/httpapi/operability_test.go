package httpapi_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/config"
	"github.com/merchant/o2o/internal/dokusim"
)

// logLines returns the JSON log lines that contain all of the given fragments.
func logLines(s *apitest.Stack, fragments ...string) []map[string]any {
	var out []map[string]any
next:
	for _, line := range strings.Split(s.Logs.String(), "\n") {
		for _, f := range fragments {
			if !strings.Contains(line, f) {
				continue next
			}
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// A sync that DOKU cannot answer says "retry in 5 s" — and the retry is not then refused as too soon.
func TestFailedSyncGivesItsSlotBack(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{Config: func(c *config.Config) { c.SyncMinInterval = time.Minute }})
	create(t, s, apitest.NewInvoice("INV-SYNC-FAIL", "alfa"))
	s.Sim.SetFaults(dokusim.Faults{FailNext: 1, FailStatus: 500})
	r := s.Sync("INV-SYNC-FAIL")
	if r.Status != 503 || r.Header.Get("Retry-After") != "5" {
		t.Fatalf("sync with DOKU failing: %d %s %v", r.Status, r.Body, r.Header)
	}
	if r := s.Sync("INV-SYNC-FAIL"); r.Status != 200 {
		t.Fatalf("the retry its Retry-After asked for: %d %s", r.Status, r.Body)
	}
	if r := s.Sync("INV-SYNC-FAIL"); r.Status != 429 {
		t.Fatalf("a sync right after a successful one: %d, want 429", r.Status)
	}
}

// A body over the limit on a real route is logged and counted under that route, not "unmatched".
func TestOversizedCreateIsCountedUnderItsRoute(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	big := `{"info":"` + strings.Repeat("x", 70<<10) + `"}`
	if r := s.POST("/v1/invoices", []byte(big)); r.Status != 413 {
		t.Fatalf("oversized create: %d", r.Status)
	}
	m, _ := scrape(t, s)
	if m[`o2o_http_requests_total{method=POST,route=/v1/invoices,status=413}`] != 1 {
		t.Fatalf("413 not counted under its route: %v", m)
	}
	if lines := logLines(s, `"status":413`, `"route":"/v1/invoices"`); len(lines) != 1 {
		t.Fatalf("413 not logged under its route:\n%s", s.Logs)
	}
}

// A failed create's lines name the invoice; a DOKU blip (retried by the client and the resumer) is a
// warning, not an error someone is paged for.
func TestFailedCreateLogsNameTheInvoiceAtWarn(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	s.Sim.SetFaults(dokusim.Faults{FailNext: 1, FailStatus: 503})
	if r := s.Create(apitest.NewInvoice("INV-BLIP", "alfa")); r.Status != 503 {
		t.Fatalf("setup: %d", r.Status)
	}
	failed := logLines(s, `"message":"request failed; retry later"`)
	if len(failed) != 1 || failed[0]["invoice_number"] != "INV-BLIP" || failed[0]["level"] != "warn" {
		t.Fatalf("the failure line: %v\n%s", failed, s.Logs)
	}
	if access := logLines(s, `"message":"request"`, `"status":503`); len(access) != 1 || access[0]["invoice_number"] != "INV-BLIP" {
		t.Fatalf("the access line: %v", access)
	}
	if errs := logLines(s, `"level":"error"`); len(errs) != 0 {
		t.Fatalf("a DOKU blip logged at error level: %v", errs)
	}
}

// The workers' series exist at zero before anything happened, so ratio alerts over them have data.
func TestWorkerSeriesExistFromTheStart(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	m, _ := scrape(t, s)
	for _, key := range []string{
		`o2o_worker_rounds_total{worker=reconciler}`, `o2o_worker_errors_total{worker=resumer}`,
		`o2o_worker_items_total{result=gave_up,worker=resumer}`, `o2o_worker_items_total{result=doku_unavailable,worker=reconciler}`,
		`o2o_attention_open{reason=second_payment}`,
	} {
		if v, ok := m[key]; !ok || v != 0 {
			t.Errorf("%s = %v (present %v), want 0", key, v, ok)
		}
	}
}

// A payment made one second after the code's expiry, while the invoice waited in the grace period,
// is paid after expiry: a checkout may have given the order up at expires_at.
func TestPaymentJustAfterExpiryIsPaidAfterExpiry(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	inv := create(t, s, apitest.NewInvoice("INV-GRACE-1S", "alfa"))
	if inv.ExpiresAt == nil {
		t.Fatalf("no expiry: %v", inv)
	}
	expires, _ := time.Parse(time.RFC3339, *inv.ExpiresAt)
	body := notification("INV-GRACE-1S", inv.Code(t), "150000", expires.Add(time.Second).Format(time.RFC3339), `"T1"`)
	if r := s.Notify(body, "grace-1s", nil); r.Status != 200 {
		t.Fatalf("notify: %d %s", r.Status, r.Body)
	}
	got := get(t, s, "INV-GRACE-1S")
	if got.Status != "paid" || !got.PaidAfterExpiry {
		t.Fatalf("paid 1 s after expiry: %v", got)
	}
	if items := s.Attention("reason=paid_after_expiry&invoice_number=INV-GRACE-1S"); len(items) != 1 {
		t.Fatalf("not flagged: %v", items)
	}
}
