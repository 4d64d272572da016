package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/merchant/o2o/internal/apitest"
	"github.com/merchant/o2o/internal/doku"
	"github.com/merchant/o2o/internal/dokusim"
)

// scrape reads /metrics and returns each sample as "name{labels}" -> value.
func scrape(t *testing.T, s *apitest.Stack) (map[string]float64, string) {
	t.Helper()
	resp := s.GET("/metrics")
	if resp.Status != 200 {
		t.Fatalf("/metrics: %d", resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(strings.NewReader(string(resp.Body)))
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := name + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				out[key+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out, string(resp.Body)
}

func TestMetricsMoveWithAFlow(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	inv := create(t, s, apitest.NewInvoice("INV-MX-1", "alfa"))
	code := inv.Code(t)
	paid := s.Pay(code, 150000)
	body := apitest.NotificationBody("INV-MX-1", "alfa", code, 150000, paid.TransactionID)
	s.Notify(body, "mx-dup", nil)                                                                    // duplicate payment
	s.Notify(body, "mx-dup", nil)                                                                    // redelivered Request-Id
	s.Notify(body, "mx-bad", func(h http.Header) { h.Set(doku.HeaderSignature, "HMACSHA256=AAAA") }) // refused
	s.Notify(apitest.NotificationBody("INV-MX-1", "alfa", code, 1, "T2"), "mx-wrong", nil)           // amount mismatch
	s.Sim.SetFaults(dokusim.Faults{FailNext: 1, FailStatus: 503})
	s.Create(apitest.NewInvoice("INV-MX-2", "indomaret")) // DOKU unavailable
	if _, err := s.Reconciler().RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}

	m, text := scrape(t, s)
	want := map[string]float64{
		`o2o_http_requests_total{method=POST,route=/v1/invoices,status=201}`:           1,
		`o2o_http_requests_total{method=POST,route=/v1/invoices,status=503}`:           1,
		`o2o_http_requests_total{method=POST,route=/v1/notifications/doku,status=200}`: 4,
		`o2o_http_requests_total{method=POST,route=/v1/notifications/doku,status=401}`: 1,
		`o2o_http_request_duration_seconds{method=POST,route=/v1/invoices}_count`:      2,
		`o2o_doku_requests_total{endpoint=generate_alfa,outcome=ok}`:                   1,
		`o2o_doku_requests_total{endpoint=generate_indomaret,outcome=unavailable}`:     1,
		`o2o_doku_request_duration_seconds{endpoint=generate_alfa}_count`:              1,
		`o2o_invoice_transitions_total{channel=alfa,from=none,to=creating}`:            1,
		`o2o_invoice_transitions_total{channel=alfa,from=creating,to=pending}`:         1,
		`o2o_invoice_transitions_total{channel=alfa,from=pending,to=paid}`:             1,
		`o2o_invoice_transitions_total{channel=indomaret,from=none,to=creating}`:       1,
		`o2o_webhook_notifications_total{outcome=applied}`:                             1,
		`o2o_webhook_notifications_total{outcome=duplicate}`:                           1,
		`o2o_webhook_notifications_total{outcome=redelivered}`:                         1,
		`o2o_webhook_notifications_total{outcome=bad_signature}`:                       1,
		`o2o_webhook_notifications_total{outcome=amount_mismatch}`:                     1,
		`o2o_worker_rounds_total{worker=reconciler}`:                                   1,
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if m[`o2o_db_pool_max_connections{}`] < 1 {
		t.Error("database pool metrics missing")
	}
	if strings.Contains(text, "INV-MX") || strings.Contains(text, code) {
		t.Fatal("a metric label carries an invoice number or payment code")
	}
}

func TestInvoiceHistoryExplainsPaid(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	inv := create(t, s, apitest.NewInvoice("INV-HIST", "indomaret"))
	s.Pay(inv.Code(t), 150000)

	resp := s.GET("/v1/invoices/INV-HIST/events")
	if resp.Status != 200 {
		t.Fatalf("events: %d %s", resp.Status, resp.Body)
	}
	var got []string
	for _, e := range resp.History(t).Items {
		step := e.Source + ":" + e.Kind
		if e.ToStatus != nil {
			step += "->" + *e.ToStatus
		}
		got = append(got, step)
		if e.Kind == "doku_generate" && (e.Detail["result"] != "issued" || e.Detail["doku_request_id"] == "") {
			t.Errorf("DOKU call without result or Request-Id: %v", e)
		}
		if e.Kind == "payment_recorded" && e.Detail["amount"] != float64(150000) {
			t.Errorf("payment without amount: %v", e)
		}
	}
	want := "api:created->creating api:doku_generate api:status_changed->pending webhook:payment_recorded webhook:status_changed->paid webhook:notification"
	if strings.Join(got, " ") != want {
		t.Fatalf("history\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if r := s.GET("/v1/invoices/INV-NONE/events"); r.Status != 404 {
		t.Fatalf("events of an unknown invoice: %d", r.Status)
	}
}

func TestServesItsContract(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	r := s.Send(apitest.Request{Method: http.MethodGet, Path: "/openapi.yaml", NoKey: true})
	if r.Status != 200 || !strings.HasPrefix(string(r.Body), "openapi: 3.1") {
		t.Fatalf("/openapi.yaml: %d %.40s", r.Status, r.Body)
	}
}

func TestMetricsNeedAKeyAndStayBounded(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, apitest.Options{})
	if r := s.Send(apitest.Request{Method: http.MethodGet, Path: "/metrics", NoKey: true}); r.Status != 401 {
		t.Fatalf("/metrics without a key on the public listener: %d", r.Status)
	}
	for i := 0; i < 50; i++ {
		req, _ := http.NewRequest(fmt.Sprintf("M%03d", i), s.URL+"/healthz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	_, text := scrape(t, s)
	if strings.Contains(text, "M049") || !strings.Contains(text, `method="other"`) {
		t.Fatal("made-up methods became metric labels")
	}
}
