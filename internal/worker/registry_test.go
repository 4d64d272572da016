package worker_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/config"
)

// payThrough creates and pays n invoices through a replica (3 events each).
func payThrough(t *testing.T, s *apitest.Stack, r *apitest.Replica, prefix string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		number := fmt.Sprintf("%s-%02d", prefix, i)
		resp := r.Send(apitest.Request{Method: http.MethodPost, Path: "/v1/invoices", Body: apitest.JSON(t, apitest.NewInvoice(number, "alfa"))})
		if resp.Status != http.StatusCreated {
			t.Fatalf("create through the replica: HTTP %d %s", resp.Status, resp.Body)
		}
		inv := resp.Invoice(t)
		s.Pay(inv.Code(t), inv.Amount)
	}
}

// scrape is a replica's /metrics.
func scrape(t *testing.T, r *apitest.Replica) string {
	t.Helper()
	return string(r.Send(apitest.Request{Method: http.MethodGet, Path: "/metrics"}).Body)
}

// acknowledgedIDs is the set of event ids a receiver acknowledged.
func acknowledgedIDs(rc *apitest.Receiver) map[string]bool {
	out := map[string]bool{}
	for _, d := range rc.Acknowledged() {
		out[d.ID] = true
	}
	return out
}

// A rolling deploy: replica A runs with endpoints orders and audit; replica B starts without any
// (a misconfigured pod, or an old version restarting during the rollout that added them), then
// restarts with orders only. No replica silences an endpoint: every event, whichever replica made
// it, is queued and delivered to both; B says it disagrees, as a metric and a log line.
func TestRollingDeployDeliversEveryEventToEveryEndpoint(t *testing.T) {
	t.Parallel()
	orders, audit := apitest.NewReceiver(t), apitest.NewReceiver(t)
	fast := fastDelivery(2*time.Second, time.Minute)
	s := apitest.New(t, apitest.Options{Config: configs(apitest.Endpoint("orders", orders), apitest.Endpoint("audit", audit), fast)})
	s.Deliver()
	payInvoices(t, s, "INV-RD-A", 1)

	b := s.Replica(configs(fast, func(c *config.Config) { c.EventsEndpoints, c.EventsSecrets = nil, nil }))
	b.Deliver()
	payThrough(t, s, b, "INV-RD-B", 2)
	waitForMetric(t, b, `o2o_webhook_endpoint_config_disagreement{endpoint="audit",kind="not_configured_here"} 1`)
	waitForMetric(t, b, `o2o_webhook_endpoint_config_disagreement{endpoint="orders",kind="not_configured_here"} 1`)
	if !strings.Contains(s.Logs.String(), "disagrees with the registry") || !strings.Contains(s.Logs.String(), "audit: not_configured_here") {
		t.Errorf("no log line says replica B disagrees:\n%s", grepLines(s.Logs.String(), "registry"))
	}

	// B again, now with orders only (its new configuration half rolled out).
	c := s.Replica(configs(fast, apitest.Endpoint("orders", orders)))
	c.Deliver()
	payThrough(t, s, c, "INV-RD-C", 2)
	waitForMetric(t, c, `o2o_webhook_endpoint_config_disagreement{endpoint="audit",kind="not_configured_here"} 1`)
	if m := scrape(t, c); strings.Contains(m, `endpoint="orders",kind=`) {
		t.Errorf("replica C, configured with orders, disagrees about it:\n%s", grepLines(m, "disagreement"))
	}

	evs := waitDelivered(t, s, 20*time.Second)
	if len(evs) != 5*2 {
		t.Fatalf("%d events, want 10 (5 invoices: pending, paid)", len(evs))
	}
	if n := s.Count(`SELECT count(*) FROM webhook_deliveries`); n != 2*len(evs) {
		t.Errorf("%d deliveries for %d events to two endpoints: some event was not queued for both", n, len(evs))
	}
	gotOrders, gotAudit := acknowledgedIDs(orders), acknowledgedIDs(audit)
	for _, e := range evs {
		if !gotOrders[e.ID] || !gotAudit[e.ID] {
			t.Errorf("event %s (%s of %s): orders got it %v, audit %v", e.ID, e.Type, *e.InvoiceNumber, gotOrders[e.ID], gotAudit[e.ID])
		}
	}
	eps := s.GET("/v1/webhook-endpoints")
	if strings.Count(string(eps.Body), `"state":"active"`) != 2 {
		t.Errorf("both endpoints must still be active: %s", eps.Body)
	}
}

func waitForMetric(t *testing.T, r *apitest.Replica, line string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		m := scrape(t, r)
		if strings.Contains(m, line) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metric %s never appeared:\n%s", line, grepLines(m, "disagreement"))
		}
	}
}

// Removing an endpoint is the merchant's decision through the API: no event is queued for it from
// then on, a replica still configured with it does not bring it back (and says so), and enable
// registers it again.
func TestRemovedEndpointStaysRemoved(t *testing.T) {
	t.Parallel()
	rc := apitest.NewReceiver(t)
	s := apitest.New(t, apitest.Options{Config: configs(apitest.Endpoint("orders", rc), fastDelivery(time.Second, time.Minute))})
	if r := s.Send(apitest.Request{Method: http.MethodDelete, Path: "/v1/webhook-endpoints/orders"}); r.Status != http.StatusOK ||
		!strings.Contains(string(r.Body), `"state":"removed"`) {
		t.Fatalf("remove: HTTP %d %s", r.Status, r.Body)
	}
	again := s.Replica(configs(apitest.Endpoint("orders", rc), fastDelivery(time.Second, time.Minute)))
	if err := again.App.RegisterEndpoints(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := again.App.Deliverer.CheckRegistry(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m := scrape(t, again); !strings.Contains(m, `o2o_webhook_endpoint_config_disagreement{endpoint="orders",kind="removed"} 1`) {
		t.Errorf("a replica configured with a removed endpoint does not say so:\n%s", grepLines(m, "disagreement"))
	}
	s.Create(apitest.NewInvoice("INV-RM-1", "alfa"))
	if n := s.Count(`SELECT count(*) FROM webhook_deliveries`); n != 0 {
		t.Errorf("%d deliveries queued for a removed endpoint", n)
	}
	if r := s.POST("/v1/webhook-endpoints/orders/enable", nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"state":"active"`) {
		t.Fatalf("enable: HTTP %d %s", r.Status, r.Body)
	}
	s.Create(apitest.NewInvoice("INV-RM-2", "alfa"))
	if n := s.Count(`SELECT count(*) FROM webhook_deliveries`); n != 1 {
		t.Errorf("%d deliveries after enabling, want the new event's", n)
	}
	for _, path := range []string{"/v1/webhook-endpoints/nope", "/v1/webhook-endpoints/%FF", "/v1/webhook-endpoints/%00"} {
		if r := s.Send(apitest.Request{Method: http.MethodDelete, Path: path}); r.Status != http.StatusNotFound {
			t.Errorf("DELETE %s: HTTP %d %s", path, r.Status, r.Body)
		}
	}
}

// Rotating an endpoint's secret: while both are configured every delivery carries a signature by
// each, so a receiver that still verifies with the old one and one that already verifies with the new
// one both accept every delivery (the Standard Webhooks library).
func TestSecretRotationLeavesNoGap(t *testing.T) {
	t.Parallel()
	const newSecret = "whsec_QWxsIHRoZSBzZWNyZXRzIHdlIGtlZXAgZm9yIHRoZSBzd2l0Y2g="
	rc := apitest.NewReceiver(t) // verifies with the old secret (apitest.TestSecret)
	s := apitest.New(t, apitest.Options{Config: configs(apitest.EndpointWithSecrets("orders", rc, apitest.TestSecret, newSecret),
		fastDelivery(2*time.Second, time.Minute))})
	s.Deliver()
	payInvoices(t, s, "INV-ROT-OLD", 1)
	waitDelivered(t, s, 10*time.Second)
	rc.VerifyWith(t, newSecret) // the receiver switches to the new secret
	payInvoices(t, s, "INV-ROT-NEW", 1)
	evs := waitDelivered(t, s, 10*time.Second)
	if len(rc.Acknowledged()) != len(evs) || len(evs) != 4 || rc.Refused() != 0 {
		t.Fatalf("%d events, %d acknowledged, %d refused by a receiver verifying with the old, then the new secret",
			len(evs), len(rc.Acknowledged()), rc.Refused())
	}
	if sig := rc.Acknowledged()[0].Header.Get("webhook-signature"); len(strings.Fields(sig)) != 2 {
		t.Errorf("signature header %q: want one v1 signature per secret", sig)
	}
}
